"""``motionhub prepare --from-bvh``: BVH files of other skeletons to HumanML3D 263 features.

The recovered joints of the features are checked against the source joints mapped, scaled and
turned by this test's own arithmetic. Real-data tests skip when ``../shared/real_data`` is absent.
"""

import numpy as np
import pytest
import yaml
from helpers import REAL_DATA

from motionhub.cli import main
from motionhub.data import layouts
from motionhub.motion import humanml3d
from motionhub.motion import smpl_bvh
from motionhub.motion.skeletons import T2M_SKELETON
from motionhub_bvh.bvh import read_bvh
from motionhub_bvh.joint_maps import CMU31, SMPL_JOINTS
from motionhub_synthetic.motion import rest_offsets, synthesize

PFNN_CLIP = REAL_DATA / "sreyafrancis-PFNN" / "data" / "animations" / "LocomotionFlat04_000.bvh"
CMU_MM = 25.4 / 0.45  # PFNN's CMU unit in millimetres
TOLERANCE_M = 1e-5  # float32 features (measured: 3.4e-7 m on the PFNN clip)
PARENTS = np.asarray(T2M_SKELETON.parents)


def kabsch(a, b):
    """Rotation (3, 3) that best turns point set a (N, 3) onto b (N, 3), both centred."""
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    return (u @ np.diag([1, 1, d]) @ vt).T


def mapped(motion, entry):
    """Positions (T, 3) of one map entry: a joint name or a weighted mix."""
    mix = {entry: 1.0} if isinstance(entry, str) else entry
    positions = motion.global_positions()
    return sum(w * positions[:, motion.joint_names.index(n)] for n, w in mix.items()) / sum(mix.values())


def synthetic_bvh(path, *, units_per_metre=100.0, turn=np.eye(3), frames=60, seed=0):
    """A BVH of a synthetic SMPL-named walk, its axes turned by ``turn`` (3, 3) and in the given unit."""
    offsets = rest_offsets(T2M_SKELETON, humanml3d.T2M_TARGET_BONE_LENGTHS)
    joints = synthesize(np.random.default_rng(seed), T2M_SKELETON, offsets, frames, 20.0).joints
    features = humanml3d.features_from_joints(joints, T2M_SKELETON)
    animation = smpl_bvh.from_humanml3d(features, 20.0)
    rotations = animation.local_rotations.copy()
    rotations[:, 0] = turn @ rotations[:, 0]
    turned = smpl_bvh.SkeletonAnimation(animation.joint_names, animation.parents, animation.offsets,
                                        animation.end_sites, rotations, animation.root_positions @ turn.T, 20.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(smpl_bvh.bvh_text(turned, units_per_metre))
    return humanml3d.recover_from_ric(features, 22)


@pytest.mark.slow
@pytest.mark.skipif(not PFNN_CLIP.exists(), reason=f"real data not found: {PFNN_CLIP}")
def test_a_real_pfnn_clip_recovers_its_mapped_source_joints(tmp_path):
    (tmp_path / "bvh").mkdir()
    (tmp_path / "bvh" / PFNN_CLIP.name).symlink_to(PFNN_CLIP)
    out = tmp_path / "out"
    assert main(["prepare", "--from-bvh", str(tmp_path / "bvh"), "--joint-map", "pfnn", "--out", str(out),
                 "--no-uniform"]) == 0
    recovered = np.load(out / "new_joints" / f"{PFNN_CLIP.stem}.npy").astype(np.float64)
    # 120 fps (Frame Time 0.008333, rounded) to 20: every 6th frame; CMU units to metres; Y up already
    motion = read_bvh(PFNN_CLIP)
    source = np.stack([mapped(motion, CMU31[j]) for j in SMPL_JOINTS], axis=1)[::6] * CMU_MM / 1000.0
    source = source[: len(recovered)]
    assert len(recovered) == motion.num_frames // 6  # 405 frames at 20 fps, the last one dropped by the features

    # Every frame's pose about its root: the same to the tolerance, all frames.
    for t in range(len(source)):
        a, b = source[t] - source[t, 0], recovered[t] - recovered[t, 0]
        np.testing.assert_allclose(a @ kabsch(a, b).T, b, atol=TOLERANCE_M)
    # The whole clip under one rigid turn and shift, up to the frame where its heading first turns
    # 180 degrees from frame 0: from there HumanML3D's half-angle heading steps decode a step off.
    across = source[:, 2] - source[:, 1]
    heading = np.degrees(np.arctan2(across[:, 2], across[:, 0]))
    turned = np.abs((heading - heading[0] + 180) % 360 - 180)
    end = int(np.argmax(turned > 170)) or len(source)
    assert end > 40
    a, b = source[:end], recovered[:end]
    rotation = kabsch(a[0] - a[0, 0], b[0] - b[0, 0])
    moved = (a - a[0, 0]) @ rotation.T + b[0, 0]
    np.testing.assert_allclose(moved, b, atol=TOLERANCE_M)

    # With HumanML3D's own bone lengths (the default) every bone keeps its direction.
    assert main(["prepare", "--from-bvh", str(tmp_path / "bvh"), "--joint-map", "pfnn",
                 "--out", str(tmp_path / "uniform")]) == 0
    uniform = np.load(tmp_path / "uniform" / "new_joints" / f"{PFNN_CLIP.stem}.npy").astype(np.float64)
    for t in range(0, len(source), 7):
        a, b = source[t, 1:] - source[t, PARENTS[1:]], uniform[t, 1:] - uniform[t, PARENTS[1:]]
        a, b = a / np.linalg.norm(a, axis=-1, keepdims=True), b / np.linalg.norm(b, axis=-1, keepdims=True)
        np.testing.assert_allclose(a @ kabsch(a, b).T, b, atol=1e-5)  # about 6e-4 degrees
    lengths = np.linalg.norm(uniform[:, 1:] - uniform[:, PARENTS[1:]], axis=-1)
    np.testing.assert_allclose(lengths, np.broadcast_to(humanml3d.T2M_TARGET_BONE_LENGTHS[1:], lengths.shape),
                               atol=1e-5)


def test_a_z_up_bvh_in_inches_gives_the_features_of_its_y_up_source(tmp_path):
    z_up = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # Y up -> Z up
    joints = synthetic_bvh(tmp_path / "bvh" / "walk.bvh", units_per_metre=1000 / 25.4, turn=z_up)
    assert main(["prepare", "--from-bvh", str(tmp_path / "bvh"), "--joint-map", "smpl22",
                 "--out", str(tmp_path / "out")]) == 0
    recovered = np.load(tmp_path / "out" / "new_joints" / "walk.npy")
    # The source joints are HumanML3D-canonical already: the same but for the last frame.
    np.testing.assert_allclose(recovered, joints[:-1], atol=TOLERANCE_M)


def test_a_users_joint_map_with_a_weighted_mix(tmp_path):
    joints = synthetic_bvh(tmp_path / "bvh" / "walk.bvh")
    mix = {**{name: name for name in SMPL_JOINTS}, "spine2": {"spine1": 1.0, "spine3": 1.0}}
    (tmp_path / "map.yaml").write_text(yaml.safe_dump(mix))
    assert main(["prepare", "--from-bvh", str(tmp_path / "bvh"), "--joint-map", str(tmp_path / "map.yaml"),
                 "--out", str(tmp_path / "out"), "--no-uniform"]) == 0
    recovered = np.load(tmp_path / "out" / "new_joints" / "walk.npy")
    spine2 = T2M_SKELETON.joint_names.index("spine2")
    halfway = 0.5 * (joints[:-1, 3] + joints[:-1, 9])
    np.testing.assert_allclose(recovered[:, spine2], halfway, atol=TOLERANCE_M)


def test_a_map_missing_a_joint_names_it_and_suggests_one_and_writes_nothing(tmp_path, capsys):
    synthetic_bvh(tmp_path / "bvh" / "walk.bvh")
    partial = {name: name for name in SMPL_JOINTS if name != "left_wrist"}
    (tmp_path / "map.json").write_text(__import__("json").dumps(partial))
    assert main(["prepare", "--from-bvh", str(tmp_path / "bvh"), "--joint-map", str(tmp_path / "map.json"),
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no entry for SMPL joint 'left_wrist'" in err
    assert "closest source joint is 'left_wrist'" in err and "right_elbow" in err  # suggestion, listing
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == [tmp_path / "bvh", tmp_path / "map.json"]


def test_an_unknown_source_joint_and_an_unknown_map_name_are_refused(tmp_path, capsys):
    synthetic_bvh(tmp_path / "bvh" / "walk.bvh")
    (tmp_path / "map.yaml").write_text(yaml.safe_dump({**{n: n for n in SMPL_JOINTS}, "head": "Head"}))
    assert main(["prepare", "--from-bvh", str(tmp_path / "bvh"), "--joint-map", str(tmp_path / "map.yaml"),
                 "--out", str(tmp_path / "out")]) == 2
    assert "source joint 'Head'" in capsys.readouterr().err
    assert main(["prepare", "--from-bvh", str(tmp_path / "bvh"), "--joint-map", "cmu32",
                 "--out", str(tmp_path / "out")]) == 2
    assert "did you mean 'cmu31'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_unit_that_cannot_be_told_is_refused_until_given(tmp_path, capsys):
    # 0.9 of the real size in cm: a 0.9x human in cm, or 2.3x in inches; both human-sized
    synthetic_bvh(tmp_path / "bvh" / "walk.bvh", units_per_metre=100.0 * 0.55)
    args = ["prepare", "--from-bvh", str(tmp_path / "bvh"), "--joint-map", "smpl22", "--out", str(tmp_path / "out")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "cannot tell the unit" in err and "cm" in err and "inch" in err and "--unit" in err
    assert not (tmp_path / "out").exists()
    assert main([*args, "--unit", "cm"]) == 0


def test_an_up_axis_that_cannot_be_told_is_refused_until_given(tmp_path, capsys):
    c = np.cos(np.radians(45.0))
    tilted = np.array([[1.0, 0, 0], [0, c, -c], [0, c, c]])  # head over ankles halfway between Y and Z
    synthetic_bvh(tmp_path / "bvh" / "walk.bvh", turn=tilted)
    args = ["prepare", "--from-bvh", str(tmp_path / "bvh"), "--joint-map", "smpl22", "--out", str(tmp_path / "out")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "cannot tell the up axis" in err and "--up-axis" in err
    assert not (tmp_path / "out").exists()
    assert main([*args, "--up-axis", "y"]) == 0


def test_a_mirrored_file_is_refused(tmp_path, capsys):
    joints = synthetic_bvh(tmp_path / "bvh" / "walk.bvh")
    swapped = {name: name.replace("left", "LEFT").replace("right", "left").replace("LEFT", "right")
               for name in SMPL_JOINTS}
    (tmp_path / "map.yaml").write_text(yaml.safe_dump(swapped))
    assert main(["prepare", "--from-bvh", str(tmp_path / "bvh"), "--joint-map", str(tmp_path / "map.yaml"),
                 "--out", str(tmp_path / "out")]) == 2
    assert "mirrored" in capsys.readouterr().err
    assert joints.shape[1] == 22 and not (tmp_path / "out").exists()


def test_the_bvh_smpl_data_set_resamples_with_interpolation(tmp_path):
    from motionhub_bvh.smpl import BVHSMPLFolder

    synthetic_bvh(tmp_path / "bvh" / "walk.bvh", frames=42)  # 41 BVH frames: the features drop one
    dataset = BVHSMPLFolder(str(tmp_path / "bvh"), "smpl22", fps=30.0, val_fraction=0.0)
    at20 = BVHSMPLFolder(str(tmp_path / "bvh"), "smpl22", val_fraction=0.0).smpl_positions("walk")
    at30 = dataset.smpl_positions("walk")
    assert len(at20) == 41 and len(at30) == 61  # 2 s at 20 and at 30 fps
    np.testing.assert_allclose(at30[::3], at20[::2], atol=1e-9)  # shared instants: the source frames
    lengths = np.linalg.norm(at30[:, 1:] - at30[:, PARENTS[1:]], axis=-1)
    np.testing.assert_allclose(lengths, lengths[:1].repeat(len(lengths), 0), atol=1e-6)  # slerp keeps bones
    assert dataset.format.name == layouts.joint_positions(T2M_SKELETON, 30.0).name


def test_a_rounded_frame_time_counts_as_its_whole_frame_rate():
    from motionhub_bvh.smpl import source_fps

    assert source_fps(0.008333) == 120.0 and source_fps(0.041667) == 24.0  # PFNN's clip and rest pose
    assert source_fps(1 / 29.97) == pytest.approx(29.97)  # NTSC stays itself
