"""The 272-dim motion representation (MotionMillion / MotionStreamer), 22 SMPL joints.

Per frame: ``root_lin_vel`` [0:2] (root XZ velocity in the previous frame's
heading-free frame; frame 0 = 0), ``heading_6d`` [2:8] (heading change from the
previous frame as a 6D rotation, rows convention; frame 0 = identity),
``positions`` [8:74] (root-XZ-centred, heading-free, Y absolute),
``velocities`` [74:140] (differences of those positions; frame 0 = 0) and
``rotations_6d`` [140:272] (SMPL local rotations as 6D rows, root heading removed).
Heading is the yaw of the SMPL root, ``-atan2(R[0,2], R[2,2])``.
"""

from __future__ import annotations

import torch

from motionhub.motion.rotations import (
    Array,
    axis_angle_to_matrix,
    matrix_to_rotation_6d,
    numpy_compatible,
    rotation_6d_to_matrix,
    yaw_to_matrix,
)

NUM_JOINTS = 22
FEATURE_DIM = 272


def slices() -> dict[str, slice]:
    """Named half-open slices of the 272-dim vector, in layout order."""
    return {
        "root_lin_vel": slice(0, 2),
        "heading_6d": slice(2, 8),
        "positions": slice(8, 74),
        "velocities": slice(74, 140),
        "rotations_6d": slice(140, 272),
    }


def _accumulate(steps: torch.Tensor) -> torch.Tensor:
    """Running products ``R[t] = M[t] @ R[t-1]``, ``R[0] = M[0]`` over dim -3 of (…, T, 3, 3).

    A log-depth (Hillis-Steele) scan instead of a loop over frames.
    """
    out = steps
    shift = 1
    while shift < out.shape[-3]:
        out = torch.cat((out[..., :shift, :, :], out[..., shift:, :, :] @ out[..., :-shift, :, :]), dim=-3)
        shift *= 2
    return out


@numpy_compatible
def recover_from_local_position(features: Array) -> Array:
    """Global joint positions (…, T, 22, 3) from 272-dim features (…, T, 272).

    The heading is the running product of the per-frame heading changes; the
    positions are turned back by it, and the root XZ velocities (frame t ≥ 1
    turned back by the heading of frame t-1) are summed into a translation added
    to X and Z of every joint. The heading starts at 0, so for features built
    by :func:`features_from_smpl` the result is the source motion put on the
    floor, with frame 0's root XZ at the origin and frame 0's heading removed
    (a rotation about Y of the whole clip; none for face-Z-aligned sources).
    """
    if features.ndim < 2 or features.shape[-1] != FEATURE_DIM:
        raise ValueError(f"expected features of shape (..., T, {FEATURE_DIM}), got {tuple(features.shape)}")
    parts = slices()
    heading = _accumulate(rotation_6d_to_matrix(features[..., parts["heading_6d"]]))
    inverse = heading.transpose(-1, -2)

    local = features[..., parts["positions"]].reshape(features.shape[:-1] + (NUM_JOINTS, 3))
    world = (inverse[..., None, :, :] @ local[..., None]).squeeze(-1)

    vel_xz = features[..., parts["root_lin_vel"]]
    vel = torch.stack((vel_xz[..., 0], torch.zeros_like(vel_xz[..., 0]), vel_xz[..., 1]), dim=-1)
    turned = (inverse[..., :-1, :, :] @ vel[..., 1:, :, None]).squeeze(-1)
    translation = torch.cumsum(torch.cat((vel[..., :1, :], turned), dim=-2), dim=-2)
    translation = translation * torch.tensor([1.0, 0.0, 1.0], dtype=translation.dtype, device=translation.device)
    return world + translation[..., None, :]


@numpy_compatible
def features_from_smpl(local_rotations_axis_angle: Array, joints: Array) -> Array:
    """272-dim features (…, T, 272) from SMPL body rotations and joint positions.

    Args:
        local_rotations_axis_angle: (…, T, 22, 3) SMPL local rotations (the first
            66 values of SMPL-85 / SMPL-H poses), Y up.
        joints: (…, T, 22, 3) global joint positions produced by those rotations.

    The motion is first put on the floor and its frame-0 root XZ moved to the
    origin. Computed in the input dtype (the reference computes rotation
    matrices in float32 and the rest in float64).
    """
    expected = (NUM_JOINTS, 3)
    if joints.ndim < 3 or joints.shape[-2:] != expected or joints.shape[-3] < 2:
        raise ValueError(f"joints: expected shape (..., T>=2, 22, 3), got {tuple(joints.shape)}")
    if local_rotations_axis_angle.shape != joints.shape:
        raise ValueError(
            f"local_rotations_axis_angle: expected shape {tuple(joints.shape)}, "
            f"got {tuple(local_rotations_axis_angle.shape)}"
        )
    dtype = torch.promote_types(joints.dtype, local_rotations_axis_angle.dtype)
    joints = joints.to(dtype)
    rotations = axis_angle_to_matrix(local_rotations_axis_angle.to(dtype))

    origin = joints[..., 0, 0, :].clone()
    origin[..., 1] = joints[..., 1].amin(dim=(-2, -1))
    positions = joints - origin[..., None, None, :]
    root_step = positions[..., 1:, 0, :] - positions[..., :-1, 0, :]
    xz = torch.tensor([1.0, 0.0, 1.0], dtype=dtype, device=joints.device)
    centred = positions - positions[..., :1, :] * xz

    yaw = -torch.atan2(rotations[..., 0, 0, 2], rotations[..., 0, 2, 2])
    heading = yaw_to_matrix(yaw)
    heading_change = yaw_to_matrix(yaw[..., 1:] - yaw[..., :-1])

    local = (heading[..., None, :, :] @ centred[..., None]).squeeze(-1)
    local_vel = local[..., 1:, :, :] - local[..., :-1, :, :]
    root_vel = (heading[..., :-1, :, :] @ root_step[..., None]).squeeze(-1)[..., [0, 2]]
    rotations = torch.cat((heading[..., None, :, :] @ rotations[..., :1, :, :], rotations[..., 1:, :, :]), dim=-3)

    first = joints.shape[:-3] + (1,)
    identity_6d = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], dtype=dtype, device=joints.device)
    frames = joints.shape[:-2]
    return torch.cat(
        (
            torch.cat((torch.zeros(first + (2,), dtype=dtype, device=joints.device), root_vel), dim=-2),
            torch.cat((identity_6d.expand(first + (6,)), matrix_to_rotation_6d(heading_change)), dim=-2),
            local.reshape(frames + (NUM_JOINTS * 3,)),
            torch.cat(
                (
                    torch.zeros(first + (NUM_JOINTS * 3,), dtype=dtype, device=joints.device),
                    local_vel.reshape(local_vel.shape[:-2] + (NUM_JOINTS * 3,)),
                ),
                dim=-2,
            ),
            matrix_to_rotation_6d(rotations).reshape(frames + (NUM_JOINTS * 6,)),
        ),
        dim=-1,
    )
