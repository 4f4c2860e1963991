"""Packed stores: one split of a data set in one HDF5 file, read through a memory map.

A store file holds

    frames   (N_frames, *F) float32 or float16, unchunked and uncompressed, at the very start
             of the file: an HDF5 user block holds them, and the dataset names that part of
             the file itself as its external storage (so packing never copies them)
    offsets  (n + 1,) int64; clip i is ``frames[offsets[i]:offsets[i + 1]]``
    ids      (n,) utf-8 strings
    texts    (n,) utf-8 strings: each clip's captions joined by "\\n"
    clip_moments (n, 2, *F) float64: each clip's per-feature mean and sum of squared deviations
    stats/   float64 count, mean and M2 (sum of squared deviations) of all packed frames per
             feature, and the format's mean/std if any

plus attributes naming the format (name, feature shape, fps, slices), the fingerprint of what
was packed, the frame dtype, the store version and, for one part of a split, which part.
Other HDF5 readers find ``frames`` (external storage named by the file's own name) when run
in the file's folder, or anywhere with ``HDF5_EXTFILE_PREFIX='${ORIGIN}'`` in the environment.

``frames`` is one run of bytes so that readers map it with ``np.memmap`` at its file offset instead
of going through h5py: a memory map is safe to read from DataLoader workers and from several
processes at once, costs nothing to open, and a window gather is one numpy fancy index. Only
``offsets`` is read when a store is opened; ids and texts are read on first access.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import queue
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

from motionhub.data.dataset import Clip, Dataset
from motionhub.errors import DataError
from motionhub.data.files import sentence
from motionhub.data.formats import MotionFormat
from motionhub.data.layouts import average_over_groups

STORE_VERSION = 2
DTYPES = ("float32", "float16")
FLOAT16_MAX = float(np.finfo(np.float16).max)
_STRING_BLOCK = 16384  # ids / texts are appended to the file this many at a time
_COPY_BYTES = 64 << 20  # raw data is read in blocks of this size where it passes through the process
_READ_AHEAD = 32  # clips read by a background thread ahead of the one being packed
_CHECKPOINT_CLIPS = 512  # a pack records its progress (to resume from) every this many clips


class EmptySplitError(DataError):
    """A data set has no clips in the split asked for."""


def default_cache_dir() -> Path:
    """``$MOTIONHUB_CACHE`` or ``~/.cache/motionhub``."""
    return Path(os.environ.get("MOTIONHUB_CACHE") or Path.home() / ".cache" / "motionhub")


class Store:
    """A packed split, opened read-only. Build one with ``Store.open`` or ``pack_split``.

    frames:  (N_frames, *F) memory-mapped, float32 or float16, not normalised.
    offsets: (n + 1,) int64, in memory.
    lengths: (n,) int64 frames per clip.
    ids, texts: per-clip strings, read from the file on first access.
    """

    def __init__(self, path: Path, attrs: dict, offsets: np.ndarray, frames: np.ndarray, stats: dict):
        self.path = path
        self.fingerprint: str = attrs["fingerprint"]
        self.dtype: str = attrs["dtype"]
        self.format_name: str = attrs["format"]
        self.feature_shape: tuple[int, ...] = attrs["feature_shape"]
        self.fps: float = attrs["fps"]
        self.slices: dict[str, slice] = attrs["slices"]
        self.offsets = offsets
        self.frames = frames
        self.format_mean: np.ndarray | None = stats.get("format_mean")
        self.format_std: np.ndarray | None = stats.get("format_std")
        self._moments = stats
        self.part: PartInfo | None = PartInfo(**attrs["part"]) if attrs.get("part") else None
        self._lengths: np.ndarray | None = None
        self._ids: list[str] | None = None
        self._texts: list[str] | None = None

    @classmethod
    def open(cls, path: str | Path) -> Store:
        """Open a store file read-only; ``DataError`` if it is not a complete store."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"no packed store at {path}")
        try:
            with h5py.File(path, "r") as f:
                attrs = _read_attrs(f, path)
                offsets = np.asarray(f["offsets"][()], dtype=np.int64)
                stats = {name: np.asarray(value[()]) for name, value in f["stats"].items()}
                layout = _frames_layout(f["frames"], path)
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise DataError(_unreadable(path, str(exc))) from exc
        _check_index(path, offsets, layout)
        return cls(path, attrs, offsets, _map_frames(path, *layout), stats)

    @property
    def notes(self) -> list[str]:
        """Remarks recorded when the split was packed (e.g. which clips were skipped)."""
        with h5py.File(self.path, "r") as f:
            return json.loads(f.attrs.get("notes", "[]"))

    def add_note(self, note: str) -> None:
        """Record a remark in the file, to be repeated whenever the store is reused."""
        with h5py.File(self.path, "a") as f:
            f.attrs["notes"] = json.dumps([*json.loads(f.attrs.get("notes", "[]")), note])

    def __reduce__(self):
        # a pickled store (DataLoader workers started by spawn) re-opens its own memory map
        return Store.open, (self.path,)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def size_bytes(self) -> int:
        """The store file's size (its apparent size: the hole between the frames and the HDF5
        part takes no disk space where the file system keeps holes sparse)."""
        return os.path.getsize(self.path)

    def __repr__(self) -> str:
        return (f"Store({str(self.path)!r}, {len(self)} clips, {self.frames.shape[0]} frames "
                f"of {self.feature_shape} {self.dtype})")

    @property
    def lengths(self) -> np.ndarray:
        """(n,) int64 frames per clip."""
        if self._lengths is None:
            self._lengths = np.diff(self.offsets)
        return self._lengths

    @property
    def ids(self) -> list[str]:
        """Clip ids, in store order."""
        if self._ids is None:
            self._ids = self._read_strings("ids")
        return self._ids

    @property
    def texts(self) -> list[str]:
        """Each clip's captions joined by "\\n" ("" where it has none)."""
        if self._texts is None:
            self._texts = self._read_strings("texts")
        return self._texts

    def clip(self, i: int) -> Clip:
        """Clip ``i`` with float32 frames (T, *F)."""
        i = range(len(self))[i]
        start, stop = self.offsets[i], self.offsets[i + 1]
        text = self.texts[i]
        return Clip(self.ids[i], np.array(self.frames[start:stop], dtype=np.float32),
                    text.split("\n") if text else [])

    def feature_mean(self) -> np.ndarray:
        """Mean of every feature over all packed frames, float64 ``feature_shape``."""
        self._frame_count()
        return self._moments["mean"]

    def feature_std(self, *, per_slice: bool = False) -> np.ndarray:
        """Population std of every feature over all packed frames, float64 ``feature_shape``.

        ``per_slice`` averages the std within each named slice (the HumanML3D / 272 rule).
        """
        std = np.sqrt(self._moments["m2"] / self._frame_count())
        if per_slice:
            std = average_over_groups(std.reshape(-1), self.slices.values()).reshape(std.shape)
        return std

    def _frame_count(self) -> int:
        if self.frames.shape[0] == 0:
            raise DataError(f"{self.path}: the store has no frames to compute statistics from")
        return self.frames.shape[0]

    def clip_moments(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(counts (k,), means (k, F), m2s (k, F)) of consecutive clips, a block of clips at a time,
        F the flattened feature size: what the store's statistics were merged from."""
        with h5py.File(self.path, "r") as f:
            data = f["clip_moments"]
            shape, offset = (2, int(np.prod(data.shape[2:], dtype=np.int64))), data.id.get_offset()
        if len(self):
            yield from _read_moments(self.path, offset, self.lengths, shape)

    def _read_strings(self, name: str) -> list[str]:
        try:
            with h5py.File(self.path, "r") as f:
                return f[name].asstr()[()].tolist()
        except (OSError, KeyError, ValueError) as exc:
            raise DataError(_unreadable(self.path, str(exc))) from exc


def pack_split(clips: Iterable[Clip], fmt: MotionFormat, path: str | Path, *, fingerprint: str,
               dtype: str = "float32", progress: Callable[[int], None] | None = None) -> Store:
    """Write ``clips`` into one store file at ``path`` and open it.

    Streams (see ``pack_clips``): memory stays flat however many clips there are, a killed
    pack resumes, and the file appears under ``path`` only when complete. ``progress`` is
    called with the number of clips packed so far.
    """
    return pack_clips(lambda start: itertools.islice(enumerate(clips), start, None), fmt, path,
                      fingerprint=fingerprint, dtype=dtype, progress=progress)


def pack_clips(read: Callable[[int], Iterable[tuple[int, Clip]]], fmt: MotionFormat, path: str | Path, *,
               fingerprint: str, dtype: str = "float32", part: PartInfo | None = None,
               progress: Callable[[int], None] | None = None, empty_message: str | None = None) -> Store:
    """Stream ``(position, clip)`` pairs from ``read(first_position)`` into a store at ``path``.

    Frames go straight to a raw file beside the target, which becomes the store: the HDF5
    structure is appended after them at the end (``_write_store``), so they are written once
    and the process holds one clip (and a few read ahead) and one checkpoint's ids at a time.
    Every ``_CHECKPOINT_CLIPS`` clips the progress is recorded in ``<path>.partial/``; a pack
    that was killed continues from the last checkpoint when it is run again with the same
    fingerprint (anything else found there is discarded). An error (bad data, a bug) discards
    the partial pack; an interrupt keeps it. ``part`` marks the file as one part of a split.
    """
    path = _checked_target(path, dtype)
    meta = {"fingerprint": fingerprint, "dtype": dtype, "format": fmt.name,
            "feature_shape": list(fmt.feature_shape), "part": part._asdict() if part else None,
            "version": STORE_VERSION}
    journal = _Journal(path, meta, fmt.feature_shape, dtype)
    try:
        for position, clip in _read_ahead(read(journal.next_position)):
            motion, moments = _checked_clip(clip.motion, clip.id, fmt, dtype)
            journal.add(clip.id, "\n".join(clip.texts), motion, moments, position)
            if progress is not None:
                progress(journal.clips)
        journal.checkpoint()
        if not journal.clips:
            raise EmptySplitError(empty_message or f"no clips to pack into {path}")
        journal.close()
        _write_store(path, _Pieces.from_journal(journal), fmt, fingerprint, dtype, part)
    except Exception:
        journal.discard()  # bad data or a bug: resuming would repeat it
        raise
    journal.discard()
    return Store.open(path)


def pack_arrays(frames: np.ndarray, offsets: np.ndarray, ids: Sequence[str], fmt: MotionFormat,
                path: str | Path, *, fingerprint: str, texts: Sequence[str] | None = None,
                dtype: str = "float32") -> Store:
    """Write clips already concatenated in memory as a store at ``path`` and open it.

    frames: (N_frames, *F); offsets: (n + 1,) with clip i at ``frames[offsets[i]:offsets[i + 1]]``;
    ids and texts (captions joined by "\\n"; None = none): n strings each.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    texts = [""] * len(ids) if texts is None else texts
    if len(offsets) < 2 or offsets[-1] != len(frames) or not len(ids) == len(texts) == len(offsets) - 1:
        raise ValueError(f"need n + 1 offsets ending at {len(frames)} frames and n ids and texts; got "
                         f"{len(offsets)} offsets ending at {offsets[-1] if len(offsets) else None}, "
                         f"{len(ids)} ids, {len(texts)} texts")
    path = _checked_target(path, dtype)
    frames = np.asarray(frames, dtype=np.float32)
    lengths = np.diff(offsets)
    bad = ~np.isfinite(frames.reshape(len(frames), -1)).all(axis=1)
    if bad.any() or frames.shape[1:] != tuple(fmt.feature_shape):  # name the clip as a streamed pack does
        clip = int(np.searchsorted(offsets, np.flatnonzero(bad)[0], side="right") - 1) if bad.any() else 0
        _checked_clip(frames[offsets[clip]:offsets[clip + 1]], ids[clip], fmt, dtype)
    if dtype == "float16" and frames.size and np.abs(frames).max() > FLOAT16_MAX:
        raise DataError(f"values beyond the float16 range (±{FLOAT16_MAX:g}); pack with dtype float32")
    moments = _arrays_moments(frames.reshape(len(frames), -1), offsets)  # (n, 2, F)
    scratch = path.with_name(f"{path.name}.arrays-{os.getpid()}")
    scratch.mkdir(exist_ok=True)
    try:
        frames.astype(dtype, copy=False).tofile(scratch / _FRAMES)
        moments.tofile(scratch / _MOMENTS)
        pieces = _Pieces(scratch / _FRAMES, [(scratch / _MOMENTS, 0, moments.nbytes)], lengths, lambda: zip(ids, texts),
                         _MomentTree.from_leaves(lengths, moments[:, 0], moments[:, 1]))
        _write_store(path, pieces, fmt, fingerprint, dtype, None)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Store.open(path)


def _arrays_moments(frames: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(n, 2, F) float64 per-clip mean and M2 of (N_frames, F) frames cut at ``offsets``."""
    lengths = np.diff(offsets)
    full = np.flatnonzero(lengths)
    moments = np.zeros((len(lengths), 2, frames.shape[1]))
    if len(full):
        starts = offsets[:-1][full]
        moments[full, 0] = np.add.reduceat(frames, starts, axis=0, dtype=np.float64) / lengths[full, None]
        centred = frames - np.repeat(moments[:, 0], lengths, axis=0)
        moments[full, 1] = np.add.reduceat(centred * centred, starts, axis=0)
    return moments


def store_fingerprint(dataset: Dataset, split: str, *, extra_fingerprint: str = "",
                      dtype: str = "float32") -> str:
    """sha256 (hex) of everything that decides a packed split's content."""
    parts = [type(dataset).__module__ + "." + type(dataset).__qualname__, dataset.fingerprint(),
             extra_fingerprint, split, dtype, STORE_VERSION]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def store_path(dataset: Dataset, split: str, cache_dir: str | Path | None = None, *,
               extra_fingerprint: str = "", dtype: str = "float32") -> tuple[Path, str]:
    """(``<cache_dir>/<fingerprint[:16]>/<split>.h5``, fingerprint) of a split's packed store."""
    fingerprint = store_fingerprint(dataset, split, extra_fingerprint=extra_fingerprint, dtype=dtype)
    return Path(cache_dir or default_cache_dir()) / fingerprint[:16] / f"{split}.h5", fingerprint


def open_or_pack(dataset: Dataset, split: str, cache_dir: str | Path | None = None, *,
                 extra_fingerprint: str = "", dtype: str = "float32", console=None) -> Store:
    """The packed store of ``dataset``'s ``split``, packing it first if needed.

    The file is ``<cache_dir>/<fingerprint[:16]>/<split>.h5``; it is packed again when its
    fingerprint differs or it cannot be read. Where parts of the split were packed ahead
    (``pack_part``), they are merged instead, and must together make the whole split. A file
    lock makes a second process that asks for the same split wait for the first to finish,
    then open its file. ``console`` (a rich Console) shows progress while packing.
    """
    path, fingerprint = store_path(dataset, split, cache_dir, extra_fingerprint=extra_fingerprint, dtype=dtype)
    store = _open_current(path, fingerprint, console)
    if store is not None:
        return store
    path.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(path, console):
        store = _open_current(path, fingerprint, console)  # packed by another process meanwhile
        if store is not None:
            return store
        parts = sorted(path.parent.glob(f"{split}.part-*-of-*.h5"))
        if parts:
            return merge_parts(parts, path, fingerprint=fingerprint, console=console)
        return _pack_range(dataset, split, path, fingerprint, dtype, console, None)


def pack_part(dataset: Dataset, split: str, index: int, count: int, cache_dir: str | Path | None = None, *,
              extra_fingerprint: str = "", dtype: str = "float32", console=None) -> Store:
    """Pack part ``index`` of ``count`` of a split: the clips at positions
    ``[index * n // count, (index + 1) * n // count)`` of its n listed clips, into
    ``<split>.part-<index>-of-<count>.h5`` beside where the whole split's store goes.

    Processes (or machines sharing the cache folder) pack different parts at once; the next
    ``open_or_pack`` of the split merges them. Needs a data set that knows its clip count
    without reading (``Dataset.clip_count``).
    """
    if not 0 <= index < count:
        raise DataError(f"part {index}/{count}: the part index must be 0 to {count - 1}, e.g. --part 0/{count}")
    listed = dataset.clip_count(split)
    if listed is None:
        raise DataError(f"data set {dataset.describe()} cannot be packed in parts: it does not say how many "
                        f"clips split '{split}' has without reading them; pack it whole (without --part)")
    if count > listed:
        raise DataError(f"{count} parts for split '{split}' of {dataset.describe()}, which lists only {listed} "
                        f"clips; use at most {listed} parts")
    path, fingerprint = store_path(dataset, split, cache_dir, extra_fingerprint=extra_fingerprint, dtype=dtype)
    target = part_path(path, index, count)
    part = PartInfo(index, count, index * listed // count, (index + 1) * listed // count, listed)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(target, console):
        store = _open_current(target, fingerprint, console)
        if store is not None:
            return store
        return _pack_range(dataset, split, target, fingerprint, dtype, console, part)


def part_path(path: Path, index: int, count: int) -> Path:
    """``<split>.part-<index>-of-<count>.h5`` beside the split's store ``<split>.h5``."""
    return path.with_name(f"{path.stem}.part-{index}-of-{count}.h5")


class PartInfo(NamedTuple):
    """Where a part file sits in its split: clips at listed positions [first, stop) of ``listed``."""

    index: int
    count: int
    first: int
    stop: int
    listed: int


def merge_parts(paths: Sequence[Path], path: Path, *, fingerprint: str | None = None, console=None) -> Store:
    """Merge part files (``pack_part``) into one store at ``path`` and delete them.

    The parts must be complete, packed from ``fingerprint`` (when given), one each of
    ``0..count-1`` of the same count, and together cover every listed clip; otherwise one
    ``DataError`` says what is missing or does not fit, and what to run. The result equals
    the store a single pack of the whole split writes, byte for byte in frames, offsets, ids,
    texts and statistics. Frames are copied once, by the kernel; memory stays flat.
    """
    parts = _fitting_parts([Path(p) for p in paths], path, fingerprint)
    first = parts[0]
    fmt_attrs = {"format": first.format_name, "feature_shape": first.feature_shape, "fps": first.fps,
                 "slices": first.slices, "format_mean": first.format_mean, "format_std": first.format_std}
    frames = path.with_name(f"{path.name}.frames-{os.getpid()}")
    try:
        with _pack_progress(console, f"merging {len(parts)} parts into {path}", None) as progress:
            _write_store(path, _Pieces.from_parts(parts, frames), fmt_attrs, first.fingerprint, first.dtype, None)
            if progress is not None:
                progress(len(parts))
    finally:
        frames.unlink(missing_ok=True)
    for part in parts:
        part.path.unlink()
    return Store.open(path)


def _fitting_parts(paths: list[Path], path: Path, fingerprint: str | None) -> list[Store]:
    """The part stores in order, or one DataError saying why they do not make the split."""
    parts, problems = [], []
    for part_file in paths:
        try:
            store = Store.open(part_file)
        except DataError as exc:
            problems.append(f"{part_file.name} is unreadable ({exc})")
            continue
        if store.part is None:
            problems.append(f"{part_file.name} is not a part file")
        elif fingerprint is not None and store.fingerprint != fingerprint:
            problems.append(f"{part_file.name} was packed from other data or another recipe")
        else:
            parts.append(store)
    counts = sorted({p.part.count for p in parts})
    if len(counts) > 1:
        problems.append(f"parts of different splittings lie together (--part i/{' and i/'.join(map(str, counts))})")
    elif parts:
        count = counts[0]
        parts.sort(key=lambda p: p.part.index)
        have = [p.part.index for p in parts]
        missing = sorted(set(range(count)) - set(have))
        if missing:
            problems.append(f"parts {', '.join(map(str, missing))} of {count} are not packed yet (run "
                            + "; ".join(f"motionhub pack <recipe> --part {i}/{count}" for i in missing[:3])
                            + (" …" if len(missing) > 3 else "") + ")")
        elif len({(p.dtype, p.format_name, p.part.listed) for p in parts}) > 1 or any(
                a.part.stop != b.part.first for a, b in zip(parts, parts[1:])) or parts[0].part.first != 0 \
                or parts[-1].part.stop != parts[-1].part.listed:
            problems.append("their clip ranges, dtypes or formats do not fit together")
    if problems:
        raise DataError(f"cannot merge the parts of {path}: {'; '.join(problems)}. Pack the missing parts, or "
                        f"remove the part files (rm {path.parent}/{path.stem}.part-*) to pack the split whole")
    return parts


def _pack_range(dataset: Dataset, split: str, target: Path, fingerprint: str, dtype: str, console,
                part: PartInfo | None) -> Store:
    first, stop = (part.first, part.stop) if part else (0, None)
    total = (part.stop - part.first) if part else dataset.clip_count(split)
    label = f"packing {split} of {dataset.describe()}" + (f", part {part.index}/{part.count}" if part else "")
    empty = (f"data set {dataset.describe()} has no clips in split '{split}'"
             + (f" at positions {first}-{stop - 1}" if part else "")
             + "; check the data set's split files or its arguments in the recipe")

    def read(start: int) -> Iterable[tuple[int, Clip]]:
        return dataset.clips_from(split, max(start, first), stop)

    with _pack_progress(console, label, total) as progress:
        return pack_clips(read, dataset.format, target, fingerprint=fingerprint, dtype=dtype, part=part,
                          progress=progress, empty_message=empty)


# ---- packing helpers


def _read_ahead(items: Iterable) -> Iterator:
    """``items`` in order, produced by a background thread up to ``_READ_AHEAD`` ahead.

    Reading clip files (waiting on the disk, parsing .npy headers) then overlaps with the
    statistics and writing of the clips before; memory holds at most that many clips more.
    An exception raised while producing an item is raised here, in its place.
    """
    slots: queue.Queue = queue.Queue(maxsize=_READ_AHEAD)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                slots.put((True, item))
            slots.put((False, None))
        except BaseException as exc:  # handed to the consumer, which raises it
            slots.put((False, exc))

    thread = threading.Thread(target=produce, name="motionhub-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            more, item = slots.get()
            if not more:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                slots.get(timeout=0.1)
            except queue.Empty:
                pass

_FRAMES, _MOMENTS, _CLIPS, _META = "frames.raw", "moments.raw", "clips.jsonl", "meta.json"


class _Journal:
    """A pack in progress: ``<target>.partial/`` holding

        meta.json     what is packed (fingerprint, dtype, format, part): a resume must match it
        frames.raw    the frames of the clips so far, back to back, in the store's dtype
        moments.raw   (n, 2, *F) float64: each clip's mean and sum of squared deviations
        clips.jsonl   one line per checkpoint: {"next": position to continue from,
                      "clips": [[id, frames, text], ...]}; a line is the checkpoint's commit

    Opening a journal left by a killed pack keeps its committed checkpoints and cuts the raw
    files back to them.
    """

    def __init__(self, target: Path, meta: dict, feature_shape: tuple[int, ...], dtype: str):
        self.folder = target.with_name(f"{target.name}.partial")
        self.frame_bytes = int(np.prod(feature_shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        self.moment_bytes = 2 * int(np.prod(feature_shape, dtype=np.int64)) * 8
        self.lengths = array.array("q")
        self.tree = _MomentTree()
        self.next_position = 0
        self.pending: list[list] = []
        self.pending_next = 0
        if not self._resume(meta):
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True)
            (self.folder / _META).write_text(json.dumps(meta))
            for name in (_FRAMES, _MOMENTS, _CLIPS):
                (self.folder / name).touch()
        self.resumed = len(self.lengths)
        self._frames = open(self.folder / _FRAMES, "ab")
        self._moments = open(self.folder / _MOMENTS, "ab")
        self._clips = open(self.folder / _CLIPS, "a", encoding="utf-8")

    @property
    def clips(self) -> int:
        return len(self.lengths)

    def add(self, clip_id: str, text: str, motion: np.ndarray, moments: np.ndarray, position: int) -> None:
        """Append one clip (motion (T, *F) already in the store dtype; moments (2, *F) float64)."""
        motion.tofile(self._frames)
        moments.tofile(self._moments)
        self.lengths.append(len(motion))
        flat = moments.reshape(2, -1)
        self.tree.push(len(motion), flat[0], flat[1])
        self.pending.append([clip_id, len(motion), text])
        self.pending_next = position + 1
        if len(self.pending) >= _CHECKPOINT_CLIPS:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Commit the clips added since the last checkpoint (raw data first, then the line)."""
        if not self.pending:
            return
        self._frames.flush()
        self._moments.flush()
        self._clips.write(json.dumps({"next": self.pending_next, "clips": self.pending}) + "\n")
        self._clips.flush()
        self.next_position, self.pending = self.pending_next, []

    def strings(self) -> Iterator[tuple[str, str]]:
        """(id, text) of every committed clip, in order, read back from clips.jsonl."""
        with open(self.folder / _CLIPS, encoding="utf-8") as lines:
            for line in lines:
                for clip_id, _, text in json.loads(line)["clips"]:
                    yield clip_id, text

    def close(self) -> None:
        for handle in (self._frames, self._moments, self._clips):
            handle.close()

    def discard(self) -> None:
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _resume(self, meta: dict) -> bool:
        """Take up the committed checkpoints of a partial pack of the same content; False if none."""
        try:
            if json.loads((self.folder / _META).read_text()) != meta:
                return False
            committed, end = [], 0
            with open(self.folder / _CLIPS, "rb") as lines:
                for line in lines:
                    if not line.endswith(b"\n"):
                        break  # cut off by the kill
                    committed.append(json.loads(line))
                    end += len(line)
        except (OSError, ValueError):
            return False
        for entry in committed:
            self.lengths.extend(length for _, length, _ in entry["clips"])
        frames_end = sum(self.lengths) * self.frame_bytes
        moments_end = len(self.lengths) * self.moment_bytes
        sizes = [(self.folder / name).stat().st_size for name in (_FRAMES, _MOMENTS)]
        if sizes[0] < frames_end or sizes[1] < moments_end:
            self.lengths = array.array("q")
            return False
        os.truncate(self.folder / _FRAMES, frames_end)
        os.truncate(self.folder / _MOMENTS, moments_end)
        os.truncate(self.folder / _CLIPS, end)
        self.next_position = committed[-1]["next"] if committed else 0
        self.pending_next = self.next_position
        for counts, means, m2s in _read_moments(self.folder / _MOMENTS, 0, np.asarray(self.lengths),
                                                (2, self.moment_bytes // 16)):
            for count, mean, m2 in zip(counts, means, m2s):
                self.tree.push(int(count), mean, m2)
        return True


class _MomentTree:
    """Per-feature (count, mean, M2) of all frames, merged clip by clip along a fixed binary tree.

    Clip i's moments are leaf i; subtrees over aligned power-of-two runs of leaves are merged
    as soon as they are complete (a binary counter), and the open ones are folded right to
    left at the end. The tree depends only on the sequence of clips, so a split packed whole
    and the same split packed in parts and merged get identical statistics, bit for bit.
    Merging is Chan et al.'s parallel update in float64, free of the cancellation that sums
    of squares suffer far from zero.
    """

    def __init__(self):
        self.stack: list[tuple[int, int, np.ndarray, np.ndarray]] = []  # (level, count, mean, m2)

    def push(self, count: int, mean: np.ndarray, m2: np.ndarray) -> None:
        level = 0
        while self.stack and self.stack[-1][0] == level:
            _, count_a, mean_a, m2_a = self.stack.pop()
            count, mean, m2 = _chan(count_a, mean_a, m2_a, count, mean, m2)
            level += 1
        self.stack.append((level, count, mean, m2))

    @classmethod
    def from_leaves(cls, counts: np.ndarray, means: np.ndarray, m2s: np.ndarray) -> _MomentTree:
        """The tree after pushing n leaves ((n,) counts, (n, F) means and m2s), built a level at
        a time with array operations: the same merges, in the same order, as n pushes."""
        tree = cls()
        counts = np.asarray(counts, dtype=np.int64)[:, None]
        level, open_nodes = 0, []
        while len(counts):
            if len(counts) % 2:  # the last node has no partner yet: it stays open at this level
                open_nodes.append((level, int(counts[-1, 0]), means[-1], m2s[-1]))
                counts, means, m2s = counts[:-1], means[:-1], m2s[:-1]
            if not len(counts):
                break
            counts, means, m2s = _chan(counts[0::2], means[0::2], m2s[0::2], counts[1::2], means[1::2], m2s[1::2])
            level += 1
        tree.stack = open_nodes[::-1]  # higher levels cover earlier clips
        return tree

    def total(self) -> tuple[int, np.ndarray, np.ndarray]:
        _, count, mean, m2 = self.stack[-1]
        for _, count_a, mean_a, m2_a in reversed(self.stack[:-1]):
            count, mean, m2 = _chan(count_a, mean_a, m2_a, count, mean, m2)
        return count, mean, m2


def _chan(count_a, mean_a: np.ndarray, m2_a: np.ndarray, count_b, mean_b: np.ndarray,
          m2_b: np.ndarray) -> tuple:
    """Moments of the union of two sets of frames from each set's (count, mean, M2).

    Counts are ints, or (k, 1) int64 arrays to merge k pairs at once with the same float64
    operations (a set with no frames leaves the other unchanged, bit for bit).
    """
    if np.ndim(count_a) == 0 and (count_a == 0 or count_b == 0):
        return (count_b, mean_b, m2_b) if count_a == 0 else (count_a, mean_a, m2_a)
    count = count_a + count_b
    total = np.maximum(np.float64(count), 1.0)
    delta = mean_b - mean_a
    mean = mean_a + delta * (np.float64(count_b) / total)
    m2 = m2_a + m2_b + delta * delta * (np.float64(count_a) * np.float64(count_b) / total)
    if np.ndim(count_a):
        empty_a, empty_b = count_a == 0, count_b == 0
        mean = np.where(empty_a, mean_b, np.where(empty_b, mean_a, mean))
        m2 = np.where(empty_a, m2_b, np.where(empty_b, m2_a, m2))
    return count, mean, m2


def _clip_moments(motion: np.ndarray) -> np.ndarray:
    """(2, *F) float64: the mean of (T, *F) frames and the sum of squared deviations from it."""
    if len(motion) == 0:
        return np.zeros((2, *motion.shape[1:]))
    centred = motion.astype(np.float64)  # one cast, then float64 passes in place (faster than mean(dtype=))
    mean = centred.sum(axis=0) / len(motion)
    centred -= mean
    return np.stack([mean, np.einsum("t...,t...->...", centred, centred)])


def _read_moments(path: Path, offset: int, lengths: np.ndarray, shape: tuple[int, ...]
                  ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(counts, means, m2s) of consecutive clips from raw float64 (n, *shape) records at ``offset``,
    a block at a time."""
    record = int(np.prod(shape)) * 8
    block = max(1, _COPY_BYTES // record)
    with open(path, "rb") as handle:
        for start in range(0, len(lengths), block):
            rows = min(block, len(lengths) - start)
            handle.seek(offset + start * record)
            values = np.fromfile(handle, dtype=np.float64, count=rows * record // 8).reshape(rows, *shape)
            yield lengths[start:start + rows], values[:, 0], values[:, 1]


class _Pieces:
    """What a store file is written from: a raw file holding exactly its frames (which becomes
    the store), raw byte runs of clip moments in other files, the clip lengths, the (id, text)
    strings and the merged statistics."""

    def __init__(self, frames: Path, moments: list[tuple[Path, int, int]], lengths: np.ndarray,
                 strings: Callable[[], Iterator[tuple[str, str]]], tree: _MomentTree):
        self.frames, self.moments, self.lengths, self.strings, self.tree = frames, moments, lengths, strings, tree

    @classmethod
    def from_journal(cls, journal: _Journal) -> _Pieces:
        lengths = np.asarray(journal.lengths, dtype=np.int64)
        moments = [(journal.folder / _MOMENTS, 0, len(lengths) * journal.moment_bytes)]
        return cls(journal.folder / _FRAMES, moments, lengths, journal.strings, journal.tree)

    @classmethod
    def from_parts(cls, parts: Sequence[Store], frames: Path) -> _Pieces:
        """The parts' pieces in order; their frames are copied (by the kernel) into ``frames``."""
        moments, tree = [], _MomentTree()
        with open(frames, "wb") as out:
            at = 0
            for part in parts:
                if part.frames.shape[0]:
                    _copy_range(part.path, part.frames.offset, out.fileno(), at, part.frames.nbytes)
                    at += part.frames.nbytes
        for part in parts:
            with h5py.File(part.path, "r") as f:
                data = f["clip_moments"]
                moments.append((part.path, data.id.get_offset(), data.id.get_storage_size()))
            for counts, means, m2s in part.clip_moments():
                for count, mean, m2 in zip(counts, means, m2s):
                    tree.push(int(count), mean, m2)

        def strings() -> Iterator[tuple[str, str]]:
            for part in parts:
                with h5py.File(part.path, "r") as f:
                    ids, texts = f["ids"].asstr(), f["texts"].asstr()
                    for start in range(0, len(part), _STRING_BLOCK):
                        yield from zip(ids[start:start + _STRING_BLOCK], texts[start:start + _STRING_BLOCK])

        return cls(frames, moments, np.concatenate([part.lengths for part in parts]), strings, tree)


def _write_store(path: Path, pieces: _Pieces, fmt: MotionFormat | dict, fingerprint: str, dtype: str,
                 part: PartInfo | None) -> None:
    """Turn ``pieces.frames`` into the store file at ``path``, without copying the frames.

    The HDF5 structure (ids, texts, offsets, statistics, clip moments) is written to a
    temporary file whose user block (the bytes HDF5 leaves to the user before its own, a
    power of two) is as large as the frames. Its bytes after the user block are then appended
    to the raw frames file past that size (the gap stays a hole on file systems with sparse
    files), which is renamed to ``path``: frames at offset 0, HDF5 after them. HDF5 addresses
    count from the user block's end, so the structure reads the same in the new file.
    """
    feature_shape = tuple(fmt["feature_shape"] if isinstance(fmt, dict) else fmt.feature_shape)
    n = len(pieces.lengths)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(pieces.lengths, out=offsets[1:])
    shape = (int(offsets[-1]), *feature_shape)
    size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if pieces.frames.stat().st_size < size:
        raise DataError(f"{pieces.frames} holds fewer bytes than the frames it should; pack again")
    block = max(512, 1 << (size - 1).bit_length())
    structure = path.with_name(f"{path.name}.partial-{os.getpid()}")
    try:
        with h5py.File(structure, "w", userblock_size=block) as f:
            ids, texts = _StringColumn(f, "ids"), _StringColumn(f, "texts")
            for clip_id, text in pieces.strings():
                ids.append(clip_id)
                texts.append(text)
            ids.flush()
            texts.flush()
            if size:  # the frames: bytes [0, size) of this very file
                f.create_dataset("frames", shape=shape, dtype=dtype, external=[(path.name, 0, size)])
            else:
                f.create_dataset("frames", shape=shape, dtype=dtype)
            moments_at = _allocate(f, "clip_moments", (n, 2, *feature_shape), "float64")
            _write_index(f, offsets, pieces.tree, fmt, fingerprint, dtype, part)
        with open(structure, "r+b") as out:
            for source, offset, length in pieces.moments:
                _copy_range(source, offset, out.fileno(), moments_at, length)
                moments_at += length
        with open(pieces.frames, "r+b") as out:
            out.truncate(block)
            _copy_range(structure, block, out.fileno(), block, structure.stat().st_size - block)
        os.replace(pieces.frames, path)
    finally:
        structure.unlink(missing_ok=True)


def _allocate(f: h5py.File, name: str, shape: tuple[int, ...], dtype: str) -> int:
    """Create a contiguous dataset with its space reserved but not written; its file offset."""
    plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    plist.set_layout(h5py.h5d.CONTIGUOUS)
    plist.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    plist.set_fill_time(h5py.h5d.FILL_TIME_NEVER)  # the bytes are copied in after the file is closed
    space = h5py.h5s.create_simple(shape)
    dataset = h5py.h5d.create(f.id, name.encode(), h5py.h5t.py_create(np.dtype(dtype)), space, dcpl=plist)
    return dataset.get_offset() or 0


def _copy_range(source: Path, offset: int, target_fd: int, at: int, size: int) -> None:
    """Copy ``size`` bytes of ``source`` from ``offset`` into an open file at ``at``, in the kernel
    where it can (no pages pass through this process), else through one reused buffer."""
    with open(source, "rb") as src:
        try:
            while size:
                done = os.copy_file_range(src.fileno(), target_fd, min(size, 1 << 30), offset, at)
                if done == 0:
                    raise DataError(f"{source} ended early while its frames were copied; pack again")
                offset, at, size = offset + done, at + done, size - done
            return
        except (AttributeError, OSError):
            pass  # no copy_file_range here (other kernel, other file systems): copy through a buffer
        buffer = bytearray(min(size, _COPY_BYTES))
        view = memoryview(buffer)
        while size:
            done = os.preadv(src.fileno(), [view[:min(size, len(buffer))]], offset)
            if done == 0:
                raise DataError(f"{source} ended early while its frames were copied; pack again")
            os.pwrite(target_fd, view[:done], at)
            offset, at, size = offset + done, at + done, size - done


@contextlib.contextmanager
def atomic_h5(path: Path) -> Iterator[h5py.File]:
    """An HDF5 file written under a temporary name and renamed to ``path`` once complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    try:
        with h5py.File(partial, "w") as f:
            yield f
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


class _StringColumn:
    """A resizable utf-8 string dataset appended to in blocks."""

    def __init__(self, f: h5py.File, name: str):
        self.dataset = f.create_dataset(name, shape=(0,), maxshape=(None,), chunks=(_STRING_BLOCK,),
                                        dtype=h5py.string_dtype("utf-8"))
        self.pending: list[str] = []

    def append(self, value: str) -> None:
        self.pending.append(value)
        if len(self.pending) == _STRING_BLOCK:
            self.flush()

    def flush(self) -> None:
        start = self.dataset.shape[0]
        self.dataset.resize((start + len(self.pending),))
        if self.pending:
            self.dataset[start:] = np.array(self.pending, dtype=object)
        self.pending = []


def _checked_target(path: str | Path, dtype: str) -> Path:
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _checked_clip(motion: np.ndarray, clip_id: str, fmt: MotionFormat, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(frames (T, *F) in ``dtype``, moments (2, *F) float64); DataError naming the clip if unusable.

    Finiteness is read off the moments: a float64 mean of float32 values is finite exactly when
    every value is, which saves a pass over the frames.
    """
    motion = np.asarray(motion, dtype=np.float32)
    if motion.shape[1:] != tuple(fmt.feature_shape):
        raise DataError(f"clip '{clip_id}': frames have shape {motion.shape}, but format '{fmt.name}' "
                        f"needs (frames, {', '.join(map(str, fmt.feature_shape))})")
    moments = _clip_moments(motion)
    if not np.isfinite(moments).all():
        finite = np.isfinite(motion)
        frame = int(np.argwhere(~finite)[0][0])
        raise DataError(f"clip '{clip_id}': NaN or Inf values (first at frame {frame}); "
                        f"fix or remove the clip's file")
    if dtype == "float16" and motion.size and np.abs(motion).max() > FLOAT16_MAX:
        raise DataError(f"clip '{clip_id}': values beyond the float16 range (±{FLOAT16_MAX:g}); "
                        f"pack with dtype float32")
    return motion.astype(dtype, copy=False), moments


def _write_index(f: h5py.File, offsets: np.ndarray, tree: _MomentTree, fmt: MotionFormat | dict,
                 fingerprint: str, dtype: str, part: PartInfo | None) -> None:
    """Offsets, statistics and attributes: everything but frames, clip moments, ids and texts."""
    described = fmt if isinstance(fmt, dict) else {
        "format": fmt.name, "feature_shape": fmt.feature_shape, "fps": fmt.fps, "slices": fmt.slices,
        "format_mean": fmt.mean, "format_std": fmt.std}
    f.create_dataset("offsets", data=offsets)
    stats = f.create_group("stats")
    count, mean, m2 = tree.total()
    stats["count"] = np.int64(count)
    feature_shape = tuple(described["feature_shape"])
    stats["mean"] = np.asarray(mean).reshape(feature_shape)
    stats["m2"] = np.asarray(m2).reshape(feature_shape)
    if described["format_mean"] is not None:
        stats["format_mean"] = np.asarray(described["format_mean"], dtype=np.float32)
        stats["format_std"] = np.asarray(described["format_std"], dtype=np.float32)
    f.attrs["motionhub_store_version"] = STORE_VERSION
    f.attrs["fingerprint"] = fingerprint
    f.attrs["dtype"] = dtype
    f.attrs["format"] = described["format"]
    f.attrs["feature_shape"] = np.asarray(described["feature_shape"], dtype=np.int64)
    f.attrs["fps"] = float(described["fps"])
    f.attrs["slices"] = json.dumps({name: [p.start, p.stop] for name, p in described["slices"].items()})
    if part is not None:
        f.attrs["part"] = json.dumps(part._asdict())


# ---- opening helpers


def _unreadable(path: Path, reason: str) -> str:
    return (f"{path} is not a readable motionhub store ({reason}). It is packed again automatically "
            f"the next time this split is loaded; to remove it yourself: rm '{path}'")


def _read_attrs(f: h5py.File, path: Path) -> dict:
    """The file's attributes, typed; DataError for a file of another store version."""
    attrs = dict(f.attrs)
    version = attrs.get("motionhub_store_version")
    if version != STORE_VERSION:
        raise DataError(_unreadable(path, f"store version {version}, this motionhub reads {STORE_VERSION}"))
    return {"fingerprint": str(attrs["fingerprint"]), "dtype": str(attrs["dtype"]), "format": str(attrs["format"]),
            "feature_shape": tuple(int(n) for n in attrs["feature_shape"]), "fps": float(attrs["fps"]),
            "slices": {name: slice(a, b) for name, (a, b) in json.loads(attrs["slices"]).items()},
            "part": json.loads(attrs["part"]) if "part" in attrs else None}


def _frames_layout(frames: h5py.Dataset, path: Path) -> tuple[int | None, tuple[int, ...], np.dtype]:
    """(file offset, shape, dtype) of the ``frames`` dataset: in the file's own user block
    (external storage) or contiguous within the HDF5 part."""
    if frames.chunks is not None or frames.compression is not None:
        raise DataError(_unreadable(path, "frames are chunked or compressed, so they cannot be memory-mapped"))
    plist = frames.id.get_create_plist()
    if plist.get_external_count():
        if plist.get_external_count() != 1:
            raise DataError(_unreadable(path, "frames are split over several files"))
        return plist.get_external(0)[1], frames.shape, frames.dtype
    return frames.id.get_offset(), frames.shape, frames.dtype


def _check_index(path: Path, offsets: np.ndarray, layout: tuple) -> None:
    offset, shape, dtype = layout
    if len(offsets) < 2 or offsets[0] != 0 or offsets[-1] != shape[0] or (np.diff(offsets) < 0).any():
        raise DataError(_unreadable(path, "clip offsets do not match the frames"))
    if shape[0] == 0:
        return
    end = (offset or 0) + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if offset is None or path.stat().st_size < end:
        raise DataError(_unreadable(path, "the file is truncated"))


def _map_frames(path: Path, offset: int | None, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if shape[0] == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


def _open_current(path: Path, fingerprint: str, console) -> Store | None:
    """The store at ``path`` if it is readable and packed from ``fingerprint``, else None."""
    if not path.is_file():
        return None
    try:
        store = Store.open(path)
    except DataError as exc:
        if console is not None:
            console.print(f"[yellow]{sentence(exc)}[/] Packing it again.")
        return None
    if store.fingerprint != fingerprint:
        return None
    # a pack killed between placing the store and removing its journal left the journal behind
    shutil.rmtree(path.with_name(f"{path.name}.partial"), ignore_errors=True)
    return store


@contextlib.contextmanager
def _exclusive_lock(path: Path, console) -> Iterator[None]:
    """Held by one process at a time for ``path`` (an flock on ``<path>.lock``)."""
    with open(path.with_name(f"{path.name}.lock"), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if console is not None:
                console.print(f"waiting for another process to finish packing {path}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _pack_progress(console, label: str, total: int | None) -> Iterator[Callable[[int], None] | None]:
    """A progress callback (clips done) drawing a bar with the time left when ``total`` is known."""
    if console is None:
        yield None
        return
    from rich.progress import (BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    columns = [SpinnerColumn(), TextColumn(label), BarColumn(), TextColumn("{task.completed:,}/{task.total:,} clips"),
               TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn()] if total else [
               SpinnerColumn(), TextColumn(label), TextColumn("{task.completed:,} clips"), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.update(task, completed=done)
    console.print(f"{label}: done")
