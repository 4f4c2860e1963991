"""Procedural skeleton motion: walking, turning and arm swinging, deterministic from a seed.

Every clip is driven by local joint rotations and a root trajectory, turned into joint
positions by forward kinematics, so positions, rotations and velocities are consistent
with each other the way motion capture is.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from motionhub.motion.rotations import axis_angle_to_matrix
from motionhub.motion.skeletons import Skeleton, forward_kinematics


@dataclasses.dataclass(frozen=True)
class ClipMotion:
    """rotations: (T, J, 3) local axis-angle (SMPL convention); joints: (T, J, 3) positions."""

    rotations: np.ndarray
    joints: np.ndarray
    caption: str


def rest_offsets(skeleton: Skeleton, bone_lengths) -> np.ndarray:
    """(J, 3) rest offsets: the skeleton's unit directions scaled by bone lengths."""
    return skeleton.raw_offsets_array() * np.asarray(bone_lengths, dtype=np.float64)[:, None]


def _find(skeleton: Skeleton, side: str, part: str) -> int:
    for index, name in enumerate(skeleton.joint_names):
        if side in name and name.endswith(part):
            return index
    raise ValueError(f"skeleton {skeleton.name} has no {side} {part} joint")


def _rot_x(angle: np.ndarray) -> np.ndarray:
    return np.stack([angle, np.zeros_like(angle), np.zeros_like(angle)], axis=-1)


def synthesize(rng: np.random.Generator, skeleton: Skeleton, offsets: np.ndarray,
               frames: int, fps: float) -> ClipMotion:
    """One clip of ``frames`` frames: a gait with random speed, turning and arm motion."""
    t = np.arange(frames) / fps
    leg = float(np.linalg.norm(offsets, axis=1).max()) * 2.2  # roughly hip-to-floor height
    walking = rng.random() < 0.8
    frequency = rng.uniform(0.7, 1.4)  # strides per second
    amplitude = rng.uniform(0.25, 0.55) if walking else rng.uniform(0.0, 0.08)
    phase = 2 * np.pi * frequency * t + rng.uniform(0, 2 * np.pi)
    # HumanML3D's root-rotation encoding breaks once the heading passes 180 degrees from
    # frame 0 (a quirk of the reference kept for fidelity), so keep the total turn below that.
    turn = rng.uniform(-0.8, 0.8) * (rng.random() < 0.6)  # rad/s
    turn = float(np.clip(turn, -2.8 / t[-1], 2.8 / t[-1])) if frames > 1 else 0.0
    wave = rng.random() < 0.3

    rotations = np.zeros((frames, skeleton.num_joints, 3))
    for side, shift in (("left", 0.0), ("right", np.pi)):
        swing = np.sin(phase + shift)
        rotations[:, _find(skeleton, side, "hip")] = _rot_x(-amplitude * swing)
        rotations[:, _find(skeleton, side, "knee")] = _rot_x(1.2 * amplitude * np.clip(np.sin(phase + shift + 1.6), 0, None))
        rotations[:, _find(skeleton, side, "ankle")] = _rot_x(0.3 * amplitude * np.cos(phase + shift))
        arm = 0.7 * amplitude * swing
        if wave and side == "right":
            arm = -1.8 + 0.5 * np.sin(2 * np.pi * 1.5 * t)
        rotations[:, _find(skeleton, side, "shoulder")] = _rot_x(arm)
        rotations[:, _find(skeleton, side, "elbow")] = _rot_x(-0.3 - 0.2 * amplitude * (1 + swing))

    yaw = rng.uniform(-np.pi, np.pi) + turn * t
    rotations[:, 0] = np.stack([0.05 * np.sin(2 * phase), yaw, np.zeros(frames)], axis=-1)
    speed = 2.0 * leg * amplitude * frequency * (1.0 if walking else 0.0)
    forward = np.stack([np.sin(yaw), np.zeros(frames), np.cos(yaw)], axis=-1)
    root = np.cumsum(forward * speed / fps, axis=0)
    root[:, 1] = leg * (1.0 - 0.02 * np.cos(2 * phase))

    joints = forward_kinematics(
        torch.from_numpy(offsets), skeleton.parents,
        axis_angle_to_matrix(torch.from_numpy(rotations)), torch.from_numpy(root),
    ).numpy()
    return ClipMotion(rotations, joints, _caption(walking, speed, turn, wave))


def _caption(walking: bool, speed: float, turn: float, wave: bool) -> str:
    action = "stands in place"
    if walking:
        action = "walks " + ("slowly" if speed < 0.8 else "briskly")
    if abs(turn) > 0.2:
        action += " while turning " + ("left" if turn > 0 else "right")
    if wave:
        action += " and waves the right hand"
    return f"a person {action}."
