"""Reconstruction losses over the whole frame or one named slice, masked for padded clips."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from motionhub.api import Loss, MotionFormat

Kind = Literal["l1", "l2", "smooth_l1"]
_ELEMENTWISE = {
    "l1": lambda a, b: (a - b).abs(),
    "l2": lambda a, b: (a - b).square(),
    "smooth_l1": lambda a, b: F.smooth_l1_loss(a, b, reduction="none", beta=1.0),
}


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values`` (B, T, ...) over the frames where ``mask`` (B, T) is true."""
    if mask is None:
        return values.mean()
    per_frame = values.flatten(2).mean(-1) if values.dim() > 2 else values
    mask = mask.to(per_frame.dtype)
    return (per_frame * mask).sum() / mask.sum().clamp_min(1.0)


class ReconstructionLoss(Loss):
    """Distance between input and reconstruction over every feature (l1, l2 or smooth_l1).

    kind: elementwise distance on normalised features, l1, l2 (squared) or smooth_l1 (beta 1), averaged over real frames.
    """

    def __init__(self, kind: Kind = "smooth_l1"):
        self.kind = kind

    def __call__(self, batch, outputs, format: MotionFormat):
        target, recon = batch["motion"], outputs["recon"]
        return masked_mean(_ELEMENTWISE[self.kind](recon, target), batch.get("mask"))


class FeatureLoss(Loss):
    """The same distance on one named slice, e.g. ``positions`` (the references' "velocity" loss).

    slice: name of the data format's slice of the flattened frame to compare, e.g. positions or velocities.
    kind:  elementwise distance on normalised features, l1, l2 (squared) or smooth_l1 (beta 1), averaged over real frames.
    """

    def __init__(self, slice: str, kind: Kind = "smooth_l1"):
        self.slice_name, self.kind = slice, kind

    def __call__(self, batch, outputs, format: MotionFormat):
        part = format.slice(self.slice_name)
        target = batch["motion"].flatten(2)[..., part]
        recon = outputs["recon"].flatten(2)[..., part]
        return masked_mean(_ELEMENTWISE[self.kind](recon, target), batch.get("mask"))


class CommitLoss(Loss):
    """The quantizer's auxiliary loss (commitment, entropy...); 0 for FSQ."""

    def __call__(self, batch, outputs, format: MotionFormat):
        return outputs["aux_loss"].mean()
