"""The motion layouts motionhub knows, as ``MotionFormat`` factories.

HumanML3D 263 (22 joints, 20 fps), KIT-ML 251 (21 joints, 12.5 fps), MotionMillion 272
(22 joints, 30 fps), plain joint positions, and AMPLIFY-style point tracks. Data-set
plugins call these so every plugin that reads one layout describes it the same way.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence

import numpy as np

from motionhub.data.formats import MotionFormat
from motionhub.motion import humanml3d, representation272
from motionhub.motion.skeletons import KIT_SKELETON, T2M_SKELETON, Skeleton


def humanml3d_263(fps: float = 20.0) -> MotionFormat:
    """HumanML3D features of the 22-joint SMPL body skeleton."""
    return _ric_format("humanml3d_263", T2M_SKELETON, fps)


def kit_251(fps: float = 12.5) -> MotionFormat:
    """KIT-ML features of its 21-joint skeleton (millimetre-scale positions)."""
    return _ric_format("kit_251", KIT_SKELETON, fps, mm_per_unit=1.0)


def _ric_format(name: str, skeleton: Skeleton, fps: float, mm_per_unit: float = 1000.0) -> MotionFormat:
    joints = skeleton.num_joints
    return MotionFormat(
        name=name, feature_shape=(humanml3d.feature_dim(joints),), fps=fps,
        slices=humanml3d.slices(joints), skeleton=skeleton,
        joints_fn=functools.partial(humanml3d.recover_from_ric, num_joints=joints),
        mm_per_unit=mm_per_unit,
    )


def motionmillion_272(fps: float = 30.0) -> MotionFormat:
    """MotionMillion / MotionStreamer 272-dim features of the 22 SMPL body joints."""
    return MotionFormat(
        name="motionmillion_272", feature_shape=(representation272.FEATURE_DIM,), fps=fps,
        slices=representation272.slices(), skeleton=T2M_SKELETON,
        joints_fn=representation272.recover_from_local_position,
    )


def joint_positions(skeleton: Skeleton, fps: float) -> MotionFormat:
    """Global joint positions, (J * 3) values per frame."""
    joints = skeleton.num_joints
    return MotionFormat(
        name=f"{skeleton.name}_joints", feature_shape=(joints * 3,), fps=fps,
        slices={"positions": slice(0, joints * 3)}, skeleton=skeleton,
        joints_fn=_unflatten_joints,
    )


def _unflatten_joints(features):
    return features.reshape(*features.shape[:-1], -1, 3)


def point_tracks(views: int, tracks: int, fps: float, image_size: tuple[int, int] | None = None,
                 track_labels: str = "pixel") -> MotionFormat:
    """Point tracks (views, tracks, 2) in (row, col) order, normalised to [-1, 1] by image size;
    ``track_labels`` says how displacements become grid classes (see ``MotionFormat``)."""
    if track_labels not in TRACK_LABELS:
        raise ValueError(f"track labels must be one of {', '.join(TRACK_LABELS)}; got {track_labels!r}")
    return MotionFormat(
        name="point_tracks", feature_shape=(views, tracks, 2), fps=fps,
        slices={"points": slice(0, views * tracks * 2)}, image_size=image_size, track_labels=track_labels,
    )


TRACK_LABELS = ("pixel", "velocity")
COTRACKER_RESOLUTION = (384, 512)  # (height, width) CoTracker3 places its query grid in


def cotracker_grid(points: int, image_size: Sequence[int], resolution: Sequence[int] = COTRACKER_RESOLUTION
                   ) -> np.ndarray:
    """(points, 2) (x, y) pixels of CoTracker's query grid of side sqrt(points) on a (height, width) frame.

    CoTracker places a side x side grid on its model resolution (384 x 512 for CoTracker3),
    inset by a margin of 1/64 of that width on every side, row-major with x varying fastest
    (point n is in grid row n // side and column n % side), and maps it to the frame by
    (W - 1) / (512 - 1) along x and (H - 1) / (384 - 1) along y. One point sits in the centre.
    Track data sets that store velocities place their first frame on it.
    """
    side = math.isqrt(points)
    if side * side != points:
        raise ValueError(f"a query grid has a square number of points; got {points}")
    height, width = (float(s) for s in image_size)
    model_h, model_w = (float(s) for s in resolution)
    if side == 1:
        return np.array([[width / 2, height / 2]])
    margin = model_w / 64
    ys = np.linspace(margin, model_h - margin, side) * (height - 1) / (model_h - 1)
    xs = np.linspace(margin, model_w - margin, side) * (width - 1) / (model_w - 1)
    rows, cols = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([cols.ravel(), rows.ravel()], axis=-1)


def average_over_groups(values: np.ndarray, groups: Iterable[slice | Sequence[int] | np.ndarray]) -> np.ndarray:
    """A copy of ``values`` (D,) in which the entries of each group share the group's mean.

    A group is a slice or an index array of ``values``; groups must not overlap. Entries in
    no group keep their own value. This is how per-slice statistics are pooled: the
    HumanML3D / 272 std averaged within each named slice, PFNN's std shared by column groups.
    """
    values = np.asarray(values)
    out = values.copy()
    for group in groups:
        out[group] = values[group].mean()
    return out


def group_averaged_std(features: np.ndarray, fmt: MotionFormat, floor: float = 1e-3) -> np.ndarray:
    """Std per feature, averaged within each named slice (the HumanML3D / 272 convention).

    ``features`` is (N, D). A floor keeps constant channels (e.g. contacts that never fire)
    from dividing by zero. Features in no slice keep their own std.
    """
    std = average_over_groups(features.std(axis=0), fmt.slices.values())
    return np.maximum(std, floor).astype(np.float32)
