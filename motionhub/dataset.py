"""The data-set plugin contract: clips per split plus a ``MotionFormat``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from .formats import MotionFormat

SPLITS = ("train", "val", "test")


@dataclasses.dataclass
class Clip:
    """One motion clip.

    id:     stable identifier within the data set (e.g. ``"012314"``).
    motion: (T, *F) float32 features, not normalised.
    texts:  captions, where the data set has them.
    """

    id: str
    motion: np.ndarray
    texts: list[str] = dataclasses.field(default_factory=list)


class Dataset:
    """Base class for data-set plugins.

    Subclasses set ``format`` (a ``MotionFormat`` with statistics) and implement
    ``clips(split)``. Constructors take only recipe keyword arguments.
    """

    format: MotionFormat

    def clips(self, split: str) -> Iterator[Clip]:
        raise NotImplementedError

    def describe(self) -> str:
        """One line for logs: what was loaded from where."""
        return f"{type(self).__name__} ({self.format.name})"
