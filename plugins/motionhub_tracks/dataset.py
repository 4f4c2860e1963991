"""The ``gtea_tracks`` data set: point-track windows from AMPLIFY / LAPS HDF5 files."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import numpy as np

from motionhub.api import Clip, DataError, Dataset, MotionFormat, SPLITS, layouts

from .files import find_track_files, fingerprint, split_by_fraction, split_by_lists
from .layout import EXPECTED, TrackFile, file_views, inspect_file, read_tracks
from .points import (NonFinite, NonFiniteFound, TrackLabels, find_non_finite, normalised_row_col,
                     replace_non_finite, resample)

DEFAULT_VAL_FRACTION = 0.1
_LISTED = 10  # files named in a non-finite summary before "…"

logger = logging.getLogger("motionhub.data.batches")


class GTEATracks(Dataset):
    """Point tracks from AMPLIFY / LAPS HDF5 files (GTEA, LIBERO, ...), one sample per start frame.

    Every ``.h5`` / ``.hdf5`` file under ``root`` is one video holding ``root/<view>/tracks``
    (T, H, N, 2) in (x, y) pixels: for each start frame, an H-frame window of N points
    tracked from a fresh grid (see ``motionhub_tracks.layout``). Each start frame of each
    file becomes one clip: motion (horizon, views, tracks, 2) in (row, col) order, normalised
    to [-1, 1] by the frame size (rows by the height, columns by the width) and clamped to
    it; id ``<file key>/<views joined by '+'>/<start frame>``, e.g. ``S1_Cheese_C1/default/42``,
    where the key is the file's path under ``root`` without its suffix.

    A clip is a whole sample, not a sequence to crop: set the recipe's ``data.window`` to
    ``horizon`` (16 for the reference files).

    Arguments:
        root:        folder searched recursively for track files.
        views:       views to stack, in this order; None = every view of the first file.
        image_size:  [height, width] in pixels for files without ``height`` / ``width``
                     attributes; a file's own attributes win.
        horizon:     frames per sample; None = the files' window length H. Another value
                     resamples each window linearly over time with its first and last frames
                     kept (frame k at old time k (H - 1) / (horizon - 1)), so the format's
                     frame rate becomes fps (horizon - 1) / (H - 1).
        fps:         frame rate of the tracked video (LAPS tracks at 10 fps).
        labels:      how a step's displacement becomes a class of the decoder's W x W grid,
                     for every loss, metric and decoder of the run (the format's
                     ``track_labels``): ``pixel`` (AMPLIFY: the difference of the rounded
                     pixel positions) or ``velocity`` (the LAPS re-implementation: the velocity
                     clamped to (W - 1) / 2 pixels, then rounded).
        non_finite:  ``hold`` replaces a point with a NaN / Inf coordinate by the track's last
                     finite position, ``clamp`` does what the reference does (NaN is pixel 0,
                     infinities the border). Replaced points are counted per split in
                     ``non_finite_points``, logged per split with the files they came from
                     (and the file, view, window, frame and track of the first), and reported
                     by ``describe()``.
        val_fraction, test_fraction: share of files held out for val / test (default 0.1 /
                     0), chosen by a hash of the seed and the file key.
        seed:        seed of that choice.
        train_files, val_files, test_files: the split as lists of file keys (suffix optional)
                     instead of fractions. Unlisted files go to train, or are left out when
                     ``train_files`` is given.

    The format carries identity statistics: the points already are normalised by the frame
    size, and track losses recover pixels from exactly that scale.
    """

    def __init__(
        self,
        root: str,
        views: Optional[list[str]] = None,
        image_size: Optional[list[int]] = None,
        horizon: Optional[int] = None,
        fps: float = 10.0,
        labels: TrackLabels = "pixel",
        non_finite: NonFinite = "hold",
        val_fraction: Optional[float] = None,
        test_fraction: Optional[float] = None,
        seed: int = 0,
        train_files: Optional[list[str]] = None,
        val_files: Optional[list[str]] = None,
        test_files: Optional[list[str]] = None,
    ):
        if views is not None and (not views or len(set(views)) != len(views)):
            raise ValueError(f"views must name at least one view, each once; got {views}")
        if image_size is not None and (len(image_size) != 2 or min(image_size) < 1):
            raise ValueError(f"image_size must be [height, width] in pixels; got {image_size}")
        if horizon is not None and horizon < 2:
            raise ValueError(f"horizon must be at least 2 frames; got {horizon}")
        if fps <= 0:
            raise ValueError(f"fps must be positive; got {fps}")
        if labels not in layouts.TRACK_LABELS:
            raise ValueError(f"labels must be one of {', '.join(layouts.TRACK_LABELS)}; got {labels!r}")
        if non_finite not in ("hold", "clamp"):
            raise ValueError(f"non_finite must be 'hold' or 'clamp'; got {non_finite!r}")
        self.file_lists = {"train": train_files, "val": val_files, "test": test_files}
        if any(entries is not None for entries in self.file_lists.values()):
            if val_fraction is not None or test_fraction is not None:
                raise ValueError("give the split either as file lists (train_files / val_files / test_files) "
                                 "or as fractions (val_fraction / test_fraction), not both")
        val_fraction = DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction
        test_fraction = 0.0 if test_fraction is None else test_fraction
        if min(val_fraction, test_fraction) < 0 or val_fraction + test_fraction >= 1:
            raise ValueError(f"val_fraction and test_fraction must be at least 0 and sum to less than 1; "
                             f"got {val_fraction} and {test_fraction}")
        self.root = Path(root)
        self.views = None if views is None else list(views)
        self.image_size = None if image_size is None else [int(s) for s in image_size]
        self.horizon, self.fps, self.non_finite, self.labels = horizon, float(fps), non_finite, labels
        self.fractions = (float(val_fraction), float(test_fraction))
        self.seed = seed
        self.non_finite_points: dict[str, int] = {}
        self._notes: dict[str, list[str]] = {}

    # ---- files and split, found on first use
    @functools.cached_property
    def files(self) -> dict[str, Path]:
        """{file key: path} of every track file under ``root``."""
        return find_track_files(self.root)

    @functools.cached_property
    def split_of(self) -> dict[str, str]:
        """{file key: split} of the files in the data set, in key order."""
        keys = list(self.files)
        if any(entries is not None for entries in self.file_lists.values()):
            split_of = split_by_lists(keys, self.file_lists, self.root)
            if "train" not in split_of.values():
                raise DataError(f"the file lists leave no track file under {self.root} for train; "
                                f"list fewer files in data.val_files / data.test_files")
            return split_of
        return split_by_fraction(keys, *self.fractions, seed=self.seed)

    @functools.cached_property
    def layout(self) -> tuple[list[str], dict[str, TrackFile]]:
        """The selected views and every used file's checked layout; all bad files reported at once."""
        keys = list(self.split_of)
        views = self.views or self._views_of(self.files[keys[0]])
        infos, problems = {}, []
        for key in keys:
            try:
                infos[key] = inspect_file(self.files[key], key, views, self.image_size)
            except DataError as exc:
                problems.append(str(exc))
        if infos:
            first = next(iter(infos.values()))
            problems += [problem for info in infos.values() if (problem := _mismatch(info, first))]
        if len(problems) == 1:
            raise DataError(problems[0])
        if problems:
            raise DataError(f"{len(problems)} problems with the track files under {self.root}:\n  "
                            + "\n  ".join(problems))
        return views, infos

    @staticmethod
    def _views_of(path: Path) -> list[str]:
        views = file_views(path)
        if not views:
            raise DataError(f"{path}: no view groups under root; {EXPECTED}")
        return views

    @functools.cached_property
    def format(self) -> MotionFormat:
        views, infos = self.layout
        first = next(iter(infos.values()))
        horizon = self.horizon or first.horizon
        sizes = {size for info in infos.values() for size in info.image_sizes}
        fmt = layouts.point_tracks(len(views), first.tracks, self.fps * (horizon - 1) / (first.horizon - 1),
                                   image_size=next(iter(sizes)) if len(sizes) == 1 else None,
                                   track_labels=self.labels)
        return fmt.with_stats(np.zeros(fmt.feature_shape), np.ones(fmt.feature_shape))

    # ---- clips
    def clips(self, split: str) -> Iterator[Clip]:
        if split not in SPLITS:
            raise ValueError(f"unknown split '{split}'; splits: {', '.join(SPLITS)}")
        views, infos = self.layout
        self.non_finite_points[split] = 0
        return self._clips(split, views, [infos[key] for key, s in self.split_of.items() if s == split])

    def _clips(self, split: str, views: list[str], infos: list[TrackFile]) -> Iterator[Clip]:
        label = "+".join(views)
        per_file: dict[str, NonFiniteFound] = {}
        first: tuple[TrackFile, NonFiniteFound] | None = None
        for info in infos:
            samples, found = self.samples(info, views)
            self.non_finite_points[split] += found.points
            if found.points:
                per_file[info.key] = found
                first = first or (info, found)
            for start, motion in enumerate(samples):
                yield Clip(f"{info.key}/{label}/{start}", motion)
        self._notes[split] = []
        if first is not None:
            note = self._non_finite_note(split, per_file, len(infos), views, *first)
            self._notes[split] = [note]
            logger.warning(note)

    def _non_finite_note(self, split: str, per_file: dict[str, NonFiniteFound], files: int, views: list[str],
                         info: TrackFile, found: NonFiniteFound) -> str:
        """``"gtea_tracks train: replaced 5 points with NaN/Inf coordinates (7 coordinates; non_finite:
        hold) in 1 of 2 files: a (5). The first is in <path> at root/<view>/tracks[window, frame, track]: ..."``"""
        points = sum(f.points for f in per_file.values())
        values = sum(f.values for f in per_file.values())
        listed = ", ".join(f"{key} ({f.points})" for key, f in list(per_file.items())[:_LISTED])
        more = ", …" if len(per_file) > _LISTED else ""
        window, frame, view, track = found.first
        x, y = found.first_xy
        bad = ", ".join(f"{axis} = {value}" for axis, value in (("x", x), ("y", y)) if not np.isfinite(value))
        return (f"gtea_tracks {split}: replaced {points} point{'s' * (points != 1)} with NaN/Inf coordinates "
                f"({values} coordinate{'s' * (values != 1)}; non_finite: {self.non_finite}) in {len(per_file)} "
                f"of {files} files: {listed}{more}. The first is in {info.path} at "
                f"root/{views[view]}/tracks[{window}, {frame}, {track}]: view {views[view]}, the window "
                f"starting at frame {window}, its frame {frame}, track {track} ({bad}).")

    def packing_notes(self, split: str) -> list[str]:
        return list(self._notes.get(split, ()))

    def samples(self, info: TrackFile, views: list[str]) -> tuple[np.ndarray, NonFiniteFound]:
        """One file's samples (T, horizon, V, N, 2) float32, and its non-finite points (counted and
        the first located, in the file's own indices)."""
        tracks = read_tracks(info, views)
        found = find_non_finite(tracks)
        points = normalised_row_col(tracks, np.array(info.image_sizes))
        points, _ = replace_non_finite(points, self.non_finite)
        points = resample(np.clip(points, -1.0, 1.0), self.horizon or info.horizon)
        return points.astype(np.float32, copy=False), found

    # ---- bookkeeping
    def fingerprint(self) -> str:
        return fingerprint(self.files.values(), self.root)

    def describe(self) -> str:
        views, infos = self.layout
        first = next(iter(infos.values()))
        counts = {split: list(self.split_of.values()).count(split) for split in SPLITS}
        unused = len(self.files) - len(self.split_of)
        files = " / ".join(f"{n} {split}" for split, n in counts.items()) + (f", {unused} unused" if unused else "")
        sizes = sorted({size for info in infos.values() for size in info.image_sizes})
        horizon = self.horizon or first.horizon
        resampled = f" (resampled from {first.horizon})" if horizon != first.horizon else ""
        line = (f"gtea_tracks from {self.root}: {len(self.split_of)} files ({files}), views {', '.join(views)}, "
                f"{first.tracks} tracks, horizon {horizon}{resampled}, "
                f"frames {', '.join(f'{h}x{w}' for h, w in sizes)} (height x width), {self.labels} labels")
        if self.non_finite_points:
            replaced = ", ".join(f"{split} {n}" for split, n in self.non_finite_points.items())
            line += f"; non-finite points replaced ({self.non_finite}): {replaced}"
        return line


def _mismatch(info: TrackFile, first: TrackFile) -> str | None:
    """Why ``info`` cannot share a format with ``first``, or None."""
    if (info.horizon, info.tracks) == (first.horizon, first.tracks):
        return None
    return (f"{info.path}: windows of {info.horizon} frames x {info.tracks} tracks, but {first.path} has "
            f"{first.horizon} x {first.tracks}; every file needs the same horizon and track count")
