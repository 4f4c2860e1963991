"""The data-set plugin contract: clips per split plus a ``MotionFormat``."""

from __future__ import annotations

import dataclasses
import itertools
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

    Must provide:
      format:       a ``MotionFormat``: feature_shape F, fps, named slices, and where it can,
                    a skeleton and ``joints_fn``.
      clips(split): yields ``Clip(id, motion (T, *F) float32 not normalised, texts)`` for
                    split in "train", "val", "test"; called once per split to pack a store.
    May provide: ``fingerprint()`` (repack when the sources change), ``packing_notes(split)``,
    ``describe()``.

    Constructors take only recipe keyword arguments and should be cheap: heavy reading
    happens in ``clips``. Statistics: a format with ``mean``/``std`` is normalised with them;
    a format without them gets statistics computed from the packed train split.

    What other commands need from ``format``:
      render, joint metrics: ``joints_fn`` (features -> joints (T, J, 3)), ``skeleton`` for bones,
                    ``mm_per_unit`` for millimetres.
      export-pfnn:  ``joints_fn``, a ``skeleton`` naming its foot joints, ``fps``.
      prepare:      nothing: a data set that reads raw files offers its own ``prepare`` command.
    """

    format: MotionFormat

    def clips(self, split: str) -> Iterator[Clip]:
        raise NotImplementedError

    def clip_count(self, split: str) -> int | None:
        """How many clips ``split`` lists, known without reading them; None when only reading
        tells. With it, a split can be packed in parts at once (``motionhub pack --part``)."""
        return None

    def clips_from(self, split: str, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, Clip]]:
        """``(position, clip)`` for the clips at positions ``start`` to ``stop - 1`` of ``split``:
        what a resumed pack or one part of a split reads. This default reads (and discards) the
        clips before ``start``; a data set that can seek to a position overrides it."""
        return itertools.islice(enumerate(self.clips(split)), start, stop)

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
