"""Skeleton and motion-feature math: rotations, skeletons and forward kinematics,
smoothing, the HumanML3D 263/251-dim layout and the 272-dim layout.

Functions take torch tensors or numpy arrays (numpy in, numpy out) unless their
docstring says otherwise. Layout helpers with the same name live in their module:
``humanml3d.slices(num_joints)`` and ``representation272.slices()``.
"""

from motionhub.motion import filters, humanml3d, representation272
from motionhub.motion.filters import gaussian_filter1d
from motionhub.motion.humanml3d import (
    T2M_TARGET_BONE_LENGTHS,
    canonical_positions,
    feature_dim,
    features_from_joints,
    recover_from_ric,
    recover_root,
)
from motionhub.motion.representation272 import features_from_smpl, recover_from_local_position
from motionhub.motion.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_quat,
    cont6d_to_matrix,
    matrix_to_axis_angle,
    matrix_to_cont6d,
    matrix_to_quat,
    matrix_to_rotation_6d,
    numpy_compatible,
    quat_between,
    quat_conjugate,
    quat_multiply,
    quat_normalize,
    quat_rotate,
    quat_slerp,
    quat_to_axis_angle,
    quat_to_matrix,
    rotation_6d_to_matrix,
    yaw_to_matrix,
)
from motionhub.motion.skeletons import KIT_SKELETON, T2M_SKELETON, Skeleton, forward_kinematics

__all__ = [
    "KIT_SKELETON",
    "T2M_SKELETON",
    "T2M_TARGET_BONE_LENGTHS",
    "Skeleton",
    "axis_angle_to_matrix",
    "axis_angle_to_quat",
    "canonical_positions",
    "cont6d_to_matrix",
    "feature_dim",
    "features_from_joints",
    "features_from_smpl",
    "filters",
    "forward_kinematics",
    "gaussian_filter1d",
    "humanml3d",
    "matrix_to_axis_angle",
    "matrix_to_cont6d",
    "matrix_to_quat",
    "matrix_to_rotation_6d",
    "numpy_compatible",
    "quat_between",
    "quat_conjugate",
    "quat_multiply",
    "quat_normalize",
    "quat_rotate",
    "quat_slerp",
    "quat_to_axis_angle",
    "quat_to_matrix",
    "recover_from_local_position",
    "recover_from_ric",
    "recover_root",
    "representation272",
    "rotation_6d_to_matrix",
    "yaw_to_matrix",
]
