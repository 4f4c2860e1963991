"""Output folders that appear whole or not at all: a folder of token files, BVH files, a
prepared data set or a package is filled beside its name and renamed into place once complete,
so a crash or a bad clip never leaves a half-written folder that looks finished."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from motionhub.errors import MotionhubError


def check_new_folder(folder: str | Path, holding: str) -> None:
    """``MotionhubError`` unless ``folder`` is absent or empty; ``holding`` says what it was to hold
    ("the token files"). Call it before any long work, so a mistake costs nothing."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise MotionhubError(f"'{folder}' already exists and is not an empty folder; name a new folder for "
                             f"{holding}, or remove the old one")


def check_clip_file_names(ids: Iterable[str], folder: str | Path) -> None:
    """Clip ids become file names inside ``folder`` (``/`` makes sub-folders); none may leave it."""
    for clip_id in ids:
        parts = Path(clip_id).parts
        if Path(clip_id).is_absolute() or ".." in parts or not parts:
            raise MotionhubError(f"clip id {clip_id!r} cannot be a file name inside '{folder}'")


@contextlib.contextmanager
def atomic_folder(folder: str | Path) -> Iterator[Path]:
    """A new hidden folder beside ``folder`` to fill; it becomes ``folder`` when the block ends and
    is removed, with everything in it, when the block raises.

    ``folder`` must be absent or empty (``check_new_folder``): an empty one is replaced.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
    try:
        yield partial
        if folder.exists():
            folder.rmdir()  # empty, as the caller checked
        partial.rename(folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
