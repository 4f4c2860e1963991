"""PFNN database construction, normalisation, files and the released network."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from helpers import REAL_DATA

from motionhub.motion.rotations import matrix_to_quat, quat_to_matrix
from motionhub_pfnn.database import (
    X_STD_GROUPS,
    Y_STD_GROUPS,
    PFNNConfig,
    PFNNDatabase,
    PFNNWeights,
    build_database,
    catmull_rom_weights,
    cycles_from_phase,
    flat_floor_height,
    footstep_cycles,
    frame_rows,
    integer_ratio,
    layouts,
    load_database,
    merge_gait_labels,
    near_phase,
    pfnn_normalisation,
    pfnn_predict,
    prepare_clip,
    read_bin,
    read_footsteps,
    read_normalisation,
    read_pfnn_weights,
    resample_linear,
    resample_phase,
    resample_rotations,
    rotation_exp,
    rotation_log,
    save_database,
    write_bin,
    write_normalisation,
    x_layout,
    y_layout,
)

PFNN_DATA = REAL_DATA / "sreyafrancis-PFNN"

# A 22-joint SMPL-style body: x is left, y up, z forward in the body frame.
SMPL22_CONFIG = PFNNConfig(
    root=0,
    facing_pairs=((16, 17), (1, 2)),
    left_feet=(7, 10),
    right_feet=(8, 11),
    foot_heights=(8.0, 4.0),
    head=None,
    masked_joints=(),
    unit_scale=1.0,
)
BODY_OFFSETS = {
    1: (10, -5, 0), 2: (-10, -5, 0), 3: (0, 10, 0), 6: (0, 20, 0), 9: (0, 30, 0), 12: (0, 50, 0),
    13: (5, 45, 0), 14: (-5, 45, 0), 15: (0, 60, 0), 16: (18, 45, 0), 17: (-18, 45, 0),
    18: (20, 20, 0), 19: (-20, 20, 0), 20: (20, 0, 5), 21: (-20, 0, 5),
}
TURN_RATE = 0.36  # rad/s, heading increasing (turning left)
SPEED = 90.0  # units/s
STANCE = 0.6  # s of each 1 s cycle


def y_rotation(angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    zero, one = np.zeros_like(c), np.ones_like(c)
    return np.stack([np.stack([c, zero, s], -1), np.stack([zero, one, zero], -1), np.stack([-s, zero, c], -1)], -2)


def heading(t: np.ndarray) -> np.ndarray:
    return TURN_RATE * t


def forward_of(h: np.ndarray) -> np.ndarray:
    return np.stack([np.sin(h), np.zeros_like(h), np.cos(h)], -1)


def root_xz(t: np.ndarray) -> np.ndarray:
    """Closed-form integral of SPEED * forward(heading(t)), starting at the origin."""
    h = heading(t)
    return np.stack([SPEED / TURN_RATE * (1 - np.cos(h)), np.zeros_like(h), SPEED / TURN_RATE * np.sin(h)], -1)


def foot_track(t: np.ndarray, first_landing: float, side: float) -> tuple[np.ndarray, np.ndarray]:
    """Ankle and toe positions (T, 3): planted for STANCE s after each landing, then swinging."""
    landing_times = np.arange(first_landing - 1.0, t[-1] + 2.0, 1.0)
    centres = landing_times + STANCE / 2
    placements = root_xz(centres) + side * 10 * y_rotation(heading(centres)) @ np.array([1.0, 0.0, 0.0])
    k = np.searchsorted(landing_times, t, side="right") - 1
    into = t - landing_times[k]
    swing = np.clip((into - STANCE) / (1.0 - STANCE), 0.0, 1.0)
    ankle = (1 - swing)[:, None] * placements[k] + swing[:, None] * placements[k + 1]
    ankle[:, 1] = 8.0 + 10.0 * np.sin(np.pi * swing)
    foot_heading = (1 - swing) * heading(centres[k]) + swing * heading(centres[k + 1])
    toe = ankle + 12.0 * forward_of(foot_heading) - np.array([0.0, 4.0, 0.0])
    return ankle, toe


def synthetic_walk(seconds: float = 8.0, fps: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    """Positions (T, 22, 3) and rotations (T, 22, 3, 3) of a walk on a left-turning circle.

    The right foot lands at t = 0, 1, 2, ... s and the left foot at 0.5, 1.5, ... s.
    Every joint's global rotation is the heading rotation, except joint 15 (head),
    which also tilts 60 degrees about its local x axis.
    """
    t = np.arange(int(round(seconds * fps))) / fps
    h = heading(t)
    turn = y_rotation(h)
    root = root_xz(t) + np.array([0.0, 95.0, 0.0])
    positions = np.zeros((len(t), 22, 3))
    positions[:, 0] = root
    for joint, offset in BODY_OFFSETS.items():
        positions[:, joint] = root + turn @ np.array(offset, dtype=float)
    positions[:, 8], positions[:, 11] = foot_track(t, 0.0, -1.0)
    positions[:, 7], positions[:, 10] = foot_track(t, 0.5, 1.0)
    for knee, hip, ankle in ((4, 1, 7), (5, 2, 8)):
        positions[:, knee] = 0.5 * (positions[:, hip] + positions[:, ankle]) + 5 * forward_of(h)
    rotations = np.repeat(turn[:, None], 22, axis=1)
    tilt = np.array([[1, 0, 0], [0, 0.5, -np.sqrt(0.75)], [0, np.sqrt(0.75), 0.5]])
    rotations[:, 15] = turn @ tilt
    return positions, rotations


@pytest.fixture(scope="module")
def walk():
    positions, rotations = synthetic_walk()
    clip = prepare_clip(positions, 60.0, SMPL22_CONFIG, rotations=rotations)
    return positions, clip, frame_rows(clip, SMPL22_CONFIG)


# ------------------------------------------------------------------------ layouts


def test_column_counts_match_pfnn_for_31_joints_and_generalise():
    assert x_layout(31).size == 342 and y_layout(31).size == 311
    assert x_layout(22).size == 156 + 6 * 22 == 288
    assert y_layout(22).size == 8 + 24 + 9 * 22 == 230
    assert y_layout(22, rotations=False).size == 8 + 24 + 6 * 22
    x, y = x_layout(31), y_layout(31)
    assert x["joint_positions"] == slice(120, 213) and x["joint_velocities"] == slice(213, 306)
    assert x["gait_stand"] == slice(48, 60) and x["terrain_right"] == slice(306, 318)
    assert y["contacts"] == slice(4, 8) and y["future_position_x"] == slice(8, 14)
    assert (y["joint_positions"].start, y["joint_velocities"].start, y["joint_rotations"].start) == (32, 125, 218)
    for layout in (x, y):
        assert all(a.stop == b.start for a, b in zip(layout.groups[:-1], layout.groups[1:]))
    with pytest.raises(KeyError, match="no column group"):
        x["joint_rotations"]


def test_frame_rows_of_a_22_joint_clip_have_the_generalised_widths(walk):
    positions, clip, rows = walk
    x_lay, y_lay = layouts(22, SMPL22_CONFIG)
    assert rows.X.shape == (len(positions) - 121, x_lay.size)
    assert rows.Y.shape == (len(positions) - 121, y_lay.size)
    assert rows.frames[0] == 60 and rows.frames[-1] == len(positions) - 62


# --------------------------------------------------------------------- resampling


def test_integer_ratio_takes_every_kth_frame_exactly():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(121, 5, 3))
    rotations = resample_rotations(y_rotation(rng.normal(size=(121, 5))), 120.0, 60.0)
    assert integer_ratio(1 / 0.008333, 60.0) == 2 and integer_ratio(50.0, 30.0) is None
    assert np.array_equal(resample_linear(values, 1 / 0.008333, 60.0), values[::2])
    assert rotations.shape == (61, 5, 3, 3)
    phase = np.mod(np.arange(121) / 40, 1.0)
    assert np.array_equal(resample_phase(phase, 120.0, 60.0), phase[::2])


def test_non_integer_ratio_interpolates_linear_motion_and_rotation_exactly():
    t = np.arange(101) / 50.0  # 50 fps, 2 s
    positions = np.stack([3 * t, -t, 0.5 + 0 * t], -1)[:, None]
    out = resample_linear(positions, 50.0, 30.0)
    t30 = np.arange(61) / 30.0
    np.testing.assert_allclose(out[:, 0], np.stack([3 * t30, -t30, 0.5 + 0 * t30], -1), atol=1e-12)
    rotations = resample_rotations(y_rotation(1.3 * t)[:, None], 50.0, 30.0)
    np.testing.assert_allclose(rotations[:, 0], y_rotation(1.3 * t30), atol=1e-9)
    phase = resample_phase(np.mod(0.8 * t, 1.0), 50.0, 30.0)  # wraps once per 1.25 s
    np.testing.assert_allclose(phase, np.mod(0.8 * t30, 1.0), atol=1e-9)


def test_prepare_clip_at_120_fps_equals_every_second_frame():
    positions, rotations = synthetic_walk(seconds=4.0, fps=120.0)
    at_120 = prepare_clip(positions, 120.0, SMPL22_CONFIG, rotations=rotations)
    at_60 = prepare_clip(positions[::2], 60.0, SMPL22_CONFIG, rotations=rotations[::2])
    assert np.array_equal(at_120.positions, at_60.positions)
    assert np.array_equal(at_120.phase, at_60.phase)


# -------------------------------------------------------------------- consistency


def test_root_velocity_and_turning_integrate_to_the_root_path(walk):
    positions, clip, rows = walk
    y_lay = layouts(22, SMPL22_CONFIG)[1]
    velocity = rows.Y[:, y_lay["root_velocity"]]
    turning = rows.Y[:, y_lay["root_angular_velocity"]][:, 0]
    # The root rotation of frame i is a y-rotation by -heading_i; Y[2] is -(heading change).
    first = rows.frames[0]
    start_heading = np.arctan2(clip.forward[first, 0], clip.forward[first, 2])
    headings = start_heading - np.concatenate([[0.0], np.cumsum(turning[:-1])])
    local_steps = np.stack([velocity[:, 0], np.zeros_like(turning), velocity[:, 1]], -1)
    world_steps = np.einsum("rab,rb->ra", y_rotation(headings), local_steps)
    path = positions[first, 0] + np.cumsum(world_steps, axis=0)
    np.testing.assert_allclose(path[:, [0, 2]], positions[rows.frames + 1][:, 0, [0, 2]], atol=1e-6)
    # Away from the clip ends the smoothed facing equals the true heading: a left turn
    # gives a constant negative Y[2].
    interior = (rows.frames >= 80) & (rows.frames < len(positions) - 81)
    np.testing.assert_allclose(turning[interior], -TURN_RATE / 60.0, atol=1e-9)


def test_joint_positions_integrate_to_velocities(walk):
    positions, clip, rows = walk
    x_lay, y_lay = layouts(22, SMPL22_CONFIG)
    pos = rows.Y[:, y_lay["joint_positions"]].reshape(-1, 22, 3)
    vel = rows.Y[:, y_lay["joint_velocities"]].reshape(-1, 22, 3)
    back = np.swapaxes(clip.root_rotations[rows.frames], 1, 2)
    root = positions[rows.frames, 0] * np.array([1.0, 0.0, 1.0])
    np.testing.assert_allclose(np.einsum("rab,rjb->rja", back, pos) + root[:, None], positions[rows.frames], atol=1e-9)
    np.testing.assert_allclose(
        np.einsum("rab,rjb->rja", back, pos + vel) + root[:, None], positions[rows.frames + 1], atol=1e-9
    )
    # X holds frame i-1 in its own root space: the previous row's Y joint blocks.
    for name in ("joint_positions", "joint_velocities"):
        np.testing.assert_array_equal(rows.X[1:, x_lay[name]], rows.Y[:-1, y_lay[name]])


def test_trajectory_current_sample_and_future_origin(walk):
    _, _, rows = walk
    x_lay, y_lay = layouts(22, SMPL22_CONFIG)
    now = SMPL22_CONFIG.window // SMPL22_CONFIG.step
    assert np.all(rows.X[:, x_lay["trajectory_position_x"]][:, now] == 0)
    assert np.all(rows.X[:, x_lay["trajectory_position_z"]][:, now] == 0)
    np.testing.assert_allclose(rows.X[:, x_lay["trajectory_direction_z"]][:, now], 1.0, atol=1e-12)
    np.testing.assert_allclose(rows.Y[:, y_lay["future_position_x"]][:, 0], 0.0, atol=1e-12)
    np.testing.assert_allclose(rows.Y[:, y_lay["future_direction_z"]][:, 0], 1.0, atol=1e-12)


def test_contacts_match_foot_speeds_and_stance(walk):
    positions, clip, rows = walk
    y_lay = layouts(22, SMPL22_CONFIG)[1]
    feet = list(SMPL22_CONFIG.feet)
    speed2 = np.sum((positions[rows.frames + 1][:, feet] - positions[rows.frames][:, feet]) ** 2, axis=-1)
    contacts = rows.Y[:, y_lay["contacts"]]
    np.testing.assert_array_equal(contacts, (speed2 < SMPL22_CONFIG.contact_threshold).astype(float))
    # Right foot (columns 2, 3) planted during [k, k + STANCE) s, left one half a cycle later.
    seconds = rows.frames / 60.0
    np.testing.assert_array_equal(contacts[:, 2], (np.mod(seconds, 1.0) < STANCE - 1e-9).astype(float))
    np.testing.assert_array_equal(contacts[:, 0], (np.mod(seconds - 0.5, 1.0) < STANCE - 1e-9).astype(float))


def test_phase_from_contacts_is_zero_at_right_and_half_at_left_landings(walk):
    positions, clip, _ = walk
    frames = np.arange(len(positions))
    right, left = frames[(frames % 60 == 0) & (frames > 0)], frames[frames % 60 == 30]
    assert np.all(clip.phase[right[:-1]] == 0.0)
    np.testing.assert_allclose(clip.phase[left[1:-1]], 0.5)
    np.testing.assert_allclose(clip.phase[75], 0.25)
    assert np.all(clip.phase[:60] == 0.0) and np.all(clip.phase[right[-1] :] == 0.0)
    np.testing.assert_array_equal(cycles_from_phase(clip.phase), np.stack([right[:-1], right[1:]], -1))


def test_phase_from_given_contacts_equals_phase_from_the_clips_own(walk):
    positions, clip, _ = walk
    own = np.concatenate([clip.contacts, clip.contacts[-1:]])
    given = prepare_clip(positions, 60.0, SMPL22_CONFIG, phase_contacts=own)
    np.testing.assert_array_equal(given.phase, clip.phase)
    # Contacts given at 30 fps are resampled to 60 fps; the landings (on even frames) stay put.
    half = prepare_clip(positions[::2], 30.0, SMPL22_CONFIG, phase_contacts=own[::2])
    np.testing.assert_array_equal(cycles_from_phase(half.phase), cycles_from_phase(clip.phase))


def test_database_phase_advances_monotonically_mod_1(walk):
    positions, clip, rows = walk
    cycles = cycles_from_phase(clip.phase)
    database = build_database(clip, cycles, SMPL22_CONFIG)
    y_lay = layouts(22, SMPL22_CONFIG)[1]
    # Cycles (60, 120) ... (300, 360); (360, 420) lacks a full window at 8 s.
    assert len(database) == 5 * 61
    pun = database.Pun.reshape(5, 61).astype(np.float64)
    assert np.all(pun[:, 0] == 0.0) and np.all(pun[:, -1] == 1.0)
    assert np.all(np.diff(pun, axis=1) > 0)
    delta = database.Yun[:, y_lay["phase_delta"]][:, 0].reshape(5, 61)
    np.testing.assert_allclose(np.mod(pun[:, :-1] + delta[:, :-1], 1.0), np.mod(pun[:, 1:], 1.0), atol=1e-6)
    np.testing.assert_allclose(delta, 1 / 60, atol=1e-6)


def test_flat_floor_is_subtracted_and_terrain_is_zero(walk):
    positions, clip, rows = walk
    x_lay, y_lay = layouts(22, SMPL22_CONFIG)
    # Planted ankles sit 8 and toes 4 above y = 0, exactly the configured foot heights.
    assert flat_floor_height(clip, 0, 200, SMPL22_CONFIG) == pytest.approx(0.0, abs=1e-9)
    raised = prepare_clip(positions + np.array([0.0, 7.0, 0.0]), 60.0, SMPL22_CONFIG)
    assert flat_floor_height(raised, 0, 200, SMPL22_CONFIG) == pytest.approx(7.0)
    cycles = cycles_from_phase(raised.phase)
    database = build_database(raised, cycles, SMPL22_CONFIG, copies=3)
    base = build_database(clip, cycles, SMPL22_CONFIG)
    # Each 61-row cycle is stored three times in a row, identically.
    copies = database.Xun.reshape(-1, 3, 61, x_lay.size)
    assert np.array_equal(copies[:, 1], copies[:, 0]) and np.array_equal(copies[:, 2], copies[:, 0])
    lifted = copies[:, 0].reshape(-1, x_lay.size)
    np.testing.assert_allclose(lifted[:, x_lay["joint_positions"]], base.Xun[:, x_lay["joint_positions"]], atol=1e-4)
    assert np.all(database.Xun[:, x_lay["terrain_right"].start :] == 0)


def test_rotations_are_half_angle_logs_in_root_space(walk):
    _, _, rows = walk
    y_lay = layouts(22, SMPL22_CONFIG)[1]
    logs = rows.Y[:, y_lay["joint_rotations"]].reshape(-1, 22, 3)
    interior = (rows.frames >= 80) & (rows.frames < rows.frames[-1] - 20)
    # Heading-only joints are the identity in root space; the head tilts 60 degrees about x.
    np.testing.assert_allclose(np.delete(logs[interior], 15, axis=1), 0.0, atol=1e-9)
    np.testing.assert_allclose(logs[interior, 15], [[np.radians(30), 0, 0]] * interior.sum(), atol=1e-9)


def test_rotation_log_takes_the_w_positive_hemisphere_and_inverts():
    axis = np.array([0.0, 0.6, 0.8])
    for angle in (0.0, 0.7, 2.5, 3.5):
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        matrix = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
        log = rotation_log(matrix)
        expected = axis * angle / 2 if angle <= np.pi else -axis * (2 * np.pi - angle) / 2
        np.testing.assert_allclose(log, expected, atol=1e-12)
        np.testing.assert_allclose(rotation_exp(log), matrix, atol=1e-12)


@pytest.mark.parametrize(("speeds", "column"), [((100.0, 150.0), 0), ((20.0, 150.0), 1), ((20.0, 60.0), 2)])
def test_gait_from_speed_uses_the_thresholds(speeds, column):
    positions, _ = synthetic_walk(seconds=4.0)  # root speed 90 units/s
    clip = prepare_clip(positions, 60.0, dataclasses.replace(SMPL22_CONFIG, gait_speeds=speeds))
    np.testing.assert_array_equal(clip.gait, np.eye(6)[np.full(len(positions), column)])


def test_gait_labels_merge_and_head_height_sets_crouch():
    labels = np.zeros((10, 8))
    labels[:, 3], labels[:, 6], labels[:, 7] = 0.25, 0.5, 1.0
    merged = merge_gait_labels(labels)
    np.testing.assert_allclose(merged[0], [0, 0, 0.25, 0.5, 0, 1.0])
    positions, _ = synthetic_walk(seconds=4.0)
    positions[:, 15, 1] = np.linspace(140.0, 70.0, len(positions))  # head height
    clip = prepare_clip(positions, 60.0, dataclasses.replace(SMPL22_CONFIG, head=15), gait=np.zeros((240, 6)))
    expected = 1 - np.clip((positions[:, 15, 1] - 80) / 50, 0, 1)
    np.testing.assert_allclose(clip.gait[:-1, 3], expected[:-1])
    assert clip.gait[-1, 3] == clip.gait[-2, 3]


def test_matrix_quaternion_round_trip_including_half_turns():
    rng = np.random.default_rng(4)
    q = rng.normal(size=(500, 4))
    q[:100, 0] = 0.0  # 180-degree rotations
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    back = matrix_to_quat(quat_to_matrix(q))
    np.testing.assert_allclose(np.abs(np.sum(back * q, axis=-1)), 1.0, atol=1e-12)


# ---------------------------------------------------------------- normalisation, files


def test_normalisation_shares_group_stds_and_masks_joints():
    rng = np.random.default_rng(1)
    x_lay, y_lay = x_layout(22), y_layout(22)
    X = rng.normal(size=(200, x_lay.size)) * rng.uniform(0.5, 3.0, size=x_lay.size)
    X[:, x_lay["terrain_right"].start :] = 0.0  # flat terrain only
    Y = rng.normal(size=(200, y_lay.size))
    database = PFNNDatabase(X.astype(np.float32), Y.astype(np.float32), np.zeros(200, np.float32))
    norm = pfnn_normalisation(database, x_lay, y_lay, masked_joints=(3, 13))
    std = database.Xun.astype(np.float64).std(axis=0)
    for lay, groups, stds in ((x_lay, X_STD_GROUPS[:5], norm.Xstd), (y_lay, Y_STD_GROUPS, norm.Ystd)):
        for names in groups:
            columns = np.concatenate([np.arange(lay[n].start, lay[n].stop) for n in names])
            ref = database.Xun if lay is x_lay else database.Yun
            np.testing.assert_allclose(stds[columns], ref.astype(np.float64)[:, columns].std(0).mean(), rtol=1e-6)
    joints = x_lay["joint_positions"]
    weights = np.ones(22)
    weights[[3, 13]] = 1e-10
    np.testing.assert_allclose(norm.Xstd[joints], std[joints].mean() / (np.repeat(weights, 3) * 0.1), rtol=1e-6)
    assert np.all(norm.Xstd[x_lay["terrain_right"].start :] == 1.0)
    normalised = norm.normalise_x(database.Xun)
    assert np.isfinite(normalised).all() and np.all(np.abs(normalised[:, joints.start + 9 : joints.start + 12]) < 1e-6)
    np.testing.assert_allclose(norm.denormalise_y(norm.normalise_y(database.Yun)), database.Yun, atol=1e-5)


def test_bin_and_npz_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    database = PFNNDatabase(
        Xun=rng.normal(size=(7, 342)).astype(np.float32),
        Yun=rng.normal(size=(7, 311)).astype(np.float32),
        Pun=rng.uniform(size=7).astype(np.float32),
    )
    norm = pfnn_normalisation(database, x_layout(31), y_layout(31))
    save_database(tmp_path / "database.npz", database, norm)
    loaded, loaded_norm = load_database(tmp_path / "database.npz")
    with np.load(tmp_path / "database.npz") as raw:
        assert sorted(raw.files) == ["Pun", "Xmean", "Xstd", "Xun", "Ymean", "Ystd", "Yun"]
    assert np.array_equal(loaded.Xun, database.Xun) and np.array_equal(loaded_norm.Ystd, norm.Ystd)
    save_database(tmp_path / "plain.npz", database)
    assert load_database(tmp_path / "plain.npz")[1] is None
    write_normalisation(tmp_path, norm)
    assert (tmp_path / "Xmean.bin").stat().st_size == 342 * 4
    assert np.array_equal(read_normalisation(tmp_path).Xstd, norm.Xstd)
    write_bin(tmp_path / "W.bin", np.arange(6, dtype=np.float64).reshape(2, 3))
    assert (tmp_path / "W.bin").read_bytes()[:8] == np.array([0, 1], "<f4").tobytes()
    np.testing.assert_array_equal(read_bin(tmp_path / "W.bin", (2, 3)), np.arange(6).reshape(2, 3))
    with pytest.raises(ValueError, match="6 floats, expected 4"):
        read_bin(tmp_path / "W.bin", (2, 2))


def test_footstep_cycles_follow_pfnn_selection(tmp_path):
    path = tmp_path / "clip_footsteps.txt"
    path.write_text("98 156\n199 237\n289 335 *\n378 421\n465 493\n557")
    steps = read_footsteps(path)
    assert steps[2].skip and steps[-1].middle is None
    # (199, 289) and (289, 378) touch a skipped line; (465, 557) closes on a single number.
    np.testing.assert_array_equal(footstep_cycles(steps, 120.0, 60.0), [[49, 99], [189, 232]])


# --------------------------------------------------------------------------- network


def test_catmull_rom_hits_control_points_and_pfnn_predict_is_an_elu_mlp():
    rng = np.random.default_rng(3)

    def random_weights() -> PFNNWeights:
        return PFNNWeights(*(rng.normal(size=s) for s in ((5, 4), (5,), (5, 5), (5,), (3, 5), (3,))))

    points = [random_weights() for _ in range(4)]
    for k in range(4):
        assert np.array_equal(catmull_rom_weights(points, k / 4).W0, points[k].W0)
    middle = catmull_rom_weights(points, 0.125).b2
    np.testing.assert_allclose(middle, (-points[3].b2 + 9 * points[0].b2 + 9 * points[1].b2 - points[2].b2) / 16)
    x = rng.normal(size=(2, 4))
    w = points[0]
    h0 = np.maximum(w.W0 @ x.T + w.b0[:, None], 0) + np.exp(np.minimum(w.W0 @ x.T + w.b0[:, None], 0)) - 1
    h1 = np.maximum(w.W1 @ h0 + w.b1[:, None], 0) + np.exp(np.minimum(w.W1 @ h0 + w.b1[:, None], 0)) - 1
    np.testing.assert_allclose(pfnn_predict(x, w), (w.W2 @ h1 + w.b2[:, None]).T, atol=1e-12)
    assert near_phase(np.array([0.995, 0.005, 0.02, 0.5]), 0.0).tolist() == [True, True, False, False]


PFNN_CLIP = PFNN_DATA / "data" / "animations" / "LocomotionFlat04_000"
PFNN_NETWORK = PFNN_DATA / "demo" / "network" / "pfnn"


def require_released_pfnn() -> None:
    """Skip unless the real PFNN clip and the released network are present."""
    if not PFNN_CLIP.with_suffix(".bvh").exists() or not (PFNN_NETWORK / "W0_025.bin").exists():
        pytest.skip(f"real PFNN clip or network not found under {PFNN_DATA}; set MOTIONHUB_REAL_DATA")


def released_network_table(database: PFNNDatabase, y_lay) -> tuple[list[str], float]:
    """Rows of a 31-joint database, normalised with the released statistics, fed to the
    released weights at phase 0.0 and 0.5 (rows within 0.01 of that phase).

    Returns a table of per-group errors (normalised MSE and MAE, network against
    predicting Ymean) and the worst ratio of network to Ymean normalised MSE.
    """
    norm = read_normalisation(PFNN_NETWORK)
    X, Y = norm.normalise_x(database.Xun), norm.normalise_y(database.Yun)
    header = ("group", "rows", "net nMSE", "mean nMSE", "ratio", "net MAE", "mean MAE")
    lines = ["{:24s} {:>5s} {:>9s} {:>9s} {:>6s} {:>9s} {:>9s}".format(*header)]
    worst = 0.0
    for index, phase in ((0, 0.0), (25, 0.5)):
        rows = near_phase(database.Pun, phase)
        predicted = pfnn_predict(X[rows], read_pfnn_weights(PFNN_NETWORK, index))
        lines.append(f"-- phase {phase:.1f} (weights {index:03d}), {rows.sum()} rows")
        for group in y_lay.groups:
            net = np.mean((predicted[:, group.slice] - Y[rows][:, group.slice]) ** 2)
            mean = np.mean(Y[rows][:, group.slice] ** 2)
            truth = database.Yun[rows][:, group.slice]
            net_mae = np.mean(np.abs(norm.denormalise_y(predicted)[:, group.slice] - truth))
            mean_mae = np.mean(np.abs(norm.Ymean[group.slice] - truth))
            values = (group.name, rows.sum(), net, mean, net / mean, net_mae, mean_mae)
            lines.append("{:24s} {:5d} {:9.4f} {:9.4f} {:6.3f} {:9.4f} {:9.4f}".format(*values))
            worst = max(worst, net / mean)
    return lines, worst


def released_clip_database() -> PFNNDatabase:
    """The real clip's rows, built directly from its BVH and label files with the default config."""
    from motionhub_bvh.bvh import read_bvh

    motion = read_bvh(PFNN_CLIP.with_suffix(".bvh"))
    positions, rotations = motion.global_transforms()
    config = PFNNConfig()
    clip = prepare_clip(
        positions,
        motion.fps,
        config,
        rotations=rotations,
        phase=np.loadtxt(PFNN_CLIP.with_suffix(".phase")),
        gait=merge_gait_labels(np.loadtxt(PFNN_CLIP.with_suffix(".gait"))),
    )
    cycles = footstep_cycles(read_footsteps(f"{PFNN_CLIP}_footsteps.txt"), motion.fps, config.fps)
    assert clip.num_frames == 1214 and len(cycles) == 20
    return build_database(clip, cycles, config)


@pytest.mark.slow
def test_released_network_predicts_real_clip_better_than_the_mean():
    """The normalised MSE of every output group of the released network on the real
    clip's rows is well below that of predicting Ymean."""
    require_released_pfnn()
    database = released_clip_database()
    norm = read_normalisation(PFNN_NETWORK)
    assert database.Xun.shape[1] == norm.Xmean.size == 342 and database.Yun.shape[1] == norm.Ymean.size == 311
    lines, worst = released_network_table(database, layouts(31, PFNNConfig())[1])
    print("\n" + "\n".join(lines))
    assert worst < 0.75, "\n".join(lines)
