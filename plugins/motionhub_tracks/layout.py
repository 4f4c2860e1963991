"""The AMPLIFY / LAPS track-file layout: checking it and reading the tracks.

One HDF5 file per video. Per camera view ``<view>``:

* ``root/<view>/tracks``: (T, H, N, 2) float (x, y) pixel positions. Entry ``t`` is the
  window of ``H`` frames starting at frame ``t``, tracked from a fresh grid of ``N`` query
  points placed at frame ``t`` (re-initialised tracking). Track ``n`` of window ``t`` and
  track ``n`` of window ``t + 1`` are different scene points that start at the same grid
  position, so windows cannot be chained into longer tracks. Windows near the end of a video
  repeat its last frame.
* ``root/<view>/vis``: (T, H, N) visibility. Not read: samples carry positions only, as the
  reference tokenizer's do.
* attributes ``height`` and ``width``: the tracked frame size in pixels, looked up on
  ``root/<view>``, then ``root``, then the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np

from motionhub.api import DataError, did_you_mean

EXPECTED = "expected root/<view>/tracks of shape (T, horizon, tracks, 2) in (x, y) pixels"


@dataclasses.dataclass(frozen=True)
class TrackFile:
    """One file's layout for the selected views.

    starts:      T, the number of windows (one per start frame).
    horizon:     H, frames per window.
    tracks:      N, points per window.
    image_sizes: (V,) (height, width) pixels per selected view, in view order.
    """

    path: Path
    key: str
    starts: int
    horizon: int
    tracks: int
    image_sizes: tuple[tuple[int, int], ...]


def file_views(path: Path) -> list[str]:
    """Names of the view groups under ``root`` in ``path``."""
    with _open(path) as file:
        root = file.get("root")
        if not isinstance(root, h5py.Group):
            raise DataError(f"{path}: no group 'root'; {EXPECTED}")
        return [name for name, item in root.items() if isinstance(item, h5py.Group)]


def inspect_file(path: Path, key: str, views: Sequence[str], image_size: Sequence[int] | None) -> TrackFile:
    """Check the layout of ``path`` for ``views`` without reading the tracks.

    ``image_size`` (height, width) serves views whose file has no size attributes.
    Raises DataError naming the file and what is expected.
    """
    with _open(path) as file:
        root = file.get("root")
        if not isinstance(root, h5py.Group):
            raise DataError(f"{path}: no group 'root'; {EXPECTED}")
        shapes, sizes = [], []
        for view in views:
            shapes.append(_tracks_shape(path, root, view))
            sizes.append(_image_size(path, file, view, image_size))
    for view, shape in zip(views[1:], shapes[1:]):
        if shape != shapes[0]:
            raise DataError(f"{path}: root/{view}/tracks has shape {shape} but root/{views[0]}/tracks has "
                            f"{shapes[0]}; every view needs the same start frames, horizon and track count")
    starts, horizon, tracks, _ = shapes[0]
    return TrackFile(path, key, starts, horizon, tracks, tuple(sizes))


def read_tracks(info: TrackFile, views: Sequence[str]) -> np.ndarray:
    """(T, H, V, N, 2) float32 (x, y) pixel positions of ``views``, as stored."""
    with _open(info.path) as file:
        per_view = [file[f"root/{view}/tracks"][()] for view in views]
    return np.stack(per_view, axis=2).astype(np.float32, copy=False)


@contextlib.contextmanager
def _open(path: Path) -> Iterator[h5py.File]:
    """``path`` opened for reading; HDF5 read failures anywhere in the block become a DataError."""
    try:
        with h5py.File(path, "r") as file:
            yield file
    except OSError as exc:
        raise DataError(f"{path}: cannot be read as HDF5 ({exc}); the file is damaged or not a track "
                        f"file ({EXPECTED})") from None


def _tracks_shape(path: Path, root: h5py.Group, view: str) -> tuple[int, ...]:
    group = root.get(view)
    if not isinstance(group, h5py.Group):
        available = [name for name, item in root.items() if isinstance(item, h5py.Group)]
        raise DataError(f"{path}: no view '{view}' (group root/{view}){did_you_mean(view, available) or '.'} "
                        f"Views in the file: {', '.join(available) or '(none)'}; choose them with data.views")
    tracks = group.get("tracks")
    if not isinstance(tracks, h5py.Dataset):
        raise DataError(f"{path}: no dataset root/{view}/tracks; {EXPECTED}")
    shape = tuple(tracks.shape or ())
    if len(shape) != 4 or shape[-1] != 2 or not np.issubdtype(tracks.dtype, np.number):
        raise DataError(f"{path}: root/{view}/tracks has shape {shape} and dtype {tracks.dtype}; {EXPECTED}")
    if shape[0] < 1 or shape[1] < 2 or shape[2] < 1:
        raise DataError(f"{path}: root/{view}/tracks has shape {shape}; expected at least one start frame, "
                        f"a horizon of at least 2 frames and at least one track")
    return shape


def _image_size(path: Path, file: h5py.File, view: str, fallback: Sequence[int] | None) -> tuple[int, int]:
    """(height, width) from the first of root/<view>, root and the file with size attributes."""
    for where, obj in ((f"root/{view}", file["root"][view]), ("root", file["root"]), ("the file", file)):
        present = [name for name in ("height", "width") if name in obj.attrs]
        if not present:
            continue
        if len(present) == 1:
            missing = "width" if present == ["height"] else "height"
            raise DataError(f"{path}: {where} has a '{present[0]}' attribute but no '{missing}'; "
                            f"expected both, in pixels")
        height, width = _pixels(obj.attrs["height"]), _pixels(obj.attrs["width"])
        if height is None or width is None:
            shown = [np.asarray(obj.attrs[name]).tolist() for name in ("height", "width")]
            raise DataError(f"{path}: {where} has height {shown[0]!r} and width {shown[1]!r}; "
                            f"expected positive whole numbers of pixels")
        return height, width
    if fallback is None:
        raise DataError(f"{path}: no 'height' / 'width' attributes on root/{view}, root or the file; "
                        f"set data.image_size: [height, width] to the tracked frame size in pixels")
    return int(fallback[0]), int(fallback[1])


def _pixels(value) -> int | None:
    """A positive whole number from an attribute value (scalar or one-element array), else None."""
    array = np.asarray(value)
    if array.size != 1 or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        return None
    number = float(array.reshape(()))
    return int(number) if np.isfinite(number) and number > 0 and number.is_integer() else None
