"""Reconstruction metrics against values derived by hand: MPJPE, PA-MPJPE, acceleration error, jitter,
foot skating, and the figures of a residual quantizer per number of levels."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from motionhub_metrics import MPJPE, PAMPJPE, AccelerationError, FootSkating, Jitter, ResidualLevels
from motionhub_metrics.joints import procrustes_align
from motionhub_quantizers import FSQ, RVQ

from motionhub.data import layouts
from motionhub.data.formats import MotionFormat
from motionhub.errors import MotionhubError
from motionhub.model.metrics import figure_unit
from motionhub.motion.skeletons import T2M_SKELETON

JOINTS = layouts.joint_positions(T2M_SKELETON, 20.0)  # 22 joints in metres, no normalisation
LEFT_TOE, RIGHT_TOE = T2M_SKELETON.feet_left[-1], T2M_SKELETON.feet_right[-1]


def points_format(joints: int, fps: float = 20.0, mm_per_unit: float = 1000.0) -> MotionFormat:
    return MotionFormat(f"points{joints}", (joints * 3,), fps, mm_per_unit=mm_per_unit,
                        joints_fn=lambda x: x.reshape(*x.shape[:-1], -1, 3))


def figures(metric, truth: torch.Tensor, recon: torch.Tensor, fmt: MotionFormat, mask=None) -> dict[str, float]:
    """``metric``'s figures for joint positions (B, T, J, 3), as a split of one batch."""
    batch = {"motion": truth.flatten(-2)}
    if mask is not None:
        batch["mask"] = mask
    sums = metric.update(batch, {"recon": recon.flatten(-2)}, fmt)
    return metric.compute({key: float(value) for key, value in sums.items()})


def rotation(axis: tuple[float, float, float], angle: float) -> torch.Tensor:
    """Rodrigues' formula: the rotation by ``angle`` radians about ``axis``, float64."""
    k = torch.tensor(axis, dtype=torch.float64)
    k = k / k.norm()
    cross = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]], dtype=torch.float64)
    return torch.eye(3, dtype=torch.float64) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


# ---------------------------------------------------------------------- MPJPE


def test_mpjpe_of_a_known_offset_root_aligned_and_global():
    torch.manual_seed(0)
    truth = torch.randn(2, 6, 22, 3)
    shift = torch.tensor([0.003, 0.004, 0.0])  # 5 mm
    moved = figures(MPJPE(), truth, truth + shift, JOINTS)
    assert moved["global_mpjpe_mm"] == pytest.approx(5.0, rel=1e-5)
    assert moved["mpjpe_mm"] == pytest.approx(0.0, abs=1e-4)  # a rigid shift is aligned away

    one = truth.clone()
    one[..., 5, :] += shift  # one joint of 22 off by 5 mm, the root in place
    assert figures(MPJPE(), truth, one, JOINTS) == pytest.approx({"mpjpe_mm": 5 / 22, "global_mpjpe_mm": 5 / 22},
                                                                 rel=1e-4)
    root = truth.clone()
    root[..., 0, :] += shift  # the root off by 5 mm: every other joint is 5 mm off once aligned to it
    assert figures(MPJPE(), truth, root, JOINTS)["mpjpe_mm"] == pytest.approx(5 * 21 / 22, rel=1e-4)

    in_mm = dataclasses.replace(JOINTS, mm_per_unit=1.0)  # data in millimetres (KIT-ML): 3, 4 is 5 mm
    in_mm_figures = figures(MPJPE(), truth, truth + torch.tensor([3.0, 4.0, 0.0]), in_mm)
    assert in_mm_figures["global_mpjpe_mm"] == pytest.approx(5.0)


def test_mpjpe_counts_valid_frames_only():
    truth = torch.zeros(2, 5, 22, 3)
    recon = truth + torch.tensor([0.0, 0.01, 0.0])  # 10 mm everywhere...
    recon[0, 3:] += 7.0  # ...and far off in padding
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert figures(MPJPE(), truth, recon, JOINTS, mask)["global_mpjpe_mm"] == pytest.approx(10.0, rel=1e-5)


# ---------------------------------------------------------------------- PA-MPJPE

# six points on the axes, centred, with principal axes x, y, z: sum_j y_j y_j^T = diag(2 p^2, 2 q^2, 2 r^2)
def axis_points(p: float, q: float, r: float) -> torch.Tensor:
    return torch.tensor([[p, 0, 0], [-p, 0, 0], [0, q, 0], [0, -q, 0], [0, 0, r], [0, 0, -r]], dtype=torch.float64)


def placed(points: torch.Tensor) -> torch.Tensor:
    """``points`` rotated, scaled by 1.7 and moved: a transform PA-MPJPE must align away."""
    return 1.7 * points @ rotation((1.0, 2.0, -0.5), 0.9).T + torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)


def pa(truth: torch.Tensor, recon: torch.Tensor) -> float:
    fmt = points_format(len(truth))
    return figures(PAMPJPE(), truth[None, None].float(), recon[None, None].float(), fmt)["pa_mpjpe_mm"]


def test_pa_mpjpe_is_zero_for_a_rotated_scaled_and_moved_copy():
    torch.manual_seed(1)
    truth = torch.randn(3, 7, 22, 3, dtype=torch.float64)
    recon = placed(truth)
    assert figures(MPJPE(), truth.float(), recon.float(), JOINTS)["mpjpe_mm"] > 100
    assert figures(PAMPJPE(), truth.float(), recon.float(), JOINTS)["pa_mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)
    assert torch.allclose(procrustes_align(recon, truth), truth, atol=1e-10)


def test_pa_mpjpe_of_a_stretched_copy_equals_the_hand_computed_value():
    # recon = diag(2, 1, 1) y on unit axis points: M = diag(4, 2, 2), R = I, s = 8 / 12 = 2/3; every
    # point is then 1/3 off (x points: |2 s - 1| = 1/3, the others: |s - 1| = 1/3): 1/3 m
    truth = axis_points(1, 1, 1)
    recon = placed(truth * torch.tensor([2.0, 1.0, 1.0], dtype=torch.float64))
    assert pa(truth, recon) == pytest.approx(1000 / 3, rel=1e-5)


def test_pa_mpjpe_of_a_mirrored_copy_uses_a_rotation_not_the_reflection():
    # recon = the truth mirrored in x, then placed. M = diag(-a, b, c) with a, b, c = 18, 8, 2: the best
    # orthogonal map would be the mirror itself (error 0), the best rotation flips the smallest axis,
    # R = diag(-1, 1, -1), s = (a + b - c) / (a + b + c) = 6/7. Errors: x points (1 - s) 3 = 3/7,
    # y points (1 - s) 2 = 2/7, z points (1 + s) 1 = 13/7: mean (3 + 2 + 13) / 21 = 6/7 m
    truth = axis_points(3, 2, 1)
    mirrored = truth * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    assert pa(truth, placed(mirrored)) == pytest.approx(6000 / 7, rel=1e-5)
    aligned = procrustes_align(placed(mirrored), truth)
    assert torch.allclose(aligned, truth * torch.tensor([6 / 7, 6 / 7, -6 / 7], dtype=torch.float64), atol=1e-9)


def test_pa_mpjpe_is_optimal_among_nearby_similarity_transforms():
    torch.manual_seed(2)
    truth, recon = torch.randn(22, 3, dtype=torch.float64), torch.randn(22, 3, dtype=torch.float64)
    best = (procrustes_align(recon, truth) - truth).square().sum()
    aligned = procrustes_align(recon, truth)
    centre = aligned.mean(0)
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        turn = rotation(tuple(torch.randn(3, generator=g).tolist()), 0.05)
        scale = 1 + 0.05 * float(torch.randn(1, generator=g))
        other = scale * (aligned - centre) @ turn.T + centre + 0.01 * torch.randn(3, generator=g, dtype=torch.float64)
        assert (other - truth).square().sum() > best


# ---------------------------------------------------------------------- acceleration and jitter


def along_x(values: torch.Tensor, joints: int = 22) -> torch.Tensor:
    """(B, T) positions in metres -> (B, T, J, 3), every joint at x = value."""
    out = torch.zeros(*values.shape, joints, 3, dtype=torch.float64)
    out[..., 0] = values[..., None]
    return out.float()


def test_acceleration_error_of_constant_accelerations():
    fps = 20.0
    seconds = torch.arange(12, dtype=torch.float64) / fps
    truth = along_x((0.5 * 2.0 * seconds ** 2)[None])  # 2 m/s²
    recon = along_x((0.5 * 5.0 * seconds ** 2 + 0.3 * seconds)[None])  # 5 m/s² (a velocity changes nothing)
    fmt = points_format(22, fps)
    # 3 m/s² apart: 3000 mm/s², or 3000 / 20² = 7.5 mm per frame²
    assert figures(AccelerationError(), truth, recon, fmt) == pytest.approx({"accel_error_mm_f2": 7.5}, rel=1e-4)
    assert figures(AccelerationError(per="second"), truth, recon, fmt) == pytest.approx({"accel_error_mm_s2": 3000.0},
                                                                                       rel=1e-4)


def test_acceleration_error_counts_frames_whose_neighbours_are_all_valid():
    truth = along_x(torch.zeros(2, 8, dtype=torch.float64))
    recon = truth.clone()
    recon[1, 4, :, 1] += 0.004  # one frame 4 mm off: accelerations off by 4, 8, 4 mm at frames 3, 4, 5
    recon[0, 6:] += 1.0  # padding
    mask = torch.tensor([[1] * 6 + [0] * 2, [1] * 8], dtype=torch.bool)
    metric = AccelerationError()
    sums = metric.update({"motion": truth.flatten(-2), "mask": mask}, {"recon": recon.flatten(-2)}, JOINTS)
    assert float(sums["frames"]) == (6 - 2) + (8 - 2)
    error = metric.compute({k: float(v) for k, v in sums.items()})["accel_error_mm_f2"]
    assert error == pytest.approx(16 / 10, rel=1e-4)


def test_jitter_of_a_cubic_and_of_a_straight_line():
    fps = 10.0
    seconds = torch.arange(10, dtype=torch.float64) / fps
    cubic = along_x((0.7 * seconds ** 3 + 0.2 * seconds ** 2)[None])  # third derivative 6 x 0.7 = 4.2 m/s³
    line = along_x((0.5 * seconds)[None])
    fmt = points_format(22, fps)
    # 4.2 m/s³ = 4200 mm/s³ = 4200 / 10³ = 4.2 mm/frame³; a straight line does not shake
    assert figures(Jitter(), line, cubic, fmt) == pytest.approx({"jitter_mm_f3": 4.2, "gt_jitter_mm_f3": 0.0},
                                                                rel=1e-3, abs=1e-3)  # float32 rounding
    assert figures(Jitter(per="second", reference=False), line, cubic, fmt) == pytest.approx({"jitter_mm_s3": 4200.0},
                                                                                             rel=1e-3)
    mask = torch.tensor([[1] * 5 + [0] * 5], dtype=torch.bool)
    sums = Jitter().update({"motion": line.flatten(-2), "mask": mask}, {"recon": cubic.flatten(-2)}, fmt)
    assert float(sums["frames"]) == 5 - 3  # four valid frames per third difference


# ---------------------------------------------------------------------- foot skating


def standing(frames: int, toe_height: float = 0.01) -> torch.Tensor:
    """(1, T, 22, 3): every joint 1 m up, the toes ``toe_height`` m up, nothing moving."""
    pose = torch.zeros(1, frames, 22, 3)
    pose[..., 1] = 1.0
    pose[..., [LEFT_TOE, RIGHT_TOE], 1] = toe_height
    return pose


def test_foot_skating_of_a_sliding_and_of_a_planted_foot():
    planted = standing(11)
    sliding = planted.clone()
    sliding[0, :, LEFT_TOE, 0] = 0.05 * torch.arange(11)  # 5 cm a frame at 20 fps = 1 m/s, on the ground
    assert figures(FootSkating(), planted, sliding, JOINTS) == {"foot_skating_ratio": 1.0,
                                                                "gt_foot_skating_ratio": 0.0}

    half = planted.clone()
    half[0, 5:, LEFT_TOE, 0] = 0.05 * torch.arange(6)  # slides in the last 5 of 10 steps
    lifted = half.clone()
    lifted[0, :, LEFT_TOE, 1] = 0.2  # the same movement 20 cm up: a swinging foot, not skating
    slow = planted.clone()
    slow[0, :, LEFT_TOE, 0] = 0.02 * torch.arange(11)  # 0.4 m/s: under the 0.5 m/s threshold
    assert figures(FootSkating(), planted, half, JOINTS)["foot_skating_ratio"] == pytest.approx(0.5)
    assert figures(FootSkating(), planted, lifted, JOINTS)["foot_skating_ratio"] == 0.0
    assert figures(FootSkating(), planted, slow, JOINTS)["foot_skating_ratio"] == 0.0
    assert figures(FootSkating(speed=0.3), planted, slow, JOINTS)["foot_skating_ratio"] == 1.0

    # the thresholds are metres: in millimetre data the same motion gives the same ratio
    in_mm = dataclasses.replace(JOINTS, mm_per_unit=1.0)
    assert figures(FootSkating(), planted * 1000, half * 1000, in_mm)["foot_skating_ratio"] == pytest.approx(0.5)


def test_foot_skating_floor_and_valid_steps():
    planted = standing(11)
    sliding = planted.clone()
    sliding[0, :, RIGHT_TOE, 2] = 0.05 * torch.arange(11)
    raised = torch.tensor([0.0, 0.5, 0.0])  # the whole clip half a metre up: no foot is near height 0...
    assert figures(FootSkating(), planted + raised, sliding + raised, JOINTS)["foot_skating_ratio"] == 0.0
    # ...but the lowest the truth's feet reach is the ground with floor: lowest
    assert figures(FootSkating(floor="lowest"), planted + raised, sliding + raised, JOINTS)["foot_skating_ratio"] == 1.0

    mask = torch.tensor([[1] * 4 + [0] * 7], dtype=torch.bool)  # 3 valid steps, all sliding
    metric = FootSkating()
    sums = metric.update({"motion": planted.flatten(-2), "mask": mask}, {"recon": sliding.flatten(-2)}, JOINTS)
    assert (float(sums["skating"]), float(sums["steps"])) == (3.0, 3.0)

    # the joints checked can be named; a wrong name says which exist
    assert figures(FootSkating(joints=["left_foot"]), planted, sliding, JOINTS)["foot_skating_ratio"] == 0.0
    with pytest.raises(MotionhubError, match="did you mean 'left_foot'"):
        FootSkating(joints=["left_fot"]).foot_joints(JOINTS)


# ---------------------------------------------------------------------- defaults and units


def test_the_metrics_apply_to_skeleton_data_and_show_their_units():
    from motionhub.model.build import build_metrics
    from motionhub.recipes import recipe_from_tree
    from helpers import TINY_RECIPE

    metrics = build_metrics(recipe_from_tree(TINY_RECIPE, "tiny.yaml"), layouts.humanml3d_263())
    assert {"mpjpe", "pa_mpjpe", "accel_error", "jitter", "foot_skating", "residual_levels"} <= set(metrics)
    tracks = layouts.point_tracks(1, 4, 20.0)
    assert not any(cls.applies_to(tracks) for cls in (MPJPE, PAMPJPE, AccelerationError, Jitter, FootSkating,
                                                      ResidualLevels))
    assert not FootSkating.applies_to(points_format(6))  # no skeleton, no feet
    assert [figure_unit(name) for name in ("mpjpe_mm", "pa_mpjpe_mm@k2", "accel_error_mm_f2", "accel_error_mm_s2",
                                           "gt_jitter_mm_f3", "jitter_mm_s3", "foot_skating_ratio", "loss")] == [
        "mm", "mm", "mm/frame²", "mm/s²", "mm/frame³", "mm/s³", "fraction", ""]


# ---------------------------------------------------------------------- residual levels


class Identity(torch.nn.Module):
    """Encoder or decoder that passes frames through: each frame is a token."""

    out_dim, downsample = 6, 1

    def forward(self, x):
        return x


def constructed_rvq() -> tuple[RVQ, torch.Tensor]:
    """A 3-level RVQ with codes {0, v_l} on level l and frames alternating between v1 + v2 + v3 and
    v1, for two joints: v1 moves both joints 1 m in x, v2 the second joint 10 cm in y, v3 the first
    joint 1 cm in z. Each level's nearest code is the one that built the frame."""
    quantizer = RVQ(dim=6, num_quantizers=3, codebook_size=2).eval()
    v1 = torch.tensor([1.0, 0, 0, 1.0, 0, 0])
    v2 = torch.tensor([0, 0, 0, 0, 0.1, 0])
    v3 = torch.tensor([0, 0, 0.01, 0, 0, 0])
    for layer, code in zip(quantizer.codebooks.layers, (v1, v2, v3)):
        layer._codebook.embed.data[0] = torch.stack([torch.zeros(6), code])
    frames = torch.stack([v1 + v2 + v3, v1] * 4)  # (8, 6)
    return quantizer, frames[None]


def test_residual_levels_of_a_constructed_rvq_are_exact_and_the_last_is_the_full_model():
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from motionhub.model.losses import LossSet
    from motionhub.model.tokenizer import Tokenizer
    from motionhub.train.evaluation import evaluate_split

    quantizer, frames = constructed_rvq()
    assert quantizer.num_levels == 3
    model = Tokenizer(Identity(), quantizer, Identity()).eval()  # eval: no codebook updates
    assert torch.equal(quantizer(frames).indices[0, :2], torch.tensor([[1, 1, 1], [1, 0, 0]]))
    fmt = points_format(2)
    metrics = {"mpjpe": MPJPE(), "pa_mpjpe": PAMPJPE(), "accel_error": AccelerationError(),
               "residual_levels": ResidualLevels(["mpjpe", "pa_mpjpe", "accel_error"])}
    batch = {"motion": frames, "mask": torch.ones(1, 8, dtype=torch.bool), "lengths": torch.tensor([8])}
    try:
        result, _ = evaluate_split(model, [batch], fmt, LossSet([]), metrics, Accelerator(cpu=True), 0)
    finally:
        AcceleratorState._reset_state()

    # k = 1 leaves v2 + v3 out of every other frame: joint 1 off by 10 mm, joint 2 by 100 mm (global: mean
    # 55 mm over the joints, 27.5 mm over the frames); after the root: joint 2 off by |(0, 0.1, -0.01)| m.
    # k = 2 leaves v3 out: 10 mm on joint 1 (global 5, over the frames 2.5), and 10 mm on joint 2 once aligned.
    assert result["global_mpjpe_mm@k1"] == pytest.approx(27.5, rel=1e-5)
    assert result["mpjpe_mm@k1"] == pytest.approx(1000 * math.hypot(0.1, 0.01) / 4, rel=1e-5)
    assert result["global_mpjpe_mm@k2"] == pytest.approx(2.5, rel=1e-5)
    assert result["mpjpe_mm@k2"] == pytest.approx(2.5, rel=1e-5)
    for figure in ("mpjpe_mm", "global_mpjpe_mm", "pa_mpjpe_mm", "accel_error_mm_f2"):
        by_level = [result[f"{figure}@k{k}"] for k in (1, 2, 3)]
        assert all(finer <= coarser + 1e-6 for coarser, finer in zip(by_level, by_level[1:])), figure  # no worse
        assert by_level[-1] == pytest.approx(result[figure], abs=1e-6), figure  # all levels: the full model
    assert result["mpjpe_mm@k3"] == pytest.approx(0.0, abs=1e-4)
    assert [k for k in result if k.startswith("mpjpe_mm@")] == ["mpjpe_mm@k1", "mpjpe_mm@k2", "mpjpe_mm@k3"]

    truncated = quantizer.indices_to_codes(quantizer(frames).indices, levels=1)
    assert torch.allclose(truncated, frames * torch.tensor([1.0, 0, 0, 1.0, 0, 0]))
    with pytest.raises(ValueError, match="between 1 and the 3 residual levels"):
        quantizer.indices_to_codes(quantizer(frames).indices, levels=4)


def test_residual_levels_gives_nothing_for_a_single_level_quantizer_and_needs_a_decoder():
    metric = ResidualLevels()
    batch = {"motion": torch.zeros(1, 4, 66)}
    assert metric.update(batch, {"quantizer": FSQ(dim=4, levels=[8, 5, 5]), "recon": batch["motion"]}, JOINTS) == {}
    assert metric.compute({}) == {}
    with pytest.raises(MotionhubError, match=r"outputs\['decode'\]"):
        metric.update(batch, {"quantizer": RVQ(dim=4, num_quantizers=2, codebook_size=4),
                              "indices": torch.zeros(1, 4, 2, dtype=torch.long)}, JOINTS)
    with pytest.raises(MotionhubError, match="unknown mpjp.*choose from mpjpe"):
        ResidualLevels(["mpjp"])
