"""Point tracks <-> AMPLIFY's relative-displacement classes.

Tracks are (B, T, V, N, 2) points in (row, col) order, normalised to [-1, 1] per axis
(p = (pixel - S/2) / (S/2), S the image height for rows and width for columns). The model
sees velocities (frame differences); its targets are classes of a ``grid`` (rows, cols)
window of integer-pixel displacements between consecutive *rounded* pixel positions,
class = (drow + rows // 2) * cols + (dcol + cols // 2), so the centre class means
"no motion" (112 for the default 15 x 15 grid).

``image_size`` is (H, W) as a sequence or tensor, or a (B, 2) tensor of per-sample sizes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Size = Sequence[int] | Sequence[float] | torch.Tensor


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


def labels_to_velocities(labels: torch.Tensor, image_size: Size, grid: Sequence[int] = (15, 15)) -> torch.Tensor:
    """Normalised velocity of each class: (...) int -> (..., 2) float (inverse of the labelling)."""
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
