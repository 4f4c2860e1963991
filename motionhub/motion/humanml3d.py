"""HumanML3D feature layout (263 dims for t2m, 251 for KIT-ML) and its extraction.

Layout for J joints, per frame (half-open slices, see :func:`slices`):
``root_rot_vel`` (1), ``root_lin_vel`` (2), ``root_height`` (1),
``positions`` ((J-1)·3, "ric"), ``rotations_6d`` ((J-1)·6, cont6d = matrix columns),
``velocities`` (J·3), ``contacts`` (4).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from motionhub.motion.filters import gaussian_filter1d
from motionhub.motion.rotations import (
    Array,
    matrix_to_cont6d,
    numpy_compatible,
    quat_between,
    quat_conjugate,
    quat_multiply,
    quat_rotate,
    quat_to_matrix,
)
from motionhub.motion.skeletons import Skeleton

# Bone lengths (metres, bone from parent into joint j; root 0) of the HumanML3D
# target skeleton (clip 000021). The source clip is not available here, but every
# published new_joints clip is drawn with these exact lengths, so they were
# measured from new_joints/012314.npy (constant over all 170 frames to ~1e-6 m).
T2M_TARGET_BONE_LENGTHS: tuple[float, ...] = (
    0.0, 0.103074, 0.109883, 0.131568, 0.393623, 0.390188, 0.14319, 0.432433,
    0.425643, 0.057365, 0.143382, 0.149419, 0.21936, 0.137487, 0.143383, 0.103039,
    0.131614, 0.122984, 0.25684, 0.263092, 0.266012, 0.269876,
)

_TARGET_BONE_LENGTHS: dict[str, tuple[float, ...]] = {"t2m": T2M_TARGET_BONE_LENGTHS}

FORWARD_SMOOTHING_SIGMA = 20.0


def slices(num_joints: int) -> dict[str, slice]:
    """Named half-open slices of the feature vector, in layout order."""
    if num_joints < 2:
        raise ValueError(f"num_joints must be >= 2, got {num_joints}")
    sizes = (
        ("root_rot_vel", 1),
        ("root_lin_vel", 2),
        ("root_height", 1),
        ("positions", (num_joints - 1) * 3),
        ("rotations_6d", (num_joints - 1) * 6),
        ("velocities", num_joints * 3),
        ("contacts", 4),
    )
    out: dict[str, slice] = {}
    start = 0
    for name, size in sizes:
        out[name] = slice(start, start + size)
        start += size
    return out


def feature_dim(num_joints: int) -> int:
    """``4 + (J-1)·3 + (J-1)·6 + J·3 + 4``: 263 for J=22, 251 for J=21."""
    return slices(num_joints)["contacts"].stop


def _check_features(features: torch.Tensor, num_joints: int) -> None:
    expected = feature_dim(num_joints)
    if features.ndim < 2 or features.shape[-1] != expected:
        raise ValueError(
            f"expected features of shape (..., T, {expected}) for {num_joints} joints, got {tuple(features.shape)}"
        )


@numpy_compatible
def recover_root(features: Array) -> tuple[Array, Array]:
    """Root rotation and position from the first four feature channels.

    Args:
        features: (…, T, D) HumanML3D features (only ``[..., :4]`` is read).

    Returns:
        ``(root_quat (…, T, 4), root_pos (…, T, 3))``. Channel 0 holds half
        yaw steps: their exclusive cumulative sum ``a`` (0 at frame 0) gives
        ``root_quat = (cos a, 0, sin a, 0)``, a rotation by ``2a`` about Y.
        Root XZ integrates channels 1:3 of the previous frame rotated back to the
        world; Y is channel 3.
    """
    if features.ndim < 2 or features.shape[-1] < 4:
        raise ValueError(f"expected features of shape (..., T, D>=4), got {tuple(features.shape)}")
    rot_vel = features[..., 0]
    angle = torch.cumsum(torch.cat((torch.zeros_like(rot_vel[..., :1]), rot_vel[..., :-1]), dim=-1), dim=-1)
    zero = torch.zeros_like(angle)
    root_quat = torch.stack((torch.cos(angle), zero, torch.sin(angle), zero), dim=-1)

    lin_vel = features[..., :-1, 1:3]
    step = torch.stack((lin_vel[..., 0], torch.zeros_like(lin_vel[..., 0]), lin_vel[..., 1]), dim=-1)
    step = torch.cat((torch.zeros_like(step[..., :1, :]), step), dim=-2)
    root_pos = torch.cumsum(quat_rotate(quat_conjugate(root_quat), step), dim=-2)
    root_pos = torch.cat((root_pos[..., :1], features[..., 3:4], root_pos[..., 2:3]), dim=-1)
    return root_quat, root_pos


@numpy_compatible
def recover_from_ric(features: Array, num_joints: int) -> Array:
    """Global joint positions (…, T, J, 3) from features (…, T, D).

    The ric positions are rotated back by the inverse root rotation and moved by
    the integrated root XZ; the root itself comes from :func:`recover_root`.
    """
    _check_features(features, num_joints)
    root_quat, root_pos = recover_root(features)
    ric = features[..., slices(num_joints)["positions"]]
    local = ric.reshape(ric.shape[:-1] + (num_joints - 1, 3))
    world = quat_rotate(quat_conjugate(root_quat)[..., None, :], local)
    offset_xz = root_pos * torch.tensor([1.0, 0.0, 1.0], dtype=root_pos.dtype, device=root_pos.device)
    world = world + offset_xz[..., None, :]
    return torch.cat((root_pos[..., None, :], world), dim=-2)


def bone_lengths(joints: np.ndarray, parents: Sequence[int]) -> np.ndarray:
    """Length of the bone from each joint's parent, (…, J) from joints (…, J, 3); root gets 0."""
    parent_idx = np.maximum(np.asarray(parents), 0)
    return np.linalg.norm(joints - joints[..., parent_idx, :], axis=-1)


def uniform_skeleton(joints: np.ndarray, skeleton: Skeleton, target_bone_lengths: Sequence[float]) -> np.ndarray:
    """Redraw a motion (T, J, 3) with the target bone lengths.

    Root positions are scaled by the leg-length ratio (thigh + shin at
    ``skeleton.leg_joints``, measured on frame 0), and every bone keeps its
    per-frame direction but takes its target length. This is what HumanML3D's
    IK-then-FK round trip computes, without the detour through rotations.
    """
    target = np.asarray(target_bone_lengths, dtype=np.float64)
    if target.shape != (skeleton.num_joints,):
        raise ValueError(f"target_bone_lengths: expected ({skeleton.num_joints},), got {target.shape}")
    leg = list(skeleton.leg_joints)
    source_leg = bone_lengths(joints[0], skeleton.parents)[leg].sum()
    scale = target[leg].sum() / source_leg
    out = np.empty_like(joints, dtype=np.float64)
    out[:, 0] = joints[:, 0] * scale
    for j in range(1, skeleton.num_joints):
        p = skeleton.parents[j]
        bone = joints[:, j] - joints[:, p]
        out[:, j] = out[:, p] + bone / np.linalg.norm(bone, axis=-1, keepdims=True) * target[j]
    return out


def _facing_quat(joints: np.ndarray, face_joints: Sequence[int], *, smooth_sigma: float | None) -> np.ndarray:
    """Quaternions (T, 4) turning the facing direction of each frame (T, J, 3) onto +Z.

    ``face_joints`` is (right hip, left hip, right shoulder, left shoulder); the
    across vector is ``(r_hip - l_hip) + (r_sh - l_sh)``, normalised in 3-D, and
    forward is ``Y × across``, optionally Gaussian-smoothed over time.
    """
    r_hip, l_hip, r_sh, l_sh = face_joints
    across = (joints[:, r_hip] - joints[:, l_hip]) + (joints[:, r_sh] - joints[:, l_sh])
    across = across / np.linalg.norm(across, axis=-1, keepdims=True)
    forward = np.cross(np.array([0.0, 1.0, 0.0]), across)
    if smooth_sigma is not None:
        # HumanML3D smooths with the 'nearest' border; scipy's default 'reflect'
        # moves the published 012314 features by up to 0.86.
        forward = gaussian_filter1d(forward, smooth_sigma, axis=0, mode="nearest")
    forward = forward / np.linalg.norm(forward, axis=-1, keepdims=True)
    return quat_between(forward, np.broadcast_to(np.array([0.0, 0.0, 1.0]), forward.shape))


def _ik_quats(joints: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """HumanML3D's inverse kinematics, quirks included: local quaternions (T, J, 4).

    * The face joints are read as (l_hip, r_hip, r_sh, l_sh) although they are
      given as (r_hip, l_hip, …), so the hip term of the across vector is negated.
    * The forward direction is smoothed with sigma 20 and frame 0's root
      rotation is forced to identity.
    * Each bone's global rotation is the shortest arc from its raw offset to its
      direction; its local rotation is taken relative to the previous bone *of
      the same chain*, and relative to the root rotation for the first bone of
      every chain, including the arm chains that start at spine3.
    """
    r_hip, l_hip, r_sh, l_sh = skeleton.face_joints
    root = _facing_quat(joints, (l_hip, r_hip, r_sh, l_sh), smooth_sigma=FORWARD_SMOOTHING_SIGMA)
    root[0] = (1.0, 0.0, 0.0, 0.0)

    bones = joints - joints[:, np.maximum(np.asarray(skeleton.parents), 0)]
    bones = bones / np.maximum(np.linalg.norm(bones, axis=-1, keepdims=True), 1e-12)
    raw = np.broadcast_to(skeleton.raw_offsets_array(), bones.shape)
    bone_rot = quat_between(raw, bones)
    bone_rot[:, 0] = root

    previous = [0] * skeleton.num_joints
    for chain in skeleton.chains:
        for i in range(2, len(chain)):
            previous[chain[i]] = chain[i - 1]
    local = quat_multiply(quat_conjugate(bone_rot[:, previous]), bone_rot)
    local[:, 0] = root
    return local


def _foot_contacts(positions: np.ndarray, feet: Sequence[int], threshold: float) -> np.ndarray:
    """1.0 where a foot joint moves less than ``sqrt(threshold)`` between frames: (T-1, len(feet))."""
    step = positions[1:, list(feet)] - positions[:-1, list(feet)]
    return ((step**2).sum(-1) < threshold).astype(np.float64)


def canonical_positions(
    joints: np.ndarray,
    skeleton: Skeleton,
    *,
    uniform: bool = True,
    target_bone_lengths: Sequence[float] | None = None,
) -> np.ndarray:
    """The global positions (T, J, 3) that HumanML3D features describe.

    1. (``uniform``) redraw with the target bone lengths, see :func:`uniform_skeleton`;
       ``target_bone_lengths`` defaults to :data:`T2M_TARGET_BONE_LENGTHS` for t2m
       and must be given for other skeletons.
    2. Put on the floor (min Y over all joints and frames becomes 0) and move
       root XZ of frame 0 to the origin.
    3. Turn about Y so that frame 0 faces +Z (face joints in their correct order).

    ``recover_from_ric(features_from_joints(joints))`` gives back the first T-1
    frames of this.
    """
    joints = np.asarray(joints, dtype=np.float64)
    num_joints = skeleton.num_joints
    if joints.ndim != 3 or joints.shape[1:] != (num_joints, 3) or joints.shape[0] < 2:
        raise ValueError(f"expected joints of shape (T>=2, {num_joints}, 3) for {skeleton.name}, got {joints.shape}")
    if uniform:
        if target_bone_lengths is None:
            target_bone_lengths = _TARGET_BONE_LENGTHS.get(skeleton.name)
            if not target_bone_lengths:
                raise ValueError(
                    f"no reference bone lengths are known for skeleton {skeleton.name!r}; "
                    "pass target_bone_lengths or uniform=False"
                )
        joints = uniform_skeleton(joints, skeleton, target_bone_lengths)
    joints = joints - np.array([0.0, joints[..., 1].min(), 0.0])
    joints = joints - joints[0, 0] * np.array([1.0, 0.0, 1.0])
    face = _facing_quat(joints[:1], skeleton.face_joints, smooth_sigma=None)
    return quat_rotate(face[:, None], joints)


def features_from_joints(
    joints: np.ndarray,
    skeleton: Skeleton,
    *,
    feet_threshold: float = 0.002,
    uniform: bool = True,
    target_bone_lengths: Sequence[float] | None = None,
) -> np.ndarray:
    """HumanML3D features (T-1, D) from global joint positions (T, J, 3), Y up.

    Follows HumanML3D's ``motion_representation.ipynb``. The motion is first
    made canonical (:func:`canonical_positions`: uniform skeleton, floor, origin,
    frame 0 facing +Z); then, per frame t < T-1:

    * foot contacts: squared step to frame t+1 below ``feet_threshold``
      (left ankle, left toe, right ankle, right toe);
    * root rotation ``r`` from :func:`_ik_quats` (smoothed, quirky forward);
      rotational velocity ``arcsin(q_y)`` of ``r[t+1]·r[t]^-1`` (half the yaw
      step); linear velocity: the root's step rotated by ``r[t+1]``;
    * ric positions: root XZ removed, rotated by ``r[t]``;
    * cont6d of the IK local rotations of joints 1..J-1;
    * velocities: each joint's step rotated by ``r[t]``.

    Known limits, shared with the reference: ``r`` is built with ``w >= 0``, so
    when the facing crosses ±180° from frame 0 the arcsin step of that frame
    decodes with the wrong sign and the recovered heading is off by twice that
    step from then on. Features depend on the whole clip through the smoothed
    forward direction, so trimming a clip changes the root rotation of frames
    within ~80 frames of the cut. Computed in float64; HumanML3D computed in
    float32, so continuous channels agree to float32 precision and a contact
    can flip where a squared step is within rounding of the threshold.
    """
    joints = canonical_positions(joints, skeleton, uniform=uniform, target_bone_lengths=target_bone_lengths)
    frames = len(joints) - 1
    contacts_left = _foot_contacts(joints, skeleton.feet_left, feet_threshold)
    contacts_right = _foot_contacts(joints, skeleton.feet_right, feet_threshold)

    local_quats = _ik_quats(joints, skeleton)
    root = local_quats[:, 0]
    rot_vel = np.arcsin(quat_multiply(root[1:], quat_conjugate(root[:-1]))[:, 2:3])
    lin_vel = quat_rotate(root[1:], joints[1:, 0] - joints[:-1, 0])[:, [0, 2]]
    root_height = joints[:-1, 0, 1:2]

    centred = joints - joints[:, :1] * np.array([1.0, 0.0, 1.0])
    ric = quat_rotate(root[:, None], centred)[:-1, 1:].reshape(frames, -1)
    rot6d = matrix_to_cont6d(quat_to_matrix(local_quats[:-1, 1:])).reshape(frames, -1)
    velocities = quat_rotate(root[:-1, None], joints[1:] - joints[:-1]).reshape(frames, -1)

    return np.concatenate(
        (rot_vel, lin_vel, root_height, ric, rot6d, velocities, contacts_left, contacts_right), axis=-1
    )
