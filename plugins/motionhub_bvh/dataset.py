"""The ``bvh`` data set: a folder of BVH files of any skeleton, as global joint positions.

```
<root>/<name>.bvh             one clip per file; the clip id is <name>
<root>/<name>.phase           optional: one phase value in [0, 1) per BVH frame
<root>/<name>.gait            optional: G gait weights per BVH frame (PFNN: 8 columns)
<root>/<name>_footsteps.txt   optional: footstep lines 'start middle [mark*]' of 1-based BVH frames
```

The label files are those of the PFNN release (Holden, Komura and Saito 2017); exporters
read them through :meth:`BVHFolder.labels`. Every file must have the skeleton (joint
names and parents) and frame time of the first file of the folder; its joints may be listed
in another order, and are then put in the first file's order (joints match by name).

BVH files do not say their unit, so ``unit`` (default cm) is checked against the first
file's skeleton: its rest pose (the OFFSETs) spans its height or arm span, which for a
human is :data:`HUMAN_SPAN_M` metres between joints. When the declared unit makes it no
human but another unit does, the files are refused if the two units are 10 times apart or
more (mm and cm, cm and m: a body's size cannot explain that, and reading them would
scale every position, speed and threshold downstream by that much) and a warning names
the unit that fits otherwise (cm and inches, say, are only 2.54 times apart: a small
character could be either). A skeleton that no unit makes human-sized is warned about
only. ``unit_check: false`` or an explicit ``mm_per_unit`` turns the check off.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal, Optional

import numpy as np

from motionhub.api import BadDataPolicy, Clip, ClipError, DataError, Dataset, SPLITS, did_you_mean, layouts
from motionhub.motion.skeletons import Skeleton, joint_indices

from .bvh import BVHError, BVHHeader, BVHMotion, SkeletonMismatch, match_joints, read_bvh, read_bvh_header

Unit = Literal["mm", "cm", "m", "inch", "cmu"]

MM_PER_UNIT: dict[str, float] = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "inch": 25.4, "cmu": 25.4 / 0.45}
"""Millimetres per BVH unit. ``cmu``: the CMU BVH conversion PFNN uses, 1/0.45 inch (PFNN's
scale 5.6444 turns it into centimetres)."""

FPS_TOLERANCE = 1e-3  # relative; BVH frame times are rounded (0.008333 s is 120.005 fps)

HUMAN_SPAN_M = (0.8, 2.5)
"""Metres a human skeleton's rest pose spans between its joints (height or arm span; the head
and hand joints stop short of the crown and fingertips): a child to a tall adult in a T-pose."""
TYPICAL_SPAN_M = 1.6
"""The span a unit is judged closest to when several make the skeleton human-sized."""
REFUSE_FACTOR = 10.0
"""Declared and fitting units this many times apart or more are refused rather than warned about."""

logger = logging.getLogger(__name__)


class BVHFolder(Dataset):
    """BVH files of any skeleton from one folder, as global joint positions (T, J*3)."""

    def __init__(self, root: str, unit: Unit = "cm", mm_per_unit: Optional[float] = None,
                 feet: Optional[list[str]] = None, facing: Optional[list[str]] = None,
                 train: Optional[list[str]] = None, val: Optional[list[str]] = None,
                 test: Optional[list[str]] = None, val_fraction: float = 0.1, test_fraction: float = 0.0,
                 seed: int = 0, on_bad: Literal["stop", "skip"] = "stop", unit_check: bool = True):
        """
        Args:
            root: folder of ``<name>.bvh`` files (and their optional label files).
            unit: unit of the files' offsets and positions (cmu: 1/0.45 inch, PFNN's); checked by unit_check.
            mm_per_unit: millimetres per file unit, overriding ``unit`` (and not checked).
            feet: foot joints, the left ones then as many right ones
                (e.g. LeftFoot, LeftToeBase, RightFoot, RightToeBase).
            facing: (left, right) joint pairs whose left-minus-right vectors give the
                across direction, one or two pairs (e.g. LeftUpLeg, RightUpLeg, LeftArm, RightArm).
            train, val, test: clip names (file stems) of each split. When any is given, the
                splits are exactly these lists; otherwise every file is assigned by a seeded
                shuffle with ``val_fraction`` and ``test_fraction``.
            val_fraction, test_fraction: shares of the files (sum <= 1) shuffled into val and test; rest is train.
            seed: seed of that shuffle; the same seed and files give the same splits.
            on_bad: a malformed file stops reading, or is skipped and counted.
            unit_check: a unit 10 times off a human skeleton's size or more is refused, less warned; false: no check.
        """
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"BVH folder {self.root} does not exist; set data.root to a folder of .bvh files")
        self.files = {path.stem: path for path in sorted(self.root.glob("*.bvh"))}
        if not self.files:
            raise DataError(f"BVH folder {self.root} holds no .bvh files; set data.root to a folder of .bvh files")
        if mm_per_unit is not None and mm_per_unit <= 0:
            raise ValueError(f"mm_per_unit must be positive, got {mm_per_unit}")
        self.split_ids = self._splits({"train": train, "val": val, "test": test}, val_fraction, test_fraction, seed)
        first = self.first_file = next(iter(self.files.values()))
        try:
            self.header = read_bvh_header(first)
        except (BVHError, OSError) as exc:
            raise DataError(f"cannot read the skeleton of {first}: {exc}") from None
        if unit_check and mm_per_unit is None:
            problem, refuse = unit_problem(rest_span(self.header), unit, first)
            if refuse:
                raise DataError(problem)
            if problem:
                logger.warning(problem)
        skeleton = bvh_skeleton(self.header, feet or [], facing or [])
        fmt = layouts.joint_positions(skeleton, fps=self.header.fps)
        self.format = dataclasses.replace(fmt, mm_per_unit=mm_per_unit or MM_PER_UNIT[unit])
        self.policy = BadDataPolicy(on_bad, "bvh")
        self._cached: tuple[str, np.ndarray, np.ndarray] | None = None

    def _splits(self, lists: dict[str, Optional[list[str]]], val_fraction: float, test_fraction: float,
                seed: int) -> dict[str, list[str]]:
        if any(names is not None for names in lists.values()):
            return self._explicit_splits({split: names or [] for split, names in lists.items()})
        if not (0 <= val_fraction and 0 <= test_fraction and val_fraction + test_fraction <= 1):
            raise ValueError(f"val_fraction and test_fraction must be >= 0 with a sum <= 1, "
                             f"got {val_fraction} and {test_fraction}")
        names = list(self.files)
        order = np.random.default_rng(seed).permutation(len(names))
        n_val, n_test = round(len(names) * val_fraction), round(len(names) * test_fraction)
        shuffled = [names[i] for i in order]
        return {
            "train": sorted(shuffled[n_val + n_test :]),
            "val": sorted(shuffled[:n_val]),
            "test": sorted(shuffled[n_val : n_val + n_test]),
        }

    def _explicit_splits(self, lists: dict[str, list[str]]) -> dict[str, list[str]]:
        seen: dict[str, str] = {}
        for split, names in lists.items():
            for name in names:
                if name not in self.files:
                    raise ValueError(f"{split}: no file {name}.bvh in {self.root}{did_you_mean(name, self.files)}")
                if name in seen:
                    raise ValueError(f"clip '{name}' is listed in both {seen[name]} and {split}")
                seen[name] = split
        return lists

    def packing_notes(self, split: str) -> list[str]:
        return self.policy.notes(split, len(self.split_ids.get(split, ())))

    def clips(self, split: str) -> Iterator[Clip]:
        """Clips of ``split`` in its listed order: global joint positions (T, J*3) float32 in file units."""
        if split not in SPLITS:
            raise ValueError(f"unknown split '{split}'; splits: {', '.join(SPLITS)}")
        return self._read_clips(split)

    def _read_clips(self, split: str) -> Iterator[Clip]:
        return self.policy.read(split, self.split_ids[split], self._load_clip)

    def _load_clip(self, clip_id: str) -> Clip:
        positions, _ = self._transforms(clip_id)
        return Clip(clip_id, positions.reshape(len(positions), -1).astype(np.float32))

    def clip_ids(self, split: str) -> list[str]:
        """Names of the clips of ``split``, in the order ``clips`` yields them."""
        return list(self.split_ids[split])

    def rotations(self, clip_id: str) -> np.ndarray:
        """Global joint rotations (T, J, 3, 3) of one clip."""
        return self._transforms(clip_id)[1]

    def labels(self, clip_id: str) -> dict[str, np.ndarray]:
        """The clip's label files that exist, read and checked against its frame count.

        ``phase``: (T,) in [0, 1); ``gait``: (T, G); ``footsteps``: (K, 3) int64 rows
        ``[start, middle, skip]`` of 1-based BVH frames, ``middle`` 0 where a line has one
        frame and ``skip`` 1 where it is marked with ``*``.
        """
        frames = len(self._transforms(clip_id)[0])
        paths = self.label_paths(clip_id)
        out: dict[str, np.ndarray] = {}
        for name, ndim in (("phase", 1), ("gait", 2)):
            if paths[name].is_file():
                out[name] = read_frame_labels(paths[name], clip_id, frames, ndim)
        if paths["footsteps"].is_file():
            out["footsteps"] = read_footstep_labels(paths["footsteps"], clip_id)
        return out

    def label_paths(self, clip_id: str) -> dict[str, Path]:
        """Where the label files of a clip would be, by label name."""
        folder = self.files[clip_id].parent
        return {"phase": folder / f"{clip_id}.phase", "gait": folder / f"{clip_id}.gait",
                "footsteps": folder / f"{clip_id}_footsteps.txt"}

    def _transforms(self, clip_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Global positions (T, J, 3) and rotations (T, J, 3, 3) of one clip, the last one cached."""
        if self._cached is None or self._cached[0] != clip_id:
            motion = self._read(clip_id)
            self._cached = (clip_id, *motion.global_transforms())
        return self._cached[1], self._cached[2]

    def _read(self, clip_id: str) -> BVHMotion:
        path = self.files[clip_id]
        try:
            motion = read_bvh(path)
        except BVHError as exc:
            raise ClipError(clip_id, "malformed BVH", f"clip '{clip_id}': {exc}") from None
        except OSError as exc:
            raise ClipError(clip_id, "unreadable file", f"clip '{clip_id}': {path} could not be read ({exc})") from None
        header = self.header
        try:
            order = match_joints(header, motion, self.first_file.name)
        except SkeletonMismatch as exc:
            raise ClipError(clip_id, "other skeleton",
                            f"clip '{clip_id}': {path} has another skeleton than the folder's first file "
                            f"{self.first_file.name}: {exc}; keep one skeleton per folder (its joints may be "
                            f"listed in any order)") from None
        if not np.array_equal(order, np.arange(len(order))):
            motion = motion.reordered(order)
        if abs(motion.fps - header.fps) > FPS_TOLERANCE * header.fps:
            raise ClipError(clip_id, "other frame rate",
                            f"clip '{clip_id}': {path} runs at {motion.fps:.3f} fps, the folder's first file "
                            f"at {header.fps:.3f}; keep one frame rate per folder")
        if motion.num_frames == 0:
            raise ClipError(clip_id, "empty clip", f"clip '{clip_id}': {path} holds no frames")
        return motion

    def fingerprint(self) -> str:
        """Hash of the splits and the size and time of every clip's BVH and label files."""
        digest = hashlib.sha256(repr(sorted(self.split_ids.items())).encode())
        for clip_id in sorted({i for ids in self.split_ids.values() for i in ids}):
            for path in (self.files[clip_id], *self.label_paths(clip_id).values()):
                digest.update(f"{path.name}:{file_stamp(path)};".encode())
        return digest.hexdigest()

    def describe(self) -> str:
        counts = ", ".join(f"{split} {len(ids)}" for split, ids in self.split_ids.items())
        return (f"BVH folder {self.root}: {counts}; {len(self.header.joint_names)} joints at "
                f"{self.header.fps:.1f} fps, {self.format.mm_per_unit:g} mm per unit")


def rest_span(header: BVHHeader) -> float:
    """The largest extent, over x, y and z, of the joints of the rest pose (the OFFSETs, no rotation),
    in file units: a standing skeleton's height, or its arm span in a T-pose."""
    positions = np.zeros_like(header.offsets)
    for joint, parent in enumerate(header.parents):
        positions[joint] = header.offsets[joint] + (positions[parent] if parent >= 0 else 0.0)
    return float(np.ptp(positions, axis=0).max()) if len(positions) else 0.0


def unit_problem(span: float, unit: str, path: Path) -> tuple[str, bool]:
    """A message when the rest-pose ``span`` (file units) is not human-sized in ``unit``, else "";
    and whether to refuse (another unit fits and is :data:`REFUSE_FACTOR` times off or more)."""
    low, high = HUMAN_SPAN_M
    metres = {name: span * mm / 1000.0 for name, mm in MM_PER_UNIT.items()}
    if span <= 0 or low <= metres[unit] <= high:
        return "", False
    measured = (f"BVH file {path}: its skeleton spans {span:.4g} {unit} ({metres[unit]:.3g} m) in its rest pose, its "
                f"largest extent from joint to joint; a human skeleton spans {low:g} to {high:g} m")
    silence = "For a skeleton that is not human-sized, set data.unit_check: false (or give data.mm_per_unit)"
    fitting = [name for name, value in metres.items() if low <= value <= high]
    if not fitting:
        return f"{measured}, and no unit ({', '.join(MM_PER_UNIT)}) makes it one. {silence}.", False
    best = min(fitting, key=lambda name: abs(math.log(metres[name] / TYPICAL_SPAN_M)))
    factor = max(MM_PER_UNIT[unit], MM_PER_UNIT[best]) / min(MM_PER_UNIT[unit], MM_PER_UNIT[best])
    if factor >= REFUSE_FACTOR:
        return (f"{measured}. In {best} it spans {metres[best]:.3g} m: set data.unit: {best}. Units {factor:.3g} "
                f"times apart are refused: no body's size explains that, and every position, speed and threshold "
                f"would be {factor:.3g} times off. {silence}."), True
    return (f"{measured}. In {best} it spans {metres[best]:.3g} m: if the files are in {best}, set data.unit: {best}. "
            f"{silence}."), False


def file_stamp(path: Path) -> str:
    """``size:mtime`` of a file, ``-`` where there is none."""
    if not path.is_file():
        return "-"
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def bvh_skeleton(header: BVHHeader, feet: Sequence[str], facing: Sequence[str]) -> Skeleton:
    """A motionhub ``Skeleton`` of a single-root BVH hierarchy.

    ``raw_offsets`` are the unit OFFSET directions; ``feet`` (left joints, then as many
    right ones) and ``facing`` ((left, right) pairs, one or two) are joint names.
    """
    names = header.joint_names
    if np.count_nonzero(header.parents < 0) != 1:
        raise DataError(f"the BVH skeleton has {np.count_nonzero(header.parents < 0)} ROOT hierarchies; "
                        f"the bvh data set reads files with one ROOT")
    if len(feet) % 2:
        raise ValueError(f"feet: give the left foot joints, then as many right ones; got {len(feet)} names")
    if len(facing) not in (0, 2, 4):
        raise ValueError(f"facing: give one or two (left, right) joint pairs, got {len(facing)} names")
    foot = joint_indices(names, feet, "feet")
    face = joint_indices(names, facing, "facing")
    if len(face) == 2:
        face = face * 2
    lengths = np.linalg.norm(header.offsets, axis=-1, keepdims=True)
    directions = np.divide(header.offsets, lengths, out=np.zeros_like(header.offsets), where=lengths > 0)
    directions[0] = 0.0
    return Skeleton(
        name="bvh",
        joint_names=names,
        parents=tuple(int(p) for p in header.parents),
        feet_left=tuple(foot[: len(foot) // 2]),
        feet_right=tuple(foot[len(foot) // 2 :]),
        # Skeleton order: right hip, left hip, right shoulder, left shoulder.
        face_joints=(face[1], face[0], face[3], face[2]) if face else (),
        leg_joints=(),
        raw_offsets=tuple(tuple(float(v) for v in d) for d in directions),
        chains=chains_from_parents(header.parents),
    )


def chains_from_parents(parents: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """Kinematic chains of a tree whose parents precede their children.

    A joint extends the chain its parent ends, or starts a new chain ``(parent, joint)``.
    """
    chains: list[list[int]] = []
    ending_at: dict[int, int] = {}
    for joint, parent in enumerate(parents):
        if parent < 0:
            continue
        if parent in ending_at:
            index = ending_at.pop(parent)
            chains[index].append(joint)
        else:
            index = len(chains)
            chains.append([int(parent), joint])
        ending_at[joint] = index
    return tuple(tuple(chain) for chain in chains)


def read_frame_labels(path: Path, clip_id: str, frames: int, ndim: int) -> np.ndarray:
    """Per-frame labels of a text file, one line per frame: (T,) for ``ndim`` 1, else (T, G)."""
    try:
        values = np.loadtxt(path, dtype=np.float64, ndmin=ndim)
    except ValueError as exc:
        raise ClipError(clip_id, f"malformed {path.suffix}", f"clip '{clip_id}': {path} is not a table of "
                                                             f"numbers ({exc})") from None
    if values.ndim != ndim:
        raise ClipError(clip_id, f"malformed {path.suffix}",
                        f"clip '{clip_id}': {path} has {values.shape[1]} values per line, expected 1")
    if len(values) != frames:
        raise ClipError(clip_id, f"{path.suffix} length",
                        f"clip '{clip_id}': {path} has {len(values)} lines, its BVH {frames} frames; "
                        f"a label file has one line per BVH frame")
    if not np.isfinite(values).all():
        raise ClipError(clip_id, f"non-finite {path.suffix}", f"clip '{clip_id}': {path} holds NaN/Inf values")
    return values


def read_footstep_labels(path: Path, clip_id: str) -> np.ndarray:
    """``start middle [mark]`` lines -> (K, 3) int64 ``[start, middle or 0, skip]``; see :meth:`BVHFolder.labels`."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        if not all(token.isdigit() for token in tokens[:2]) or len(tokens) > 3:
            raise ClipError(clip_id, "malformed footsteps",
                            f"clip '{clip_id}': {path}:{number}: expected '<frame> [<frame> [<mark>*]]', "
                            f"found {line.strip()!r}")
        middle = int(tokens[1]) if len(tokens) > 1 else 0
        rows.append((int(tokens[0]), middle, int(len(tokens) > 2 and tokens[2].endswith("*"))))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)
