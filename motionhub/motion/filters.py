"""Smoothing along time: the Gaussian filter HumanML3D and PFNN processing share (numpy, float64)."""

from __future__ import annotations

import numpy as np

_PAD_MODES = {"reflect": "symmetric", "nearest": "edge", "mirror": "reflect", "wrap": "wrap"}


def gaussian_filter1d(
    x: np.ndarray, sigma: float, *, axis: int = 0, mode: str = "reflect", truncate: float = 4.0
) -> np.ndarray:
    """1-D Gaussian smoothing along ``axis``, numerically equal to ``scipy.ndimage.gaussian_filter1d``.

    The kernel has radius ``int(truncate·sigma + 0.5)`` and unit sum. Border
    modes follow scipy: ``reflect`` (d c b a | a b c d | d c b a, the default),
    ``nearest`` (a a a a | a b c d | d d d d, the edge value repeated), ``mirror``
    (d c b | a b c d | c b a) and ``wrap``. The taps are summed one after another,
    from the most negative offset to the most positive, so results do not depend
    on the array's shape or the axis. Returns float64 of ``x``'s shape.
    """
    if mode not in _PAD_MODES:
        raise ValueError(f"mode must be one of {sorted(_PAD_MODES)}, got {mode!r}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    radius = int(truncate * float(sigma) + 0.5)
    taps = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (taps / sigma) ** 2)
    weights /= weights.sum()
    moved = np.moveaxis(np.asarray(x, dtype=np.float64), axis, 0)
    padded = np.pad(moved, [(radius, radius)] + [(0, 0)] * (moved.ndim - 1), mode=_PAD_MODES[mode])
    out = np.zeros_like(moved)
    for k, weight in enumerate(weights):
        out += weight * padded[k : k + len(moved)]
    return np.moveaxis(out, 0, axis)
