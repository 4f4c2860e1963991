"""BVH reader: hierarchy and channel parsing, Euler conventions, forward kinematics, errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from motionhub_bvh.bvh import BVHError, euler_to_matrix, forward_kinematics, parse_bvh, read_bvh

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("MOTIONHUB_REAL_DATA", REPO.parent / "shared" / "real_data"))
PFNN_ANIMATIONS = REAL_DATA / "sreyafrancis-PFNN" / "data" / "animations"


def rot(axis: str, degrees: float) -> np.ndarray:
    """Right-handed rotation matrix, written out independently of the module."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return {
        "X": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "Y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        "Z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


CHAIN = """HIERARCHY
ROOT Root
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Upper
  {
    OFFSET 0 2 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    JOINT Lower
    {
      OFFSET 0 3 0
      CHANNELS 3 Zrotation Xrotation Yrotation
      End Site
      {
        OFFSET 0 1 0
      }
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.0333333
1 2 3 0 0 0   90 0 0   0 0 0
1 2 3 90 0 0  0 0 0    -90 0 0
"""


def test_two_bone_chain_forward_kinematics():
    motion = parse_bvh(CHAIN)
    assert motion.joint_names == ("Root", "Upper", "Lower")
    assert motion.parents.tolist() == [-1, 0, 1]
    assert motion.num_frames == 2 and motion.fps == pytest.approx(30.0, rel=1e-5)
    positions, rotations = motion.global_transforms()
    # Frame 0: the upper bone turns 90 degrees about z, so the lower bone points along -x.
    np.testing.assert_allclose(positions[0], [[1, 2, 3], [1, 4, 3], [-2, 4, 3]], atol=1e-12)
    # Frame 1: the root turns instead, and the lower joint turns back to identity.
    np.testing.assert_allclose(positions[1], [[1, 2, 3], [-1, 2, 3], [-4, 2, 3]], atol=1e-12)
    np.testing.assert_allclose(rotations[1, 2], np.eye(3), atol=1e-12)
    np.testing.assert_allclose(motion.end_site_positions(), [[[-3, 4, 3]], [[-4, 3, 3]]], atol=1e-12)


def test_end_sites_are_not_joints():
    motion = parse_bvh(CHAIN)
    assert motion.num_joints == 3
    assert motion.end_site_parents.tolist() == [2]
    np.testing.assert_allclose(motion.end_site_offsets, [[0, 1, 0]])


def _one_joint_file(channels: str, values: str) -> str:
    return f"""HIERARCHY
ROOT Hips
{{
\tOFFSET 0 0 0
\tCHANNELS 3 Xposition Yposition Zposition
\tJOINT Arm
\t{{
\t\tOFFSET 1 2 3
\t\tCHANNELS {len(channels.split())} {channels}
\t\tJOINT Hand
\t\t{{
\t\t\tOFFSET 0 1 0
\t\t\tCHANNELS 0
\t\t}}
\t}}
}}
MOTION
Frames: 1
Frame Time: 0.01
0 0 0 {values}
"""


@pytest.mark.parametrize("order", ["ZXY", "XYZ"])
def test_euler_channels_are_intrinsic_in_listed_order(order):
    angles = {"X": 30.0, "Y": -45.0, "Z": 60.0}
    channels = " ".join(f"{axis}rotation" for axis in order)
    motion = parse_bvh(_one_joint_file(channels, " ".join(str(angles[a]) for a in order)))
    expected = rot(order[0], angles[order[0]]) @ rot(order[1], angles[order[1]]) @ rot(order[2], angles[order[2]])
    np.testing.assert_allclose(motion.local_rotations[0, 1], expected, atol=1e-12)
    np.testing.assert_allclose(euler_to_matrix([angles[a] for a in order], order), expected, atol=1e-12)
    hand = motion.global_positions()[0, 2]
    np.testing.assert_allclose(hand, np.array([1, 2, 3]) + expected @ [0, 1, 0], atol=1e-12)


def test_intrinsic_order_moves_the_child_as_bvh_defines():
    # Zrotation 90 then Xrotation 90 about the already-turned axes: +y goes to +z.
    # (Applying them the other way round would send +y to -x.)
    motion = parse_bvh(_one_joint_file("Zrotation Xrotation", "90 90"))
    np.testing.assert_allclose(motion.global_positions()[0, 2], [1, 2, 4], atol=1e-12)


def test_position_channels_on_a_non_root_joint_replace_offset_components():
    motion = parse_bvh(_one_joint_file("Xposition Zposition Yrotation", "7 9 90"))
    assert motion.channels[1] == ("Xposition", "Zposition", "Yrotation")
    np.testing.assert_allclose(motion.local_positions[0, 1], [7, 2, 9])  # y keeps the OFFSET
    np.testing.assert_allclose(motion.global_positions()[0, 1], [7, 2, 9])
    np.testing.assert_allclose(motion.local_positions[0, 2], [0, 1, 0])  # no channels: OFFSET


def test_channel_names_are_case_insensitive_and_rotation_only_root_uses_offset():
    text = """HIERARCHY
ROOT A
{
 OFFSET 4 5 6
 CHANNELS 1 yrotation
}
MOTION
Frames: 2
Frame Time: 0.5
0
90
"""
    motion = parse_bvh(text)
    assert motion.channels == (("Yrotation",),)
    np.testing.assert_allclose(motion.global_positions()[:, 0], [[4, 5, 6], [4, 5, 6]])
    np.testing.assert_allclose(motion.local_rotations[1, 0], rot("Y", 90), atol=1e-12)


def test_forward_kinematics_rejects_children_before_parents():
    with pytest.raises(ValueError, match="parents must precede"):
        forward_kinematics(np.array([-1, 2, 0]), np.tile(np.eye(3), (1, 3, 1, 1)), np.zeros((1, 3, 3)))


@pytest.mark.parametrize(
    ("broken", "line", "expected"),
    [
        (CHAIN.replace("Yrotation\n    JOINT Lower", "Wrotation\n    JOINT Lower"), 9, "channel name"),
        (CHAIN.replace("OFFSET 0 3 0", "OFFSET 0 three 0"), 12, "OFFSET y value"),
        (CHAIN.replace("  JOINT Upper\n  {", "  JOINT Upper\n  OFFSET"), 7, "'{'"),
        (CHAIN.replace("-90 0 0\n", "-90 0\n"), 25, "12 channel values, found 11"),
        (CHAIN.replace("-90 0 0\n", "-90 0 x\n"), 25, "expected a number, found 'x'"),
        (CHAIN.replace("1 2 3 90 0 0  0 0 0    -90 0 0\n", ""), 24, "expected 2 frames, found 1"),
        (CHAIN.replace("Frames: 2", "Frames: two"), 22, "an integer after 'Frames:'"),
        (CHAIN.replace("MOTION", "MOTON"), 21, "ROOT or MOTION"),
    ],
)
def test_malformed_files_name_the_line_and_what_was_expected(tmp_path, broken, line, expected):
    path = tmp_path / "broken.bvh"
    path.write_text(broken)
    with pytest.raises(BVHError) as info:
        read_bvh(path)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert message.startswith(f"{path}:{line}: expected")
    assert expected in message
    assert info.value.line == line


@pytest.mark.slow
def test_real_pfnn_clip_has_the_cmu_skeleton():
    path = PFNN_ANIMATIONS / "LocomotionFlat04_000.bvh"
    if not path.exists():
        pytest.skip(f"real PFNN data not found at {path}; set MOTIONHUB_REAL_DATA to the real_data folder")
    motion = read_bvh(path)
    assert motion.num_joints == 31 and motion.num_frames == 2428
    assert motion.fps == pytest.approx(120.0, rel=1e-4)
    assert motion.joint_names[:5] == ("Hips", "LHipJoint", "LeftUpLeg", "LeftLeg", "LeftFoot")
    assert motion.joint_names[16] == "Head" and motion.joint_names[30] == "RThumb"
    assert all(c == ("Zrotation", "Yrotation", "Xrotation") for c in motion.channels[1:])
    assert len(motion.end_site_parents) == 7
    positions = motion.global_positions()
    assert 85 < positions[:, 0, 1].mean() * 5.6444 < 100  # hip height in PFNN units
    rest = read_bvh(PFNN_ANIMATIONS / "rest.bvh")
    assert rest.joint_names == motion.joint_names
    np.testing.assert_allclose(rest.offsets, motion.offsets)
