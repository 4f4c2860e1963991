"""Losses over relative-displacement classes (AMPLIFY's, and the LAPS re-implementation's).

Both read ``batch["motion"]`` (B, T, V, N, 2) tracks normalised to [-1, 1] in (row, col)
order, ``batch["image_size"]`` (H, W) when present (else their ``image_size``), the optional
(B, T) frame mask ``batch["mask"]`` and ``outputs["logits"]`` (B, T - 1, V, N, rows * cols).
The targets follow the data format's ``track_labels`` (``"pixel"`` without a format; see
``motionhub_amplify.tracks``).

Element losses are averaged per view over batch, steps (those between two real frames) and
tracks; the loss is the sum of those means times ``view_weights``. With the static-point
mask on (``static_threshold``), only the points it keeps count: per view the mean is
sum(m l) / max(sum(m), 1) over the counted elements, so one view without weights gives the
LAPS re-implementation's single masked mean over the batch. ``figures()`` then returns the
share of counted elements the mask kept in the last call, ``{"mask_ratio": ...}``.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional

import torch
import torch.nn.functional as F

from motionhub.api import Bounds, Loss, MotionFormat, MotionhubError

from .tracks import STATIC_METRICS, displacement_labels, label_kind, logits_grid, moving_points, velocity_radius

StaticMetric = Literal["p95", "mean", "max"]
IMAGE_SIZE = Bounds(low=1, length=2, hint="[height, width] in pixels")
GRID = Bounds(low=1, length=2, hint="[rows, cols] of displacement classes")


class RelativeCE(Loss):
    """Cross-entropy of each track step's displacement class, averaged and weighted per view.

    view_weights:     weight of each view's mean loss, one per view; None: 1 each (AMPLIFY's LIBERO uses [0.9, 0.1]).
    image_size:       [height, width] pixels the labels count in when the batch has none; None: the format's.
    grid:             [rows, cols] of the logits' displacement classes; None: the square grid their count implies.
    static_threshold: None: every point counts; else points count whose speed score, in (W - 1) / 2 px/step, reaches it.
    static_metric:    a point's speed over its steps for that mask: p95 (0.95 quantile), mean or max.
    static_min_keep:  with the mask, the fewest points (>= 0) per sample and view that count: the fastest ones.
    """

    def __init__(
        self,
        view_weights: Annotated[Optional[list[float]], Bounds(low=0)] = None,
        image_size: Annotated[Optional[list[int]], IMAGE_SIZE] = None,
        grid: Annotated[Optional[list[int]], GRID] = None,
        static_threshold: Annotated[Optional[float], Bounds(low=0)] = None,
        static_metric: StaticMetric = "p95",
        static_min_keep: Annotated[int, Bounds(low=0)] = 16,
    ):
        """``view_weights``: one per view, None = 1 each (the reference's LIBERO views use
        [0.9, 0.1]); ``image_size``: [height, width] pixels the labels count in, None = the
        data format's; ``grid``: (rows, cols) of the logits, None = the square grid they imply.

        ``static_threshold``: None = every point counts; a number turns on the static-point
        mask (``motionhub_amplify.tracks.moving_points``): a point counts when its
        ``static_metric`` (``p95``, ``mean`` or ``max`` over its steps) of the speed in units
        of (W - 1) / 2 pixels per step reaches the threshold, and at least ``static_min_keep``
        points per sample and view count (the highest scores). The LAPS re-implementation
        uses p95 with 0.10 (its d01 run) or 0.06 (d02) and 16; it needs a square grid.
        """
        self.view_weights = None if view_weights is None else [float(w) for w in view_weights]
        self.image_size = None if image_size is None else [int(s) for s in image_size]
        self.grid = None if grid is None else (int(grid[0]), int(grid[1]))
        if static_metric not in STATIC_METRICS:
            raise ValueError(f"static_metric must be one of {', '.join(STATIC_METRICS)}; got {static_metric!r}")
        if static_min_keep < 0:
            raise ValueError(f"static_min_keep must be at least 0; got {static_min_keep}")
        self.static_threshold = None if static_threshold is None else float(static_threshold)
        self.static_metric, self.static_min_keep = static_metric, int(static_min_keep)
        self._figures: dict[str, torch.Tensor] = {}

    def __call__(self, batch: dict, outputs: dict, format: Optional[MotionFormat] = None) -> torch.Tensor:
        logits = outputs["logits"]
        grid = self._grid(logits)
        size = self._image_size(batch, format)
        labels = displacement_labels(batch["motion"], size, grid, label_kind(format))
        cross_entropy = F.cross_entropy(logits.flatten(0, -2), labels.flatten(), reduction="none")
        loss = self._element_loss(cross_entropy, labels.flatten(), grid).view(labels.shape)
        moving = None
        if self.static_threshold is not None:
            mask = batch.get("mask")
            steps = None if mask is None else mask[:, 1:] & mask[:, :-1]
            moving = moving_points(batch["motion"], size, velocity_radius(grid), self.static_threshold,
                                   self.static_metric, self.static_min_keep, steps)
        return self._weigh_views(loss, batch.get("mask"), moving)

    def figures(self) -> dict[str, torch.Tensor]:
        """``{"mask_ratio": share of counted elements the static-point mask kept}`` of the last
        call (detached); empty with the mask off."""
        return dict(self._figures)

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
        try:
            return logits_grid(logits.shape[-1], self.grid)
        except MotionhubError as exc:
            raise MotionhubError(f"{exc} (the loss's grid)") from None

    def _weigh_views(self, loss: torch.Tensor, mask: Optional[torch.Tensor],
                     moving: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, T - 1, V, N) element losses, (B, T) frame mask and (B, V, N) static-point mask
        -> sum over views of weight * masked mean."""
        if mask is None and moving is None:
            per_view = loss.mean(dim=(0, 1, 3))
        else:
            counted = torch.ones_like(loss)
            if mask is not None:
                counted = counted * (mask[:, 1:] & mask[:, :-1]).to(loss.dtype)[:, :, None, None]
            if moving is not None:
                kept = counted * moving.to(loss.dtype)[:, None]
                self._figures = {"mask_ratio": (kept.sum() / counted.sum().clamp_min(1)).detach().float()}
                counted = kept
            per_view = (loss * counted).sum(dim=(0, 1, 3)) / counted.sum(dim=(0, 1, 3)).clamp_min(1)
        if moving is None:
            self._figures = {}
        if self.view_weights is None:
            return per_view.sum()
        if len(self.view_weights) != per_view.numel():
            raise MotionhubError(f"{len(self.view_weights)} view_weights for {per_view.numel()} views")
        # elementwise, not a matmul: under autocast a matmul would run in half precision
        return (per_view.float() * per_view.new_tensor(self.view_weights, dtype=torch.float32)).sum()


class FocalLoss(RelativeCE):
    """Focal loss -alpha (1 - p)^gamma log p over the displacement classes, centre class down-weighted.

    Per element, with p the probability of the target class: alpha_y (1 - p)^gamma (-log p),
    (1 - p) clamped at >= 0, where alpha_y = ``alpha`` * ``center_weight`` for the "no motion"
    class and ``alpha`` otherwise. The LAPS re-implementation's focal loss (gamma 2,
    alpha 0.25 for the centre class and 1 for every other) is ``gamma: 2``, ``alpha: 1``,
    ``center_weight: 0.25``; with its static-point mask add ``static_threshold: 0.10``
    (d01; 0.06 for d02), ``static_metric: p95``, ``static_min_keep: 16``, keep one view
    without ``view_weights``, and read velocity labels from the data (e.g. ``data.labels:
    velocity``). Then the value is its sum(m l) / max(sum(m), 1) over the batch.

    gamma:         focusing exponent on (1 - p); 0 gives a (weighted) cross-entropy.
    alpha:         weight of every element's loss; the LAPS re-implementation's is 1.
    center_weight: factor on alpha where the target is the centre "no motion" class (LAPS: 0.25).
    """

    def __init__(
        self,
        gamma: Annotated[float, Bounds(low=0)] = 2.0,
        alpha: Annotated[float, Bounds(low=0)] = 1.0,
        center_weight: Annotated[float, Bounds(low=0)] = 0.5,
        view_weights: Annotated[Optional[list[float]], Bounds(low=0)] = None,
        image_size: Annotated[Optional[list[int]], IMAGE_SIZE] = None,
        grid: Annotated[Optional[list[int]], GRID] = None,
        static_threshold: Annotated[Optional[float], Bounds(low=0)] = None,
        static_metric: StaticMetric = "p95",
        static_min_keep: Annotated[int, Bounds(low=0)] = 16,
    ):
        """``center_weight`` multiplies alpha where the target is the "no motion" class;
        gamma = 0, alpha = 1, center_weight = 1 is ``relative_ce``. The other arguments are
        ``relative_ce``'s."""
        super().__init__(view_weights, image_size, grid, static_threshold, static_metric, static_min_keep)
        self.gamma, self.alpha, self.center_weight = float(gamma), float(alpha), float(center_weight)

    def _element_loss(self, cross_entropy: torch.Tensor, labels: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        center = (grid[0] // 2) * grid[1] + grid[1] // 2
        alpha = torch.where(labels == center, self.alpha * self.center_weight, self.alpha)
        miss = (-torch.expm1(-cross_entropy)).clamp(min=0.0)  # 1 - p of the target class
        return alpha * miss.pow(self.gamma) * cross_entropy
