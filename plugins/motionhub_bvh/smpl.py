"""The ``bvh_smpl`` data set: BVH files of any skeleton as the 22 SMPL body joints HumanML3D uses.

Each clip goes through, in order:

1. **Resampling** to ``fps`` (20, HumanML3D's rate): every output frame at time k/fps lies
   between two BVH frames (a Frame Time rounded from a whole frame rate counts as that rate);
   joint rotations are slerped and root positions interpolated linearly between them, then
   forward kinematics places the joints (bones keep their length).
2. **Joint map** (:mod:`.joint_maps`): each SMPL joint is one source joint or a weighted mix.
3. **Unit**: to metres. BVH files do not say their unit; without an explicit ``unit`` it is the one
   unit (of mm, cm, m, inch, cmu) that makes the first file's rest pose human-sized (0.8 to
   2.5 m), and the files are refused when none or several do.
4. **Up axis**: to Y up. Without an explicit ``up_axis`` it is the axis (±X, ±Y, ±Z) along which
   the head stands above the ankles, averaged over the clip, when that axis holds at least
   :data:`UP_SHARE` of the head-over-ankles vector; otherwise the clip is refused.
5. **Handedness**: HumanML3D turns every clip to face +Z itself, from the hips and shoulders; the
   facing it derives is checked against the feet (ankle to toe), which point forward on any
   skeleton. Mirrored files (left-handed axes, or a map that swaps the sides) are refused.

Joint positions come out as (T, 22 * 3) float32 metres, Y up, at ``fps``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from typing import Literal, Optional

import numpy as np

from motionhub.api import Clip, ClipError, DataError, Dataset, layouts
from motionhub.motion.rotations import matrix_to_quat, quat_slerp, quat_to_matrix
from motionhub.motion.skeletons import T2M_SKELETON, global_transforms

from .bvh import BVHMotion
from .dataset import HUMAN_SPAN_M, MM_PER_UNIT, BVHFolder, Unit, rest_span, unit_problem
from .joint_maps import SMPL_JOINTS, JointMap, resolve_joint_map

UpAxis = Literal["y", "-y", "z", "-z", "x", "-x"]

UP_SHARE = 0.8
"""Share of the head-over-ankles vector one axis must hold to be told the up axis."""
ROUNDED_FPS = 1e-4
"""A frame rate this close (relative) to a whole number is that number: its Frame Time was rounded."""
MIN_BONE_M = 0.01
"""A mapped bone shorter than this on average is two SMPL joints put in one place."""

_INDEX = {name: SMPL_JOINTS.index(name) for name in SMPL_JOINTS}


UP_ROTATIONS = {
    "y": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "-y": ((1, 0, 0), (0, -1, 0), (0, 0, -1)),  # a half turn about X
    "z": ((1, 0, 0), (0, 0, 1), (0, -1, 0)),  # (x, y, z) -> (x, z, -y): Z-up files, +Y becomes -Z
    "-z": ((1, 0, 0), (0, 0, -1), (0, 1, 0)),
    "x": ((0, -1, 0), (1, 0, 0), (0, 0, 1)),
    "-x": ((0, 1, 0), (-1, 0, 0), (0, 0, 1)),
}
"""Proper rotations (rows) that turn each up axis onto +Y."""


def up_rotation(up: str) -> np.ndarray:
    """The rotation (3, 3) that turns the ``up`` axis (``"z"``, ``"-y"``, ...) onto +Y."""
    return np.array(UP_ROTATIONS[up], dtype=np.float64)


def detect_up_axis(positions: np.ndarray) -> tuple[str | None, np.ndarray]:
    """The up axis of SMPL joint positions (T, 22, 3), or None when no axis holds :data:`UP_SHARE`
    of the mean head-over-ankles vector; also returns that unit vector."""
    ankles = 0.5 * (positions[:, _INDEX["left_ankle"]] + positions[:, _INDEX["right_ankle"]])
    vector = (positions[:, _INDEX["head"]] - ankles).mean(axis=0)
    norm = np.linalg.norm(vector)
    if not norm > 0:
        return None, vector
    vector = vector / norm
    axis = int(np.argmax(np.abs(vector)))
    if abs(vector[axis]) < UP_SHARE:
        return None, vector
    return ("-" if vector[axis] < 0 else "") + "xyz"[axis], vector


def facing_agreement(positions: np.ndarray) -> float:
    """Mean cosine (over frames) between the forward direction HumanML3D derives from hips and
    shoulders and the feet's ankle-to-toe direction, both on the floor plane, of Y-up (T, 22, 3)."""
    i = _INDEX
    across = (positions[:, i["right_hip"]] - positions[:, i["left_hip"]]
              + positions[:, i["right_shoulder"]] - positions[:, i["left_shoulder"]])
    forward = np.cross(np.array([0.0, 1.0, 0.0]), across)
    feet = (positions[:, i["left_foot"]] - positions[:, i["left_ankle"]]
            + positions[:, i["right_foot"]] - positions[:, i["right_ankle"]]) * np.array([1.0, 0.0, 1.0])
    norms = np.linalg.norm(forward, axis=-1) * np.linalg.norm(feet, axis=-1)
    valid = norms > 1e-9
    if not valid.any():
        return 0.0
    return float(((forward * feet).sum(-1)[valid] / norms[valid]).mean())


def source_fps(frame_time: float) -> float:
    """The frame rate of a BVH ``Frame Time``: a whole number of frames per second where the time
    is that rounded (0.008333 s is 120 fps, not 120.005), else its inverse."""
    fps = 1.0 / frame_time
    whole = round(fps)
    return float(whole) if whole > 0 and abs(fps - whole) < ROUNDED_FPS * fps else fps


def resample(motion: BVHMotion, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Local rotations (T', J, 3, 3) and positions (T', J, 3) of ``motion`` at ``fps``.

    Output frame k is at k / fps seconds, for every k up to the clip's last frame time (at
    :func:`source_fps`); rotations are slerped and positions interpolated linearly between the
    two BVH frames around it.
    """
    frames, rate = motion.num_frames, source_fps(motion.frame_time)
    if frames < 2 or abs(rate - fps) < 1e-9 * fps:
        return motion.local_rotations, motion.local_positions
    duration = (frames - 1) / rate
    times = np.arange(int(np.floor(duration * fps + 1e-9)) + 1) / fps
    where = np.minimum(times * rate, frames - 1)
    before = np.minimum(np.floor(where).astype(np.int64), frames - 2)
    weight = (where - before)[:, None, None]
    quats = matrix_to_quat(motion.local_rotations)
    rotations = quat_to_matrix(quat_slerp(quats[before], quats[before + 1], weight))
    positions = motion.local_positions[before] * (1 - weight) + motion.local_positions[before + 1] * weight
    return rotations, positions


def resolve_unit(folder: BVHFolder, unit: Optional[str]) -> tuple[str, float]:
    """(unit, mm per unit) of the folder's files: ``unit`` when given (refused when 10 times off a
    human), else the one unit that makes the first file's rest pose human-sized."""
    span = rest_span(folder.header)
    if unit is not None:
        problem, refuse = unit_problem(span, unit, folder.first_file)
        if refuse:
            raise DataError(problem.replace("data.unit", "unit"))
        return unit, MM_PER_UNIT[unit]
    low, high = HUMAN_SPAN_M
    fitting = {name: span * mm / 1000.0 for name, mm in MM_PER_UNIT.items() if low <= span * mm / 1000.0 <= high}
    if len(fitting) == 1:
        name = next(iter(fitting))
        return name, MM_PER_UNIT[name]
    sizes = ", ".join(f"{metres:.2f} m in {name}" for name, metres in fitting.items())
    why = (f"several units make it human-sized ({sizes})" if fitting
           else f"no unit ({', '.join(MM_PER_UNIT)}) makes it {low:g} to {high:g} m")
    raise DataError(f"cannot tell the unit of the BVH files in {folder.root}: the rest pose of "
                    f"{folder.first_file.name} spans {span:.4g} file units and {why}. Give the unit "
                    f"(prepare --unit, or unit: in a recipe), one of {', '.join(MM_PER_UNIT)}")


class BVHSMPLFolder(Dataset):
    """BVH files of any skeleton as the 22 SMPL body joints (T, 66), metres, Y up, at ``fps``."""

    def __init__(self, root: str, joint_map: str, unit: Optional[Unit] = None, up_axis: Optional[UpAxis] = None,
                 fps: float = 20.0, train: Optional[list[str]] = None, val: Optional[list[str]] = None,
                 test: Optional[list[str]] = None, val_fraction: float = 0.1, test_fraction: float = 0.0,
                 seed: int = 0, on_bad: Literal["stop", "skip"] = "stop"):
        """
        Args:
            root: folder of ``<name>.bvh`` files, one skeleton and frame rate.
            joint_map: a shipped map (cmu31, pfnn, smpl22) or a .yaml/.json file: SMPL joint -> source joint or mix.
            unit: the files' unit; default: the one unit that makes the skeleton human-sized (else refused).
            up_axis: the files' up axis; default: told per clip from head over ankles (else refused).
            fps: frames per second to resample to (HumanML3D: 20).
            train, val, test: clip names of each split (see the bvh data set).
            val_fraction, test_fraction: shares of the files shuffled into val and test.
            seed: seed of that shuffle.
            on_bad: an unusable clip stops reading, or is skipped and counted.
        """
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if up_axis is not None and up_axis not in UP_ROTATIONS:
            raise ValueError(f"up_axis must be one of y, -y, z, -z, x, -x; got {up_axis!r}")
        self.source = BVHFolder(root, mm_per_unit=1.0, unit_check=False, train=train, val=val, test=test,
                                val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, on_bad=on_bad)
        self.unit, self.mm_per_unit = resolve_unit(self.source, unit)
        self.joint_map: JointMap = resolve_joint_map(joint_map, self.source.header.joint_names,
                                                     f"the BVH skeleton of {self.source.first_file.name}")
        self.up_axis = up_axis
        self.fps = float(fps)
        fmt = layouts.joint_positions(T2M_SKELETON, fps=self.fps)
        self.format = dataclasses.replace(fmt, mm_per_unit=1000.0)
        self.split_ids = self.source.split_ids

    def clips(self, split: str) -> Iterator[Clip]:
        """Clips of ``split``: SMPL joint positions (T, 66) float32, metres, Y up, at ``fps``."""
        if split not in self.split_ids:
            raise ValueError(f"unknown split '{split}'; splits: {', '.join(self.split_ids)}")
        return self.source.policy.read(split, self.split_ids[split], self._load_clip)

    def clip_ids(self, split: str) -> list[str]:
        return list(self.split_ids[split])

    def packing_notes(self, split: str) -> list[str]:
        return self.source.packing_notes(split)

    def _load_clip(self, clip_id: str) -> Clip:
        return Clip(clip_id, self.smpl_positions(clip_id).reshape(-1, 22 * 3).astype(np.float32))

    def smpl_positions(self, clip_id: str) -> np.ndarray:
        """SMPL joint positions (T, 22, 3) of one clip, float64 metres, Y up, at ``fps``."""
        motion = self.source._read(clip_id)
        rotations, local = resample(motion, self.fps)
        source = global_transforms(motion.parents, rotations, local)[0]
        positions = self.joint_map.apply(source) * (self.mm_per_unit / 1000.0)
        path = self.source.files[clip_id]
        up = self.up_axis
        if up is None:
            up, vector = detect_up_axis(positions)
            if up is None:
                raise ClipError(clip_id, "unknown up axis",
                                f"clip '{clip_id}': cannot tell the up axis of {path}: the head stands above the "
                                f"ankles along ({vector[0]:.2f}, {vector[1]:.2f}, {vector[2]:.2f}) on average, "
                                f"no axis holds {UP_SHARE:.0%} of it (a clip lying down, or a joint map that "
                                f"misplaces the head or ankles). Give the up axis (prepare --up-axis, or "
                                f"up_axis: in a recipe): y, z, -y, -z, x or -x")
        positions = positions @ up_rotation(up).T
        self._check_bones(clip_id, positions)
        if facing_agreement(positions) < 0:
            raise ClipError(clip_id, "mirrored",
                            f"clip '{clip_id}': {path} is mirrored once its up axis ({up}) is turned to +Y: the "
                            f"facing its hips and shoulders give points backwards from its feet. Either the file "
                            f"uses left-handed axes (mirror it first) or the joint map "
                            f"{self.joint_map.name} swaps left and right; HumanML3D's left side is +X when "
                            f"facing +Z with Y up")
        return positions

    def _check_bones(self, clip_id: str, positions: np.ndarray) -> None:
        parents = np.asarray(T2M_SKELETON.parents)
        lengths = np.linalg.norm(positions[:, 1:] - positions[:, parents[1:]], axis=-1).mean(axis=0)
        short = np.flatnonzero(lengths < MIN_BONE_M)
        if len(short):
            joint = SMPL_JOINTS[short[0] + 1]
            parent = SMPL_JOINTS[parents[short[0] + 1]]
            raise ClipError(clip_id, "joints in one place",
                            f"clip '{clip_id}': the joint map {self.joint_map.name} puts SMPL joints '{parent}' "
                            f"and '{joint}' {lengths[short[0]] * 100:.2g} cm apart, so the bone between them has "
                            f"no direction (source joints with zero OFFSETs sit where their parent is); map "
                            f"'{joint}' to a joint further along, or to a mix such as {{A: 0.5, B: 0.5}}")

    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.source.fingerprint().encode())
        weights = np.round(self.joint_map.weights, 9).tobytes()
        digest.update(f"{self.unit};{self.up_axis};{self.fps};".encode() + weights)
        return digest.hexdigest()

    def describe(self) -> str:
        counts = ", ".join(f"{split} {len(ids)}" for split, ids in self.split_ids.items())
        up = self.up_axis or "told per clip"
        return (f"BVH folder {self.source.root} as SMPL joints: {counts}; {self.source.header.num_joints} source "
                f"joints mapped by {self.joint_map.name}, unit {self.unit}, up axis {up}, "
                f"{self.source.header.fps:.1f} -> {self.fps:g} fps")
