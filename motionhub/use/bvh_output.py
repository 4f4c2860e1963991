"""Decoded (or any) 263 / 272 features written as BVH files that Blender or MotionBuilder open.

The skeleton and rotations are :mod:`motionhub.motion.smpl_bvh`'s: the 22 SMPL body joints,
rotations from the features' rotation channels fitted onto the positions they recover, the
root position from the root channels; lengths in centimetres.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from motionhub.data.folders import atomic_folder, check_clip_file_names, check_new_folder
from motionhub.data.formats import MotionFormat
from motionhub.errors import MotionhubError
from motionhub.motion import smpl_bvh

BUILDERS = {"humanml3d_263": smpl_bvh.from_humanml3d, "motionmillion_272": smpl_bvh.from_representation272}
"""Format name -> the function that turns its features into a :class:`smpl_bvh.SkeletonAnimation`."""

UNITS_PER_METRE = 100.0  # BVH files are written in centimetres, what DCC importers assume by default


def check_bvh_format(fmt: MotionFormat) -> None:
    """``MotionhubError`` unless features of ``fmt`` can be written as BVH (checked before long work)."""
    if fmt.name not in BUILDERS:
        raise MotionhubError(f"format '{fmt.name}' cannot be written as BVH: BVH output needs the 22-joint "
                             f"SMPL body of {' or '.join(BUILDERS)} features; write this run's output as .h5")


def skeleton_animation(fmt: MotionFormat, features: np.ndarray, rotations: bool = True) -> smpl_bvh.SkeletonAnimation:
    """The BVH skeleton and animation of one clip's de-normalised features (T, D) of ``fmt``."""
    check_bvh_format(fmt)
    features = np.asarray(features, dtype=np.float64)
    if len(features) < 2:
        raise MotionhubError(f"a BVH needs at least 2 frames of features, got {len(features)}")
    return BUILDERS[fmt.name](features, fmt.fps, rotations=rotations)


def bvh_of(fmt: MotionFormat, features: np.ndarray, rotations: bool = True) -> str:
    """The text of the BVH file of one clip's features (T, D)."""
    return smpl_bvh.bvh_text(skeleton_animation(fmt, features, rotations), UNITS_PER_METRE)


def write_bvh_files(texts: dict[Path, str]) -> list[Path]:
    """Write each text to its path, all or none: every file goes to a temporary name beside its
    target first, and the renames happen once all are written."""
    partial: list[tuple[Path, Path]] = []
    try:
        for path, text in texts.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            with os.fdopen(handle, "w", encoding="utf-8") as f:
                f.write(text)
            partial.append((Path(temporary), path))
        for temporary, path in partial:
            temporary.replace(path)
    except BaseException:
        for temporary, _ in partial:
            temporary.unlink(missing_ok=True)
        raise
    return list(texts)


def check_new_bvh_folder(folder: Path) -> None:
    """``MotionhubError`` unless ``folder`` is absent or empty (checked before any long work)."""
    check_new_folder(folder, "the BVH files")


def write_bvh_folder(folder: Path, fmt: MotionFormat, features: np.ndarray, offsets: np.ndarray,
                     ids: Sequence[str], progress=None) -> Path:
    """``<folder>/<clip id>.bvh`` for every clip (clip i is ``features[offsets[i]:offsets[i+1]]``).

    ``folder`` must be absent or empty; it is filled beside itself and renamed into place once
    complete. Ids with ``/`` make sub-folders.
    """
    check_bvh_format(fmt)
    folder = Path(folder)
    check_new_bvh_folder(folder)
    check_clip_file_names(ids, folder)
    with atomic_folder(folder) as partial:
        for i, clip_id in enumerate(ids):
            target = partial / f"{clip_id}.bvh"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(bvh_of(fmt, features[offsets[i]:offsets[i + 1]]), encoding="utf-8")
            if progress is not None:
                progress(clip_id)
    return folder
