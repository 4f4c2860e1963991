"""Track files on disk: discovery, the train / val / test split by file, and the fingerprint.

A file's *key* is its path relative to the data root without the ``.h5`` / ``.hdf5`` suffix,
in POSIX form (``S1_Cheese_C1``, ``gtea/S1_Cheese_C1``). Keys name files in recipes and ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from motionhub.api import DataError, did_you_mean

SUFFIXES = (".h5", ".hdf5")


def file_key(name: str) -> str:
    """The key a recipe entry names: the relative path without an .h5 / .hdf5 suffix."""
    path = Path(name)
    return (path.with_suffix("") if path.suffix in SUFFIXES else path).as_posix()


def find_track_files(root: Path) -> dict[str, Path]:
    """{key: path} of every .h5 / .hdf5 file under ``root`` (recursively), sorted by key."""
    if not root.is_dir():
        raise DataError(f"track folder {root} does not exist; set data.root to the folder holding "
                        f"the .h5 / .hdf5 track files (one per video, with root/<view>/tracks)")
    found: dict[str, Path] = {}
    for path in sorted(p for p in root.rglob("*") if p.suffix in SUFFIXES and p.is_file()):
        key = file_key(path.relative_to(root).as_posix())
        if key in found:
            raise DataError(f"{found[key]} and {path} are the same video ('{key}'); keep one of them")
        found[key] = path
    if not found:
        raise DataError(f"no .h5 or .hdf5 track files under {root}; expected one file per video "
                        f"with datasets root/<view>/tracks (T, horizon, tracks, 2)")
    return dict(sorted(found.items()))


def split_by_lists(keys: Sequence[str], lists: Mapping[str, Sequence[str] | None], root: Path) -> dict[str, str]:
    """{key: split} from explicit file lists; unlisted files go to train unless train is listed too.

    ``lists`` maps a split to its recipe entries (None = not given). Files in no split are
    left out of the data set.
    """
    known = set(keys)
    split_of: dict[str, str] = {}
    for split, entries in lists.items():
        for entry in entries or ():
            key = file_key(entry)
            if key not in known:
                raise DataError(f"data.{split}_files names '{entry}', which is not a track file under "
                                f"{root}{did_you_mean(key, keys)} ({len(keys)} files found; name them "
                                f"by their path relative to data.root, with or without .h5 / .hdf5)")
            if split_of.setdefault(key, split) != split:
                raise DataError(f"'{entry}' is listed in both data.{split_of[key]}_files and data.{split}_files; "
                                f"a file belongs to one split")
    if lists.get("train") is None:
        split_of.update({key: "train" for key in keys if key not in split_of})
    return {key: split_of[key] for key in keys if key in split_of}


def split_by_fraction(keys: Sequence[str], val_fraction: float, test_fraction: float, seed: int,
                      what: str = "track files") -> dict[str, str]:
    """{key: split}: files ranked by a seeded hash of their key; the first go to val, the next to test.

    Counts are ``round(n * fraction)``, at least one file for a fraction above zero. The rank of
    a file depends only on its key and the seed, so adding files moves few others. ``what``
    names the keys in messages (another data set splits segments, not files).
    """
    ranked = sorted(keys, key=lambda key: hashlib.sha256(f"{seed}/{key}".encode()).hexdigest())
    n_val, n_test = _count(len(keys), val_fraction), _count(len(keys), test_fraction)
    if n_val + n_test >= len(keys):
        raise DataError(f"only {len(keys)} {what}: holding out {n_val} for val and {n_test} for test "
                        f"leaves none to train on; lower data.val_fraction / data.test_fraction")
    split_of = {key: "val" for key in ranked[:n_val]}
    split_of.update({key: "test" for key in ranked[n_val:n_val + n_test]})
    return {key: split_of.get(key, "train") for key in keys}


def _count(total: int, fraction: float) -> int:
    return max(1, round(total * fraction)) if fraction > 0 else 0


def fingerprint(paths: Iterable[Path], root: Path) -> str:
    """Hash of the files' relative names, sizes and modification times."""
    digest = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.relative_to(root).as_posix()}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()
