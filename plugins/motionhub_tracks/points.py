"""Track windows as samples: (row, col) order, [-1, 1] normalisation, non-finite points, resampling.

Arrays are (T, H, V, N, 2): T windows (one per start frame), H frames each, V views,
N tracks, and a point's two coordinates.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

NonFinite = Literal["hold", "clamp"]
TrackLabels = Literal["pixel", "velocity"]  # motionhub.data.layouts.TRACK_LABELS, as a recipe type


def normalised_row_col(points_xy: np.ndarray, image_sizes: np.ndarray) -> np.ndarray:
    """(x, y) pixels -> (row, col) in [-1, 1] where inside the image, p = (pixel - S/2) / (S/2).

    ``image_sizes`` is (V, 2) (height, width) per view; rows use the height, columns the
    width. Values outside the image fall outside [-1, 1]; non-finite values stay non-finite.
    """
    half = image_sizes.astype(np.float32)[:, None, :] / 2  # (V, 1, 2) against (..., V, N, 2)
    return points_xy[..., ::-1] / half - 1


@dataclasses.dataclass(frozen=True)
class NonFiniteFound:
    """The NaN / Inf coordinates of (T, H, V, N, 2) (x, y) tracks, as stored in a file.

    points:  points (one track's position at one frame) with at least one non-finite coordinate.
    values:  non-finite coordinates among them (one or two per point).
    first:   (window, frame of the window, view, track) index of the first such point in
             storage order, or None when there is none.
    first_xy: that point's stored (x, y).
    """

    points: int = 0
    values: int = 0
    first: tuple[int, int, int, int] | None = None
    first_xy: tuple[float, float] | None = None


def find_non_finite(points_xy: np.ndarray) -> NonFiniteFound:
    """Count the non-finite points and coordinates of (T, H, V, N, 2) tracks and find the first one."""
    bad = ~np.isfinite(points_xy)
    per_point = bad.any(axis=-1)  # (T, H, V, N)
    points = int(np.count_nonzero(per_point))
    if points == 0:
        return NonFiniteFound()
    first = np.unravel_index(int(np.argmax(per_point.reshape(-1))), per_point.shape)
    x, y = points_xy[first].tolist()
    return NonFiniteFound(points, int(np.count_nonzero(bad)), tuple(int(i) for i in first), (x, y))


def replace_non_finite(points: np.ndarray, mode: NonFinite) -> tuple[np.ndarray, int]:
    """Points with a non-finite coordinate replaced, and how many points that was.

    ``hold``:  the track's last finite position earlier in its window; before the first
               finite one, that first one; a track with none in its window goes to the
               image centre (0, 0).
    ``clamp``: the reference behaviour: NaN is pixel 0 (-1), infinities the border they
               point at (+-1); a point's finite coordinate is kept.
    """
    finite = np.isfinite(points).all(axis=-1)  # (T, H, V, N)
    count = int(finite.size - np.count_nonzero(finite))
    if count == 0:
        return points, 0
    if mode == "clamp":
        return np.nan_to_num(points, nan=-1.0, posinf=1.0, neginf=-1.0), count
    return _hold(points, finite), count


def _hold(points: np.ndarray, finite: np.ndarray) -> np.ndarray:
    horizon = points.shape[1]
    step = np.arange(horizon).reshape(1, horizon, 1, 1)
    last = np.maximum.accumulate(np.where(finite, step, -1), axis=1)
    upcoming = np.minimum.accumulate(np.where(finite, step, horizon)[:, ::-1], axis=1)[:, ::-1]
    source = np.where(last >= 0, last, upcoming)
    none = source == horizon
    filled = np.take_along_axis(points, np.minimum(source, horizon - 1)[..., None], axis=1)
    filled[none] = 0.0
    return filled


def resample(points: np.ndarray, horizon: int) -> np.ndarray:
    """Linear interpolation over each window's frames to ``horizon`` frames (T, H, ...) -> (T, horizon, ...).

    First and last frames are kept (``align_corners=True``): new frame k sits at old time
    k (H - 1) / (horizon - 1).
    """
    frames = points.shape[1]
    if frames == horizon:
        return points
    time = np.linspace(0.0, frames - 1, horizon)
    before = np.minimum(time.astype(np.int64), frames - 2)
    weight = (time - before).astype(np.float32).reshape(1, horizon, *([1] * (points.ndim - 2)))
    return points[:, before] * (1 - weight) + points[:, before + 1] * weight
