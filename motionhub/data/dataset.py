"""The data-set plugin contract: clips per split plus a ``MotionFormat``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from motionhub.data.formats import MotionFormat

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

    Subclasses set ``format`` (a ``MotionFormat``) and implement ``clips(split)``.
    Constructors take only recipe keyword arguments and should be cheap: heavy reading
    happens in ``clips``, which the framework calls once per split to pack a store.

    Statistics: a format with ``mean``/``std`` is normalised with them; a format without
    them gets statistics computed from the packed train split (group-averaged per slice).
    """

    format: MotionFormat

    def clips(self, split: str) -> Iterator[Clip]:
        raise NotImplementedError

    def fingerprint(self) -> str:
        """A string that changes whenever the clips would change (file sizes and times, ...).

        The packed store is rebuilt when it changes. The framework already mixes in the
        recipe arguments and plugin version; data sets read from files add their sources.
        """
        return ""

    def packing_notes(self, split: str) -> list[str]:
        """Remarks about the last pass over ``split`` that a user must not miss (clips skipped,
        values replaced). The packed store keeps them and repeats them whenever it is reused."""
        return []

    def describe(self) -> str:
        """One line for logs: what was loaded from where."""
        return f"{type(self).__name__} ({self.format.name})"
