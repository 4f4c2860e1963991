"""Joint positions -> HumanML3D / KIT-ML features, the way HumanML3D's own pipeline makes them.

The joints come from a folder of ``(T, J, 3)`` arrays (:func:`prepare_folder`) or from a folder of
BVH files of any skeleton (:func:`prepare_bvh_folder`), which the ``bvh_smpl`` data set (the bvh
plugin's, found by name in the registry) maps to the 22 SMPL joints, in metres, Y up, at 20 fps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from motionhub.api import DataError, atomic_folder, check_new_folder, get_registry, humanml3d, layouts, load_motion, skeletons

SKELETONS = {"t2m": (skeletons.T2M_SKELETON, layouts.humanml3d_263), "kit": (skeletons.KIT_SKELETON, layouts.kit_251)}
BVH_DATASET = "bvh_smpl"  # the data set that reads BVH files as SMPL joints


@dataclasses.dataclass
class PrepareSummary:
    clips: int
    frames: int
    out: Path
    notes: list[str] = dataclasses.field(default_factory=list)  # e.g. which clips were skipped, and why


def prepare_folder(joints_dir: str | Path, out_dir: str | Path, *, skeleton: str = "t2m", uniform: bool = True,
                   progress: Callable[[str], None] | None = None) -> PrepareSummary:
    """Turn every ``<id>.npy`` of joint positions (T, J, 3) in ``joints_dir`` into a data-set folder.

    Writes ``new_joint_vecs/<id>.npy`` (T-1, D) features, ``new_joints/<id>.npy`` (the joint
    positions recovered from those features, as HumanML3D ships them), ``all.txt`` (every id)
    and ``Mean.npy`` / ``Std.npy`` (std averaged within each feature group, as HumanML3D does).
    Split files (train/val/test) are the user's to add. ``out_dir`` must be absent or empty; it
    is filled beside itself and renamed into place once every clip is done.
    """
    if skeleton not in SKELETONS:
        raise DataError(f"unknown skeleton '{skeleton}'; choose one of: {', '.join(SKELETONS)}")
    skel, _ = SKELETONS[skeleton]
    joints_dir = Path(joints_dir)
    files = sorted(joints_dir.glob("*.npy")) if joints_dir.is_dir() else []
    if not files:
        raise DataError(f"no joint files in {joints_dir}: expected <id>.npy arrays of shape (T, {skel.num_joints}, 3)")

    def clips() -> Iterator[tuple[str, np.ndarray, str]]:
        for path in files:
            joints = load_motion(path, expected_shape_tail=(skel.num_joints, 3), name=path.stem, min_frames=2)
            yield path.stem, joints, str(path)

    return write_features(clips(), out_dir, skeleton=skeleton, uniform=uniform, progress=progress)


def bvh_joint_source(bvh_dir: str | Path, joint_map: str, *, unit: str | None = None, up_axis: str | None = None,
                     on_bad: str = "stop"):
    """The ``bvh_smpl`` data set of ``bvh_dir``: every file in its train split, joints as (T, 66) metres."""
    registry = get_registry()
    if BVH_DATASET not in registry.names("dataset"):
        raise DataError(f"reading BVH files needs the '{BVH_DATASET}' data set of the motionhub_bvh plugin, which "
                        f"is not loaded (see 'motionhub plugins')")
    cls = registry.get("dataset", BVH_DATASET).cls
    return cls(root=str(bvh_dir), joint_map=joint_map, unit=unit, up_axis=up_axis, fps=20.0, val_fraction=0.0,
               on_bad=on_bad)


def prepare_bvh_folder(bvh_dir: str | Path, out_dir: str | Path, *, joint_map: str, unit: str | None = None,
                       up_axis: str | None = None, uniform: bool = True, on_bad: str = "stop",
                       progress: Callable[[str], None] | None = None, source=None) -> PrepareSummary:
    """Turn every ``<id>.bvh`` in ``bvh_dir`` into a HumanML3D (263) data-set folder, as :func:`prepare_folder`.

    ``joint_map`` (a shipped name or a YAML/JSON file), ``unit``, ``up_axis`` and ``on_bad`` are
    the ``bvh_smpl`` data set's; the clips are resampled to 20 fps before the features are made.
    ``source``: that data set already built from them (:func:`bvh_joint_source`), e.g. to check
    the joint map before a progress bar starts.
    """
    if source is None:
        source = bvh_joint_source(bvh_dir, joint_map, unit=unit, up_axis=up_axis, on_bad=on_bad)

    def clips() -> Iterator[tuple[str, np.ndarray, str]]:
        kept = 0
        try:
            for clip in source.clips("train"):
                kept += 1
                yield clip.id, clip.motion.reshape(len(clip.motion), 22, 3), str(source.source.files[clip.id])
        except DataError as exc:  # the data set's advice names its recipe key; here it is an option
            raise DataError(str(exc).replace("set data.on_bad: skip", "pass --on-bad skip")) from None
        if not kept:
            raise DataError(f"no BVH file in {bvh_dir} could be used ({'; '.join(source.packing_notes('train'))}); "
                            f"run without --on-bad skip to see the first file's problem in full")

    summary = write_features(clips(), out_dir, skeleton="t2m", uniform=uniform, progress=progress)
    summary.notes = source.packing_notes("train")
    return summary


def count_bvh_files(bvh_dir: str | Path) -> int:
    return len(list(Path(bvh_dir).glob("*.bvh")))


def write_features(clips: Iterable[tuple[str, np.ndarray, str]], out_dir: str | Path, *, skeleton: str,
                   uniform: bool, progress: Callable[[str], None] | None = None) -> PrepareSummary:
    """Features, recovered joints, ``all.txt`` and statistics of ``(id, joints (T, J, 3), source)`` clips,
    written into a new folder beside ``out_dir`` and renamed into place once all are done."""
    skel, layout = SKELETONS[skeleton]
    out_dir = Path(out_dir)
    check_new_folder(out_dir, "the data set")
    with atomic_folder(out_dir) as partial:
        (partial / "new_joint_vecs").mkdir()
        (partial / "new_joints").mkdir()
        fmt = layout()
        ids, features_all = [], []
        for clip_id, joints, source in clips:
            try:
                features = humanml3d.features_from_joints(joints, skel, uniform=uniform).astype(np.float32)
            except ValueError as exc:
                raise DataError(f"clip '{clip_id}' ({source}): {exc}") from None
            np.save(partial / "new_joint_vecs" / f"{clip_id}.npy", features)
            np.save(partial / "new_joints" / f"{clip_id}.npy", fmt.to_joints(features).astype(np.float32))
            ids.append(clip_id)
            features_all.append(features)
            if progress:
                progress(clip_id)
        if not ids:
            raise DataError("no clips to prepare")
        frames = np.concatenate(features_all).astype(np.float64)
        np.save(partial / "Mean.npy", frames.mean(axis=0).astype(np.float32))
        np.save(partial / "Std.npy", layouts.group_averaged_std(frames, fmt))
        (partial / "all.txt").write_text("".join(f"{i}\n" for i in ids))
    return PrepareSummary(len(ids), len(frames), out_dir)
