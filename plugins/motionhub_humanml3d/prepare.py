"""Joint positions -> HumanML3D / KIT-ML features, the way HumanML3D's own pipeline makes them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from motionhub.api import DataError, humanml3d, layouts, load_motion, skeletons

SKELETONS = {"t2m": (skeletons.T2M_SKELETON, layouts.humanml3d_263), "kit": (skeletons.KIT_SKELETON, layouts.kit_251)}


@dataclasses.dataclass
class PrepareSummary:
    clips: int
    frames: int
    out: Path


def prepare_folder(joints_dir: str | Path, out_dir: str | Path, *, skeleton: str = "t2m", uniform: bool = True,
                   progress: Callable[[str], None] | None = None) -> PrepareSummary:
    """Turn every ``<id>.npy`` of joint positions (T, J, 3) in ``joints_dir`` into a data-set folder.

    Writes ``new_joint_vecs/<id>.npy`` (T-1, D) features, ``new_joints/<id>.npy`` (the joint
    positions recovered from those features, as HumanML3D ships them), ``all.txt`` (every id)
    and ``Mean.npy`` / ``Std.npy`` (std averaged within each feature group, as HumanML3D does).
    Split files (train/val/test) are the user's to add.
    """
    if skeleton not in SKELETONS:
        raise DataError(f"unknown skeleton '{skeleton}'; choose one of: {', '.join(SKELETONS)}")
    skel, layout = SKELETONS[skeleton]
    joints_dir, out_dir = Path(joints_dir), Path(out_dir)
    files = sorted(joints_dir.glob("*.npy")) if joints_dir.is_dir() else []
    if not files:
        raise DataError(f"no joint files in {joints_dir}: expected <id>.npy arrays of shape (T, {skel.num_joints}, 3)")
    (out_dir / "new_joint_vecs").mkdir(parents=True, exist_ok=True)
    (out_dir / "new_joints").mkdir(parents=True, exist_ok=True)
    fmt = layout()
    ids, features_all = [], []
    for path in files:
        clip_id = path.stem
        joints = load_motion(path, expected_shape_tail=(skel.num_joints, 3), name=clip_id, min_frames=2)
        try:
            features = humanml3d.features_from_joints(joints, skel, uniform=uniform).astype(np.float32)
        except ValueError as exc:
            raise DataError(f"clip '{clip_id}' ({path}): {exc}") from None
        np.save(out_dir / "new_joint_vecs" / f"{clip_id}.npy", features)
        np.save(out_dir / "new_joints" / f"{clip_id}.npy", fmt.to_joints(features).astype(np.float32))
        ids.append(clip_id)
        features_all.append(features)
        if progress:
            progress(clip_id)
    frames = np.concatenate(features_all).astype(np.float64)
    np.save(out_dir / "Mean.npy", frames.mean(axis=0).astype(np.float32))
    np.save(out_dir / "Std.npy", layouts.group_averaged_std(frames, fmt))
    (out_dir / "all.txt").write_text("".join(f"{i}\n" for i in ids))
    return PrepareSummary(len(ids), len(frames), out_dir)
