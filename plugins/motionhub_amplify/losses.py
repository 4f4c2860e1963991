"""Losses over AMPLIFY's relative-displacement classes.

Both read ``batch["motion"]`` (B, T, V, N, 2) tracks normalised to [-1, 1] in (row, col)
order, ``batch["image_size"]`` (H, W) when present (else their ``image_size``), the optional
(B, T) frame mask ``batch["mask"]`` and ``outputs["logits"]`` (B, T - 1, V, N, rows * cols).
Element losses are averaged per view over batch, steps (those between two real frames) and
tracks; the loss is the sum of those means times ``view_weights``.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from motionhub.errors import MotionhubError
from motionhub.formats import MotionFormat
from motionhub.losses import Loss

from .tracks import relative_labels


class RelativeCE(Loss):
    """Cross-entropy of each track step's displacement class, averaged and weighted per view."""

    def __init__(
        self,
        view_weights: Optional[list[float]] = None,
        image_size: Optional[list[int]] = None,
        grid: Optional[list[int]] = None,
    ):
        """``view_weights``: one per view, None = 1 each (the reference's LIBERO views use
        [0.9, 0.1]); ``image_size``: [height, width] pixels the labels count in, None = the
        data format's; ``grid``: (rows, cols) of the logits, None = the square grid they imply."""
        self.view_weights = None if view_weights is None else [float(w) for w in view_weights]
        self.image_size = None if image_size is None else [int(s) for s in image_size]
        self.grid = None if grid is None else (int(grid[0]), int(grid[1]))

    def __call__(self, batch: dict, outputs: dict, format: Optional[MotionFormat] = None) -> torch.Tensor:
        logits = outputs["logits"]
        grid = self._grid(logits)
        labels = relative_labels(batch["motion"], self._image_size(batch, format), grid)
        cross_entropy = F.cross_entropy(logits.flatten(0, -2), labels.flatten(), reduction="none")
        loss = self._element_loss(cross_entropy, labels.flatten(), grid).view(labels.shape)
        return self._weigh_views(loss, batch.get("mask"))

    def _image_size(self, batch: dict, format: Optional[MotionFormat]):
        size = batch.get("image_size", self.image_size)
        if size is None and format is not None:
            size = format.image_size
        if size is None:
            raise MotionhubError("the track files differ in frame size; set the loss's image_size: [height, width]")
        return size

    def _element_loss(self, cross_entropy: torch.Tensor, labels: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Loss of each element from its cross-entropy (flat tensors)."""
        return cross_entropy

    def _grid(self, logits: torch.Tensor) -> tuple[int, int]:
        classes = logits.shape[-1]
        if self.grid is None:
            side = math.isqrt(classes)
            if side * side != classes:
                raise MotionhubError(f"{classes} classes are not a square grid; set the loss's grid")
            return side, side
        if self.grid[0] * self.grid[1] != classes:
            raise MotionhubError(f"grid {list(self.grid)} has {self.grid[0] * self.grid[1]} classes, the logits {classes}")
        return self.grid

    def _weigh_views(self, loss: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        """(B, T - 1, V, N) element losses and (B, T) frame mask -> sum over views of weight * mean."""
        if mask is None:
            per_view = loss.mean(dim=(0, 1, 3))
        else:
            steps = (mask[:, 1:] & mask[:, :-1]).to(loss.dtype)[:, :, None, None]
            per_view = (loss * steps).sum(dim=(0, 1, 3)) / (steps.sum() * loss.shape[3])
        if self.view_weights is None:
            return per_view.sum()
        if len(self.view_weights) != per_view.numel():
            raise MotionhubError(f"{len(self.view_weights)} view_weights for {per_view.numel()} views")
        # elementwise, not a matmul: under autocast a matmul would run in half precision
        return (per_view.float() * per_view.new_tensor(self.view_weights, dtype=torch.float32)).sum()


class FocalLoss(RelativeCE):
    """Focal loss -alpha (1 - p)^gamma log p over the displacement classes, centre class down-weighted."""

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float = 1.0,
        center_weight: float = 0.5,
        view_weights: Optional[list[float]] = None,
        image_size: Optional[list[int]] = None,
        grid: Optional[list[int]] = None,
    ):
        """``center_weight`` multiplies alpha where the target is the "no motion" class;
        gamma = 0, alpha = 1, center_weight = 1 is ``relative_ce``."""
        super().__init__(view_weights, image_size, grid)
        self.gamma, self.alpha, self.center_weight = float(gamma), float(alpha), float(center_weight)

    def _element_loss(self, cross_entropy: torch.Tensor, labels: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        center = (grid[0] // 2) * grid[1] + grid[1] // 2
        alpha = torch.where(labels == center, self.alpha * self.center_weight, self.alpha)
        miss = -torch.expm1(-cross_entropy)  # 1 - p of the target class
        return alpha * miss.pow(self.gamma) * cross_entropy
