"""``MotionFormat``: what one frame of a data set is.

A format names the feature layout (shape, fps, named slices), the skeleton where there is
one, the normalisation statistics and how to recover joint positions. Losses, metrics and
exporters select features by slice *name*, never by index ranges.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from motionhub.errors import MotionhubError, did_you_mean

Array = Any  # np.ndarray or torch.Tensor


@dataclasses.dataclass(frozen=True)
class MotionFormat:
    """Feature layout of one frame.

    name:          short identifier, e.g. ``"humanml3d_263"``.
    feature_shape: shape of one frame, e.g. ``(263,)`` or ``(views, tracks, 2)``.
    fps:           frames per second.
    slices:        named half-open ranges over the flattened frame, in layout order.
    skeleton:      joint names / parents / feet where the format has one, else None.
    mean, std:     normalisation statistics, shape ``feature_shape`` (None = identity).
    joints_fn:     de-normalised features (..., T, *F) -> joint positions (..., T, J, 3).
    mm_per_unit:   millimetres per joint-position unit (1000 for metres, 1 for KIT's mm).
    image_size:    point tracks: (height, width) in pixels of the frames the points were
                   normalised by, when every file shares one (losses and metrics count pixels).
    track_labels:  point tracks: how a step's displacement becomes a class of the W x W grid
                   that track decoders predict: ``"pixel"`` (AMPLIFY: the difference of the
                   rounded pixel positions) or ``"velocity"`` (the velocity clamped to a
                   radius of (W - 1) / 2 pixels, then rounded). Losses, metrics and decoders
                   read it, so one data setting switches all of them.
    """

    name: str
    feature_shape: tuple[int, ...]
    fps: float
    slices: Mapping[str, slice] = dataclasses.field(default_factory=dict)
    skeleton: Any = None
    mean: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)
    std: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)
    joints_fn: Callable[[Array], Array] | None = dataclasses.field(default=None, repr=False, compare=False)
    mm_per_unit: float = 1000.0
    image_size: tuple[int, int] | None = None
    track_labels: str = "pixel"

    @property
    def feature_dim(self) -> int:
        """Number of values in one frame."""
        return int(np.prod(self.feature_shape))

    def slice(self, name: str) -> slice:
        """The named slice of the flattened frame; unknown names list what exists."""
        try:
            return self.slices[name]
        except KeyError:
            available = ", ".join(self.slices) or "(none)"
            raise MotionhubError(
                f"format '{self.name}' has no slice '{name}'{did_you_mean(name, self.slices) or '.'} "
                f"Available slices: {available}."
            ) from None

    def with_stats(self, mean: np.ndarray, std: np.ndarray) -> MotionFormat:
        """A copy with normalisation statistics (float32, shape ``feature_shape``)."""
        mean = np.asarray(mean, dtype=np.float32).reshape(self.feature_shape)
        std = np.asarray(std, dtype=np.float32).reshape(self.feature_shape)
        return dataclasses.replace(self, mean=mean, std=std)

    def normalise(self, x: Array) -> Array:
        """(x - mean) / std over the trailing frame axes; identity without statistics."""
        if self.mean is None:
            return x
        mean, std = _like(self.mean, x), _like(self.std, x)
        return (x - mean) / std

    def denormalise(self, x: Array) -> Array:
        """Inverse of ``normalise``."""
        if self.mean is None:
            return x
        mean, std = _like(self.mean, x), _like(self.std, x)
        return x * std + mean

    @property
    def has_joints(self) -> bool:
        return self.joints_fn is not None

    def to_joints(self, features: Array, *, normalised: bool = False) -> Array:
        """Joint positions (..., T, J, 3) in metres from features (..., T, *F)."""
        if self.joints_fn is None:
            raise MotionhubError(f"format '{self.name}' cannot recover joint positions")
        if normalised:
            features = self.denormalise(features)
        return self.joints_fn(features)


def _like(stat: np.ndarray, x: Array) -> Array:
    if isinstance(x, torch.Tensor):
        return torch.as_tensor(stat, dtype=x.dtype, device=x.device)
    return stat.astype(x.dtype, copy=False)


def slices_from_sizes(sizes: Mapping[str, int]) -> dict[str, slice]:
    """Consecutive named slices from ``{name: size}`` in order."""
    out, start = {}, 0
    for name, size in sizes.items():
        out[name] = slice(start, start + size)
        start += size
    return out
