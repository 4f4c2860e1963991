"""Tests for motionhub.motion: rotation identities, skeletons, the 263/251 and 272 layouts.

Real-data tests read the published sample clips from ``$MOTIONHUB_REAL_DATA``
(default ``<repo>/../shared/real_data``) and skip when they are absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import REAL_DATA
import torch

from motionhub.motion import (
    KIT_SKELETON,
    T2M_SKELETON,
    T2M_TARGET_BONE_LENGTHS,
    Skeleton,
    axis_angle_to_matrix,
    axis_angle_to_quat,
    canonical_positions,
    cont6d_to_matrix,
    feature_dim,
    features_from_joints,
    features_from_smpl,
    forward_kinematics,
    gaussian_filter1d,
    humanml3d,
    matrix_to_axis_angle,
    matrix_to_cont6d,
    matrix_to_quat,
    matrix_to_rotation_6d,
    quat_between,
    quat_conjugate,
    quat_multiply,
    quat_normalize,
    quat_rotate,
    quat_to_axis_angle,
    quat_to_matrix,
    recover_from_local_position,
    recover_from_ric,
    recover_root,
    representation272,
    rotation_6d_to_matrix,
    yaw_to_matrix,
)

H3D = REAL_DATA / "EricGuo5513-HumanML3D" / "HumanML3D"
R272 = REAL_DATA / "Li-xingXiao-272-dim-Motion-Representation" / "output"

# Plausible KIT-like bone lengths (metres) for synthetic motions; shoulders wider than hips.
KIT_TEST_LENGTHS = (
    0.0, 0.10, 0.12, 0.25, 0.15, 0.18, 0.28, 0.25, 0.18, 0.28, 0.25,
    0.10, 0.42, 0.40, 0.06, 0.08, 0.10, 0.42, 0.40, 0.06, 0.08,
)  # fmt: skip


def _load(path: Path) -> np.ndarray:
    if not path.exists():
        pytest.skip(f"real data not found: {path} (set MOTIONHUB_REAL_DATA to the shared real_data folder)")
    return np.load(path)


def _random_quats(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return quat_normalize(torch.randn(shape + (4,), generator=g, dtype=torch.float64))


def _synthetic_motion(
    skeleton: Skeleton,
    lengths: tuple[float, ...],
    frames: int = 60,
    seed: int = 0,
    yaw_span: float = 1.2,
    swing: float = 0.3,
) -> np.ndarray:
    """Smooth joint positions (T, J, 3): sinusoidal local rotations up to ``swing`` rad, a walk and a turn."""
    rng = np.random.default_rng(seed)
    j = skeleton.num_joints
    t = np.linspace(0.0, 1.0, frames)[:, None, None]
    amplitude = rng.uniform(-swing, swing, (1, j, 3))
    frequency = rng.uniform(0.5, 2.0, (1, j, 3))
    phase = rng.uniform(0.0, 2 * np.pi, (1, j, 3))
    axis_angle = amplitude * np.sin(2 * np.pi * frequency * t + phase)
    axis_angle[:, 0] = [0.1, 0.0, -0.05] + np.array([0.0, yaw_span, 0.0]) * t[:, 0]
    tt = t[:, 0, 0]
    root = np.stack((1.5 * tt + 0.3, 0.95 + 0.03 * np.sin(8 * tt), 0.8 * tt**2 - 0.2), axis=-1)
    offsets = skeleton.raw_offsets_array() * np.asarray(lengths)[:, None]
    return forward_kinematics(offsets, skeleton.parents, axis_angle_to_matrix(axis_angle), root)


def _print_error_table(title: str, ours: np.ndarray, ref: np.ndarray, parts: dict[str, slice]) -> dict[str, float]:
    print(f"\n{title}\n{'slice':<14}{'dims':>10}{'mean abs':>12}{'max abs':>12}")
    worst = {}
    for name, sl in parts.items():
        err = np.abs(ours[..., sl] - ref[..., sl])
        worst[name] = float(err.max())
        print(f"{name:<14}{f'{sl.start}:{sl.stop}':>10}{err.mean():>12.3e}{err.max():>12.3e}")
    return worst


# ----------------------------------------------------------------------------------------------
# rotations


def test_quat_matrix_round_trip_and_orthonormality() -> None:
    q = _random_quats((64,))
    m = quat_to_matrix(q)
    eye = torch.eye(3, dtype=torch.float64).expand(64, 3, 3)
    torch.testing.assert_close(m @ m.transpose(-1, -2), eye)
    torch.testing.assert_close(torch.linalg.det(m), torch.ones(64, dtype=torch.float64))
    back = matrix_to_quat(m)
    torch.testing.assert_close(back, torch.where(q[..., :1] < 0, -q, q))


def test_matrix_to_quat_near_half_turns() -> None:
    axes = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, -2, 3]], dtype=torch.float64)
    axis_angle = axes / axes.norm(dim=-1, keepdim=True) * (torch.pi - 1e-9)
    m = axis_angle_to_matrix(axis_angle)
    torch.testing.assert_close(quat_to_matrix(matrix_to_quat(m)), m)


def test_quat_multiply_composes_and_rotate_matches_matrix() -> None:
    q, r = _random_quats((32,), seed=1), _random_quats((32,), seed=2)
    torch.testing.assert_close(quat_to_matrix(quat_multiply(q, r)), quat_to_matrix(q) @ quat_to_matrix(r))
    v = torch.randn(32, 3, dtype=torch.float64)
    torch.testing.assert_close(quat_rotate(q, v), (quat_to_matrix(q) @ v[..., None]).squeeze(-1))
    identity = torch.tensor([1.0, 0, 0, 0], dtype=torch.float64).expand(32, 4)
    torch.testing.assert_close(quat_multiply(q, quat_conjugate(q)), identity)


def test_axis_angle_conversions() -> None:
    g = torch.Generator().manual_seed(3)
    axis_angle = torch.randn(50, 3, generator=g, dtype=torch.float64)
    axis_angle = axis_angle / axis_angle.norm(dim=-1, keepdim=True) * torch.rand(50, 1, generator=g) * 3.0
    angle = axis_angle.norm(dim=-1, keepdim=True)[..., None]
    k = axis_angle / axis_angle.norm(dim=-1, keepdim=True)
    zero = torch.zeros(50, dtype=torch.float64)
    skew = torch.stack(
        (zero, -k[:, 2], k[:, 1], k[:, 2], zero, -k[:, 0], -k[:, 1], k[:, 0], zero), dim=-1
    ).reshape(50, 3, 3)
    rodrigues = torch.eye(3, dtype=torch.float64) + torch.sin(angle) * skew + (1 - torch.cos(angle)) * skew @ skew
    torch.testing.assert_close(axis_angle_to_matrix(axis_angle), rodrigues)
    torch.testing.assert_close(quat_to_axis_angle(axis_angle_to_quat(axis_angle)), axis_angle)
    torch.testing.assert_close(matrix_to_axis_angle(axis_angle_to_matrix(axis_angle)), axis_angle)
    tiny = torch.tensor([[0.0, 0.0, 0.0], [1e-9, -2e-9, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(quat_to_axis_angle(axis_angle_to_quat(tiny)), tiny)


def test_quat_between() -> None:
    g = torch.Generator().manual_seed(4)
    v0 = torch.randn(40, 3, generator=g, dtype=torch.float64)
    v1 = torch.randn(40, 3, generator=g, dtype=torch.float64)
    q = quat_between(v0, v1)
    assert (q[..., 0] >= 0).all()
    torch.testing.assert_close(quat_rotate(q, v0 / v0.norm(dim=-1, keepdim=True)), v1 / v1.norm(dim=-1, keepdim=True))
    opposite = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    half = quat_between(opposite, -opposite)
    torch.testing.assert_close(quat_rotate(half, opposite), -opposite)


def test_6d_conventions() -> None:
    m = quat_to_matrix(_random_quats((20,), seed=5))
    cont6d = matrix_to_cont6d(m)
    torch.testing.assert_close(cont6d, torch.cat((m[..., :, 0], m[..., :, 1]), dim=-1))
    torch.testing.assert_close(cont6d_to_matrix(cont6d), m)
    rows6d = matrix_to_rotation_6d(m)
    torch.testing.assert_close(rows6d, torch.cat((m[..., 0, :], m[..., 1, :]), dim=-1))
    torch.testing.assert_close(rotation_6d_to_matrix(rows6d), m)
    torch.testing.assert_close(matrix_to_cont6d(m), matrix_to_rotation_6d(m.transpose(-1, -2)))
    noisy = rows6d + 0.05 * torch.randn(20, 6, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    fixed = rotation_6d_to_matrix(noisy)
    torch.testing.assert_close(fixed @ fixed.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(20, 3, 3))


def test_yaw_to_matrix_is_rotation_about_y() -> None:
    angle = torch.linspace(-3.0, 3.0, 13, dtype=torch.float64)
    axis_angle = torch.stack((torch.zeros_like(angle), angle, torch.zeros_like(angle)), dim=-1)
    torch.testing.assert_close(yaw_to_matrix(angle), axis_angle_to_matrix(axis_angle))
    m = yaw_to_matrix(angle)
    torch.testing.assert_close(-torch.atan2(m[..., 0, 2], m[..., 2, 2]), -angle)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_torch_parity(dtype: type) -> None:
    rng = np.random.default_rng(7)
    q = rng.normal(size=(3, 5, 4)).astype(dtype)
    v = rng.normal(size=(3, 5, 3)).astype(dtype)
    q_unit = quat_normalize(q)
    cases = [
        (quat_normalize, (q,)),
        (quat_multiply, (q_unit, q_unit[::-1].copy())),
        (quat_rotate, (q_unit, v)),
        (quat_between, (v, v[:, ::-1].copy())),
        (quat_to_matrix, (q_unit,)),
        (matrix_to_quat, (quat_to_matrix(q_unit),)),
        (axis_angle_to_quat, (v,)),
        (quat_to_axis_angle, (q_unit,)),
        (axis_angle_to_matrix, (v,)),
        (matrix_to_cont6d, (quat_to_matrix(q_unit),)),
        (cont6d_to_matrix, (v.repeat(2, axis=-1) + np.eye(2, 6, dtype=dtype)[0],)),
        (matrix_to_rotation_6d, (quat_to_matrix(q_unit),)),
        (rotation_6d_to_matrix, (v.repeat(2, axis=-1) + np.eye(2, 6, dtype=dtype)[1],)),
        (yaw_to_matrix, (v[..., 0],)),
    ]
    for fn, args in cases:
        out_np = fn(*args)
        out_torch = fn(*(torch.from_numpy(a) for a in args))
        assert isinstance(out_np, np.ndarray) and out_np.dtype == dtype, fn.__name__
        assert isinstance(out_torch, torch.Tensor), fn.__name__
        np.testing.assert_allclose(out_np, out_torch.numpy(), rtol=0, atol=1e-6, err_msg=fn.__name__)


def test_rotation_helpers_are_batched_and_check_shapes() -> None:
    q = _random_quats((2, 3, 5))
    assert quat_to_matrix(q).shape == (2, 3, 5, 3, 3)
    assert matrix_to_cont6d(quat_to_matrix(q)).shape == (2, 3, 5, 6)
    assert quat_rotate(q[:, :, :1], torch.zeros(2, 3, 7, 3, dtype=torch.float64)).shape == (2, 3, 7, 3)
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        quat_to_matrix(torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        matrix_to_rotation_6d(torch.zeros(5, 3, 2))


# ----------------------------------------------------------------------------------------------
# skeletons and forward kinematics


@pytest.mark.parametrize("skeleton", [T2M_SKELETON, KIT_SKELETON], ids=["t2m", "kit"])
def test_skeleton_constants_describe_the_body_they_name(skeleton: Skeleton) -> None:
    """Feet, face and leg joints are where their names and roles put them on the rest pose
    (every bone of unit length, so left and right mirror each other exactly)."""
    names, parents = skeleton.joint_names, skeleton.parents
    assert len(parents) == len(set(names))
    norms = np.linalg.norm(skeleton.raw_offsets_array(), axis=-1)
    np.testing.assert_array_equal(norms, [0.0] + [1.0] * (skeleton.num_joints - 1))
    rest = forward_kinematics(skeleton.raw_offsets_array(), parents,
                              np.broadcast_to(np.eye(3), (1, skeleton.num_joints, 3, 3)), np.zeros((1, 3)))[0]

    def ancestors(joint: int) -> list[int]:
        chain = []
        while joint >= 0:
            chain.append(joint)
            joint = parents[joint]
        return chain

    r_hip, l_hip, r_shoulder, l_shoulder = skeleton.face_joints
    for side, (ankle, toe), hip, shoulder in (("left", skeleton.feet_left, l_hip, l_shoulder),
                                              ("right", skeleton.feet_right, r_hip, r_shoulder)):
        # (ankle, toe): the toe hangs below the ankle, on the leg that starts at this side's hip
        assert ankle in ancestors(toe)[1:] and hip in ancestors(ankle)[1:]
        assert parents[hip] == 0 and shoulder not in ancestors(toe) and hip not in ancestors(shoulder)
        assert all(names[j].startswith(side) for j in (hip, shoulder, ankle, toe))
        assert "hip" in names[hip] and "shoulder" in names[shoulder]
        # feet are the lowest joints, the toe horizontally in front of the ankle
        assert rest[ankle, 1] == rest[toe, 1] == rest[:, 1].min() and rest[toe, 2] > rest[ankle, 2]
    # the two feet, hips and shoulders mirror each other across the body's mid-plane
    for left, right in ((l_hip, r_hip), (l_shoulder, r_shoulder), *zip(skeleton.feet_left, skeleton.feet_right)):
        np.testing.assert_allclose(rest[left] * [-1, 1, 1], rest[right], atol=1e-12)
    # leg_joints: the knee and ankle whose parent bones are the thigh (from a hip) and the shin
    knee, ankle = skeleton.leg_joints
    assert parents[ankle] == knee and parents[parents[knee]] == 0 and "knee" in names[knee]
    # the face joints span the torso: shoulders above hips, both pairs across the same axis
    assert min(rest[l_shoulder, 1], rest[r_shoulder, 1]) > max(rest[l_hip, 1], rest[r_hip, 1])
    across = (rest[r_hip] - rest[l_hip]) + (rest[r_shoulder] - rest[l_shoulder])
    assert abs(across[0]) > 0 and across[1] == across[2] == 0


def test_skeleton_rejects_inconsistent_chains() -> None:
    with pytest.raises(ValueError, match="chains imply parents"):
        Skeleton(
            name="bad",
            joint_names=("a", "b", "c"),
            parents=(-1, 0, 0),
            feet_left=(1, 2),
            feet_right=(1, 2),
            face_joints=(1, 2, 1, 2),
            leg_joints=(1, 2),
            raw_offsets=((0, 0, 0), (1, 0, 0), (0, 1, 0)),
            chains=((0, 1, 2),),
        )


def test_forward_kinematics_rest_pose_and_batching() -> None:
    offsets = torch.from_numpy(T2M_SKELETON.raw_offsets_array() * np.asarray(T2M_TARGET_BONE_LENGTHS)[:, None])
    rest = torch.zeros(22, 3, dtype=torch.float64)
    for j in range(1, 22):
        rest[j] = rest[T2M_SKELETON.parents[j]] + offsets[j]
    identity = torch.eye(3, dtype=torch.float64).expand(2, 4, 22, 3, 3)
    root = torch.randn(2, 4, 3, dtype=torch.float64)
    out = forward_kinematics(offsets, T2M_SKELETON.parents, identity, root)
    assert out.shape == (2, 4, 22, 3)
    torch.testing.assert_close(out, rest + root[..., None, :])

    quats = _random_quats((2, 4, 22), seed=8)
    torch.testing.assert_close(
        forward_kinematics(offsets, T2M_SKELETON.parents, quats, root),
        forward_kinematics(offsets.expand(2, 22, 3), T2M_SKELETON.parents, quat_to_matrix(quats), root),
    )
    with pytest.raises(ValueError, match="22"):
        forward_kinematics(offsets, T2M_SKELETON.parents, quats[..., :21, :], root)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_kinematics_numpy(dtype: type) -> None:
    offsets = (KIT_SKELETON.raw_offsets_array() * 0.1).astype(dtype)
    axis_angle = np.random.default_rng(9).normal(scale=0.3, size=(5, 21, 3)).astype(dtype)
    out = forward_kinematics(offsets, KIT_SKELETON.parents, axis_angle_to_matrix(axis_angle), np.zeros((5, 3), dtype))
    assert isinstance(out, np.ndarray) and out.dtype == dtype and out.shape == (5, 21, 3)


def test_forward_kinematics_reproduces_smpl_joints() -> None:
    smpl = _load(R272 / "smpl_85_face_z_transform" / "000000.npy").astype(np.float64)
    joints = _load(R272 / "smpl_85_face_z_transform_joints" / "000000.npy")[:, :22].astype(np.float64)
    rotations = axis_angle_to_matrix(smpl[:, :66].reshape(-1, 22, 3))
    parents = T2M_SKELETON.parents
    # Rest offsets of this body, read off frame 0: offset_j = G_parent^T (p_j - p_parent).
    world = [rotations[0, 0]]
    offsets = np.zeros((22, 3))
    for j in range(1, 22):
        offsets[j] = world[parents[j]].T @ (joints[0, j] - joints[0, parents[j]])
        world.append(world[parents[j]] @ rotations[0, j])
    out = forward_kinematics(offsets, parents, rotations, joints[:, 0])
    assert np.abs(out - joints).max() < 1e-5


# ----------------------------------------------------------------------------------------------
# HumanML3D 263 / 251


def test_humanml3d_slices() -> None:
    names = ["root_rot_vel", "root_lin_vel", "root_height", "positions", "rotations_6d", "velocities", "contacts"]
    t2m = humanml3d.slices(22)
    assert list(t2m) == names
    bounds = [(0, 1), (1, 3), (3, 4), (4, 67), (67, 193), (193, 259), (259, 263)]
    assert [(s.start, s.stop) for s in t2m.values()] == bounds
    kit = humanml3d.slices(21)
    bounds = [(0, 1), (1, 3), (3, 4), (4, 64), (64, 184), (184, 247), (247, 251)]
    assert [(s.start, s.stop) for s in kit.values()] == bounds
    assert feature_dim(22) == 263 and feature_dim(21) == 251


def test_gaussian_filter1d_kernel_and_borders() -> None:
    x = np.array([1.0, 2.0, 4.0, 8.0])
    sigma = 1.0
    # truncate 1.0 -> radius 1, weights proportional to (e^-1/2, 1, e^-1/2).
    a = np.exp(-0.5)
    w = np.array([a, 1.0, a]) / (1 + 2 * a)
    reflect = np.convolve(np.r_[1.0, x, 8.0], w, mode="valid")
    nearest = np.convolve(np.r_[1.0, x, 8.0], w, mode="valid")
    mirror = np.convolve(np.r_[2.0, x, 4.0], w, mode="valid")
    np.testing.assert_allclose(gaussian_filter1d(x, sigma, truncate=1.0), reflect)
    np.testing.assert_allclose(gaussian_filter1d(x, sigma, truncate=1.0, mode="nearest"), nearest)
    np.testing.assert_allclose(gaussian_filter1d(x, sigma, truncate=1.0, mode="mirror"), mirror)
    # Reflect and nearest differ once the pad is longer than one sample.
    long = np.arange(6.0)
    assert not np.allclose(gaussian_filter1d(long, 2.0), gaussian_filter1d(long, 2.0, mode="nearest"))
    impulse = np.zeros(201)
    impulse[100] = 1.0
    response = gaussian_filter1d(impulse, 20.0)
    assert np.count_nonzero(response) == 161  # radius int(4*20+0.5) = 80
    np.testing.assert_allclose(response.sum(), 1.0)
    smooth = gaussian_filter1d(np.ones((30, 3)) * [1.0, 2.0, 3.0], 20.0, axis=0)
    np.testing.assert_allclose(smooth, np.ones((30, 3)) * [1.0, 2.0, 3.0])


def test_uniform_skeleton_sets_bone_lengths_and_scales_root() -> None:
    joints = _synthetic_motion(T2M_SKELETON, tuple(1.1 * x for x in T2M_TARGET_BONE_LENGTHS), frames=20)
    out = humanml3d.uniform_skeleton(joints, T2M_SKELETON, T2M_TARGET_BONE_LENGTHS)
    lengths = humanml3d.bone_lengths(out, T2M_SKELETON.parents)
    np.testing.assert_allclose(lengths, np.broadcast_to(T2M_TARGET_BONE_LENGTHS, lengths.shape), atol=1e-12)
    np.testing.assert_allclose(out[:, 0], joints[:, 0] / 1.1)


def test_canonical_positions_floor_origin_and_facing() -> None:
    joints = _synthetic_motion(T2M_SKELETON, T2M_TARGET_BONE_LENGTHS, frames=30)
    out = canonical_positions(joints, T2M_SKELETON)
    assert abs(out[..., 1].min()) < 1e-12
    np.testing.assert_allclose(out[0, 0, [0, 2]], 0.0, atol=1e-12)
    r_hip, l_hip, r_sh, l_sh = T2M_SKELETON.face_joints
    across = out[0, r_hip] - out[0, l_hip] + out[0, r_sh] - out[0, l_sh]
    assert abs(across[2]) < 1e-12 and across[0] < 0  # right is -X when facing +Z


@pytest.mark.parametrize(
    ("skeleton", "lengths", "uniform"),
    [
        (T2M_SKELETON, tuple(0.9 * x for x in T2M_TARGET_BONE_LENGTHS), True),
        (T2M_SKELETON, T2M_TARGET_BONE_LENGTHS, False),
        (KIT_SKELETON, KIT_TEST_LENGTHS, False),
    ],
)
def test_features_round_trip_through_recover_from_ric(skeleton: Skeleton, lengths: tuple, uniform: bool) -> None:
    joints = _synthetic_motion(skeleton, lengths, frames=80, seed=11)
    features = features_from_joints(joints, skeleton, uniform=uniform)
    assert features.shape == (79, feature_dim(skeleton.num_joints))
    expected = canonical_positions(joints, skeleton, uniform=uniform)[:-1]
    assert np.abs(recover_from_ric(features, skeleton.num_joints) - expected).max() < 1e-4
    contacts = features[:, humanml3d.slices(skeleton.num_joints)["contacts"]]
    assert set(np.unique(contacts)) <= {0.0, 1.0}


def test_features_kit_with_explicit_target_lengths() -> None:
    joints = _synthetic_motion(KIT_SKELETON, KIT_TEST_LENGTHS, frames=40, seed=12)
    with pytest.raises(ValueError, match="target_bone_lengths"):
        features_from_joints(joints, KIT_SKELETON)
    target = tuple(1.2 * x for x in KIT_TEST_LENGTHS)
    features = features_from_joints(joints, KIT_SKELETON, target_bone_lengths=target)
    expected = canonical_positions(joints, KIT_SKELETON, target_bone_lengths=target)[:-1]
    assert np.abs(recover_from_ric(features, 21) - expected).max() < 1e-4


def test_heading_wrap_quirk_is_kept() -> None:
    """Turning past ±180° from frame 0 breaks the arcsin encoding, exactly as in HumanML3D."""
    joints = _synthetic_motion(T2M_SKELETON, T2M_TARGET_BONE_LENGTHS, frames=120, seed=13, yaw_span=5.0, swing=0.0)
    features = features_from_joints(joints, T2M_SKELETON, uniform=False)
    error = np.abs(recover_from_ric(features, 22) - canonical_positions(joints, T2M_SKELETON, uniform=False)[:-1])
    assert error.max() > 1e-2


def test_recover_from_ric_batched_numpy_and_torch() -> None:
    joints = _synthetic_motion(T2M_SKELETON, T2M_TARGET_BONE_LENGTHS, frames=25, seed=14)
    features = features_from_joints(joints, T2M_SKELETON)
    batch = np.stack((features, features[::-1].copy()))[None]  # (1, 2, T, 263)
    out = recover_from_ric(batch, 22)
    assert isinstance(out, np.ndarray) and out.shape == (1, 2, 24, 22, 3)
    np.testing.assert_allclose(out[0, 0], recover_from_ric(features, 22))
    out_t = recover_from_ric(torch.from_numpy(batch).float(), 22)
    assert out_t.dtype == torch.float32
    np.testing.assert_allclose(out_t.numpy(), out, atol=1e-5)
    out32 = recover_from_ric(batch.astype(np.float32), 22)
    assert out32.dtype == np.float32
    root_quat, root_pos = recover_root(batch)
    assert root_quat.shape == (1, 2, 24, 4) and root_pos.shape == (1, 2, 24, 3)


def test_humanml3d_shape_errors() -> None:
    with pytest.raises(ValueError, match=r"263.*\(5, 251\)"):
        recover_from_ric(np.zeros((5, 251)), 22)
    with pytest.raises(ValueError, match=r"\(T>=2, 22, 3\).*\(10, 21, 3\)"):
        features_from_joints(np.zeros((10, 21, 3)), T2M_SKELETON)


def test_real_recover_from_ric_matches_new_joints() -> None:
    features = _load(H3D / "new_joint_vecs" / "012314.npy")
    joints = _load(H3D / "new_joints" / "012314.npy")
    ours = recover_from_ric(features, 22)
    error = float(np.abs(ours - joints).max())
    print(f"\nrecover_from_ric(012314) vs new_joints: max abs error {error:.3e}")
    assert ours.dtype == np.float32 and error < 1e-5


def _real_features_and_joints() -> tuple[np.ndarray, np.ndarray]:
    return _load(H3D / "new_joint_vecs" / "012314.npy"), _load(H3D / "new_joints" / "012314.npy")


def test_real_features_from_joints_matches_published_features() -> None:
    features, joints = _real_features_and_joints()
    ours = features_from_joints(joints, T2M_SKELETON)
    assert ours.shape == (169, 263)
    title = "features_from_joints(new_joints 012314, 170 frames) vs new_joint_vecs[:169]"
    worst = _print_error_table(title, ours, features[:169], humanml3d.slices(22))
    # The published clip was built from 171 frames; the missing last frame moves the
    # smoothed forward direction (sigma 20) and so the root rotation near the end.
    limits = {
        "root_rot_vel": 1e-3,
        "root_lin_vel": 5e-4,
        "root_height": 5e-6,
        "positions": 2e-2,
        "rotations_6d": 3e-2,
        "velocities": 2e-3,
        "contacts": 0.0,
    }
    for name, limit in limits.items():
        assert worst[name] <= limit, (name, worst[name])
    head = np.abs(ours[:80] - features[:80]).max()
    print(f"first 80 frames, all channels: max abs {head:.3e}")
    assert head < 2e-5


def test_real_features_from_joints_with_restored_last_frame() -> None:
    """Re-create frame 170 from the last feature row; then every published frame is reproduced."""
    features, joints = _real_features_and_joints()
    features, joints = features.astype(np.float64), joints.astype(np.float64)
    root_quat, _ = recover_root(features)
    step = features[-1, humanml3d.slices(22)["velocities"]].reshape(22, 3)
    last = joints[-1] + quat_rotate(quat_conjugate(root_quat[-1]), step)
    ours = features_from_joints(np.concatenate((joints, last[None])), T2M_SKELETON)
    title = "features_from_joints(new_joints 012314 + restored frame 170) vs new_joint_vecs"
    worst = _print_error_table(title, ours, features, humanml3d.slices(22))
    assert max(worst.values()) < 2e-5


# ----------------------------------------------------------------------------------------------
# 272


def test_representation272_slices() -> None:
    parts = representation272.slices()
    assert list(parts) == ["root_lin_vel", "heading_6d", "positions", "velocities", "rotations_6d"]
    assert [(s.start, s.stop) for s in parts.values()] == [(0, 2), (2, 8), (8, 74), (74, 140), (140, 272)]


def _synthetic_smpl(frames: int = 50, seed: int = 15) -> tuple[np.ndarray, np.ndarray]:
    """Axis-angle rotations (T, 22, 3) with a full turn of the root, and their joints."""
    rng = np.random.default_rng(seed)
    axis_angle = rng.normal(scale=0.2, size=(frames, 22, 3))
    yaw = np.linspace(0.0, 7.0, frames)
    root = axis_angle_to_matrix(np.stack((yaw * 0, yaw, yaw * 0), -1)) @ axis_angle_to_matrix(axis_angle[:, 0])
    axis_angle[:, 0] = matrix_to_axis_angle(root)
    offsets = T2M_SKELETON.raw_offsets_array() * np.asarray(T2M_TARGET_BONE_LENGTHS)[:, None]
    trans = np.stack((np.sin(yaw), 0.9 + 0.02 * np.cos(5 * yaw), np.cos(yaw)), axis=-1)
    joints = forward_kinematics(offsets, T2M_SKELETON.parents, axis_angle_to_matrix(axis_angle), trans)
    return axis_angle, joints


def test_272_round_trip_and_batching() -> None:
    axis_angle, joints = _synthetic_smpl()
    features = features_from_smpl(axis_angle, joints)
    assert features.shape == (50, 272)
    np.testing.assert_allclose(features[0, 2:8], [1, 0, 0, 0, 1, 0])
    np.testing.assert_allclose(features[0, :2], 0.0)
    np.testing.assert_allclose(features[0, 74:140], 0.0)
    # Recovery starts from heading 0, so it gives the source with frame 0's heading removed.
    origin = np.array([joints[0, 0, 0], joints[..., 1].min(), joints[0, 0, 2]])
    smpl_root = axis_angle_to_matrix(axis_angle[:, 0])
    heading = yaw_to_matrix(-np.arctan2(smpl_root[:, 0, 2], smpl_root[:, 2, 2]))
    expected = (heading[0] @ (joints - origin)[..., None]).squeeze(-1)
    assert np.abs(recover_from_local_position(features) - expected).max() < 1e-6

    # The root rotation channel is the SMPL root with its yaw removed.
    root = rotation_6d_to_matrix(features[:, 140:146])
    np.testing.assert_allclose(root, heading @ smpl_root, atol=1e-12)

    other_aa, other_joints = _synthetic_smpl(seed=16)
    batched = features_from_smpl(np.stack((axis_angle, other_aa)), np.stack((joints, other_joints)))
    np.testing.assert_allclose(batched[0], features, atol=1e-12)
    recovered = recover_from_local_position(torch.from_numpy(batched).float())
    assert isinstance(recovered, torch.Tensor) and recovered.shape == (2, 50, 22, 3)
    np.testing.assert_allclose(recovered[0].numpy(), expected, atol=1e-4)


def test_272_shape_errors() -> None:
    with pytest.raises(ValueError, match=r"272.*\(4, 263\)"):
        recover_from_local_position(np.zeros((4, 263)))
    with pytest.raises(ValueError, match=r"22, 3"):
        features_from_smpl(np.zeros((4, 21, 3)), np.zeros((4, 21, 3)))


def test_real_272_recover_from_local_position_matches_source_joints() -> None:
    features = _load(R272 / "Representation_272" / "000000.npy")
    joints = _load(R272 / "smpl_85_face_z_transform_joints" / "000000.npy")[:, :22].astype(np.float64)
    ours = recover_from_local_position(features)
    # Same heading as the source for every frame; only a translation differs: the
    # floor (min Y) and the frame-0 root XZ are moved to 0.
    origin = np.array([joints[0, 0, 0], joints[..., 1].min(), joints[0, 0, 2]])
    error = float(np.abs(ours - (joints - origin)).max())
    print(f"\nrecover_from_local_position(272 000000) vs source joints - origin: max abs {error:.3e}")
    assert error < 1e-6


def test_real_features_from_smpl_matches_published_272() -> None:
    features = _load(R272 / "Representation_272" / "000000.npy")
    smpl = _load(R272 / "smpl_85_face_z_transform" / "000000.npy").astype(np.float64)
    joints = _load(R272 / "smpl_85_face_z_transform_joints" / "000000.npy")[:, :22].astype(np.float64)
    ours = features_from_smpl(smpl[:, :66].reshape(-1, 22, 3), joints)
    worst = _print_error_table(
        "features_from_smpl(smpl_85 000000) vs Representation_272/000000", ours, features, representation272.slices()
    )
    assert max(worst.values()) < 1e-6
