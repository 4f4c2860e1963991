"""Point tracks <-> relative-displacement classes (AMPLIFY's, and the LAPS re-implementation's).

Tracks are (B, T, V, N, 2) points in (row, col) order, normalised to [-1, 1] per axis
(p = (pixel - S/2) / (S/2), S the image height for rows and width for columns). The model
sees velocities (frame differences); its targets are classes of a ``grid`` (rows, cols)
window of integer-pixel displacements, class = (drow + rows // 2) * cols + (dcol + cols // 2)
(rows outer), so the centre class means "no motion" (112 for the default 15 x 15 grid).

Two rules turn a step into a class; a data set's format names one (``MotionFormat.track_labels``)
and ``displacement_labels`` applies it:

* ``"pixel"`` (AMPLIFY, ``relative_labels``): the difference of the two *rounded* pixel
  positions, each component clamped into the grid.
* ``"velocity"`` (LAPS's re-implementation, ``velocity_labels``): the velocity in units of
  r = (W - 1) / 2 pixels, clamped to [-1, 1], then rounded (half to even) on the grid.

Either way a class stands for one integer-pixel displacement, so the inverse
(``labels_to_velocities``, ``decode_points``) is the same for both.

``image_size`` is (H, W) as a sequence or tensor, or a (B, 2) tensor of per-sample sizes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from motionhub.api import MotionhubError

Size = Sequence[int] | Sequence[float] | torch.Tensor


def track_layout(format, model: str) -> tuple[int, int]:
    """(views, tracks) of a ``(views, tracks, 2)`` point-track ``format``; ``model`` names who asks."""
    shape = tuple(format.feature_shape)
    if len(shape) != 3 or shape[2] != 2:
        raise ValueError(f"{model} needs point tracks shaped (views, tracks, 2); format '{format.name}' has {shape}")
    return shape[0], shape[1]


def velocities(points: torch.Tensor) -> torch.Tensor:
    """Frame differences: (B, T, ...) -> (B, T - 1, ...)."""
    return points[:, 1:] - points[:, :-1]


def radius_velocities(points: torch.Tensor, image_size: Size, radius: float = 7.0) -> torch.Tensor:
    """Velocities in units of ``radius`` pixels, clamped to [-1, 1], in (x, y) order, as LAPS's
    re-implementation feeds and labels them: (B, T, ..., 2) (row, col) points -> (B, T - 1, ..., 2).

    ``radius`` is (W - 1) / 2 pixels for a W x W displacement grid (7 for 15 x 15); a step of
    more than ``radius`` pixels along an axis saturates at +-1.
    """
    pixels = velocities(points) * _size(image_size, points) / 2  # (row, col) pixels per step
    return (pixels.flip(-1) / radius).clamp(-1.0, 1.0)


def _size(image_size: Size, points: torch.Tensor) -> torch.Tensor:
    """``image_size`` as a float tensor that broadcasts against ``points`` (..., 2)."""
    size = torch.as_tensor(image_size, dtype=points.dtype, device=points.device)
    if size.ndim == 2:  # per-sample sizes
        size = size.view(size.shape[0], *([1] * (points.ndim - 2)), 2)
    return size


def pixel_positions(points: torch.Tensor, image_size: Size) -> torch.Tensor:
    """Nearest integer pixel of each point, clamped into the image; float tensor, same shape."""
    size = _size(image_size, points)
    pixels = points * size / 2 + size / 2
    return torch.minimum(pixels.clamp(min=0), size - 1).round()


def relative_labels(points: torch.Tensor, image_size: Size, grid: Sequence[int] = (15, 15)) -> torch.Tensor:
    """Class of each step's displacement: (B, T, V, N, 2) points -> (B, T - 1, V, N) int64.

    Displacements are taken between rounded pixel positions (not by rounding the velocity)
    and clamped into the grid, so larger motions fall into its border classes.
    """
    half = torch.tensor([grid[0] // 2, grid[1] // 2], device=points.device)
    step = velocities(pixel_positions(points, image_size)).long()
    step = torch.maximum(torch.minimum(step, half), -half) + half
    return step[..., 0] * grid[1] + step[..., 1]


def velocity_radius(grid: Sequence[int]) -> float:
    """Pixels per unit of radius velocity for a square W x W grid: max(1, (W - 1) / 2), 7 for 15 x 15.

    The velocity rule and the static-point mask need a square grid; another is a MotionhubError.
    """
    rows, cols = int(grid[0]), int(grid[1])
    if rows != cols:
        raise MotionhubError(f"velocity labels and the static-point mask need a square grid (one radius for "
                             f"both axes); got {rows} x {cols}. Use a W x W grid (e.g. [15, 15]) or pixel labels")
    return max(1.0, (cols - 1) / 2)


def velocity_labels(points: torch.Tensor, image_size: Size, grid: Sequence[int] = (15, 15)) -> torch.Tensor:
    """Class of each step's velocity, by the LAPS re-implementation's rule:
    (B, T, V, N, 2) points -> (B, T - 1, V, N) int64.

    With W the grid side and v = ``radius_velocities`` (x, y) at radius (W - 1) / 2 (so each
    component is a pixel displacement / 7, clamped to [-1, 1], for W = 15), in float32:
    p = v (W - 1) / 2 (multiplied first, then halved), c = round(p + (W - 1) / 2) with ties
    to even, clamped to [0, W - 1], and class = c_y W + c_x. So a component of d pixels lands
    in column round(d) + 7 (clipped to +-7): +-0.49 px -> centre, +0.5 -> +1, -0.5 -> -1
    (7.5 -> 8 and 6.5 -> 6 round to even), +-8 px -> +-7. Unlike the pixel rule the velocity
    is rounded, not the positions. Needs a square grid.
    """
    side = int(grid[0])
    velocity = radius_velocities(points.float(), image_size, velocity_radius(grid))
    window = velocity * (side - 1) / 2.0 + (side - 1) / 2.0
    cells = torch.round(window).long().clamp(0, side - 1)
    return cells[..., 1] * side + cells[..., 0]


LABEL_KINDS = ("pixel", "velocity")


def displacement_labels(points: torch.Tensor, image_size: Size, grid: Sequence[int] = (15, 15),
                        kind: str = "pixel") -> torch.Tensor:
    """Class of each step by the rule ``kind`` names (a format's ``track_labels``):
    (B, T, V, N, 2) points -> (B, T - 1, V, N) int64. ``"pixel"``: ``relative_labels``;
    ``"velocity"``: ``velocity_labels``."""
    if kind == "pixel":
        return relative_labels(points, image_size, grid)
    if kind == "velocity":
        return velocity_labels(points, image_size, grid)
    raise MotionhubError(f"unknown track label kind {kind!r}; expected one of {', '.join(LABEL_KINDS)}")


def label_kind(format) -> str:
    """The label rule a data format asks for (``track_labels``); ``"pixel"`` without a format."""
    return getattr(format, "track_labels", None) or "pixel"


def logits_grid(classes: int, grid: Sequence[int] | None = None) -> tuple[int, int]:
    """The (rows, cols) grid of ``classes`` logits: ``grid`` checked against them, or the square they imply."""
    if grid is None:
        side = math.isqrt(classes)
        if side * side != classes:
            raise MotionhubError(f"{classes} classes are not a square grid; set the grid: [rows, cols]")
        return side, side
    rows, cols = int(grid[0]), int(grid[1])
    if rows * cols != classes:
        raise MotionhubError(f"grid {[rows, cols]} has {rows * cols} classes, the logits {classes}")
    return rows, cols


STATIC_METRICS = ("p95", "mean", "max")


def moving_points(points: torch.Tensor, image_size: Size, radius: float, threshold: float, metric: str = "p95",
                  min_keep: int = 16, steps: torch.Tensor | None = None) -> torch.Tensor:
    """The LAPS re-implementation's static-point filter: (B, T, V, N, 2) points -> (B, V, N) bool,
    True for points that count.

    Per step, speed = |v| (Euclidean over x, y) of the ``radius_velocities`` (so at most
    sqrt 2). Per point, over its steps, score = the 0.95 quantile (``"p95"``, linear
    interpolation: for 15 steps sorted[13] + 0.3 (sorted[14] - sorted[13])), the mean or
    the max. A point is kept when score >= ``threshold``; where fewer than ``min_keep``
    points of a sample's view are kept, exactly the ``min(min_keep, N)`` highest scores are
    kept instead. The mask is per point: broadcast it over the steps.

    ``steps``: optional (B, T - 1) bool of real steps (between two real frames); scores
    cover only those.
    """
    if metric not in STATIC_METRICS:
        raise MotionhubError(f"unknown static-point metric {metric!r}; expected one of {', '.join(STATIC_METRICS)}")
    speed = torch.linalg.vector_norm(radius_velocities(points.float(), image_size, radius), dim=-1)  # (B, T-1, V, N)
    if steps is not None:
        speed = speed.masked_fill(~steps.bool()[:, :, None, None], float("nan"))
    if metric == "p95":
        score = torch.nanquantile(speed, 0.95, dim=1)
    elif metric == "mean":
        score = torch.nanmean(speed, dim=1)
    else:
        score = speed.nan_to_num(nan=-math.inf).amax(dim=1)
    score = score.nan_to_num(nan=-math.inf)  # a sample without real steps keeps nothing by score
    keep = score >= threshold
    top = min(int(min_keep), score.shape[-1])
    if top > 0:
        short = keep.sum(dim=-1, keepdim=True) < min_keep
        best = torch.zeros_like(keep).scatter_(-1, score.topk(top, dim=-1).indices, True)
        keep = torch.where(short, best, keep)
    return keep


def labels_to_velocities(labels: torch.Tensor, image_size: Size, grid: Sequence[int] = (15, 15)) -> torch.Tensor:
    """Normalised velocity of each class: (...) int -> (..., 2) float (inverse of the labelling).

    Class (drow + rows // 2) * cols + (dcol + cols // 2) (rows outer) is the displacement
    (drow, dcol) pixels. That is the inverse of both label rules: a pixel label is that
    difference of rounded positions, a velocity label that rounded (x, y) velocity times its
    radius (the same cell, with row = y and column = x)."""
    rows = torch.div(labels, grid[1], rounding_mode="floor") - grid[0] // 2
    cols = labels % grid[1] - grid[1] // 2
    step = torch.stack([rows, cols], dim=-1).float()
    return step / _size(image_size, step) * 2


def logits_to_velocities(logits: torch.Tensor, image_size: Size, grid: Sequence[int] = (15, 15)) -> torch.Tensor:
    """Most likely displacement of each step: (..., K) logits -> (..., 2) normalised velocities.

    The argmax of the logits is the argmax of their softmax, so no softmax is computed.
    """
    return labels_to_velocities(logits.argmax(dim=-1), image_size, grid)


def integrate(velocity: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    """Points from velocities: (B, T - 1, ...) and first frame (B, 1, ...) -> (B, T, ...)."""
    zero = torch.zeros_like(velocity[:, :1])
    return first + torch.cumsum(torch.cat([zero, velocity], dim=1), dim=1)


def decode_points(
    logits: torch.Tensor, first: torch.Tensor, image_size: Size, grid: Sequence[int] = (15, 15)
) -> torch.Tensor:
    """Reconstructed tracks: logits (B, T - 1, V, N, K) and first frame (B, 1, V, N, 2) -> (B, T, V, N, 2)."""
    return integrate(logits_to_velocities(logits, image_size, grid), first)
