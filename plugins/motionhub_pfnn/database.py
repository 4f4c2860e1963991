"""PFNN training data (Holden, Komura and Saito 2017) for any skeleton, and the released network.

Inputs are global joint positions ``(T, J, 3)`` and, optionally, global joint rotations
``(T, J, 3, 3)`` at any frame rate. Every skeleton-specific choice (root joint, facing
joints, feet, head, masked joints, unit scale, thresholds) lives in :class:`PFNNConfig`,
whose defaults are the original 31-joint CMU release.

Row layout for J joints and S trajectory samples (S = 12 in PFNN):

* X: trajectory position x, z and direction x, z (S each), six gait blocks (S each),
  joint positions and velocities of frame i-1 (3J each), terrain right/centre/left
  (S each): ``10 S + 6 J + 3 S = 156 + 6 J`` columns, 342 for J = 31.
* Y: root velocity x, z, root angular velocity, phase delta, contacts (one per foot
  joint), future trajectory position x, z and direction x, z (S/2 each), joint positions,
  velocities and rotations of frame i (3J each): ``8 + 2 S + 9 J`` = 311 for J = 31
  (the rotation block is absent when no rotations are given).

Conventions, as in the original data:

* Trajectory values are in the root space of frame i; joint features of frame k are in
  the root space of frame k. The root space is the root's xz position and the y-rotation
  that maps the smoothed facing direction to +z.
* Phase is a fraction of a cycle in [0, 1): 0 when the right foot lands, 0.5 when the
  left foot lands.
* Rotations are quaternion logarithms with the half angle (axis * angle / 2) of
  ``root_rotation @ global_rotation``, taken from the w >= 0 hemisphere.
* Terrain is flat. The floor under each cycle is the mean height of the foot joints in
  contact minus their heights above the ground (heel 5, toe 4 units); it is subtracted
  from every joint y, and the 3 S terrain columns are 0.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from motionhub.data.layouts import average_over_groups
from motionhub.motion.filters import gaussian_filter1d
from motionhub.motion.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quat,
    quat_slerp,
    quat_to_matrix,
)

PFNN_UNIT_SCALE = 5.6444
GAIT_NAMES = ("stand", "walk", "jog", "crouch", "jump", "unused")
CMU31_MASKED_JOINTS = (1, 6, 11, 14, 17, 21, 22, 23, 24, 28, 29, 30)


@dataclass(frozen=True)
class PFNNConfig:
    """Skeleton and data choices; the defaults reproduce the original 31-joint CMU data.

    Attributes:
        root: joint whose xz position is the trajectory (Hips).
        facing_pairs: (left, right) joint pairs; their summed left-minus-right vectors
            give the across direction (LeftArm/RightArm and LeftUpLeg/RightUpLeg).
        left_feet / right_feet: foot joints whose contacts Y holds, left first, as many
            a side (PFNN's: heel, toe; one joint per foot works the same).
        foot_heights: height above the ground of each foot joint when planted, in the
            order of ``left_feet`` (and again of ``right_feet``): one value per foot joint
            of a side. The default is PFNN's heel and toe; the exporter's defaults for other
            skeletons are in ``motionhub_pfnn.exporter.default_foot_heights``.
        head: joint whose height sets the crouch gait (None keeps the given crouch value).
        crouch_heights: head heights (above y = 0, in PFNN units) mapped to crouch 1 and 0.
        masked_joints: joints whose inputs the normalisation switches off.
        unit_scale: multiplies input positions (CMU BVH units to PFNN's ~centimetres).
        fps: target frame rate; ``window``, ``step``, ``direction_sigma`` and
            ``contact_threshold`` are in frames of this rate.
        window: trajectory half-width in frames (1 s).
        step: frames between trajectory samples.
        direction_sigma: Gaussian smoothing of the facing direction, in frames.
        contact_threshold: squared per-frame displacement below which a foot joint is planted
            (PFNN's rule, used when ``contact_speed`` is None).
        contact_speed: when set, a foot joint is planted instead where its speed (units per
            second) is below this and, with ``contact_height`` set, its height above its lowest
            point in the clip is below ``contact_height`` (units) (:func:`speed_height_contacts`).
        gait_speeds: root speeds (units/s) separating stand/walk and walk/jog when the
            gait is derived from speed.
        gait_sigma: Gaussian smoothing of the root speed for that, in frames.
        min_swing: frames a foot must be off the ground before a landing counts, when
            the phase is derived from contacts.
    """

    root: int = 0
    facing_pairs: tuple[tuple[int, int], ...] = ((18, 25), (2, 7))
    left_feet: tuple[int, ...] = (4, 5)
    right_feet: tuple[int, ...] = (9, 10)
    foot_heights: tuple[float, ...] = (5.0, 4.0)
    head: int | None = 16
    crouch_heights: tuple[float, float] = (80.0, 130.0)
    masked_joints: tuple[int, ...] = CMU31_MASKED_JOINTS
    unit_scale: float = PFNN_UNIT_SCALE
    fps: float = 60.0
    window: int = 60
    step: int = 10
    direction_sigma: float = 20.0
    contact_threshold: float = 0.02
    contact_speed: float | None = None
    contact_height: float | None = None
    gait_speeds: tuple[float, float] = (20.0, 90.0)
    gait_sigma: float = 10.0
    min_swing: int = 5

    def __post_init__(self) -> None:
        if self.window % self.step:
            raise ValueError(f"window {self.window} is not a multiple of step {self.step}")
        if len(self.left_feet) != len(self.right_feet) or len(self.foot_heights) != len(self.left_feet):
            raise ValueError("left_feet, right_feet and foot_heights must have the same length")

    @property
    def num_samples(self) -> int:
        """Trajectory samples in X (12 in PFNN)."""
        return 2 * self.window // self.step

    @property
    def feet(self) -> tuple[int, ...]:
        """Foot joints in contact-column order: left feet, then right feet."""
        return self.left_feet + self.right_feet


# --------------------------------------------------------------------------- layouts


@dataclass(frozen=True)
class ColumnGroup:
    """A named run of columns ``[start, stop)``."""

    name: str
    start: int
    stop: int

    @property
    def slice(self) -> slice:
        return slice(self.start, self.stop)

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class ColumnLayout:
    """Consecutive column groups of a feature row."""

    groups: tuple[ColumnGroup, ...]

    @property
    def size(self) -> int:
        return self.groups[-1].stop

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.groups)

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def __getitem__(self, name: str) -> slice:
        for group in self.groups:
            if group.name == name:
                return group.slice
        raise KeyError(f"no column group {name!r}; groups: {', '.join(self.names)}")


def _layout(sizes: Sequence[tuple[str, int]]) -> ColumnLayout:
    groups, start = [], 0
    for name, size in sizes:
        groups.append(ColumnGroup(name, start, start + size))
        start += size
    return ColumnLayout(tuple(groups))


def x_layout(num_joints: int, num_samples: int = 12) -> ColumnLayout:
    """Input columns: ``156 + 6 J`` for 12 samples (342 for 31 joints)."""
    s = num_samples
    return _layout(
        [
            ("trajectory_position_x", s),
            ("trajectory_position_z", s),
            ("trajectory_direction_x", s),
            ("trajectory_direction_z", s),
            *((f"gait_{name}", s) for name in GAIT_NAMES),
            ("joint_positions", 3 * num_joints),
            ("joint_velocities", 3 * num_joints),
            ("terrain_right", s),
            ("terrain_center", s),
            ("terrain_left", s),
        ]
    )


def y_layout(num_joints: int, num_samples: int = 12, num_contacts: int = 4, rotations: bool = True) -> ColumnLayout:
    """Output columns: ``8 + 2 S + 9 J`` for 4 contacts (311 for 31 joints and 12 samples)."""
    f = num_samples // 2
    sizes = [
        ("root_velocity", 2),
        ("root_angular_velocity", 1),
        ("phase_delta", 1),
        ("contacts", num_contacts),
        ("future_position_x", f),
        ("future_position_z", f),
        ("future_direction_x", f),
        ("future_direction_z", f),
        ("joint_positions", 3 * num_joints),
        ("joint_velocities", 3 * num_joints),
    ]
    if rotations:
        sizes.append(("joint_rotations", 3 * num_joints))
    return _layout(sizes)


def layouts(num_joints: int, config: PFNNConfig, rotations: bool = True) -> tuple[ColumnLayout, ColumnLayout]:
    """The X and Y layouts that :func:`build_database` produces for ``config``."""
    return (
        x_layout(num_joints, config.num_samples),
        y_layout(num_joints, config.num_samples, len(config.feet), rotations),
    )


# ------------------------------------------------------------------------ resampling


def integer_ratio(source_fps: float, target_fps: float, tolerance: float = 1e-3) -> int | None:
    """``source_fps / target_fps`` when it is within ``tolerance`` of an integer >= 1, else None.

    The tolerance absorbs rounded BVH frame times (0.008333 s is 120.005 fps).
    """
    ratio = source_fps / target_fps
    nearest = round(ratio)
    return nearest if nearest >= 1 and abs(ratio - nearest) <= tolerance * ratio else None


def resample_times(num_frames: int, source_fps: float, target_fps: float) -> np.ndarray:
    """Source-frame times (F,) of the target frames inside ``[0, num_frames - 1]``."""
    ratio = integer_ratio(source_fps, target_fps)
    if ratio is not None:
        return np.arange(0, num_frames, ratio, dtype=np.float64)
    step = source_fps / target_fps
    count = math.floor((num_frames - 1) / step + 1e-9) + 1
    return np.arange(count) * step


def resample_linear(values: np.ndarray, source_fps: float, target_fps: float) -> np.ndarray:
    """(T, ...) -> (F, ...): every k-th frame for an integer ratio k, else linear interpolation."""
    values = np.asarray(values, dtype=np.float64)
    ratio = integer_ratio(source_fps, target_fps)
    if ratio is not None:
        return values[::ratio]
    lower, upper, weight = _neighbours(len(values), source_fps, target_fps)
    weight = weight.reshape((-1,) + (1,) * (values.ndim - 1))
    return (1.0 - weight) * values[lower] + weight * values[upper]


def resample_rotations(rotations: np.ndarray, source_fps: float, target_fps: float) -> np.ndarray:
    """(T, ..., 3, 3) -> (F, ..., 3, 3): every k-th frame for an integer ratio k, else slerp."""
    rotations = np.asarray(rotations, dtype=np.float64)
    ratio = integer_ratio(source_fps, target_fps)
    if ratio is not None:
        return rotations[::ratio]
    lower, upper, weight = _neighbours(len(rotations), source_fps, target_fps)
    q = matrix_to_quat(rotations)
    return quat_to_matrix(quat_slerp(q[lower], q[upper], weight.reshape((-1,) + (1,) * (q.ndim - 1))))


def resample_phase(phase: np.ndarray, source_fps: float, target_fps: float) -> np.ndarray:
    """(T,) phase in [0, 1) -> (F,): every k-th frame, else linear interpolation of the
    unwrapped phase (a decrease counts as a wrap, as in :func:`phase_delta`), mod 1."""
    phase = np.asarray(phase, dtype=np.float64)
    ratio = integer_ratio(source_fps, target_fps)
    if ratio is not None:
        return phase[::ratio]
    unwrapped = phase[0] + np.concatenate([[0.0], np.cumsum(phase_delta(phase))])
    return np.mod(resample_linear(unwrapped, source_fps, target_fps), 1.0)


def _neighbours(num_frames: int, source_fps: float, target_fps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each target frame (:func:`resample_times`): the source frames before and after it (F,)
    and the weight (F,) of the one after."""
    times = resample_times(num_frames, source_fps, target_fps)
    lower = np.minimum(np.floor(times).astype(np.int64), num_frames - 1)
    return lower, np.minimum(lower + 1, num_frames - 1), times - lower


# ------------------------------------------------------------------------- rotations


def rotation_log(matrices: np.ndarray) -> np.ndarray:
    """PFNN's rotation encoding: (..., 3, 3) -> (..., 3) half-angle quaternion log, axis * angle / 2.

    The quaternion is taken with w >= 0, so the result has norm <= pi / 2.
    """
    return 0.5 * matrix_to_axis_angle(np.asarray(matrices, dtype=np.float64))


def rotation_exp(logs: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rotation_log`: exp(v) = (cos|v|, v/|v| sin|v|) as a matrix, (..., 3) -> (..., 3, 3)."""
    return axis_angle_to_matrix(2.0 * np.asarray(logs, dtype=np.float64))


def _y_rotations(directions: np.ndarray) -> np.ndarray:
    """(F, 3) unit horizontal directions d -> (F, 3, 3) y-rotations R with R @ d = +z."""
    dx, dz = directions[:, 0], directions[:, 2]
    zero, one = np.zeros_like(dx), np.ones_like(dx)
    return np.stack(
        [np.stack([dz, zero, -dx], -1), np.stack([zero, one, zero], -1), np.stack([dx, zero, dz], -1)], -2
    )


# ----------------------------------------------------------------- per-frame signals


def facing_directions(positions: np.ndarray, config: PFNNConfig) -> np.ndarray:
    """Smoothed horizontal forward direction (F, 3) from joint positions (F, J, 3).

    across = sum of (left - right) over ``facing_pairs``, normalised; forward = across x up,
    Gaussian-smoothed over ``direction_sigma`` frames and normalised.
    """
    across = sum(positions[:, left] - positions[:, right] for left, right in config.facing_pairs)
    across = across / np.linalg.norm(across, axis=-1, keepdims=True)
    forward = gaussian_filter1d(np.cross(across, np.array([0.0, 1.0, 0.0])), config.direction_sigma, mode="nearest")
    return forward / np.linalg.norm(forward, axis=-1, keepdims=True)


def foot_contacts(positions: np.ndarray, feet: Sequence[int], threshold: float) -> np.ndarray:
    """(F - 1, K) contacts: 1 where a foot joint's squared displacement to the next frame is below ``threshold``."""
    step = positions[1:, list(feet)] - positions[:-1, list(feet)]
    return (np.sum(step**2, axis=-1) < threshold).astype(np.float64)


def speed_height_contacts(positions: np.ndarray, feet: Sequence[int], fps: float, speed: float,
                          height: float | None = None) -> np.ndarray:
    """(F - 1, K) contacts: 1 where a foot joint moves slower than ``speed`` (units per second, its
    step to the next frame times ``fps``) and, with ``height`` given, its height at the frame is less
    than ``height`` above the lowest height that joint reaches in the clip.

    Measuring each joint from its own lowest point makes the rule hold for ankles and toes alike
    (an ankle is planted several centimetres above a toe) on flat ground, wherever the floor is.
    """
    feet = list(feet)
    step = positions[1:, feet] - positions[:-1, feet]
    contact = np.linalg.norm(step, axis=-1) * fps < speed
    if height is not None:
        heights = positions[:, feet, 1]
        contact &= heights[:-1] - heights.min(axis=0) < height
    return contact.astype(np.float64)


def clip_contacts(positions: np.ndarray, config: PFNNConfig) -> np.ndarray:
    """(F - 1, K) contacts of ``config.feet`` at ``config.fps``: :func:`speed_height_contacts` when
    ``config.contact_speed`` is set, else PFNN's :func:`foot_contacts`."""
    if config.contact_speed is None:
        return foot_contacts(positions, config.feet, config.contact_threshold)
    return speed_height_contacts(positions, config.feet, config.fps, config.contact_speed, config.contact_height)


def phase_delta(phase: np.ndarray) -> np.ndarray:
    """(F,) -> (F - 1,) phase change per frame; a decrease is a wrap: 1 - p[k] + p[k+1]."""
    delta = phase[1:] - phase[:-1]
    return np.where(delta < 0, 1.0 - phase[:-1] + phase[1:], delta)


def landings(contact: np.ndarray, min_swing: int) -> np.ndarray:
    """Frames where a (F,) 0/1 contact signal starts after at least ``min_swing`` frames off the ground."""
    contact = np.asarray(contact) > 0.5
    starts = np.flatnonzero(contact[1:] & ~contact[:-1]) + 1
    keep = [s >= min_swing and not contact[s - min_swing : s].any() for s in starts]
    return starts[np.array(keep, dtype=bool)]


def phase_from_contacts(left: np.ndarray, right: np.ndarray, min_swing: int = 5) -> np.ndarray:
    """Phase (F,) from per-frame foot contacts (F,) of the left and right foot.

    Phase is 0 at each right landing and 0.5 at the first left landing before the next
    right landing, linear in between; a cycle without a left landing runs linearly from
    0 to 1. Frames before the first and from the last right landing are 0, as in
    PFNN's ``.phase`` files.
    """
    phase = np.zeros(len(right))
    rights, lefts = landings(right, min_swing), landings(left, min_swing)
    for start, stop in zip(rights[:-1], rights[1:]):
        middle = lefts[(lefts > start) & (lefts < stop)]
        if len(middle):
            m = middle[0]
            phase[start:m] = 0.5 * np.arange(m - start) / (m - start)
            phase[m:stop] = 0.5 + 0.5 * np.arange(stop - m) / (stop - m)
        else:
            phase[start:stop] = np.arange(stop - start) / (stop - start)
    return phase


def cycles_from_phase(phase: np.ndarray) -> np.ndarray:
    """Complete phase cycles (K, 2) as inclusive frame pairs [start, end].

    A cycle is a run of strictly increasing phase that starts below 0.1 and wraps after
    exceeding 0.9; ``end`` is the wrap frame, which starts the next cycle.
    """
    phase = np.asarray(phase, dtype=np.float64)
    increasing = np.diff(phase) > 0
    cycles = []
    start = 0
    for k in range(1, len(phase)):
        if increasing[k - 1]:
            continue
        wrapped = phase[k] < phase[k - 1] - 0.5
        if wrapped and phase[start] < 0.1 and phase[k - 1] > 0.9 and k - start > 1:
            cycles.append((start, k))
        start = k
    return np.array(cycles, dtype=np.int64).reshape(-1, 2)


def merge_gait_labels(gait: np.ndarray) -> np.ndarray:
    """PFNN ``.gait`` columns (T, 8) -> (T, 6): stand, walk, jog+run, crouch+crawl, jump, column 8."""
    gait = np.asarray(gait, dtype=np.float64)
    if gait.shape[-1] != 8:
        raise ValueError(f"expected 8 gait columns, got {gait.shape[-1]}")
    return np.stack(
        [gait[:, 0], gait[:, 1], gait[:, 2] + gait[:, 3], gait[:, 4] + gait[:, 6], gait[:, 5], gait[:, 7]], axis=-1
    )


def gait_from_speed(root_positions: np.ndarray, config: PFNNConfig) -> np.ndarray:
    """One-hot stand/walk/jog gait (F, 6) from root positions (F, 3) at ``config.fps``.

    The horizontal root speed (units/s, last frame repeated) is smoothed over
    ``gait_sigma`` frames; below ``gait_speeds[0]`` is stand, below ``gait_speeds[1]``
    walk, otherwise jog.
    """
    step = np.linalg.norm(np.diff(root_positions[:, [0, 2]], axis=0), axis=-1) * config.fps
    speed = gaussian_filter1d(np.concatenate([step, step[-1:]]), config.gait_sigma, mode="nearest")
    column = np.searchsorted(np.asarray(config.gait_speeds), speed, side="right")
    return np.eye(len(GAIT_NAMES))[column]


def crouch_from_head(head_heights: np.ndarray, crouch_heights: tuple[float, float]) -> np.ndarray:
    """(F,) crouch amount: 1 - clip((h - low) / (high - low), 0, 1); the last frame repeats the one before."""
    low, high = crouch_heights
    crouch = 1.0 - np.clip((head_heights - low) / (high - low), 0.0, 1.0)
    crouch[-1] = crouch[-2]
    return crouch


# ------------------------------------------------------------------------------ clip


@dataclass(frozen=True, eq=False)
class PFNNClip:
    """One clip at the target frame rate, in PFNN units.

    Attributes:
        positions: (F, J, 3) global joint positions.
        rotations: (F, J, 3, 3) global joint rotations, or None.
        phase: (F,) phase in [0, 1).
        gait: (F, 6) gait weights (see ``GAIT_NAMES``).
        forward: (F, 3) smoothed facing direction.
        root_rotations: (F, 3, 3) y-rotations taking ``forward`` to +z.
        contacts: (F - 1, K) foot contacts between frames k and k + 1.
    """

    positions: np.ndarray
    rotations: np.ndarray | None
    phase: np.ndarray
    gait: np.ndarray
    forward: np.ndarray
    root_rotations: np.ndarray
    contacts: np.ndarray

    @property
    def num_frames(self) -> int:
        return len(self.positions)


def prepare_clip(
    positions: np.ndarray,
    source_fps: float,
    config: PFNNConfig = PFNNConfig(),
    rotations: np.ndarray | None = None,
    phase: np.ndarray | None = None,
    gait: np.ndarray | None = None,
    phase_contacts: np.ndarray | None = None,
) -> PFNNClip:
    """Resample a clip to ``config.fps``, scale it and derive its per-frame signals.

    Args:
        positions: (T, J, 3) global joint positions in source units.
        source_fps: frame rate of every per-frame input.
        rotations: (T, J, 3, 3) global joint rotations, optional.
        phase: (T,) phase labels in [0, 1); derived from the contacts when None.
        gait: (T, 6) gait weights (see :func:`merge_gait_labels`); derived from the
            root speed when None. With ``config.head`` set, the crouch column is replaced
            by the head-height crouch, as PFNN does for flat clips.
        phase_contacts: (T, 2 K) 0/1 foot contacts, left feet then right, that the phase
            is derived from when ``phase`` is None; default: the clip's own contacts.
    """
    inputs = (("rotations", rotations), ("phase", phase), ("gait", gait), ("phase_contacts", phase_contacts))
    for name, values in inputs:
        if values is not None and len(values) != len(positions):
            raise ValueError(f"{name} has {len(values)} frames, positions {len(positions)}")
    positions = resample_linear(positions, source_fps, config.fps) * config.unit_scale
    if rotations is not None:
        rotations = resample_rotations(rotations, source_fps, config.fps)
    forward = facing_directions(positions, config)
    contacts = clip_contacts(positions, config)
    if phase is None:
        if phase_contacts is None:
            per_frame = np.concatenate([contacts, contacts[-1:]])
        else:
            per_frame = (resample_linear(phase_contacts, source_fps, config.fps) > 0.5).astype(np.float64)
        half = per_frame.shape[1] // 2
        phase = phase_from_contacts(
            per_frame[:, :half].max(axis=1), per_frame[:, half:].max(axis=1), config.min_swing
        )
    else:
        phase = resample_phase(phase, source_fps, config.fps)
    if gait is None:
        gait = gait_from_speed(positions[:, config.root], config)
    else:
        if gait.shape[-1] != len(GAIT_NAMES):
            raise ValueError(f"expected {len(GAIT_NAMES)} gait columns, got {gait.shape[-1]}")
        gait = resample_linear(gait, source_fps, config.fps)
    if config.head is not None:
        gait = gait.copy()
        gait[:, GAIT_NAMES.index("crouch")] = crouch_from_head(positions[:, config.head, 1], config.crouch_heights)
    return PFNNClip(
        positions=positions,
        rotations=rotations,
        phase=phase,
        gait=gait,
        forward=forward,
        root_rotations=_y_rotations(forward),
        contacts=contacts,
    )


@dataclass(frozen=True, eq=False)
class FrameRows:
    """X and Y rows of every frame with a full window, before the floor is subtracted.

    Attributes:
        frames: (R,) frame index of each row (``window`` ... ``F - window - 2``).
        X: (R, X) inputs (see :func:`x_layout`), terrain columns 0.
        Y: (R, Y) outputs (see :func:`y_layout`).
        P: (R,) phase of each row's frame.
    """

    frames: np.ndarray
    X: np.ndarray
    Y: np.ndarray
    P: np.ndarray


def _to_root_space(rotations: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """(R, 3, 3) applied to (R, ..., 3)."""
    return np.einsum("rab,r...b->r...a", rotations, vectors)


def frame_rows(clip: PFNNClip, config: PFNNConfig) -> FrameRows:
    """Build X and Y for every frame i in ``[window, F - window - 1)``."""
    g, rr, root = clip.positions, clip.root_rotations, config.root
    num_frames = len(g)
    frames = np.arange(config.window, num_frames - config.window - 1)
    if len(frames) == 0:
        raise ValueError(f"clip of {num_frames} frames is shorter than 2 * window + 2 = {2 * config.window + 2}")
    past = frames[:, None] + np.arange(-config.window, config.window, config.step)
    future = frames[:, None] + 1 + np.arange(0, config.window, config.step)

    # Joint features of frame k in the root space of k, for k = 0 ... F - 2.
    horizontal = g.copy()
    horizontal[..., [0, 2]] -= g[:, root : root + 1, [0, 2]]
    joint_pos = _to_root_space(rr[:-1], horizontal[:-1])
    joint_vel = _to_root_space(rr[:-1], g[1:] - g[:-1])

    traj_pos = _to_root_space(rr[frames], g[past, root] - g[frames, root][:, None])
    traj_dir = _to_root_space(rr[frames], clip.forward[past])
    traj_gait = np.swapaxes(clip.gait[past], 1, 2).reshape(len(frames), -1)
    terrain = np.zeros((len(frames), 3 * config.num_samples))
    X = np.concatenate(
        [
            traj_pos[..., 0], traj_pos[..., 2], traj_dir[..., 0], traj_dir[..., 2], traj_gait,
            joint_pos[frames - 1].reshape(len(frames), -1), joint_vel[frames - 1].reshape(len(frames), -1),
            terrain,
        ],
        axis=1,
    )

    root_vel = _to_root_space(rr[frames], g[frames + 1, root] - g[frames, root])
    # Turning: the y-angle of R[i+1] R[i]^T, read from where it sends +z.
    turn = np.einsum("rab,rcb->rac", rr[frames + 1], rr[frames])[:, :, 2]
    next_pos = _to_root_space(rr[frames + 1], g[future, root] - g[frames + 1, root][:, None])
    next_dir = _to_root_space(rr[frames + 1], clip.forward[future])
    blocks = [
        root_vel[:, [0, 2]], np.arctan2(turn[:, 0], turn[:, 2])[:, None], phase_delta(clip.phase)[frames][:, None],
        clip.contacts[frames],
        next_pos[..., 0], next_pos[..., 2], next_dir[..., 0], next_dir[..., 2],
        joint_pos[frames].reshape(len(frames), -1), joint_vel[frames].reshape(len(frames), -1),
    ]
    if clip.rotations is not None:
        local_rot = np.einsum("rab,rjbc->rjac", rr[frames], clip.rotations[frames])
        blocks.append(rotation_log(local_rot).reshape(len(frames), -1))
    Y = np.concatenate(blocks, axis=1)
    return FrameRows(frames=frames, X=X, Y=Y, P=clip.phase[frames])


def flat_floor_height(clip: PFNNClip, first: int, last: int, config: PFNNConfig) -> float:
    """Floor height under frames ``[first, last]``: mean height of planted foot joints minus
    their ``foot_heights``; 0 when no foot joint is planted."""
    contacts = clip.contacts[first:last]
    contacts = np.concatenate([contacts, contacts[-1:]]) > 0.5
    heights = clip.positions[first : last + 1, list(config.feet), 1] - np.array(config.foot_heights * 2)
    planted = heights[contacts]
    return float(planted.mean()) if planted.size else 0.0


# ------------------------------------------------------------------- footsteps, cycles


@dataclass(frozen=True)
class Footstep:
    """One line of a PFNN ``_footsteps.txt``: 1-based source frames of phase 0 and 0.5."""

    start: int
    middle: int | None
    skip: bool


def read_footsteps(path: str | os.PathLike) -> list[Footstep]:
    """Parse ``a b [c*]`` lines; a line with a single number has no ``middle``."""
    steps = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            tokens = line.split()
            if not tokens:
                continue
            if not all(re.fullmatch(r"\d+", token) for token in tokens[:2]):
                expected = "'<frame> [<frame> [<mark>]]'"
                raise ValueError(f"{os.fspath(path)}:{number}: expected {expected}, found {line.strip()!r}")
            steps.append(
                Footstep(
                    start=int(tokens[0]),
                    middle=int(tokens[1]) if len(tokens) > 1 else None,
                    skip=len(tokens) > 2 and tokens[2].endswith("*"),
                )
            )
    return steps


def footstep_cycles(footsteps: Sequence[Footstep], source_fps: float, target_fps: float) -> np.ndarray:
    """Cycles (K, 2) of target frames from consecutive footstep lines, as PFNN selects them.

    A cycle runs from one line's start to the next line's start; it is dropped when
    either line is marked to skip or the closing line has no middle frame. A 1-based
    source frame ``a`` maps to ``a // k`` for an integer ratio ``k`` (PFNN's rule), else
    to ``floor(a * target_fps / source_fps)``.
    """
    ratio = integer_ratio(source_fps, target_fps)

    def to_target(frame: int) -> int:
        return frame // ratio if ratio is not None else math.floor(frame * target_fps / source_fps)

    cycles = [
        (to_target(current.start), to_target(following.start))
        for current, following in zip(footsteps[:-1], footsteps[1:])
        if not current.skip and not following.skip and following.middle is not None
    ]
    return np.array(cycles, dtype=np.int64).reshape(-1, 2)


# -------------------------------------------------------------------------- database


@dataclass(frozen=True, eq=False)
class PFNNDatabase:
    """Training rows: Xun (N, X), Yun (N, Y) and Pun (N,), float32."""

    Xun: np.ndarray
    Yun: np.ndarray
    Pun: np.ndarray

    def __len__(self) -> int:
        return len(self.Pun)


def concatenate_databases(databases: Sequence[PFNNDatabase]) -> PFNNDatabase:
    return PFNNDatabase(
        Xun=np.concatenate([d.Xun for d in databases]),
        Yun=np.concatenate([d.Yun for d in databases]),
        Pun=np.concatenate([d.Pun for d in databases]),
    )


def complete_cycles(cycles: np.ndarray, num_frames: int, config: PFNNConfig) -> np.ndarray:
    """The cycles (K', 2) of ``cycles`` (K, 2) whose every frame has a full window in a clip
    of ``num_frames`` frames (the rows of :func:`frame_rows`)."""
    cycles = np.asarray(cycles, dtype=np.int64).reshape(-1, 2)
    keep = (cycles[:, 0] >= config.window) & (cycles[:, 1] < num_frames - config.window - 1)
    return cycles[keep]


def build_database(clip: PFNNClip, cycles: np.ndarray, config: PFNNConfig, copies: int = 1) -> PFNNDatabase:
    """Rows of every complete cycle ``[start, end]`` (inclusive) of a clip.

    Cycles whose frames lack a full window are skipped (:func:`complete_cycles`). Each cycle's floor
    (:func:`flat_floor_height` over the cycle and ``window`` frames either side) is
    subtracted from the joint y values of X and Y. Pun is the cycle's phase with the
    first row set to 0 and the last to 1. PFNN stores each cycle once per fitted
    terrain (``copies=10``, identical rows on flat ground).
    """
    rows = frame_rows(clip, config)
    cycles = complete_cycles(cycles, clip.num_frames, config)
    num_joints = clip.positions.shape[1]
    x_lay, y_lay = layouts(num_joints, config, rotations=clip.rotations is not None)
    x_heights = np.arange(x_lay["joint_positions"].start + 1, x_lay["joint_positions"].stop, 3)
    y_heights = np.arange(y_lay["joint_positions"].start + 1, y_lay["joint_positions"].stop, 3)
    Xs, Ys, Ps = [], [], []
    for start, end in cycles:
        first, last = start - config.window, end - config.window
        floor = flat_floor_height(clip, start - config.window, end + config.window, config)
        X, Y = rows.X[first : last + 1].copy(), rows.Y[first : last + 1].copy()
        X[:, x_heights] -= floor
        Y[:, y_heights] -= floor
        P = np.concatenate([[0.0], rows.P[first + 1 : last], [1.0]])
        for _ in range(copies):
            Xs.append(X)
            Ys.append(Y)
            Ps.append(P)
    if not Xs:
        Xs, Ys, Ps = [np.zeros((0, x_lay.size))], [np.zeros((0, y_lay.size))], [np.zeros(0)]
    return PFNNDatabase(
        Xun=np.concatenate(Xs).astype(np.float32),
        Yun=np.concatenate(Ys).astype(np.float32),
        Pun=np.concatenate(Ps).astype(np.float32),
    )


# --------------------------------------------------------------------- normalisation

X_STD_GROUPS: tuple[tuple[str, ...], ...] = (
    ("trajectory_position_x",),
    ("trajectory_position_z",),
    ("trajectory_direction_x",),
    ("trajectory_direction_z",),
    tuple(f"gait_{name}" for name in GAIT_NAMES),
    ("joint_positions",),
    ("joint_velocities",),
    ("terrain_right", "terrain_center", "terrain_left"),
)
"""X column groups that share one standard deviation (the mean of their columns' stds)."""

Y_STD_GROUPS: tuple[tuple[str, ...], ...] = (
    ("root_velocity",),
    ("root_angular_velocity",),
    ("phase_delta",),
    ("contacts",),
    ("future_position_x", "future_position_z"),
    ("future_direction_x", "future_direction_z"),
    ("joint_positions",),
    ("joint_velocities",),
    ("joint_rotations",),
)
"""Y column groups that share one standard deviation."""

MASKED_JOINT_WEIGHT = 1e-10


@dataclass(frozen=True, eq=False)
class Normalisation:
    """Per-column Xmean, Xstd (X,) and Ymean, Ystd (Y,), float32."""

    Xmean: np.ndarray
    Xstd: np.ndarray
    Ymean: np.ndarray
    Ystd: np.ndarray

    def normalise_x(self, X: np.ndarray) -> np.ndarray:
        return (X - self.Xmean) / self.Xstd

    def normalise_y(self, Y: np.ndarray) -> np.ndarray:
        return (Y - self.Ymean) / self.Ystd

    def denormalise_y(self, Y: np.ndarray) -> np.ndarray:
        return Y * self.Ystd + self.Ymean


def _shared_std(std: np.ndarray, layout: ColumnLayout, groups: Sequence[tuple[str, ...]]) -> np.ndarray:
    columns = [np.concatenate(present) for names in groups
               if (present := [np.arange(layout[n].start, layout[n].stop) for n in names if n in layout])]
    std = average_over_groups(std, columns)
    # A group constant in every column (terrain of flat-only data) would divide by 0.
    for group in columns:
        if not std[group[0]] > 0:
            std[group] = 1.0
    return std


def pfnn_normalisation(
    database: PFNNDatabase,
    x_lay: ColumnLayout,
    y_lay: ColumnLayout,
    masked_joints: Sequence[int] = CMU31_MASKED_JOINTS,
    joint_scale: float = 0.1,
) -> Normalisation:
    """PFNN's normalisation: column means, and stds averaged over :data:`X_STD_GROUPS` /
    :data:`Y_STD_GROUPS`; X joint position and velocity stds are then divided by
    ``joint_weight * joint_scale`` (weight 1, or 1e-10 for ``masked_joints``). There is no
    epsilon; only a group whose columns are all constant gets std 1 instead of 0."""
    X, Y = database.Xun.astype(np.float64), database.Yun.astype(np.float64)
    x_std = _shared_std(X.std(axis=0), x_lay, X_STD_GROUPS)
    num_joints = (x_lay["joint_positions"].stop - x_lay["joint_positions"].start) // 3
    weights = np.ones(num_joints)
    weights[list(masked_joints)] = MASKED_JOINT_WEIGHT
    for name in ("joint_positions", "joint_velocities"):
        x_std[x_lay[name]] /= np.repeat(weights, 3) * joint_scale
    y_std = _shared_std(Y.std(axis=0), y_lay, Y_STD_GROUPS)
    return Normalisation(
        Xmean=X.mean(axis=0).astype(np.float32),
        Xstd=x_std.astype(np.float32),
        Ymean=Y.mean(axis=0).astype(np.float32),
        Ystd=y_std.astype(np.float32),
    )


# ----------------------------------------------------------------------------- files


def write_bin(path: str | os.PathLike, values: np.ndarray) -> None:
    """Write raw little-endian float32, row-major, as PFNN's ``.bin`` files."""
    np.ascontiguousarray(values, dtype="<f4").tofile(path)


def read_bin(path: str | os.PathLike, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read a raw little-endian float32 file, optionally checking and applying ``shape``."""
    values = np.fromfile(path, dtype="<f4")
    if shape is not None:
        if values.size != math.prod(shape):
            raise ValueError(f"{os.fspath(path)}: {values.size} floats, expected {math.prod(shape)} for shape {shape}")
        values = values.reshape(shape)
    return values


def write_normalisation(directory: str | os.PathLike, normalisation: Normalisation) -> None:
    """Write ``Xmean.bin``, ``Xstd.bin``, ``Ymean.bin`` and ``Ystd.bin``."""
    for name in ("Xmean", "Xstd", "Ymean", "Ystd"):
        write_bin(os.path.join(directory, f"{name}.bin"), getattr(normalisation, name))


def read_normalisation(directory: str | os.PathLike) -> Normalisation:
    """Read ``Xmean/Xstd/Ymean/Ystd.bin`` from ``directory``."""
    values = {name: read_bin(os.path.join(directory, f"{name}.bin")) for name in ("Xmean", "Xstd", "Ymean", "Ystd")}
    return Normalisation(**values)


def save_database(
    path: str | os.PathLike, database: PFNNDatabase, normalisation: Normalisation | None = None
) -> None:
    """``database.npz`` (compressed) with Xun, Yun, Pun and, when given, Xmean/Xstd/Ymean/Ystd."""
    arrays = {"Xun": database.Xun, "Yun": database.Yun, "Pun": database.Pun}
    if normalisation is not None:
        arrays.update(
            Xmean=normalisation.Xmean, Xstd=normalisation.Xstd, Ymean=normalisation.Ymean, Ystd=normalisation.Ystd
        )
    np.savez_compressed(path, **arrays)


def load_database(path: str | os.PathLike) -> tuple[PFNNDatabase, Normalisation | None]:
    """Read a ``database.npz``; the normalisation is None when the file has none."""
    with np.load(path) as data:
        database = PFNNDatabase(Xun=data["Xun"], Yun=data["Yun"], Pun=data["Pun"])
        normalisation = (
            Normalisation(Xmean=data["Xmean"], Xstd=data["Xstd"], Ymean=data["Ymean"], Ystd=data["Ystd"])
            if "Xmean" in data
            else None
        )
    return database, normalisation


# --------------------------------------------------------------------------- network


@dataclass(frozen=True, eq=False)
class PFNNWeights:
    """One phase sample of the network: W0 (H, X), b0 (H,), W1 (H, H), b1 (H,), W2 (Y, H), b2 (Y,)."""

    W0: np.ndarray
    b0: np.ndarray
    W1: np.ndarray
    b1: np.ndarray
    W2: np.ndarray
    b2: np.ndarray


def read_pfnn_weights(
    directory: str | os.PathLike, index: int, x_dim: int = 342, y_dim: int = 311, hidden: int = 512
) -> PFNNWeights:
    """Read ``W0_%03i.bin`` ... ``b2_%03i.bin``; released file ``index`` holds phase ``index / 50``."""

    def read(name: str, shape: tuple[int, ...]) -> np.ndarray:
        return read_bin(os.path.join(directory, f"{name}_{index:03d}.bin"), shape)

    return PFNNWeights(
        W0=read("W0", (hidden, x_dim)),
        b0=read("b0", (hidden,)),
        W1=read("W1", (hidden, hidden)),
        b1=read("b1", (hidden,)),
        W2=read("W2", (y_dim, hidden)),
        b2=read("b2", (y_dim,)),
    )


def catmull_rom_weights(control_points: Sequence[PFNNWeights], phase: float) -> PFNNWeights:
    """The phase function: cubic Catmull-Rom over 4 cyclic control points.

    With ``k = floor(4 phase)`` and ``t = frac(4 phase)`` it blends control points
    k-1, k, k+1, k+2 (mod 4); at ``phase = k / 4`` it returns control point k.
    """
    if len(control_points) != 4:
        raise ValueError(f"expected 4 control points, got {len(control_points)}")
    scaled = 4.0 * (phase % 1.0)
    k, t = int(scaled) % 4, scaled % 1.0
    y0, y1, y2, y3 = (control_points[(k + d) % 4] for d in (-1, 0, 1, 2))

    def cubic(name: str) -> np.ndarray:
        a0, a1, a2, a3 = (getattr(y, name) for y in (y0, y1, y2, y3))
        return (
            (-0.5 * a0 + 1.5 * a1 - 1.5 * a2 + 0.5 * a3) * t**3
            + (a0 - 2.5 * a1 + 2.0 * a2 - 0.5 * a3) * t**2
            + (-0.5 * a0 + 0.5 * a2) * t
            + a1
        )

    return PFNNWeights(**{name: cubic(name) for name in ("W0", "b0", "W1", "b1", "W2", "b2")})


def elu(values: np.ndarray) -> np.ndarray:
    return np.where(values > 0, values, np.expm1(np.minimum(values, 0.0)))


def pfnn_predict(X_normalised: np.ndarray, weights: PFNNWeights) -> np.ndarray:
    """The released network at one phase sample: (N, X) normalised inputs -> (N, Y) normalised outputs.

    ``Y = W2 elu(W1 elu(W0 x + b0) + b1) + b2`` (the runtime's forward pass; dropout is
    a training-time operation).
    """
    h0 = elu(X_normalised @ weights.W0.T + weights.b0)
    h1 = elu(h0 @ weights.W1.T + weights.b1)
    return h1 @ weights.W2.T + weights.b2


def near_phase(phase: np.ndarray, centre: float, tolerance: float = 0.01) -> np.ndarray:
    """(N,) mask of phases within ``tolerance`` of ``centre`` on the unit circle (1.0 counts as 0.0)."""
    distance = np.abs((np.asarray(phase) - centre + 0.5) % 1.0 - 0.5)
    return distance <= tolerance
