"""A loss that penalises jerky reconstructions."""

from __future__ import annotations

import torch

from motionhub.model.losses import Loss


class SmoothnessLoss(Loss):
    """Mean squared second difference over time of the reconstruction (optionally one slice)."""

    def __init__(self, slice: str | None = None):
        self.slice_name = slice

    def __call__(self, batch, outputs, format) -> torch.Tensor:
        recon = outputs["recon"].flatten(2)
        if self.slice_name is not None:
            recon = recon[..., format.slice(self.slice_name)]
        acceleration = recon[:, 2:] - 2 * recon[:, 1:-1] + recon[:, :-2]
        return acceleration.square().mean()
