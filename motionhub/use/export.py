"""The exporter plugin contract: turn a data set (and optionally a trained run) into another format's files.

An exporter plugin registers a class with ``register_exporters``. The class is built from
the exporter's options, its constructor's keyword arguments (``motionhub export NAME
RUN_OR_RECIPE --out PATH --option value`` passes them, typed and documented as a recipe
component's arguments are), and does its work in::

    export(source: ExportSource, out_path: Path) -> ExportResult

``source`` is one split of a data set, seen clip by clip as joint positions plus, where
the data set has them, joint rotations and labels (:class:`SourceClip`); an exporter that
sets ``needs_model`` also gets the trained run (``source.run``). ``out_path`` is the main
file to write; an exporter may write companion files next to it and lists every file it
wrote in the result. Problems a user can fix (a missing label, an option naming an unknown
joint, no usable clip) raise ``MotionhubError``; clips that cannot be exported are counted
by reason in the result, never dropped silently.

Data sets provide joint positions through their format's ``to_joints``. They may also
define any of these methods, which exporters use where present:

* ``clip_ids(split) -> list[str]``: ids in the order ``clips(split)`` yields them;
* ``rotations(clip_id) -> (T, J, 3, 3)``: global joint rotations;
* ``labels(clip_id) -> dict[str, array]``: per-clip labels by name (e.g. ``phase``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from motionhub.data.dataset import Dataset
from motionhub.errors import MotionhubError
from motionhub.data.formats import MotionFormat

if TYPE_CHECKING:
    from motionhub.use.trained_run import LoadedRun


@dataclasses.dataclass(frozen=True, eq=False)
class SourceClip:
    """One clip as an exporter sees it.

    features:  (T, *F) the data set's features, not normalised (select slices by name).
    positions: (T, J, 3) global joint positions in the format's units (``mm_per_unit``).
    rotations: (T, J, 3, 3) global joint rotations, or None where the data set has none.
    labels:    the data set's labels of this clip by name (empty where it has none).
    texts:     captions.
    """

    id: str
    features: np.ndarray
    positions: np.ndarray
    rotations: np.ndarray | None
    labels: Mapping[str, np.ndarray]
    texts: list[str]


class ExportSource:
    """One split of a data set, clip by clip (see the module docstring for the optional methods).

    ``run``: the trained run (model, format with its training statistics) when the export
    was given a run directory and the exporter needs the model; else None.
    ``on_clip`` is called with each clip id once that clip has been exported (progress).
    """

    def __init__(self, dataset: Dataset, split: str = "train", on_clip: Callable[[str], None] | None = None,
                 run: LoadedRun | None = None):
        self.dataset, self.split, self.on_clip, self.run = dataset, split, on_clip, run

    @property
    def format(self) -> MotionFormat:
        return self.dataset.format

    @property
    def has_rotations(self) -> bool:
        return callable(getattr(self.dataset, "rotations", None))

    @property
    def has_labels(self) -> bool:
        return callable(getattr(self.dataset, "labels", None))

    def num_clips(self) -> int | None:
        """Clips in the split, where the data set lists its ids; else None."""
        clip_ids = getattr(self.dataset, "clip_ids", None)
        return len(clip_ids(self.split)) if callable(clip_ids) else None

    def __iter__(self) -> Iterator[SourceClip]:
        if not self.format.has_joints:
            raise MotionhubError(f"format '{self.format.name}' of {self.dataset.describe()} cannot give joint "
                                 f"positions, which exporters need")
        try:
            clips = self.dataset.clips(self.split)
        except ValueError as exc:
            raise MotionhubError(f"{self.dataset.describe()}: {exc}") from None
        for clip in clips:
            yield SourceClip(
                id=clip.id,
                features=clip.motion,
                positions=np.asarray(self.format.to_joints(clip.motion)),
                rotations=self.dataset.rotations(clip.id) if self.has_rotations else None,
                labels=self.dataset.labels(clip.id) if self.has_labels else {},
                texts=clip.texts,
            )
            if self.on_clip is not None:
                self.on_clip(clip.id)


@dataclasses.dataclass
class ExportResult:
    """What an export wrote.

    files:   every file written, the main one first.
    clips:   clips that went into the files.
    skipped: clip ids left out, by reason.
    details: exporter-specific figures for a summary, in display order.
    """

    files: list[Path]
    clips: int
    skipped: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


class Exporter:
    """Turns one split of a data set (and optionally a trained run) into another format's files.

    An exporter's constructor keyword arguments are its options: ``motionhub export NAME
    RUN_OR_RECIPE --out PATH --option value`` passes them, typed and documented as a recipe
    component's arguments are (annotations, defaults, one docstring line ``name: meaning``
    each). It provides ``export(source, out_path) -> ExportResult``: read the clips of
    ``source`` (an ``ExportSource``), write ``out_path`` and any companion files next to it, and
    list every file written, the clips exported and the clips skipped by reason. An exporter
    that needs the trained model sets ``needs_model = True``: the command then takes a run
    directory only and the source carries the loaded run (``source.run``). ``output`` names the
    main file in the command's summary (e.g. "pfnn database").
    """

    needs_model: bool = False
    output: str = ""

    def export(self, source: ExportSource, out_path: Path) -> ExportResult:
        """Write ``source`` to ``out_path`` (and companion files next to it)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement export(source, out_path)")
