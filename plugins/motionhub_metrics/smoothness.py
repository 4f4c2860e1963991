"""Acceleration error and jitter: finite differences of joint positions over time.

Positions are the format's global joint positions (``to_joints``, no alignment: the root's
trajectory counts), in millimetres through ``mm_per_unit``. Differences are taken over frames,
so a figure is per frame² or per frame³ unless ``per: second`` turns it into per s² or s³ with
the format's ``fps`` (a difference over frames of 1 / fps seconds: times fps² or fps³). A
difference counts only where every frame it reads is valid (inside the clip, not padding).
"""

from __future__ import annotations

from typing import Literal

import torch

from motionhub.api import MotionFormat
from motionhub_metrics.joints import JointMetric, joint_positions, masked_sum

Per = Literal["frame", "second"]


def second_difference(x: torch.Tensor) -> torch.Tensor:
    """(B, T, ...) -> (B, T - 2, ...): x[t - 1] - 2 x[t] + x[t + 1], centred on frames 1 .. T - 2."""
    return x[:, :-2] - 2 * x[:, 1:-1] + x[:, 2:]


def third_difference(x: torch.Tensor) -> torch.Tensor:
    """(B, T, ...) -> (B, T - 3, ...): x[t + 3] - 3 x[t + 2] + 3 x[t + 1] - x[t], over frames t .. t + 3."""
    return x[:, 3:] - 3 * x[:, 2:-1] + 3 * x[:, 1:-2] - x[:, :-3]


def all_valid(mask: torch.Tensor, span: int) -> torch.Tensor:
    """(B, T) -> (B, T - span + 1): whether frames t .. t + span - 1 are all valid."""
    return mask.unfold(1, span, 1).all(-1) if mask.shape[1] >= span else mask[:, :0]


def _suffix(per: str, power: int) -> str:
    return f"mm_{'f' if per == 'frame' else 's'}{power}"


class AccelerationError(JointMetric):
    """Acceleration error: how far the reconstruction's joint accelerations are from the ground truth's.

    per: frame (mm/frame², the usual unit of the published figure) or second (mm/s², times fps²).

    ``accel_error_mm_f2`` (``accel_error_mm_s2`` with ``per: second``): the acceleration of a joint
    at frame t is the second finite difference of its global position, a[t] = x[t - 1] - 2 x[t] +
    x[t + 1]; the figure is the mean over joints and over frames t of the Euclidean norm
    |a_recon[t] - a_truth[t]|, in millimetres. Frame t counts only when t - 1, t and t + 1 are all
    valid, so a clip of L frames gives L - 2 of them (its first and last frame have no acceleration).
    """

    def __init__(self, per: Per = "frame"):
        self.per = per

    def update(self, batch, outputs, fmt: MotionFormat):
        target, recon, mask = joint_positions(batch, outputs, fmt)
        scale = fmt.mm_per_unit * (fmt.fps ** 2 if self.per == "second" else 1.0)
        error = (second_difference(recon) - second_difference(target)).norm(dim=-1).mean(-1) * scale
        valid = all_valid(mask, 3)
        return {"error_sum": masked_sum(error, valid), "frames": valid.sum().float()}

    def compute(self, sums):
        return {f"accel_error_{_suffix(self.per, 2)}": sums["error_sum"] / max(sums["frames"], 1.0)}


class Jitter(JointMetric):
    """Jitter: the mean size of the third finite difference (jerk) of the reconstructed joint positions.

    per:       frame (mm/frame³) or second (mm/s³, times fps³).
    reference: also report the ground truth's own jitter (``gt_jitter_...``), what the data itself has.

    ``jitter_mm_f3`` (``jitter_mm_s3`` with ``per: second``): for each joint, j[t] = x[t + 3] -
    3 x[t + 2] + 3 x[t + 1] - x[t] of its global position, and the figure is the mean over joints
    and over t of the Euclidean norm |j[t]|, in millimetres. It needs no ground truth: it measures
    how much the motion shakes. t counts only when frames t .. t + 3 are all valid (L - 3 of them
    in a clip of L frames). ``gt_jitter_mm_f3`` is the same for the ground truth.
    """

    def __init__(self, per: Per = "frame", reference: bool = True):
        self.per, self.reference = per, reference

    def update(self, batch, outputs, fmt: MotionFormat):
        target, recon, mask = joint_positions(batch, outputs, fmt)
        scale = fmt.mm_per_unit * (fmt.fps ** 3 if self.per == "second" else 1.0)
        valid = all_valid(mask, 4)
        sums = {"jitter_sum": masked_sum(third_difference(recon).norm(dim=-1).mean(-1) * scale, valid),
                "frames": valid.sum().float()}
        if self.reference:
            sums["gt_jitter_sum"] = masked_sum(third_difference(target).norm(dim=-1).mean(-1) * scale, valid)
        return sums

    def compute(self, sums):
        frames, suffix = max(sums["frames"], 1.0), _suffix(self.per, 3)
        figures = {f"jitter_{suffix}": sums["jitter_sum"] / frames}
        if "gt_jitter_sum" in sums:
            figures[f"gt_jitter_{suffix}"] = sums["gt_jitter_sum"] / frames
        return figures
