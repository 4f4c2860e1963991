"""Routines that core and plugins share give the numbers of the copies they replaced.

Each reference below is a verbatim copy of a routine that used to live in a plugin or in a
second place in the core; the shared routine must agree with it on random inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from motionhub.data.formats import MotionFormat
from motionhub.data.layouts import average_over_groups, group_averaged_std
from motionhub.motion.filters import gaussian_filter1d
from motionhub.motion.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quat,
    quat_normalize,
    quat_slerp,
    quat_to_matrix,
)
from motionhub.motion.skeletons import KIT_SKELETON, T2M_SKELETON, forward_kinematics, global_transforms

# ----------------------------------------------------------------------------- references


def reference_bvh_forward_kinematics(parents, local_rotations, local_positions):
    """The BVH plugin's own forward kinematics (numpy), as it was."""
    global_rotations = np.empty_like(local_rotations)
    global_positions = np.empty_like(local_positions)
    for j, p in enumerate(parents):
        if p < 0:
            global_rotations[:, j] = local_rotations[:, j]
            global_positions[:, j] = local_positions[:, j]
            continue
        if p >= j:
            raise ValueError(f"joint {j} has parent {p}; parents must precede their children")
        global_rotations[:, j] = global_rotations[:, p] @ local_rotations[:, j]
        global_positions[:, j] = global_positions[:, p] + np.einsum(
            "tab,tb->ta", global_rotations[:, p], local_positions[:, j]
        )
    return global_positions, global_rotations


def reference_skeleton_forward_kinematics(skeleton_offsets, parents, local_rotations, root_positions):
    """The core's forward kinematics of a skeleton (torch), as it was."""
    offsets = skeleton_offsets.to(local_rotations.dtype).unsqueeze(-3)
    offsets = offsets.expand(local_rotations.shape[:-2] + (3,))
    rotations = [local_rotations[..., 0, :, :]]
    positions = [root_positions.to(local_rotations.dtype)]
    for j in range(1, len(parents)):
        p = parents[j]
        offset = (rotations[p] @ offsets[..., j, :, None]).squeeze(-1)
        positions.append(positions[p] + offset)
        rotations.append(rotations[p] @ local_rotations[..., j, :, :])
    return torch.stack(positions, dim=-2)


def reference_pfnn_gaussian(values, sigma):
    """The PFNN plugin's smoothing (edge values repeated, radius 4 sigma), as it was."""
    values = np.asarray(values, dtype=np.float64)
    radius = int(4.0 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, [(radius, radius)] + [(0, 0)] * (values.ndim - 1), mode="edge")
    out = np.zeros_like(values)
    for k, weight in enumerate(kernel):
        out += weight * padded[k : k + len(values)]
    return out


def reference_humanml3d_gaussian(x, sigma, *, axis=0, mode="reflect", truncate=4.0):
    """The HumanML3D module's smoothing (scipy's border modes), as it was."""
    pad_modes = {"reflect": "symmetric", "nearest": "edge", "mirror": "reflect", "wrap": "wrap"}
    radius = int(truncate * float(sigma) + 0.5)
    taps = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (taps / sigma) ** 2)
    weights /= weights.sum()
    moved = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    padded = np.pad(moved, [(0, 0)] * (moved.ndim - 1) + [(radius, radius)], mode=pad_modes[mode])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1, axis=-1)
    return np.moveaxis(windows @ weights, -1, axis)


def reference_pfnn_matrix_to_quaternion(matrices):
    m = np.asarray(matrices, dtype=np.float64)
    shape = m.shape[:-2]
    m = m.reshape(-1, 3, 3)
    d0, d1, d2 = m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]
    a, b, c = m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]
    e, f, g = m[:, 0, 1] + m[:, 1, 0], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1]
    rows = np.stack(
        [
            np.stack([1 + d0 + d1 + d2, a, b, c], -1),
            np.stack([a, 1 + d0 - d1 - d2, e, f], -1),
            np.stack([b, e, 1 - d0 + d1 - d2, g], -1),
            np.stack([c, f, g, 1 - d0 - d1 + d2], -1),
        ],
        1,
    )
    best = rows[np.arange(len(m)), np.argmax(np.diagonal(rows, axis1=1, axis2=2), axis=-1)]
    return (best / np.linalg.norm(best, axis=-1, keepdims=True)).reshape(shape + (4,))


def reference_pfnn_quaternion_to_matrix(quaternions):
    q = np.asarray(quaternions, dtype=np.float64)
    w, x, y, z = np.moveaxis(q / np.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def reference_pfnn_slerp(q0, q1, t):
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.clip(np.abs(dot), 0.0, 1.0)
    angle = np.arccos(dot)
    sin = np.sin(angle)
    near = sin < 1e-6
    safe = np.where(near, 1.0, sin)
    w0 = np.where(near, 1.0 - t, np.sin((1.0 - t) * angle) / safe)
    w1 = np.where(near, t, np.sin(t * angle) / safe)
    q = w0 * q0 + w1 * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def reference_pfnn_rotation_log(matrices):
    q = reference_pfnn_matrix_to_quaternion(matrices)
    q = np.where(q[..., :1] < 0, -q, q)
    imaginary = q[..., 1:]
    length = np.linalg.norm(imaginary, axis=-1, keepdims=True)
    return imaginary * np.arctan2(length, q[..., :1]) / np.where(length > 0, length, 1.0)


def reference_pfnn_rotation_exp(logs):
    angle = np.linalg.norm(logs, axis=-1, keepdims=True)
    imaginary = logs * np.sin(angle) / np.where(angle > 0, angle, 1.0)
    return reference_pfnn_quaternion_to_matrix(np.concatenate([np.cos(angle), imaginary], axis=-1))


def reference_group_averaged_std(features, fmt, floor=1e-3):
    std = features.std(axis=0)
    out = np.empty_like(std)
    for part in fmt.slices.values():
        out[part] = std[part].mean()
    return np.maximum(out, floor).astype(np.float32)


def reference_pfnn_shared_std(std, groups):
    """PFNN's group std: the mean std of each group of columns, 1 where a group is constant."""
    std = std.copy()
    for columns in groups:
        shared = std[columns].mean()
        std[columns] = shared if shared > 0 else 1.0
    return std


def random_rotations(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return quat_to_matrix(quat_normalize(rng.normal(size=shape + (4,))))


# ---------------------------------------------------------------------- forward kinematics


def test_global_transforms_equal_the_bvh_plugins_former_forward_kinematics():
    rng = np.random.default_rng(0)
    parents = np.array([-1, 0, 1, 1, 3, -1, 5, 6])  # two roots, as a BVH file may have
    local_rotations = random_rotations(rng, (40, 8))
    local_positions = rng.normal(size=(40, 8, 3)) * 20
    positions, rotations = global_transforms(parents, local_rotations, local_positions)
    expected_positions, expected_rotations = reference_bvh_forward_kinematics(parents, local_rotations, local_positions)
    assert positions.dtype == np.float64 and rotations.shape == (40, 8, 3, 3)
    np.testing.assert_allclose(positions, expected_positions, rtol=0, atol=1e-12)
    np.testing.assert_allclose(rotations, expected_rotations, rtol=0, atol=1e-14)
    # The second root ignores the first one entirely.
    np.testing.assert_array_equal(positions[:, 5], local_positions[:, 5])


def test_global_transforms_refuse_a_child_before_its_parent():
    for fk in (global_transforms, reference_bvh_forward_kinematics):
        with pytest.raises(ValueError, match="joint 1 has parent 2; parents must precede their children"):
            fk(np.array([-1, 2, 0]), np.tile(np.eye(3), (1, 3, 1, 1)), np.zeros((1, 3, 3)))


@pytest.mark.parametrize("skeleton", [T2M_SKELETON, KIT_SKELETON], ids=lambda s: s.name)
def test_skeleton_forward_kinematics_is_bit_for_bit_the_former_one(skeleton):
    g = torch.Generator().manual_seed(1)
    joints = skeleton.num_joints
    offsets = torch.from_numpy(skeleton.raw_offsets_array()) * (0.05 + torch.rand(joints, 1, generator=g))
    rotations = axis_angle_to_matrix(torch.randn(3, 25, joints, 3, generator=g, dtype=torch.float64))
    root = torch.randn(3, 25, 3, generator=g, dtype=torch.float64)
    out = forward_kinematics(offsets, skeleton.parents, rotations, root)
    assert torch.equal(out, reference_skeleton_forward_kinematics(offsets, skeleton.parents, rotations, root))
    # numpy float32 in, float32 out, equal to the torch float32 path
    out32 = forward_kinematics(offsets.numpy().astype(np.float32), np.array(skeleton.parents),
                               rotations.numpy().astype(np.float32), root.numpy().astype(np.float32))
    assert out32.dtype == np.float32
    expected32 = reference_skeleton_forward_kinematics(offsets.float(), skeleton.parents, rotations.float(),
                                                       root.float())
    np.testing.assert_array_equal(out32, expected32)


# ------------------------------------------------------------------------------ smoothing


@pytest.mark.parametrize("sigma", [0.4, 1.0, 2.5, 10.0, 20.0])
def test_smoothing_is_bit_for_bit_the_pfnn_and_humanml3d_copies(sigma):
    rng = np.random.default_rng(int(sigma * 10))
    for shape in [(150,), (150, 3), (90, 22, 3)]:
        x = rng.normal(size=shape)
        np.testing.assert_array_equal(gaussian_filter1d(x, sigma, mode="nearest"), reference_pfnn_gaussian(x, sigma))
    for mode in ("reflect", "nearest", "mirror", "wrap"):
        for shape, axis in [((120,), 0), ((120, 4), 0), ((3, 120, 5), 1), ((6, 2, 120), -1)]:
            x = rng.normal(size=shape)
            for truncate in (4.0, 1.5):
                np.testing.assert_array_equal(
                    gaussian_filter1d(x, sigma, axis=axis, mode=mode, truncate=truncate),
                    reference_humanml3d_gaussian(x, sigma, axis=axis, mode=mode, truncate=truncate))


# --------------------------------------------------------------------------- quaternions


def test_matrix_to_quat_is_the_pfnn_copy_in_the_w_positive_hemisphere():
    """Same candidate rows and choice: bit for bit once PFNN's quaternion is flipped to w >= 0."""
    rng = np.random.default_rng(2)
    q = rng.normal(size=(4000, 4))
    q[:500, 0] = 0.0  # half turns
    q[500:600, 1:] = 0.0  # identities
    matrices = quat_to_matrix(q)
    former = reference_pfnn_matrix_to_quaternion(matrices)
    np.testing.assert_array_equal(matrix_to_quat(matrices), np.where(former[..., :1] < 0, -former, former))


def test_quat_to_matrix_and_slerp_agree_with_the_pfnn_copies():
    rng = np.random.default_rng(3)
    q = rng.normal(size=(4000, 4))
    np.testing.assert_allclose(quat_to_matrix(q), reference_pfnn_quaternion_to_matrix(q), rtol=0, atol=4e-15)
    q0, q1 = quat_normalize(rng.normal(size=(2, 4000, 4)))
    q1[:100] = q0[:100]  # equal: the linear branch
    q1[100:200] = -q0[100:200]  # opposite signs of one rotation
    t = rng.uniform(size=(4000, 1))
    slerped = quat_slerp(q0, q1, t)
    np.testing.assert_allclose(slerped, reference_pfnn_slerp(q0, q1, t), rtol=0, atol=1e-15)
    np.testing.assert_allclose(slerped[:200], q0[:200], atol=1e-15)
    # the torch path gives the numpy path's numbers
    assert torch.equal(quat_slerp(*(torch.from_numpy(v) for v in (q0, q1, t))), torch.from_numpy(slerped))


def test_pfnn_rotation_log_and_exp_are_half_of_the_core_axis_angle():
    from motionhub_pfnn.database import rotation_exp, rotation_log

    rng = np.random.default_rng(4)
    matrices = random_rotations(rng, (3000,))
    matrices[:10] = np.eye(3)
    logs = rotation_log(matrices)
    np.testing.assert_array_equal(logs, 0.5 * matrix_to_axis_angle(matrices))
    np.testing.assert_allclose(logs, reference_pfnn_rotation_log(matrices), rtol=0, atol=2e-15)
    np.testing.assert_allclose(rotation_exp(logs), reference_pfnn_rotation_exp(logs), rtol=0, atol=4e-15)
    np.testing.assert_allclose(rotation_exp(logs), matrices, atol=1e-12)


# ------------------------------------------------------------------------ per-slice std


def test_group_averaged_std_is_bit_for_bit_the_former_one():
    rng = np.random.default_rng(5)
    fmt = MotionFormat("test", (10,), 20.0, slices={"a": slice(0, 3), "b": slice(3, 4), "c": slice(4, 10)})
    features = rng.normal(size=(500, 10)) * rng.uniform(0.1, 5.0, size=10)
    features[:, 3] = 1.0  # constant: the floor
    np.testing.assert_array_equal(group_averaged_std(features, fmt), reference_group_averaged_std(features, fmt))
    assert group_averaged_std(features, fmt)[3] == np.float32(1e-3)


def test_features_outside_every_slice_keep_their_own_std():
    rng = np.random.default_rng(6)
    fmt = MotionFormat("test", (6,), 20.0, slices={"a": slice(0, 3)})
    features = rng.normal(size=(400, 6)) * np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    std = features.std(axis=0)
    np.testing.assert_allclose(group_averaged_std(features, fmt), [std[:3].mean()] * 3 + list(std[3:]), rtol=1e-6)


def test_average_over_groups_is_pfnns_shared_std():
    from motionhub_pfnn.database import X_STD_GROUPS, Y_STD_GROUPS, _shared_std, x_layout, y_layout

    rng = np.random.default_rng(7)
    for layout, groups in ((x_layout(31), X_STD_GROUPS), (y_layout(22), Y_STD_GROUPS)):
        std = rng.uniform(0.0, 3.0, size=layout.size)
        terrain = [np.arange(layout[n].start, layout[n].stop) for names in groups for n in names if "terrain" in n]
        for columns in terrain:
            std[columns] = 0.0  # flat ground: constant columns get std 1
        columns = [np.concatenate([np.arange(layout[n].start, layout[n].stop) for n in names if n in layout])
                   for names in groups if any(n in layout for n in names)]
        np.testing.assert_array_equal(_shared_std(std, layout, groups), reference_pfnn_shared_std(std, columns))
        pooled = average_over_groups(std, columns)
        for group in columns:
            assert np.all(pooled[group] == std[group].mean())


# ------------------------------------------------------------------------ code histograms


def reference_usage_from_histogram(counts):
    """The core's usage figures, as they were computed before the entropy was shared."""
    size, total = counts.numel(), counts.sum()
    used = int((counts > 0).sum())
    if total == 0:
        return {"used": 0, "dead": size, "perplexity": 0.0, "normalised_perplexity": 0.0}
    p = counts[counts > 0].double() / total
    perplexity = float(torch.exp(-(p * p.log()).sum()))
    return {"used": used, "dead": size - used, "perplexity": perplexity, "normalised_perplexity": perplexity / size}


def reference_amplify_code_entropy(indices):
    """The AMPLIFY plugin's per-batch code entropy (float32), as it was."""
    counts = torch.bincount(indices.detach().reshape(-1).long()).float()
    if counts.numel() == 0:
        return torch.zeros((), device=indices.device)
    p = counts[counts > 0] / counts.sum()
    return -(p * p.log()).sum()


@pytest.mark.parametrize("codebook_size", [2, 7, 1920, 65536])
def test_code_histogram_usage_and_entropy_are_the_former_ones(codebook_size):
    from motionhub.model.codebook import code_histogram, histogram_entropy, usage_from_histogram
    from motionhub_amplify.codes import batch_code_figures, code_entropy

    g = torch.Generator().manual_seed(codebook_size)
    for count in (1, 5, 300, 20000):
        # skewed towards low ids, so some codes are used often and many never
        indices = (torch.rand(count, generator=g) ** 3 * codebook_size).long().reshape(-1, 1)
        counts = code_histogram(indices, codebook_size)
        assert counts.dtype == torch.int64
        assert torch.equal(counts, torch.bincount(indices.flatten(), minlength=codebook_size))
        assert torch.equal(code_histogram(indices), counts[: int(indices.max()) + 1])
        assert usage_from_histogram(counts) == reference_usage_from_histogram(counts)
        assert torch.equal(code_entropy(indices), reference_amplify_code_entropy(indices))
        assert torch.equal(histogram_entropy(counts, torch.float32), reference_amplify_code_entropy(indices))
        figures = batch_code_figures(indices, codebook_size)
        assert figures["unique_codes"].item() == torch.unique(indices).numel()
        assert figures["unique_codes"].dtype == torch.float32
    empty = torch.empty(0, dtype=torch.long)
    assert code_entropy(empty).item() == 0.0 and usage_from_histogram(code_histogram(empty, 4))["perplexity"] == 0.0


def test_code_histogram_names_indices_out_of_range():
    from motionhub.model.codebook import code_histogram

    with pytest.raises(ValueError, match=r"indices must lie in \[0, 4\), got values in \[0, 6\]"):
        code_histogram(torch.tensor([[0, 6], [2, 3]]), 4)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 4\), got values in \[-1, 2\]"):
        code_histogram(torch.tensor([-1, 2]), 4)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, \.\.\.\), got values in \[-3, 0\]"):
        code_histogram(torch.tensor([-3, 0]))


def test_the_ema_reset_quantizer_counts_codes_with_the_shared_histogram():
    """One training step's EMA count is decay * 1 + (1 - decay) * (how often each code was picked)."""
    from motionhub_quantizers import EMAResetVQ

    from motionhub.model.codebook import code_histogram

    torch.manual_seed(0)
    quantizer = EMAResetVQ(dim=4, codebook_size=8, decay=0.5).train()
    quantizer(torch.randn(1, 16, 4))  # initialises the codebook from these rows, count 1 each
    z = torch.randn(2, 12, 4)
    before = quantizer.code_count.clone()
    indices = quantizer.eval()(z).indices
    quantizer.train()(z)
    torch.testing.assert_close(quantizer.code_count, 0.5 * before + 0.5 * code_histogram(indices, 8).float())


def reference_fsq_bound(z, levels):
    """The codebook-entropy loss's own copy of FSQ's bound, as it was."""
    levels_t = torch.tensor(levels, dtype=z.dtype, device=z.device)
    half = (levels_t - 1) * (1 + 1e-3) / 2
    offset = (1 - levels_t % 2) / 2
    return torch.tanh(z + torch.atanh(offset / half)) * half - offset


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fsq_to_grid_is_the_bound_the_entropy_loss_copied(dtype):
    from motionhub_quantizers import FSQ

    for levels in ([8, 8, 6, 5], [3, 5], [8, 8, 8, 5, 5, 5]):
        z = torch.randn(500, len(levels), dtype=dtype, generator=torch.Generator().manual_seed(len(levels))) * 2
        assert torch.equal(FSQ(dim=len(levels), levels=levels).to_grid(z), reference_fsq_bound(z, levels))
