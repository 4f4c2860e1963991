"""Read BVH files of any skeleton and compute their forward kinematics.

Conventions:

* Joints are the ``ROOT`` and ``JOINT`` entries in file order (depth first), so
  ``parents[j] < j`` and a root's parent is -1. Several ``ROOT`` entries are allowed.
* ``End Site`` entries are not joints. PFNN's 31-joint CMU skeleton is exactly the
  list of ``JOINT`` entries, without its End Sites; the End Site offsets are kept in
  ``end_site_parents``/``end_site_offsets`` and :meth:`BVHMotion.end_site_positions`
  places them.
* Rotation channels are Euler angles in degrees, applied intrinsically in the order
  listed: ``Zrotation Yrotation Xrotation`` gives ``R = Rz @ Ry @ Rx``. Matrices act
  on column vectors (``v' = R @ v``).
* A position channel replaces the matching ``OFFSET`` component in that frame;
  components without a channel keep the ``OFFSET`` value.
* Two files may list the same joints (names and parents) in different orders;
  :func:`match_joints` finds one file's joints in the other's and
  :meth:`BVHMotion.reordered` puts a clip's joints in that order.
* Forward kinematics is the core's :func:`motionhub.motion.skeletons.global_transforms`:
  ``G_rot[j] = G_rot[p] @ L_rot[j]`` and ``G_pos[j] = G_pos[p] + G_rot[p] @ L_pos[j]``
  with ``p = parents[j]``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from motionhub.motion.skeletons import global_transforms

_CHANNEL_NAMES = {
    name.lower(): name
    for name in ("Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation", "Zrotation")
}
_AXIS_INDEX = {"X": 0, "Y": 1, "Z": 2}
_FRAME_TIME_LINE = re.compile(r"\s*Frame\s+Time:")


class BVHError(ValueError):
    """A malformed BVH file; the message names the file, the line and what was expected."""

    def __init__(self, source: str, line: int, message: str):
        self.source = source
        self.line = line
        super().__init__(f"{source}:{line}: {message}")


@dataclass(frozen=True, eq=False)
class BVHHierarchy:
    """The joints of a BVH file and its frame time, what :class:`BVHHeader` and :class:`BVHMotion` share.

    Attributes:
        joint_names: (J,) names of the ROOT/JOINT entries in file order.
        parents: (J,) parent index per joint, -1 for a root.
        offsets: (J, 3) OFFSET of each joint in its parent's frame.
        channels: per joint, its channel names in file order (canonical spelling).
        frame_time: seconds per frame.
    """

    joint_names: tuple[str, ...]
    parents: np.ndarray
    offsets: np.ndarray
    channels: tuple[tuple[str, ...], ...]
    frame_time: float

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def joint_index(self, name: str) -> int:
        return self.joint_names.index(name)


@dataclass(frozen=True, eq=False)
class BVHMotion(BVHHierarchy):
    """One BVH clip: the :class:`BVHHierarchy` fields and per-frame local transforms.

    Attributes:
        local_rotations: (T, J, 3, 3) rotation of each joint relative to its parent.
        local_positions: (T, J, 3) translation of each joint in its parent's frame.
        end_site_parents: (E,) joint index each End Site hangs from.
        end_site_offsets: (E, 3) End Site OFFSET in its parent's frame.
    """

    local_rotations: np.ndarray
    local_positions: np.ndarray
    end_site_parents: np.ndarray
    end_site_offsets: np.ndarray

    @property
    def num_frames(self) -> int:
        return self.local_rotations.shape[0]

    def global_transforms(self) -> tuple[np.ndarray, np.ndarray]:
        """Global joint positions (T, J, 3) and rotations (T, J, 3, 3)."""
        return global_transforms(self.parents, self.local_rotations, self.local_positions)

    def global_positions(self) -> np.ndarray:
        """Global joint positions, (T, J, 3)."""
        return self.global_transforms()[0]

    def global_rotations(self) -> np.ndarray:
        """Global joint rotations, (T, J, 3, 3)."""
        return self.global_transforms()[1]

    def reordered(self, order: Sequence[int]) -> BVHMotion:
        """The same clip with joint ``order[k]`` as joint k (``order`` from :func:`match_joints`):
        names, parents, offsets, channels and per-frame transforms follow, End Sites keep their
        joints (listed by their new parent, stably)."""
        order = np.asarray(order, dtype=np.int64)
        new_index = np.empty(len(order), dtype=np.int64)
        new_index[order] = np.arange(len(order))
        parents = np.array([new_index[p] if p >= 0 else -1 for p in self.parents[order]], dtype=np.int64)
        end_parents = new_index[self.end_site_parents]
        end_order = np.argsort(end_parents, kind="stable")
        return dataclasses.replace(
            self,
            joint_names=tuple(self.joint_names[j] for j in order),
            parents=parents,
            offsets=self.offsets[order],
            channels=tuple(self.channels[j] for j in order),
            local_rotations=self.local_rotations[:, order],
            local_positions=self.local_positions[:, order],
            end_site_parents=end_parents[end_order],
            end_site_offsets=self.end_site_offsets[end_order],
        )

    def end_site_positions(self) -> np.ndarray:
        """Global End Site positions, (T, E, 3)."""
        positions, rotations = self.global_transforms()
        parents = self.end_site_parents
        return positions[:, parents] + np.einsum("teab,eb->tea", rotations[:, parents], self.end_site_offsets)


class SkeletonMismatch(ValueError):
    """Two BVH hierarchies whose joints do not match by name; the message names the joints that differ."""


def match_joints(reference: BVHHierarchy, other: BVHHierarchy,
                 reference_name: str = "the reference") -> np.ndarray:
    """Index in ``other`` of each joint of ``reference``, matched by name.

    The joints match when both name the same joints and each joint has the same parent (by
    name, or none for a ROOT), in whatever order the files list them. Otherwise raises
    :class:`SkeletonMismatch` naming the joints ``other`` lacks, those it has that
    ``reference`` has not, and the joints whose parent differs; ``reference_name`` names
    ``reference`` there. Offsets are not compared.
    """
    if reference.joint_names == other.joint_names and np.array_equal(reference.parents, other.parents):
        return np.arange(reference.num_joints)
    problems = []
    for which, hierarchy in ((reference_name, reference), ("this file", other)):
        twice = [name for name, count in Counter(hierarchy.joint_names).items() if count > 1]
        if twice:
            problems.append(f"{which} names {_joint_list(twice)} more than once, so its joints cannot be "
                            f"matched by name")
    if problems:
        raise SkeletonMismatch("; ".join(problems))
    reference_parents, other_parents = _parent_names(reference), _parent_names(other)
    missing = [name for name in reference.joint_names if name not in other_parents]
    extra = [name for name in other.joint_names if name not in reference_parents]
    if missing:
        problems.append(f"no {_joint_list(missing)}")
    if extra:
        problems.append(f"{_joint_list(extra)} that {reference_name} has not")
    moved = [name for name in reference.joint_names
             if name in other_parents and other_parents[name] != reference_parents[name]]
    problems += [f"joint '{name}' under {_parent_text(other_parents[name])} instead of "
                 f"{_parent_text(reference_parents[name])}" for name in moved[:3]]
    if len(moved) > 3:
        problems.append(f"{len(moved) - 3} more joints under another parent")
    if problems:
        raise SkeletonMismatch("; ".join(problems))
    index = {name: j for j, name in enumerate(other.joint_names)}
    return np.array([index[name] for name in reference.joint_names], dtype=np.int64)


def _parent_names(hierarchy: BVHHierarchy) -> dict[str, str | None]:
    names = hierarchy.joint_names
    return {name: names[p] if p >= 0 else None for name, p in zip(names, hierarchy.parents)}


def _parent_text(parent: str | None) -> str:
    return f"'{parent}'" if parent is not None else "no parent (a ROOT)"


def _joint_list(names: Sequence[str], shown: int = 6) -> str:
    quoted = ", ".join(f"'{name}'" for name in names[:shown])
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"joint{'s' if len(names) > 1 else ''} {quoted}{more}"


def axis_rotation(axis: str, radians: np.ndarray) -> np.ndarray:
    """Right-handed rotation about ``axis`` ('X', 'Y' or 'Z'): (...,) angles -> (..., 3, 3)."""
    radians = np.asarray(radians, dtype=np.float64)
    c, s = np.cos(radians), np.sin(radians)
    i = _AXIS_INDEX[axis.upper()]
    j, k = (i + 1) % 3, (i + 2) % 3
    matrix = np.zeros(radians.shape + (3, 3))
    matrix[..., i, i] = 1.0
    matrix[..., j, j] = c
    matrix[..., k, k] = c
    matrix[..., j, k] = -s
    matrix[..., k, j] = s
    return matrix


def euler_to_matrix(degrees: np.ndarray, order: str) -> np.ndarray:
    """Intrinsic Euler angles as BVH applies them: (..., K) degrees, ``order`` of K axes -> (..., 3, 3).

    ``order="ZYX"`` returns ``Rz(a0) @ Ry(a1) @ Rx(a2)``.
    """
    degrees = np.asarray(degrees, dtype=np.float64)
    if degrees.shape[-1] != len(order):
        raise ValueError(f"{len(order)} axes in {order!r} but {degrees.shape[-1]} angles")
    matrix = np.broadcast_to(np.eye(3), degrees.shape[:-1] + (3, 3)).copy()
    for k, axis in enumerate(order):
        matrix = matrix @ axis_rotation(axis, np.radians(degrees[..., k]))
    return matrix


@dataclass(frozen=True, eq=False)
class BVHHeader(BVHHierarchy):
    """The hierarchy and frame count of a BVH file, without its frame values.

    Attributes are those of :class:`BVHHierarchy`, plus ``num_frames`` (from ``Frames:``).
    """

    num_frames: int


def read_bvh(path: str | os.PathLike) -> BVHMotion:
    """Read a BVH file; raises :class:`BVHError` when it is malformed."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return parse_bvh(f.read(), source=os.fspath(path))


def read_bvh_header(path: str | os.PathLike) -> BVHHeader:
    """Read a BVH file's hierarchy and ``MOTION`` header, up to ``Frame Time:``; the frames are not read."""
    lines = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            lines.append(line.rstrip("\n"))
            if _FRAME_TIME_LINE.match(line):
                break
    cursor = _Cursor(lines, os.fspath(path))
    skeleton, num_frames, frame_time = _parse_header(cursor)
    return BVHHeader(**skeleton.joint_fields(), frame_time=frame_time, num_frames=num_frames)


def parse_bvh(text: str, source: str = "<string>") -> BVHMotion:
    """Parse BVH text; ``source`` names it in error messages."""
    cursor = _Cursor(text.splitlines(), source)
    skeleton, num_frames, frame_time = _parse_header(cursor)
    values = _parse_frames(cursor, num_frames, sum(len(c) for c in skeleton.channels))
    rotations, positions = _local_transforms(skeleton, values)
    return BVHMotion(
        **skeleton.joint_fields(),
        frame_time=frame_time,
        local_rotations=rotations,
        local_positions=positions,
        end_site_parents=np.array(skeleton.end_site_parents, dtype=np.int64),
        end_site_offsets=np.array(skeleton.end_site_offsets, dtype=np.float64).reshape(-1, 3),
    )


def _parse_header(cursor: _Cursor) -> tuple[_Skeleton, int, float]:
    """Parse ``HIERARCHY`` ... ``Frame Time:``: the skeleton, frame count and frame time."""
    skeleton = _Skeleton()
    cursor.expect("HIERARCHY")
    cursor.expect("ROOT")
    _parse_joint(cursor, skeleton, parent=-1)
    while (token := cursor.take("ROOT or MOTION")) == "ROOT":
        _parse_joint(cursor, skeleton, parent=-1)
    if token != "MOTION":
        raise cursor.error("ROOT or MOTION", token)
    num_frames = cursor.take_number("Frames:", int)
    if num_frames < 0:
        raise cursor.error("a frame count >= 0", str(num_frames))
    cursor.expect("Frame")
    frame_time = cursor.take_number("Time:", float)
    if frame_time <= 0:
        raise cursor.error("a positive Frame Time", str(frame_time))
    cursor.expect_line_end()
    return skeleton, num_frames, frame_time


class _Cursor:
    """Whitespace-separated tokens of a list of lines, remembering the line of each."""

    def __init__(self, lines: list[str], source: str):
        self.lines = lines
        self.source = source
        self.next_line = 0
        self.line = 0
        self._pending: list[str] = []

    def _fill(self) -> bool:
        while not self._pending:
            if self.next_line >= len(self.lines):
                return False
            self._pending = self.lines[self.next_line].split()[::-1]
            self.next_line += 1
            self.line = self.next_line
        return True

    def error(self, expected: str, found: str | None) -> BVHError:
        found_text = "end of file" if found is None else repr(found)
        return BVHError(self.source, max(self.line, 1), f"expected {expected}, found {found_text}")

    def take(self, expected: str) -> str:
        if not self._fill():
            raise self.error(expected, None)
        return self._pending.pop()

    def expect(self, literal: str) -> None:
        token = self.take(repr(literal))
        if token != literal:
            raise self.error(repr(literal), token)

    def take_number(self, label: str, kind: type[int] | type[float]) -> int | float:
        self.expect(label)
        what = "an integer" if kind is int else "a number"
        token = self.take(f"{what} after {label!r}")
        try:
            return kind(token)
        except ValueError:
            raise self.error(f"{what} after {label!r}", token) from None

    def take_rest_of_line(self) -> list[str]:
        rest, self._pending = self._pending[::-1], []
        return rest

    def expect_line_end(self) -> None:
        if self._pending:
            raise self.error("end of line", self._pending[-1])


class _Skeleton:
    """Joint data collected while parsing the hierarchy."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.parents: list[int] = []
        self.offsets: list[list[float]] = []
        self.channels: list[tuple[str, ...]] = []
        self.end_site_parents: list[int] = []
        self.end_site_offsets: list[list[float]] = []

    def joint_fields(self) -> dict:
        """The joints as ``BVHHeader`` / ``BVHMotion`` hold them: names, parents, (J, 3) offsets, channels."""
        return {"joint_names": tuple(self.names), "parents": np.array(self.parents, dtype=np.int64),
                "offsets": np.array(self.offsets, dtype=np.float64).reshape(-1, 3), "channels": tuple(self.channels)}


def _parse_joint(cursor: _Cursor, skeleton: _Skeleton, parent: int) -> None:
    """Parse one ROOT/JOINT block, its keyword already taken, with all its children."""
    name = " ".join(cursor.take_rest_of_line())
    if not name:
        raise BVHError(cursor.source, cursor.line, "expected a joint name, found end of line")
    cursor.expect("{")
    index = len(skeleton.names)
    skeleton.names.append(name)
    skeleton.parents.append(parent)
    skeleton.offsets.append(_parse_offset(cursor))
    skeleton.channels.append(_parse_channels(cursor))
    while (token := cursor.take("JOINT, End Site or '}'")) != "}":
        if token == "JOINT":
            _parse_joint(cursor, skeleton, parent=index)
        elif token == "End":
            cursor.expect("Site")
            cursor.expect("{")
            skeleton.end_site_parents.append(index)
            skeleton.end_site_offsets.append(_parse_offset(cursor))
            cursor.expect("}")
        else:
            raise cursor.error("JOINT, End Site or '}'", token)


def _parse_offset(cursor: _Cursor) -> list[float]:
    cursor.expect("OFFSET")
    values = []
    for axis in "xyz":
        token = cursor.take(f"OFFSET {axis} value")
        try:
            values.append(float(token))
        except ValueError:
            raise cursor.error(f"OFFSET {axis} value (a number)", token) from None
    return values


def _parse_channels(cursor: _Cursor) -> tuple[str, ...]:
    count = cursor.take_number("CHANNELS", int)
    if not 0 <= count <= 6:
        raise cursor.error("a channel count from 0 to 6", str(count))
    names: list[str] = []
    for _ in range(count):
        token = cursor.take("a channel name")
        name = _CHANNEL_NAMES.get(token.lower())
        if name is None:
            raise cursor.error("a channel name (Xposition ... Zrotation)", token)
        if name in names:
            raise cursor.error("each channel at most once per joint", token)
        names.append(name)
    return tuple(names)


def _parse_frames(cursor: _Cursor, num_frames: int, num_channels: int) -> np.ndarray:
    """Frame lines after the header -> (T, C) channel values."""
    rows: list[np.ndarray] = []
    for index in range(cursor.next_line, len(cursor.lines)):
        tokens = cursor.lines[index].split()
        if not tokens:
            continue
        line = index + 1
        if len(rows) == num_frames:
            raise BVHError(cursor.source, line, f"expected end of file after {num_frames} frames, found more data")
        if len(tokens) != num_channels:
            raise BVHError(cursor.source, line, f"expected {num_channels} channel values, found {len(tokens)}")
        try:
            rows.append(np.array(tokens, dtype=np.float64))
        except ValueError:
            bad = next(t for t in tokens if not _is_number(t))
            raise BVHError(cursor.source, line, f"expected a number, found {bad!r}") from None
    if len(rows) < num_frames:
        raise BVHError(cursor.source, len(cursor.lines), f"expected {num_frames} frames, found {len(rows)}")
    return np.array(rows, dtype=np.float64).reshape(num_frames, num_channels)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _local_transforms(skeleton: _Skeleton, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, C) channel values -> local rotations (T, J, 3, 3) and positions (T, J, 3)."""
    num_frames, num_joints = values.shape[0], len(skeleton.names)
    rotations = np.broadcast_to(np.eye(3), (num_frames, num_joints, 3, 3)).copy()
    positions = np.broadcast_to(np.array(skeleton.offsets).reshape(-1, 3), (num_frames, num_joints, 3)).copy()
    column = 0
    for j, channels in enumerate(skeleton.channels):
        for name in channels:
            axis, kind = name[0], name[1:]
            if kind == "position":
                positions[:, j, _AXIS_INDEX[axis]] = values[:, column]
            else:
                rotations[:, j] = rotations[:, j] @ axis_rotation(axis, np.radians(values[:, column]))
            column += 1
    return rotations, positions
