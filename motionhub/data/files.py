"""Careful reading of the files that folder data sets are made of.

Every problem a user's files can have (missing, truncated, pickled, wrong layout, NaN/Inf,
empty or too short, bad statistics, malformed captions) becomes a ``DataError`` that names
the file and says what was expected and what to do. Problems with one clip raise
``ClipError``, which a ``BadDataPolicy`` either stops on or counts and lists.
``FolderDataset`` puts these together for data sets stored as one .npy file per clip.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

from motionhub.data.dataset import SPLITS, Clip, Dataset
from motionhub.errors import DataError, did_you_mean
from motionhub.data.formats import MotionFormat

logger = logging.getLogger("motionhub.data.batches")

OnBad = Literal["stop", "skip"]

# Feature sizes of the layouts in ``motionhub.data.layouts``, to say what a wrong-size file looks like.
KNOWN_LAYOUTS = {263: "HumanML3D", 251: "KIT-ML", 272: "MotionMillion"}

_NPY_MAGIC = b"\x93NUMPY"
_LISTED = 10  # skipped clips named in a summary before "…"
_PREFETCH = 64  # clip files whose reading is started ahead of the clip being read


class ClipError(DataError):
    """One clip is unusable.

    clip_id: the clip's id in its split file.
    reason:  a few words for a skip summary (``"missing file"``, ``"3 non-finite values"``).
    """

    def __init__(self, clip_id: str, reason: str, message: str):
        super().__init__(message)
        self.clip_id, self.reason = clip_id, reason


def sentence(text: str) -> str:
    """``text`` ending as a sentence does (with ".", "!" or "?"), so another can follow it:
    ``f"{sentence(error)} To leave ..."`` never reads "found 121 To leave ..."."""
    text = str(text).rstrip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def layout_name(dim: int) -> str:
    """``"HumanML3D (263)"`` for a known feature size, else ``"263 values"``."""
    return f"{KNOWN_LAYOUTS[dim]} ({dim})" if dim in KNOWN_LAYOUTS else f"{dim} values"


# ---- motion files


def load_motion(path: str | os.PathLike, *, expected_shape_tail: tuple[int, ...], name: str,
                min_frames: int = 1) -> np.ndarray:
    """The (T, *expected_shape_tail) float32 array in the .npy file at ``path``.

    ``name`` is the clip id used in messages. Floating-point files of any precision are
    cast to float32; everything else that is wrong raises ``ClipError``.
    """
    path = Path(path)
    array = _read_npy(path, name)
    _check_shape(array, path, name, expected_shape_tail)
    _check_length(array, path, name, min_frames)
    _check_finite(array, path, name)
    return array.astype(np.float32, copy=False)


def _fail(path: Path, clip_id: str, reason: str, detail: str) -> ClipError:
    return ClipError(clip_id, reason, f"clip '{clip_id}': {path} {detail}")


def _read_npy(path: Path, clip_id: str) -> np.ndarray:
    if not path.is_file():
        state = "is missing" if not path.exists() else "is not a file"
        raise _fail(path, clip_id, "missing file",
                    f"{state}; the split file lists this id, so its motion file should be there. "
                    f"Restore the file or remove the id from the split file.")
    with path.open("rb") as handle:
        head = handle.read(len(_NPY_MAGIC))
    if not head:
        raise _fail(path, clip_id, "empty file", "is empty (0 bytes); re-create it from the source data.")
    if head != _NPY_MAGIC:
        raise _fail(path, clip_id, "not a .npy file",
                    "is not a .npy file (it does not start with the NumPy header); "
                    "re-save it with numpy.save(path, array).")
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "Object arrays" in str(exc):
            raise _fail(path, clip_id, "pickled object array",
                        "holds a pickled object array, which motionhub does not load (unpickling can run "
                        "code); re-save the motion as a plain float array with "
                        "numpy.save(path, array.astype(numpy.float32)).") from None
        raise _fail(path, clip_id, "corrupt .npy",
                    f"is corrupt or truncated ({exc}); re-create it from the source data.") from None
    except (OSError, EOFError) as exc:
        raise _fail(path, clip_id, "unreadable .npy",
                    f"could not be read ({exc}); re-create it from the source data.") from None
    if array.dtype.kind != "f":
        raise _fail(path, clip_id, f"{array.dtype} values",
                    f"holds {array.dtype} values; motion features must be floating point. "
                    f"Re-save it with numpy.save(path, array.astype(numpy.float32)).")
    return array


def _check_shape(array: np.ndarray, path: Path, clip_id: str, tail: tuple[int, ...]) -> None:
    expected = "(T, " + ", ".join(map(str, tail)) + ")"
    if array.ndim != 1 + len(tail):
        hint = ""
        if array.ndim == 3 and array.shape[-1] == 3:
            hint = " It looks like joint positions (T, joints, 3), not motion features."
        raise _fail(path, clip_id, f"shape {array.shape}",
                    f"has shape {array.shape}, expected {expected}.{hint} "
                    f"Point the recipe at the folder of feature files.")
    if array.shape[1:] == tail:
        return
    advice = "Use the data set that reads that layout, or point the recipe at a folder in this layout."
    if len(tail) > 1:
        raise _fail(path, clip_id, f"frame shape {array.shape[1:]}",
                    f"has shape {array.shape}, expected {expected}. {advice}")
    found = array.shape[-1]
    looks = f" (looks like {KNOWN_LAYOUTS[found]})" if found in KNOWN_LAYOUTS else ""
    raise _fail(path, clip_id, f"{found} features, expected {tail[0]}",
                f"has {found} values per frame{looks}, expected {layout_name(tail[0])}. {advice}")


def _check_length(array: np.ndarray, path: Path, clip_id: str, min_frames: int) -> None:
    frames = array.shape[0]
    if frames == 0:
        raise _fail(path, clip_id, "empty clip",
                    f"holds no frames (shape {array.shape}); re-create it or remove the id from the split file.")
    if frames < min_frames:
        raise _fail(path, clip_id, f"{frames} frames < {min_frames}",
                    f"has {frames} frames, fewer than min_frames={min_frames}; lower data.min_frames "
                    f"or remove the id from the split file.")


def _check_finite(array: np.ndarray, path: Path, clip_id: str) -> None:
    bad = ~np.isfinite(array.reshape(len(array), -1))
    count = int(bad.sum())
    if count:
        frame = int(np.flatnonzero(bad.any(axis=1))[0])
        raise _fail(path, clip_id, f"{count} non-finite values",
                    f"holds {count} NaN/Inf values (first at frame {frame} of {len(array)}); "
                    f"re-create the clip from its source or remove the id from the split file.")


# ---- split files and captions


def read_split_file(path: str | os.PathLike) -> list[str]:
    """The ids listed in a split file, one per line; blank lines are ignored."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"split file {path} is missing; it should list one clip id per line.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"split file {path} is not UTF-8 text; it should list one clip id per line.") from None
    ids = [line.strip() for line in text.splitlines() if line.strip()]
    if not ids:
        raise DataError(f"split file {path} lists no clip ids; it should list one clip id per line.")
    return ids


@dataclasses.dataclass(frozen=True)
class CaptionRecord:
    """One caption line: ``caption#tok/POS tok/POS ...#start#end`` or a bare caption.

    start, end: seconds into the clip; ``0.0, 0.0`` means the whole clip.
    """

    caption: str
    tokens: tuple[str, ...] = ()
    start: float = 0.0
    end: float = 0.0


def read_captions(path: str | os.PathLike, *, clip_id: str) -> list[CaptionRecord]:
    """Caption records of one clip's text file; an absent file has none.

    Lines hold either the four ``#``-separated HumanML3D fields or a bare caption
    (MotionMillion). NaN start/end tags read as 0.0, as in the reference loaders.
    """
    path = Path(path)
    if not path.is_file():
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise _fail(path, clip_id, "text not UTF-8", "is not UTF-8 text; re-save it as UTF-8.") from None
    records = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            records.append(_parse_caption(line.strip(), path, clip_id, number))
    return records


def _parse_caption(line: str, path: Path, clip_id: str, number: int) -> CaptionRecord:
    fields = line.split("#")
    if len(fields) == 1:
        return CaptionRecord(line)
    if len(fields) != 4:
        raise _fail(path, clip_id, f"malformed caption line {number}",
                    f"line {number} has {len(fields)} '#'-separated fields, expected 4 "
                    f"(caption#tok/POS ...#start#end) or a bare caption; fix the line.")
    caption, tokens, start, end = fields
    try:
        times = [float(start), float(end)]
    except ValueError:
        raise _fail(path, clip_id, f"malformed caption line {number}",
                    f"line {number}: start/end '{start}#{end}' are not numbers (seconds); fix the line.") from None
    start_s, end_s = (0.0 if math.isnan(t) else t for t in times)
    return CaptionRecord(caption.strip(), tuple(tokens.split()), start_s, end_s)


# ---- statistics


def find_stats(folder: str | os.PathLike, namings: Sequence[tuple[str, str]], *, what: str,
               fix: str) -> tuple[Path, Path]:
    """The first (mean, std) file pair of ``namings`` present in ``folder``.

    ``what`` names the statistics in messages; ``fix`` says what the user can do instead.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{what} folder {folder} does not exist; it should hold {_naming_list(namings)}. {fix}")
    for mean_name, std_name in namings:
        if (folder / mean_name).is_file() and (folder / std_name).is_file():
            return folder / mean_name, folder / std_name
    raise DataError(f"{what} not found in {folder}: expected {_naming_list(namings)}. {fix}")


def _naming_list(namings: Sequence[tuple[str, str]]) -> str:
    return " or ".join(f"{mean} and {std}" for mean, std in namings)


def read_stats(mean_path: str | os.PathLike, std_path: str | os.PathLike, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalisation statistics (mean, std), each (dim,) float32.

    Non-finite values, and std entries that are zero or negative, are errors naming the indices.
    """
    mean = _read_stat(Path(mean_path), dim)
    std = _read_stat(Path(std_path), dim)
    for path, values in ((Path(mean_path), mean), (Path(std_path), std)):
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise DataError(f"statistics file {path} has non-finite values at indices {_index_ranges(bad)}; "
                            f"recompute it, or choose other statistics (data.stats).")
    bad = np.flatnonzero(std <= 0)
    if len(bad):
        raise DataError(f"statistics file {std_path} has zero or negative std at indices {_index_ranges(bad)}; "
                        f"normalising would divide by zero. Recompute it with a floor (e.g. std averaged per "
                        f"feature group), or choose other statistics (data.stats).")
    return mean.astype(np.float32), std.astype(np.float32)


def _read_stat(path: Path, dim: int) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"statistics file {path} is missing; it should hold {dim} values (numpy.save).")
    try:
        values = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"statistics file {path} is not a readable .npy file ({exc}); recompute it.") from None
    if values.dtype.kind not in "fiu" or values.size != dim:
        looks = f" (looks like {KNOWN_LAYOUTS[values.size]})" if values.size in KNOWN_LAYOUTS else ""
        raise DataError(f"statistics file {path} holds {values.size} {values.dtype} values{looks}, "
                        f"expected {layout_name(dim)}; use the statistics that belong to this layout.")
    return values.reshape(dim).astype(np.float64)


def _index_ranges(indices: np.ndarray) -> str:
    """``"0-3, 259-262"`` for sorted indices; long lists end in ``…``."""
    ranges: list[list[int]] = []
    for index in indices.tolist():
        if ranges and index == ranges[-1][1] + 1:
            ranges[-1][1] = index
        else:
            ranges.append([index, index])
    text = [str(a) if a == b else f"{a}-{b}" for a, b in ranges[:_LISTED]]
    return ", ".join(text) + (", …" if len(ranges) > _LISTED else "")


# ---- what to do with a bad clip


class SkippedClip(NamedTuple):
    """A clip that ``on_bad: skip`` left out."""

    split: str
    clip_id: str
    reason: str


class BadDataPolicy:
    """Stop on the first bad clip, or skip bad clips and report them.

    ``skipped`` lists every clip left out (split, id, reason), for the trainer's log. Each
    split's pass over its clips starts with ``begin(split)`` and ends with ``finish``,
    which logs ``"<data set> <split>: skipped N of M clips: id (reason), ..."``.
    """

    def __init__(self, on_bad: OnBad, dataset: str):
        if on_bad not in ("stop", "skip"):
            raise ValueError(f"on_bad must be 'stop' or 'skip', got {on_bad!r}")
        self.on_bad, self.dataset = on_bad, dataset
        self.skipped: list[SkippedClip] = []

    def begin(self, split: str) -> None:
        """Forget what an earlier pass over ``split`` skipped."""
        self.skipped = [s for s in self.skipped if s.split != split]

    def handle(self, split: str, error: ClipError) -> None:
        """Raise ``error`` (stop) or record the clip as skipped (skip)."""
        if self.on_bad == "stop":
            raise ClipError(error.clip_id, error.reason,
                            f"{self.dataset} {split}: {sentence(error)} To leave bad clips out instead "
                            f"(they are counted and listed), set data.on_bad: skip.") from None
        self.skipped.append(SkippedClip(split, error.clip_id, error.reason))

    def read(self, split: str, ids: Sequence[str], load: Callable[[str], Clip]) -> Iterator[Clip]:
        """``load(id)`` for each of ``ids``; a clip it rejects with ``ClipError`` stops the pass or
        is skipped, and the pass ends with the skip summary."""
        self.begin(split)
        for clip_id in ids:
            try:
                clip = load(clip_id)
            except ClipError as error:
                self.handle(split, error)
                continue
            yield clip
        self.finish(split, len(ids))

    def notes(self, split: str, total: int) -> list[str]:
        """The skip summary of ``split`` as packing notes (see ``Dataset.packing_notes``)."""
        summary = self.summary(split, total)
        return [summary] if summary else []

    def finish(self, split: str, total: int) -> str | None:
        """Log and return the skip summary of ``split`` (None when nothing was skipped)."""
        summary = self.summary(split, total)
        if summary:
            logger.warning(summary)
        return summary

    def summary(self, split: str, total: int) -> str | None:
        """``"<data set> <split>: skipped N of M clips: id (reason), ..."`` or None."""
        skipped = [s for s in self.skipped if s.split == split]
        if not skipped:
            return None
        listed = ", ".join(f"{s.clip_id} ({s.reason})" for s in skipped[:_LISTED])
        more = ", …" if len(skipped) > _LISTED else ""
        return f"{self.dataset} {split}: skipped {len(skipped)} of {total} clips: {listed}{more}"


# ---- data sets stored as one .npy file per clip


def split_files(splits: Mapping[str, str] | None) -> dict[str, str]:
    """File stem per framework split: ``{"train": "train", "val": "val", "test": "test"}``
    updated with ``splits`` (e.g. ``{"train": "train_val"}``)."""
    stems = {split: split for split in SPLITS}
    for split, stem in (splits or {}).items():
        if split not in SPLITS:
            raise ValueError(f"splits: unknown split '{split}'{did_you_mean(split, SPLITS) or '.'} "
                             f"Map one of {', '.join(SPLITS)} to a split file name, e.g. {{train: train_val}}.")
        if not isinstance(stem, str) or not stem.strip():
            raise ValueError(f"splits.{split}: expected a split file name such as 'train_val', got {stem!r}")
        stems[split] = stem.strip().removesuffix(".txt")
    return stems


class FolderDataset(Dataset):
    """Base for data sets stored as one .npy file (and optionally one caption file) per clip,
    listed by one split file per split.

    Subclasses build the paths, call ``__init__`` and implement ``motion_file`` and
    ``text_file``. Split files and statistics are read here; motion files only in ``clips``.
    """

    def __init__(self, *, label: str, fmt: MotionFormat, split_paths: Mapping[str, Path],
                 stats_paths: Sequence[Path], on_bad: OnBad, min_frames: int, layout_help: str):
        if min_frames < 1:
            raise ValueError(f"min_frames must be at least 1, got {min_frames}")
        self.label, self.format, self.min_frames = label, fmt, min_frames
        self.split_paths = dict(split_paths)
        self.stats_paths = tuple(stats_paths)
        self.policy = BadDataPolicy(on_bad, label)
        self.split_ids = {split: self._read_split(path, layout_help) for split, path in self.split_paths.items()}

    def _read_split(self, path: Path, layout_help: str) -> list[str]:
        if not path.is_file():
            raise DataError(f"{self.label} split file {path} is missing. {layout_help} To read another "
                            f"split file for a split, map it with data.splits (e.g. splits: {{test: val}}).")
        return read_split_file(path)

    def packing_notes(self, split: str) -> list[str]:
        return self.policy.notes(split, len(self.split_ids.get(split, ())))

    def motion_file(self, clip_id: str) -> Path:
        """``<motion_dir>/<id>.npy``; subclasses set ``motion_dir``."""
        return self.motion_dir / f"{clip_id}.npy"

    def text_file(self, clip_id: str) -> Path:
        """``<text_dir>/<id>.txt``; subclasses set ``text_dir``."""
        return self.text_dir / f"{clip_id}.txt"

    @property
    def skipped(self) -> list[SkippedClip]:
        """Clips that ``on_bad: skip`` left out, over every split read so far."""
        return self.policy.skipped

    def clips(self, split: str) -> Iterator[Clip]:
        """Clips of ``split`` in split-file order; (T, *F) float32 motions, captions as texts."""
        if split not in self.split_ids:
            raise ValueError(f"unknown split '{split}'; splits: {', '.join(self.split_ids)}")
        return self._read_clips(split)

    def _read_clips(self, split: str) -> Iterator[Clip]:
        return self.policy.read(split, self.split_ids[split], self._load_clip)

    def clip_count(self, split: str) -> int | None:
        """Ids the split file lists (a bad clip skipped while reading still counts); None for a
        subclass that reads clips its own way (its own ``clips``)."""
        if type(self).clips is not FolderDataset.clips:
            return None
        return len(self.split_ids[split]) if split in self.split_ids else None

    def clips_from(self, split: str, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, Clip]]:
        """``(position in the split file, clip)`` for positions ``start`` to ``stop - 1``; only those
        files are read."""
        if type(self).clips is not FolderDataset.clips:  # a subclass's own clips decide what a position is
            yield from super().clips_from(split, start, stop)
            return
        if split not in self.split_ids:
            raise ValueError(f"unknown split '{split}'; splits: {', '.join(self.split_ids)}")
        ids = self.split_ids[split]
        stop = len(ids) if stop is None else stop
        self.policy.begin(split)
        for ahead in range(start, min(start + _PREFETCH, stop)):
            self._prefetch(ids[ahead])
        for position in range(start, stop):
            if position + _PREFETCH < stop:
                self._prefetch(ids[position + _PREFETCH])
            try:
                clip = self._load_clip(ids[position])
            except ClipError as error:
                self.policy.handle(split, error)
                continue
            yield position, clip
        self.policy.finish(split, len(ids))

    def _load_clip(self, clip_id: str) -> Clip:
        motion = load_motion(self.motion_file(clip_id), expected_shape_tail=self.format.feature_shape,
                             name=clip_id, min_frames=self.min_frames)
        records = read_captions(self.text_file(clip_id), clip_id=clip_id)
        return Clip(clip_id, motion, [record.caption for record in records])

    def _prefetch(self, clip_id: str) -> None:
        """Ask the kernel to start reading a clip's files now (``POSIX_FADV_WILLNEED``), so that
        many reads are in flight at once instead of one file after another."""
        for path in (self.motion_file(clip_id), self.text_file(clip_id)):
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue  # a missing file is reported when the clip is read
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            except (AttributeError, OSError):
                pass
            finally:
                os.close(fd)

    def caption_records(self, clip_id: str) -> list[CaptionRecord]:
        """Every caption of one clip with its tokens and start/end seconds (empty without a text file)."""
        return read_captions(self.text_file(clip_id), clip_id=clip_id)

    def fingerprint(self) -> str:
        """Hash of the split ids, the statistics files and the size and time of every clip's files.

        Clip files are only stat-ed, never read.
        """
        digest = hashlib.sha256()
        for split, ids in self.split_ids.items():
            digest.update(f"{split}:{len(ids)}\n".encode())
            digest.update("\n".join(ids).encode())
        for path in self.stats_paths:
            digest.update(path.read_bytes())
        for clip_id in dict.fromkeys(i for ids in self.split_ids.values() for i in ids):
            for path in (self.motion_file(clip_id), self.text_file(clip_id)):
                digest.update(_file_stamp(path).encode())
        return digest.hexdigest()


def sha256_of(path: str | os.PathLike) -> str:
    """The hex sha256 of a file's bytes, read 1 MiB at a time: what a manifest records."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_stamp(path: Path) -> str:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return "-;"
    return f"{stat.st_size}:{stat.st_mtime_ns};"
