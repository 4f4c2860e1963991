"""The 22 SMPL body joints of HumanML3D 263 / MotionMillion 272 features as a BVH skeleton and animation.

A BVH joint's rotation turns the offsets of its *children* (``G_child_pos = G_pos + G_rot @ offset``),
so every joint with one child takes the rotation that lays its rest bone onto the bone it has in
each frame, and the twist about that bone comes from the features' rotation channels:

* **263** (HumanML3D): its rotation channels are HumanML3D's own IK: the cont6d of joint j,
  chained from the root rotation along each kinematic chain (the arm chains restart from the
  root), gives the rotation that turns the joint's raw offset direction onto the bone *into* j.
  Checked on the published clip 012314: those rotations with HumanML3D's bone lengths rebuild
  its ``new_joints`` to 1.6e-6 m. They carry no rotation for the five end joints (feet, head,
  wrists), which keep the direction of the bone into them.
* **272** (MotionMillion): its rotation channels are SMPL local rotations (root heading
  removed, restored here), the BVH convention already; the rest offsets are the ones those
  rotations imply against the clip's joints (constant to 8e-8 m over the real 272 sample).

The joints are then fitted onto the positions the features recover (``recover_from_ric`` /
``recover_from_local_position``): a one-child joint's rotation is turned by the shortest arc
that moves its child onto the recovered position (no turn where rotations and positions agree,
as in real data), and the two joints with three children (pelvis, spine3) take the rotation
that best lays their rest children onto the recovered ones (Kabsch). With ``rotations=False``
the twist is not read: each bone takes the shortest arc from its rest direction (an IK from
the positions alone).

Rest offsets: bone lengths are the clip's mean; directions are a T-pose (legs down, spine up,
arms out along ±X, feet forward) for 263, SMPL's rest pose for 272; the children of the
pelvis and spine3 keep the rigid arrangement measured in the clip. Positions in the BVH
reproduce the recovered ones exactly where the clip's bone lengths are constant and the
pelvis/spine3 children move rigidly (real data), and otherwise by how far they are not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from motionhub.motion import humanml3d, representation272
from motionhub.motion.rotations import cont6d_to_matrix, quat_between, quat_to_matrix, rotation_6d_to_matrix
from motionhub.motion.skeletons import T2M_SKELETON, global_transforms

JOINT_NAMES = T2M_SKELETON.joint_names
PARENTS = np.asarray(T2M_SKELETON.parents)

# T-pose rest direction of the bone into each joint (SMPL axes: Y up, +Z forward, +X the body's left).
# The pelvis and spine3 children (1, 2, 3, 12, 13, 14) are measured from the clip instead.
T_POSE_DIRECTIONS = np.array([
    (0, 0, 0), (1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, -1, 0), (0, 1, 0), (0, -1, 0),
    (0, -1, 0), (0, 1, 0), (0, 0, 1), (0, 0, 1), (0, 1, 0), (1, 0, 0), (-1, 0, 0), (0, 1, 0),
    (1, 0, 0), (-1, 0, 0), (1, 0, 0), (-1, 0, 0), (1, 0, 0), (-1, 0, 0),
], dtype=np.float64)  # fmt: skip

END_SITE_FRACTION = 0.5  # an end joint's End Site continues its bone by this share of its length


@dataclass(frozen=True)
class SkeletonAnimation:
    """A skeleton with rest offsets and per-frame local rotations, what a BVH file holds.

    Attributes:
        joint_names: (J,) names.
        parents: (J,) parent index, -1 for the root; parents precede children.
        offsets: (J, 3) rest offset of each joint in its parent's frame (root: zeros), metres.
        end_sites: (J, 3) End Site offset of each joint without children (zeros for the others).
        local_rotations: (T, J, 3, 3) rotation of each joint relative to its parent.
        root_positions: (T, 3) root position, metres.
        fps: frames per second.
    """

    joint_names: tuple[str, ...]
    parents: np.ndarray
    offsets: np.ndarray
    end_sites: np.ndarray
    local_rotations: np.ndarray
    root_positions: np.ndarray
    fps: float

    def global_positions(self) -> np.ndarray:
        """Joint positions (T, J, 3) by forward kinematics."""
        local = np.broadcast_to(self.offsets, self.root_positions.shape[:1] + self.offsets.shape).copy()
        local[:, 0] = self.root_positions
        return global_transforms(self.parents, self.local_rotations, local)[0]


def children_of(parents: Sequence[int]) -> list[list[int]]:
    """The children of each joint, in joint order."""
    children: list[list[int]] = [[] for _ in parents]
    for joint, parent in enumerate(parents):
        if parent >= 0:
            children[parent].append(joint)
    return children


def arc_matrix(v0: np.ndarray, v1: np.ndarray) -> np.ndarray:
    """Shortest-arc rotation matrices (…, 3, 3) turning directions v0 (…, 3) onto v1 (…, 3);
    the identity where either has no length (a collapsed bone has no direction to follow)."""
    v0, v1 = np.broadcast_arrays(np.asarray(v0, dtype=np.float64), np.asarray(v1, dtype=np.float64))
    degenerate = np.linalg.norm(v0, axis=-1) * np.linalg.norm(v1, axis=-1) < 1e-12
    stand_in = degenerate[..., None]
    return quat_to_matrix(quat_between(np.where(stand_in, 1.0, v0), np.where(stand_in, 1.0, v1)))


def kabsch(rest: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Rotations (T, 3, 3) that best turn the rest vectors (K, 3) onto each frame's (T, K, 3), least squares."""
    covariance = np.einsum("ka,tkb->tba", rest, current)
    u, _, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(u @ vt))
    u[..., :, -1] *= sign[..., None]
    return u @ vt


def fit_rotations(positions: np.ndarray, parents: Sequence[int], offsets: np.ndarray,
                  guess: np.ndarray | None) -> np.ndarray:
    """Global joint rotations (T, J, 3, 3) that lay the rest ``offsets`` (J, 3) onto ``positions`` (T, J, 3).

    A joint with one child turns ``guess`` (T, J, 3, 3; identity where None) by the shortest arc
    that moves its rest child onto the child's position; one with several children takes the
    Kabsch rotation of their rest offsets onto their positions; one without children keeps
    ``guess``, or its parent's rotation where ``guess`` is None.
    """
    frames, joints = positions.shape[:2]
    rotations = np.empty((frames, joints, 3, 3))
    for joint, kids in enumerate(children_of(parents)):
        start = guess[:, joint] if guess is not None else np.broadcast_to(np.eye(3), (frames, 3, 3))
        if not kids:
            parent = parents[joint]
            rotations[:, joint] = start if guess is not None or parent < 0 else rotations[:, parent]
        elif len(kids) == 1:
            bone = positions[:, kids[0]] - positions[:, joint]
            rest = np.einsum("tab,b->ta", start, offsets[kids[0]])
            rotations[:, joint] = arc_matrix(rest, bone) @ start
        else:
            bones = positions[:, kids] - positions[:, joint, None]
            rotations[:, joint] = kabsch(offsets[kids], bones)
    return rotations


def local_from_global(rotations: np.ndarray, parents: Sequence[int]) -> np.ndarray:
    """Local rotations ``G_parent^T @ G`` (T, J, 3, 3) of global ones; a root keeps its global rotation."""
    local = rotations.copy()
    for joint, parent in enumerate(parents):
        if parent >= 0:
            local[:, joint] = np.swapaxes(rotations[:, parent], -1, -2) @ rotations[:, joint]
    return local


def rigid_children(positions: np.ndarray, joint: int, kids: Sequence[int], frame_rotation: np.ndarray,
                   rounds: int = 2) -> np.ndarray:
    """The rest offsets (K, 3) of ``kids`` of ``joint``: their arrangement in the clip, as one rigid body.

    Starts from frame 0 turned by ``frame_rotation`` (3, 3) (e.g. the root's facing), then
    averages every frame laid onto that estimate (generalised Procrustes, ``rounds`` times).
    """
    bones = positions[:, list(kids)] - positions[:, joint, None]
    rest = bones[0] @ frame_rotation.T
    for _ in range(rounds):
        align = kabsch(rest, bones)  # rest -> frame t
        rest = np.einsum("tba,tkb->ka", align, bones) / len(bones)
    return rest


def mean_bone_lengths(positions: np.ndarray, parents: Sequence[int]) -> np.ndarray:
    """Mean length over frames of the bone into each joint, (J,); root 0."""
    return humanml3d.bone_lengths(positions, parents).mean(axis=0)


def from_humanml3d(features: np.ndarray, fps: float, *, rotations: bool = True) -> SkeletonAnimation:
    """A :class:`SkeletonAnimation` of HumanML3D 263 features (T, 263), positions in metres."""
    features = np.asarray(features, dtype=np.float64)
    positions = humanml3d.recover_from_ric(features, 22)
    root_quat, _ = humanml3d.recover_root(features)
    facing = quat_to_matrix(root_quat)  # world -> facing frame
    lengths = mean_bone_lengths(positions, PARENTS)
    offsets = T_POSE_DIRECTIONS * lengths[:, None]
    kids = children_of(PARENTS)
    for joint, joint_kids in enumerate(kids):
        if len(joint_kids) > 1:
            offsets[joint_kids] = rigid_children(positions, joint, joint_kids, facing[0])
    guess = _humanml3d_guess(features, facing) if rotations else None
    return _animation(positions, offsets, guess, fps)


def _humanml3d_guess(features: np.ndarray, facing: np.ndarray) -> np.ndarray:
    """Global rotations (T, 22, 3, 3) in the T-pose rest convention from the 263 rotation channels.

    HumanML3D's chained rotation of joint c turns raw offset c onto the bone into c; the joint
    before c (its only parent) must turn the T-pose direction of c onto it, so it takes that
    rotation after the fixed turn from the T-pose direction onto the raw one. End joints take
    their own chained rotation the same way (their End Site continues their bone).
    """
    frames = len(features)
    cont6d = features[:, humanml3d.slices(22)["rotations_6d"]].reshape(frames, 21, 6)
    local = cont6d_to_matrix(cont6d)
    chained = np.broadcast_to(np.eye(3), (frames, 22, 3, 3)).copy()
    for chain in T2M_SKELETON.chains:
        rotation = facing
        for joint in chain[1:]:
            rotation = rotation @ local[:, joint - 1]
            chained[:, joint] = rotation
    raw = T2M_SKELETON.raw_offsets_array()
    guess = np.broadcast_to(np.eye(3), (frames, 22, 3, 3)).copy()
    for joint, joint_kids in enumerate(children_of(PARENTS)):
        target = joint_kids[0] if len(joint_kids) == 1 else joint if not joint_kids else None
        if target is not None:
            guess[:, joint] = chained[:, target] @ arc_matrix(T_POSE_DIRECTIONS[target], raw[target])
    return guess


def from_representation272(features: np.ndarray, fps: float, *, rotations: bool = True) -> SkeletonAnimation:
    """A :class:`SkeletonAnimation` of 272-dim features (T, 272), positions in metres.

    The root rotation of the features has its heading removed; the heading is the running
    product of the heading changes, as :func:`representation272.recover_from_local_position` has it.
    """
    features = np.asarray(features, dtype=np.float64)
    positions = representation272.recover_from_local_position(features)
    parts = representation272.slices()
    steps = rotation_6d_to_matrix(features[:, parts["heading_6d"]])
    heading = np.empty_like(steps)
    heading[0] = steps[0]
    for t in range(1, len(steps)):
        heading[t] = steps[t] @ heading[t - 1]
    local = rotation_6d_to_matrix(features[:, parts["rotations_6d"]].reshape(len(features), 22, 6))
    local[:, 0] = np.swapaxes(heading, -1, -2) @ local[:, 0]
    smpl_global = np.empty_like(local)
    for joint, parent in enumerate(PARENTS):
        smpl_global[:, joint] = local[:, joint] if parent < 0 else smpl_global[:, parent] @ local[:, joint]
    # The offsets these rotations imply: G_parent^T (p_joint - p_parent), averaged over frames.
    bones = positions - positions[:, np.maximum(PARENTS, 0)]
    implied = np.einsum("tjba,tjb->tja", smpl_global[:, np.maximum(PARENTS, 0)], bones).mean(axis=0)
    implied[0] = 0.0
    lengths = mean_bone_lengths(positions, PARENTS)
    norms = np.linalg.norm(implied, axis=-1, keepdims=True)
    offsets = np.divide(implied, norms, out=np.zeros_like(implied), where=norms > 0) * lengths[:, None]
    return _animation(positions, offsets, smpl_global if rotations else None, fps)


def _animation(positions: np.ndarray, offsets: np.ndarray, guess: np.ndarray | None, fps: float) -> SkeletonAnimation:
    global_rotations = fit_rotations(positions, PARENTS, offsets, guess)
    leaves = np.array([not kids for kids in children_of(PARENTS)])
    end_sites = np.where(leaves[:, None], offsets * END_SITE_FRACTION, 0.0)
    return SkeletonAnimation(
        joint_names=JOINT_NAMES, parents=PARENTS.copy(), offsets=offsets, end_sites=end_sites,
        local_rotations=local_from_global(global_rotations, PARENTS), root_positions=positions[:, 0].copy(),
        fps=float(fps),
    )


# ---------------------------------------------------------------------------- BVH text
def matrix_to_euler_zyx(matrices: np.ndarray) -> np.ndarray:
    """Degrees (…, 3) ``(z, y, x)`` with ``R = Rz(z) @ Ry(y) @ Rx(x)``, the order BVH channels
    ``Zrotation Yrotation Xrotation`` apply; at gimbal lock (|y| = 90°) x is 0."""
    m = np.asarray(matrices, dtype=np.float64)
    sin_y = np.clip(-m[..., 2, 0], -1.0, 1.0)
    y = np.arcsin(sin_y)
    locked = np.abs(sin_y) > 1.0 - 1e-9
    z = np.where(locked, np.arctan2(-m[..., 0, 1], m[..., 1, 1]), np.arctan2(m[..., 1, 0], m[..., 0, 0]))
    x = np.where(locked, 0.0, np.arctan2(m[..., 2, 1], m[..., 2, 2]))
    return np.degrees(np.stack((z, y, x), axis=-1))


def bvh_text(animation: SkeletonAnimation, units_per_metre: float = 100.0) -> str:
    """The BVH file of ``animation``: its ROOT (joint 0) with ``X/Y/Zposition Zrotation Yrotation Xrotation``,
    every other joint ``Zrotation Yrotation Xrotation``, lengths in ``units_per_metre`` (100: cm)."""
    names, parents = animation.joint_names, [int(p) for p in animation.parents]
    kids = children_of(parents)
    lines = ["HIERARCHY"]

    def number(v: float) -> str:
        return f"{v:.6f}"

    def write(joint: int, depth: int) -> None:
        pad = "\t" * depth
        keyword = "ROOT" if parents[joint] < 0 else "JOINT"
        lines.append(f"{pad}{keyword} {names[joint]}")
        lines.append(f"{pad}{{")
        offset = animation.offsets[joint] * units_per_metre
        lines.append(f"{pad}\tOFFSET {' '.join(number(v) for v in offset)}")
        channels = "6 Xposition Yposition Zposition " if parents[joint] < 0 else "3 "
        lines.append(f"{pad}\tCHANNELS {channels}Zrotation Yrotation Xrotation")
        for child in kids[joint]:
            write(child, depth + 1)
        if not kids[joint]:
            end = animation.end_sites[joint] * units_per_metre
            lines.extend([f"{pad}\tEnd Site", f"{pad}\t{{",
                          f"{pad}\t\tOFFSET {' '.join(number(v) for v in end)}", f"{pad}\t}}"])
        lines.append(f"{pad}}}")

    order: list[int] = []

    def visit(joint: int) -> None:
        order.append(joint)
        for child in kids[joint]:
            visit(child)

    roots = [j for j, p in enumerate(parents) if p < 0]
    if roots != [0]:
        raise ValueError(f"bvh_text writes one skeleton rooted at joint 0; the parents give roots {roots}")
    write(0, 0)
    visit(0)
    angles = np.unwrap(matrix_to_euler_zyx(animation.local_rotations[:, order]), period=360.0, axis=0)
    frames = len(animation.root_positions)
    values = np.concatenate((animation.root_positions * units_per_metre, angles.reshape(frames, -1)), axis=1)
    lines += ["MOTION", f"Frames: {frames}", f"Frame Time: {1.0 / animation.fps:.8f}"]
    lines += [" ".join(number(v) for v in row) for row in values]
    return "\n".join(lines) + "\n"
