"""Packed stores: one split of a data set in one HDF5 file, read through a memory map.

A store file holds

    frames   (N_frames, *F) float32 or float16, contiguous (unchunked, uncompressed)
    offsets  (n + 1,) int64; clip i is ``frames[offsets[i]:offsets[i + 1]]``
    ids      (n,) utf-8 strings
    texts    (n,) utf-8 strings: each clip's captions joined by "\\n"
    stats/   float64 per-feature moments of the packed frames, and the format's mean/std if any

plus attributes naming the format (name, feature shape, fps, slices), the fingerprint of what
was packed, the frame dtype and the store version.

``frames`` is contiguous so that readers map it with ``np.memmap`` at its file offset instead
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np

from motionhub.data.dataset import Clip, Dataset
from motionhub.errors import DataError
from motionhub.data.files import sentence
from motionhub.data.formats import MotionFormat
from motionhub.data.layouts import average_over_groups

STORE_VERSION = 1
DTYPES = ("float32", "float16")
FLOAT16_MAX = float(np.finfo(np.float16).max)
_STRING_BLOCK = 16384  # ids / texts are appended to the file this many at a time
_COPY_BYTES = 64 << 20  # frames move from the raw file into HDF5 in blocks of this size


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
        """The store file's size on disk."""
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
        count = self._frame_count()
        return self._moments["shift"] + self._moments["sum"] / count

    def feature_std(self, *, per_slice: bool = False) -> np.ndarray:
        """Population std of every feature over all packed frames, float64 ``feature_shape``.

        ``per_slice`` averages the std within each named slice (the HumanML3D / 272 rule).
        """
        count = self._frame_count()
        mean = self._moments["sum"] / count
        std = np.sqrt(np.maximum(self._moments["sum_squares"] / count - mean**2, 0.0))
        if per_slice:
            std = average_over_groups(std.reshape(-1), self.slices.values()).reshape(std.shape)
        return std

    def _frame_count(self) -> int:
        if self.frames.shape[0] == 0:
            raise DataError(f"{self.path}: the store has no frames to compute statistics from")
        return self.frames.shape[0]

    def _read_strings(self, name: str) -> list[str]:
        try:
            with h5py.File(self.path, "r") as f:
                return f[name].asstr()[()].tolist()
        except (OSError, KeyError, ValueError) as exc:
            raise DataError(_unreadable(self.path, str(exc))) from exc


def pack_split(clips: Iterable[Clip], fmt: MotionFormat, path: str | Path, *, fingerprint: str,
               dtype: str = "float32", progress: Callable[[int], None] | None = None) -> Store:
    """Write ``clips`` into one store file at ``path`` and open it.

    Clips are streamed: frames go to a raw temporary file and are copied into the HDF5 file
    at the end, so memory stays flat however many clips there are. The file appears under
    ``path`` only when complete. ``progress`` is called with the number of clips packed so far.
    """
    path = _checked_target(path, dtype)
    raw = path.with_name(f"{path.name}.frames-{os.getpid()}")
    try:
        with atomic_h5(path) as f:
            ids, texts = _StringColumn(f, "ids"), _StringColumn(f, "texts")
            moments = _Moments(fmt.feature_shape)
            lengths = array.array("q")
            with open(raw, "wb") as raw_out:
                for clip in clips:
                    motion = _checked_motion(clip.motion, clip.id, fmt, dtype)
                    moments.add(motion)
                    motion.astype(dtype, copy=False).tofile(raw_out)
                    lengths.append(len(motion))
                    ids.append(clip.id)
                    texts.append("\n".join(clip.texts))
                    if progress is not None:
                        progress(len(lengths))
            if not lengths:
                raise EmptySplitError(f"no clips to pack into {path}")
            ids.flush()
            texts.flush()
            offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
            np.cumsum(np.frombuffer(lengths, dtype=np.int64), out=offsets[1:])
            _copy_frames(raw, f, (int(offsets[-1]), *fmt.feature_shape), dtype)
            _write_index(f, offsets, moments, fmt, fingerprint, dtype)
    finally:
        raw.unlink(missing_ok=True)
    return Store.open(path)


def pack_arrays(frames: np.ndarray, offsets: np.ndarray, ids: Sequence[str], fmt: MotionFormat,
                path: str | Path, *, fingerprint: str, texts: Sequence[str] | None = None,
                dtype: str = "float32") -> Store:
    """Write clips already concatenated in memory as a store at ``path`` and open it.

    frames: (N_frames, *F); offsets: (n + 1,) with clip i at ``frames[offsets[i]:offsets[i + 1]]``;
    ids and texts (captions joined by "\\n"; None = none): n strings each.
    """
    path = _checked_target(path, dtype)
    offsets = np.asarray(offsets, dtype=np.int64)
    texts = [""] * len(ids) if texts is None else texts
    if len(offsets) < 2 or offsets[-1] != len(frames) or not len(ids) == len(texts) == len(offsets) - 1:
        raise ValueError(f"need n + 1 offsets ending at {len(frames)} frames and n ids and texts; got "
                         f"{len(offsets)} offsets ending at {offsets[-1] if len(offsets) else None}, "
                         f"{len(ids)} ids, {len(texts)} texts")
    frames = _checked_motion(frames, "(all frames)", fmt, dtype)
    moments = _Moments(fmt.feature_shape)
    moments.add(frames)
    with atomic_h5(path) as f:
        _StringColumn(f, "ids").extend(ids)
        _StringColumn(f, "texts").extend(texts)
        f.create_dataset("frames", data=frames.astype(dtype, copy=False))  # contiguous: no chunks, no filters
        _write_index(f, offsets, moments, fmt, fingerprint, dtype)
    return Store.open(path)


def store_fingerprint(dataset: Dataset, split: str, *, extra_fingerprint: str = "",
                      dtype: str = "float32") -> str:
    """sha256 (hex) of everything that decides a packed split's content."""
    parts = [type(dataset).__module__ + "." + type(dataset).__qualname__, dataset.fingerprint(),
             extra_fingerprint, split, dtype, STORE_VERSION]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def open_or_pack(dataset: Dataset, split: str, cache_dir: str | Path | None = None, *,
                 extra_fingerprint: str = "", dtype: str = "float32", console=None) -> Store:
    """The packed store of ``dataset``'s ``split``, packing it first if needed.

    The file is ``<cache_dir>/<fingerprint[:16]>/<split>.h5``; it is packed again when its
    fingerprint differs or it cannot be read. A file lock makes a second process that asks
    for the same split wait for the first to finish packing, then open its file. ``console``
    (a rich Console) shows progress while packing.
    """
    fingerprint = store_fingerprint(dataset, split, extra_fingerprint=extra_fingerprint, dtype=dtype)
    path = Path(cache_dir or default_cache_dir()) / fingerprint[:16] / f"{split}.h5"
    store = _open_current(path, fingerprint, console)
    if store is not None:
        return store
    path.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(path, console):
        store = _open_current(path, fingerprint, console)  # packed by another process meanwhile
        if store is not None:
            return store
        clips = _non_empty(dataset.clips(split), dataset, split)
        with _pack_progress(console, f"packing {split} of {dataset.describe()}") as progress:
            return pack_split(clips, dataset.format, path, fingerprint=fingerprint, dtype=dtype,
                              progress=progress)


# ---- packing helpers


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

    def extend(self, values: Sequence[str]) -> None:
        for start in range(0, len(values), _STRING_BLOCK):
            self.pending = list(values[start:start + _STRING_BLOCK])
            self.flush()

    def flush(self) -> None:
        start = self.dataset.shape[0]
        self.dataset.resize((start + len(self.pending),))
        if self.pending:
            self.dataset[start:] = np.array(self.pending, dtype=object)
        self.pending = []


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


def _checked_target(path: str | Path, dtype: str) -> Path:
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


class _Moments:
    """Per-feature float64 sums of (x - shift) and (x - shift)**2.

    The shift (the first clip's mean) keeps the variance free of cancellation for features
    far from zero, e.g. millimetre-scale positions.
    """

    def __init__(self, feature_shape: tuple[int, ...]):
        self.shift: np.ndarray | None = None
        self.sum = np.zeros(feature_shape, dtype=np.float64)
        self.sum_squares = np.zeros(feature_shape, dtype=np.float64)

    def add(self, motion: np.ndarray) -> None:
        """Accumulate (T, *F) frames."""
        if len(motion) == 0:
            return
        if self.shift is None:
            self.shift = motion.mean(axis=0, dtype=np.float64)
        centred = motion - self.shift
        self.sum += centred.sum(axis=0)
        self.sum_squares += np.einsum("t...,t...->...", centred, centred)


def _checked_motion(motion: np.ndarray, clip_id: str, fmt: MotionFormat, dtype: str) -> np.ndarray:
    """Frames as float32 (T, *F); DataError naming the clip if they are unusable."""
    motion = np.asarray(motion, dtype=np.float32)
    if motion.shape[1:] != tuple(fmt.feature_shape):
        raise DataError(f"clip '{clip_id}': frames have shape {motion.shape}, but format '{fmt.name}' "
                        f"needs (frames, {', '.join(map(str, fmt.feature_shape))})")
    finite = np.isfinite(motion)
    if not finite.all():
        frame = int(np.argwhere(~finite)[0][0])
        raise DataError(f"clip '{clip_id}': NaN or Inf values (first at frame {frame}); "
                        f"fix or remove the clip's file")
    if dtype == "float16" and motion.size and np.abs(motion).max() > FLOAT16_MAX:
        raise DataError(f"clip '{clip_id}': values beyond the float16 range (±{FLOAT16_MAX:g}); "
                        f"pack with dtype float32")
    return motion


def _copy_frames(raw: Path, f: h5py.File, shape: tuple[int, ...], dtype: str) -> None:
    """Copy the raw frame file into the contiguous ``frames`` dataset, block by block."""
    frames = f.create_dataset("frames", shape=shape, dtype=dtype)  # contiguous: no chunks, no filters
    if shape[0] == 0:
        return
    source = np.memmap(raw, dtype=dtype, mode="r", shape=shape)
    rows = max(1, _COPY_BYTES // (source.itemsize * int(np.prod(shape[1:], dtype=np.int64))))
    for start in range(0, shape[0], rows):
        frames[start:start + rows] = source[start:start + rows]
    del source


def _write_index(f: h5py.File, offsets: np.ndarray, moments: _Moments, fmt: MotionFormat,
                 fingerprint: str, dtype: str) -> None:
    """Offsets, statistics and attributes: everything but frames, ids and texts."""
    f.create_dataset("offsets", data=offsets)
    stats = f.create_group("stats")
    stats["shift"] = moments.shift if moments.shift is not None else np.zeros_like(moments.sum)
    stats["sum"] = moments.sum
    stats["sum_squares"] = moments.sum_squares
    if fmt.mean is not None:
        stats["format_mean"] = np.asarray(fmt.mean, dtype=np.float32)
        stats["format_std"] = np.asarray(fmt.std, dtype=np.float32)
    f.attrs["motionhub_store_version"] = STORE_VERSION
    f.attrs["fingerprint"] = fingerprint
    f.attrs["dtype"] = dtype
    f.attrs["format"] = fmt.name
    f.attrs["feature_shape"] = np.asarray(fmt.feature_shape, dtype=np.int64)
    f.attrs["fps"] = float(fmt.fps)
    f.attrs["slices"] = json.dumps({name: [part.start, part.stop] for name, part in fmt.slices.items()})


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
            "slices": {name: slice(a, b) for name, (a, b) in json.loads(attrs["slices"]).items()}}


def _frames_layout(frames: h5py.Dataset, path: Path) -> tuple[int | None, tuple[int, ...], np.dtype]:
    """(file offset, shape, dtype) of the contiguous ``frames`` dataset."""
    if frames.chunks is not None or frames.compression is not None:
        raise DataError(_unreadable(path, "frames are chunked or compressed, so they cannot be memory-mapped"))
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
    return store if store.fingerprint == fingerprint else None


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


def _non_empty(clips: Iterable[Clip], dataset: Dataset, split: str) -> Iterator[Clip]:
    """``clips`` unchanged; EmptySplitError naming the data set and split if there are none."""
    clips = iter(clips)
    first = next(clips, None)
    if first is None:
        raise EmptySplitError(f"data set {dataset.describe()} has no clips in split '{split}'; "
                              f"check the data set's split files or its arguments in the recipe")
    return itertools.chain([first], clips)


@contextlib.contextmanager
def _pack_progress(console, label: str) -> Iterator[Callable[[int], None] | None]:
    if console is None:
        yield None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn(label), TextColumn("{task.completed:,} clips"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done: bar.update(task, completed=done)
    console.print(f"{label}: done")
