"""Skeleton definitions (HumanML3D ``t2m`` 22 joints, KIT-ML 21 joints) and forward kinematics.

:func:`global_transforms` is the one forward-kinematics routine (any skeleton, any number
of roots, per-frame local positions); :func:`forward_kinematics` is its form for a skeleton
with rest offsets and a moving root.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from motionhub.errors import did_you_mean
from motionhub.motion.rotations import numpy_compatible, quat_to_matrix


@dataclass(frozen=True)
class Skeleton:
    """Topology and the processing constants HumanML3D attaches to a skeleton.

    Attributes:
        name: short id (``"t2m"``, ``"kit"``).
        joint_names: one name per joint, in feature order.
        parents: parent index of each joint, ``-1`` for the root; parents precede children.
        feet_left: (ankle, toe) joints whose contacts fill the first two contact channels.
        feet_right: (ankle, toe) joints for the last two contact channels.
        face_joints: (right hip, left hip, right shoulder, left shoulder), used to find
            the facing direction.
        leg_joints: two joints whose parent bones (thigh and shin) give the leg length
            used for uniform scaling.
        raw_offsets: unit rest direction of the bone from each joint's parent (root: 0).
        chains: kinematic chains, each starting at the root or at a joint of an earlier chain.
    """

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    feet_left: tuple[int, int]
    feet_right: tuple[int, int]
    face_joints: tuple[int, int, int, int]
    leg_joints: tuple[int, int]
    raw_offsets: tuple[tuple[float, float, float], ...]
    chains: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        if len(self.parents) != n or len(self.raw_offsets) != n:
            raise ValueError(
                f"{self.name}: {n} joint names but {len(self.parents)} parents "
                f"and {len(self.raw_offsets)} raw offsets"
            )
        if self.parents[0] != -1 or any(not 0 <= p < j for j, p in enumerate(self.parents) if j):
            raise ValueError(f"{self.name}: parents must be -1 for joint 0 and precede each joint")
        from_chains = [-1] * n
        for chain in self.chains:
            for parent, child in zip(chain[:-1], chain[1:]):
                from_chains[child] = parent
        if tuple(from_chains) != self.parents:
            raise ValueError(f"{self.name}: chains imply parents {from_chains}, not {list(self.parents)}")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def raw_offsets_array(self) -> np.ndarray:
        """Raw unit offsets as a float64 array (J, 3)."""
        return np.asarray(self.raw_offsets, dtype=np.float64)


T2M_SKELETON = Skeleton(
    name="t2m",
    joint_names=(
        "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
        "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
        "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
        "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    ),
    parents=(-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19),
    feet_left=(7, 10),
    feet_right=(8, 11),
    face_joints=(2, 1, 17, 16),
    leg_joints=(5, 8),
    raw_offsets=(
        (0, 0, 0), (1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, -1, 0), (0, 1, 0), (0, -1, 0),
        (0, -1, 0), (0, 1, 0), (0, 0, 1), (0, 0, 1), (0, 1, 0), (1, 0, 0), (-1, 0, 0), (0, 0, 1),
        (0, -1, 0), (0, -1, 0), (0, -1, 0), (0, -1, 0), (0, -1, 0), (0, -1, 0),
    ),
    chains=((0, 2, 5, 8, 11), (0, 1, 4, 7, 10), (0, 3, 6, 9, 12, 15), (9, 14, 17, 19, 21), (9, 13, 16, 18, 20)),
)  # fmt: skip
"""HumanML3D / SMPL body skeleton (first 22 SMPL joints, SMPL joint names)."""

KIT_SKELETON = Skeleton(
    name="kit",
    # KIT-ML ships no joint names; these are descriptive, with sides as the
    # HumanML3D processing constants label them (joint 11 = right hip).
    joint_names=(
        "root", "spine", "chest", "neck", "head",
        "right_shoulder", "right_elbow", "right_wrist",
        "left_shoulder", "left_elbow", "left_wrist",
        "right_hip", "right_knee", "right_ankle", "right_foot", "right_toe",
        "left_hip", "left_knee", "left_ankle", "left_foot", "left_toe",
    ),
    parents=(-1, 0, 1, 2, 3, 3, 5, 6, 3, 8, 9, 0, 11, 12, 13, 14, 0, 16, 17, 18, 19),
    feet_left=(19, 20),
    feet_right=(14, 15),
    face_joints=(11, 16, 5, 8),
    leg_joints=(17, 18),
    raw_offsets=(
        (0, 0, 0), (0, 1, 0), (0, 1, 0), (0, 1, 0), (0, 1, 0), (1, 0, 0), (0, -1, 0),
        (0, -1, 0), (-1, 0, 0), (0, -1, 0), (0, -1, 0), (1, 0, 0), (0, -1, 0), (0, -1, 0),
        (0, 0, 1), (0, 0, 1), (-1, 0, 0), (0, -1, 0), (0, -1, 0), (0, 0, 1), (0, 0, 1),
    ),
    chains=((0, 11, 12, 13, 14, 15), (0, 16, 17, 18, 19, 20), (0, 1, 2, 3, 4), (3, 5, 6, 7), (3, 8, 9, 10)),
)  # fmt: skip
"""KIT-ML skeleton (21 joints, mm-scale data)."""


def joint_indices(names: Sequence[str], wanted: Sequence[str], option: str) -> list[int]:
    """Indices in ``names`` of the ``wanted`` joint names; ``option`` names the setting they came from.

    An unknown name is a ``ValueError`` that suggests the closest joint and lists them all.
    """
    names = list(names)
    indices = []
    for name in wanted:
        if name not in names:
            raise ValueError(f"{option}: no joint named '{name}'{did_you_mean(name, names) or '.'} "
                             f"Joints: {', '.join(names)}")
        indices.append(names.index(name))
    return indices


@numpy_compatible
def global_transforms(
    parents: Sequence[int], local_rotations: torch.Tensor, local_positions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Global joint positions (…, J, 3) and rotations (…, J, 3, 3) from local transforms.

    ``G_rot[j] = G_rot[p] @ L_rot[j]`` and ``G_pos[j] = G_pos[p] + G_rot[p] @ L_pos[j]``
    with ``p = parents[j]``; a root (parent ``-1``, any number of them, anywhere) keeps
    its local transform. Matrices act on column vectors.

    Args:
        parents: parent index per joint, ``-1`` for a root; every parent precedes its child.
        local_rotations: (…, J, 3, 3) rotation of each joint relative to its parent.
        local_positions: (…, J, 3) translation of each joint in its parent's frame.
    """
    parents = [int(p) for p in parents]
    num_joints = len(parents)
    if local_rotations.shape[-3:] != (num_joints, 3, 3):
        raise ValueError(f"local_rotations: expected (..., {num_joints}, 3, 3), got {tuple(local_rotations.shape)}")
    if local_positions.shape != local_rotations.shape[:-2] + (3,):
        raise ValueError(f"local_positions: expected {tuple(local_rotations.shape[:-2]) + (3,)}, "
                         f"got {tuple(local_positions.shape)}")
    rotations: list[torch.Tensor] = []
    positions: list[torch.Tensor] = []
    for j, p in enumerate(parents):
        if p < 0:
            rotations.append(local_rotations[..., j, :, :])
            positions.append(local_positions[..., j, :])
            continue
        if p >= j:
            raise ValueError(f"joint {j} has parent {p}; parents must precede their children")
        offset = (rotations[p] @ local_positions[..., j, :, None]).squeeze(-1)
        positions.append(positions[p] + offset)
        rotations.append(rotations[p] @ local_rotations[..., j, :, :])
    return torch.stack(positions, dim=-2), torch.stack(rotations, dim=-3)


@numpy_compatible
def forward_kinematics(
    skeleton_offsets: torch.Tensor,
    parents: Sequence[int],
    local_rotations: torch.Tensor,
    root_positions: torch.Tensor,
) -> torch.Tensor:
    """Global joint positions (…, T, J, 3) of one skeleton from local rotations (SMPL convention).

    A joint's local rotation turns the frame in which its *children's* offsets
    are expressed: ``G_j = G_parent(j) @ L_j`` and
    ``p_j = p_parent(j) + G_parent(j) @ offset_j``; the root's rotation is global.
    This is :func:`global_transforms` with the rest offsets as every non-root
    joint's local position and ``root_positions`` as the root's.

    Args:
        skeleton_offsets: rest offset of each joint from its parent, (J, 3) or
            (…, J, 3) with the same leading dims as the motion (shared over T).
        parents: parent index per joint (``-1`` for the root), parents first.
        local_rotations: (…, T, J, 3, 3) matrices or (…, T, J, 4) quaternions.
        root_positions: (…, T, 3).

    HumanML3D's own ``Skeleton.forward_kinematics`` uses a different
    convention (a joint's rotation turns the bone *into* it, and the arm chains
    restart from the root rotation), so its 263 rotations do not plug in here.
    """
    if local_rotations.shape[-1] == 4:
        local_rotations = quat_to_matrix(local_rotations)
    num_joints = len(parents)
    if local_rotations.shape[-3:] != (num_joints, 3, 3):
        raise ValueError(
            f"local_rotations: expected (..., T, {num_joints}, 3, 3) or (..., T, {num_joints}, 4), "
            f"got {tuple(local_rotations.shape)}"
        )
    if skeleton_offsets.shape[-2:] != (num_joints, 3):
        raise ValueError(f"skeleton_offsets: expected (..., {num_joints}, 3), got {tuple(skeleton_offsets.shape)}")
    if root_positions.shape != local_rotations.shape[:-3] + (3,):
        raise ValueError(
            f"root_positions: expected {tuple(local_rotations.shape[:-3]) + (3,)}, got {tuple(root_positions.shape)}"
        )
    if parents[0] != -1 or any(not 0 <= p < j for j, p in enumerate(parents) if j):
        raise ValueError(f"parents must be -1 for joint 0 and precede each joint, got {list(parents)}")
    offsets = skeleton_offsets.to(local_rotations.dtype).unsqueeze(-3)
    offsets = offsets.expand(local_rotations.shape[:-2] + (3,))
    local_positions = torch.cat((root_positions.to(local_rotations.dtype)[..., None, :], offsets[..., 1:, :]), dim=-2)
    return global_transforms(parents, local_rotations, local_positions)[0]
