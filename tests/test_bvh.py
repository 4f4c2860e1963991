"""BVH reader: hierarchy and channel parsing, Euler conventions, forward kinematics, errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from helpers import REAL_DATA

from motionhub_bvh.bvh import (BVHError, SkeletonMismatch, euler_to_matrix, match_joints, parse_bvh, read_bvh,
                               read_bvh_header)
from motionhub_bvh.dataset import BVHFolder

from motionhub.data.files import ClipError
from motionhub.motion.skeletons import global_transforms

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
    with pytest.raises(ValueError, match="joint 1 has parent 2; parents must precede"):
        global_transforms(np.array([-1, 2, 0]), np.tile(np.eye(3), (1, 3, 1, 1)), np.zeros((1, 3, 3)))


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


# ----------------------------------------------------------------------- bvh data set


def test_header_reader_stops_before_the_frames(tmp_path):
    path = tmp_path / "chain.bvh"
    path.write_text(CHAIN.replace("-90 0 0\n", "not numbers\n"))  # frames are never parsed
    header = read_bvh_header(path)
    motion = parse_bvh(CHAIN)
    assert header.joint_names == motion.joint_names and header.channels == motion.channels
    assert header.num_frames == 2 and header.fps == pytest.approx(motion.fps)
    np.testing.assert_array_equal(header.parents, motion.parents)
    np.testing.assert_array_equal(header.offsets, motion.offsets)


def _frames(count: int) -> str:
    """``count`` frames of CHAIN's 12 channels, each turning the upper bone a bit further."""
    return "".join(f"1 2 3 0 0 0 {10 * k} 0 0 0 0 0\n" for k in range(count))


def write_bvh_folder(root: Path, frames: dict[str, int]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    head = CHAIN.split("Frames:")[0]
    for name, count in frames.items():
        (root / f"{name}.bvh").write_text(f"{head}Frames: {count}\nFrame Time: 0.0333333\n{_frames(count)}")
    return root


def test_bvh_folder_gives_positions_rotations_and_a_skeleton(tmp_path):
    root = write_bvh_folder(tmp_path / "bvh", {"a": 4, "b": 5, "c": 6})
    data = BVHFolder(str(root), unit="inch", feet=["Upper", "Lower"], facing=["Upper", "Lower"], train=["a", "c"])
    fmt = data.format
    assert (fmt.name, fmt.feature_shape, fmt.mm_per_unit) == ("bvh_joints", (9,), 25.4)
    assert fmt.fps == pytest.approx(30.0, rel=1e-5)
    skeleton = fmt.skeleton
    assert skeleton.joint_names == ("Root", "Upper", "Lower") and skeleton.parents == (-1, 0, 1)
    assert (skeleton.feet_left, skeleton.feet_right, skeleton.face_joints) == ((1,), (2,), (2, 1, 2, 1))
    assert skeleton.chains == ((0, 1, 2),)
    np.testing.assert_allclose(skeleton.raw_offsets_array(), [[0, 0, 0], [0, 1, 0], [0, 1, 0]])
    assert data.split_ids == {"train": ["a", "c"], "val": [], "test": []} and data.clip_ids("train") == ["a", "c"]
    clips = list(data.clips("train"))
    assert [clip.id for clip in clips] == ["a", "c"] and clips[1].motion.shape == (6, 9)
    positions, rotations = read_bvh(root / "c.bvh").global_transforms()
    np.testing.assert_allclose(fmt.to_joints(clips[1].motion), positions, atol=1e-6)
    np.testing.assert_allclose(data.rotations("c"), rotations)
    assert data.labels("a") == {}
    assert BVHFolder(str(root), mm_per_unit=2.0).format.mm_per_unit == 2.0


def test_bvh_folder_splits_by_seeded_fraction_and_checks_names(tmp_path):
    root = write_bvh_folder(tmp_path / "bvh", {name: 3 for name in "abcdefghij"})
    data = BVHFolder(str(root), val_fraction=0.2, test_fraction=0.1, seed=3)
    sizes = {split: len(ids) for split, ids in data.split_ids.items()}
    assert sizes == {"train": 7, "val": 2, "test": 1}
    assert sorted(sum(data.split_ids.values(), [])) == list("abcdefghij")
    assert BVHFolder(str(root), val_fraction=0.2, test_fraction=0.1, seed=3).split_ids == data.split_ids
    with pytest.raises(ValueError, match="no file z.bvh"):
        BVHFolder(str(root), train=["z"])
    with pytest.raises(ValueError, match="listed in both train and val"):
        BVHFolder(str(root), train=["a"], val=["a"])
    with pytest.raises(ValueError, match="no joint named 'Uper'; did you mean 'Upper'"):
        BVHFolder(str(root), feet=["Uper", "Lower"])


def test_bvh_folder_reads_pfnn_label_files(tmp_path):
    root = write_bvh_folder(tmp_path / "bvh", {"walk": 4})
    (root / "walk.phase").write_text("0\n0.25\n0.5\n0.75\n")
    (root / "walk.gait").write_text("1 0 0\n0 1 0\n0 1 0\n0 0 1\n")
    (root / "walk_footsteps.txt").write_text("1 3\n4 5 *\n7\n")
    labels = BVHFolder(str(root)).labels("walk")
    np.testing.assert_array_equal(labels["phase"], [0, 0.25, 0.5, 0.75])
    assert labels["gait"].shape == (4, 3)
    np.testing.assert_array_equal(labels["footsteps"], [[1, 3, 0], [4, 5, 1], [7, 0, 0]])
    (root / "walk.phase").write_text("0\n0.5\n")
    with pytest.raises(ClipError, match="has 2 lines, its BVH 4 frames"):
        BVHFolder(str(root)).labels("walk")


def test_bvh_folder_skips_files_of_another_skeleton_when_asked(tmp_path):
    root = write_bvh_folder(tmp_path / "bvh", {"a": 3, "b": 3})
    (root / "b.bvh").write_text((root / "b.bvh").read_text().replace("Lower", "Hand"))
    with pytest.raises(ClipError, match="has another skeleton"):
        list(BVHFolder(str(root), train=["a", "b"]).clips("train"))
    data = BVHFolder(str(root), train=["a", "b"], on_bad="skip")
    assert [clip.id for clip in data.clips("train")] == ["a"]
    assert [(s.clip_id, s.reason) for s in data.policy.skipped] == [("b", "other skeleton")]


# ------------------------------------------------------------- the same joints in another order

BRANCHES = """HIERARCHY
ROOT Hips
{
  OFFSET 0 10 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
  JOINT Spine
  {
    OFFSET 0 3 0
    CHANNELS 3 Zrotation Yrotation Xrotation
    End Site
    {
      OFFSET 0 2 0
    }
  }
  JOINT LeftUpLeg
  {
    OFFSET 1 -1 0
    CHANNELS 3 Zrotation Yrotation Xrotation
    JOINT LeftLeg
    {
      OFFSET 0 -4 0.5
      CHANNELS 3 Xrotation Yrotation Zrotation
      End Site
      {
        OFFSET 0 -4 1
      }
    }
  }
  JOINT RightUpLeg
  {
    OFFSET -1 -1 0
    CHANNELS 3 Zrotation Yrotation Xrotation
    JOINT RightLeg
    {
      OFFSET 0 -4 0.5
      CHANNELS 4 Xposition Xrotation Yrotation Zrotation
      End Site
      {
        OFFSET 0 -4 1
      }
    }
  }
}
MOTION
Frames: 0
Frame Time: 0.0333333
"""


def frame_values(path: Path) -> np.ndarray:
    """(T, C) channel values of a BVH file, as written."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("Frame Time:")) + 1
    return np.array([line.split() for line in lines[start:] if line.strip()], dtype=np.float64)


def write_bvh(path: Path, hierarchy, values: np.ndarray, children=lambda kids: kids) -> Path:
    """Write ``hierarchy``'s joints (a parsed BVH) with the channel ``values`` (T, C) of its own
    order, visiting each joint's children in the order ``children`` gives them."""
    names, parents = hierarchy.joint_names, [int(p) for p in hierarchy.parents]
    starts = np.cumsum([0, *(len(c) for c in hierarchy.channels)])
    lines, written = ["HIERARCHY"], []

    def block(j: int, depth: int) -> None:
        pad = "  " * depth
        lines.extend([f"{pad}{'ROOT' if parents[j] < 0 else 'JOINT'} {names[j]}", f"{pad}{{",
                      f"{pad}  OFFSET {' '.join(repr(float(v)) for v in hierarchy.offsets[j])}",
                      f"{pad}  CHANNELS {len(hierarchy.channels[j])} {' '.join(hierarchy.channels[j])}"])
        written.append(j)
        for child in children([k for k, p in enumerate(parents) if p == j]):
            block(child, depth + 1)
        for parent, offset in zip(hierarchy.end_site_parents, hierarchy.end_site_offsets):
            if parent == j:
                lines.extend([f"{pad}  End Site", f"{pad}  {{",
                              f"{pad}    OFFSET {' '.join(repr(float(v)) for v in offset)}", f"{pad}  }}"])
        lines.append(f"{pad}}}")

    for root in (j for j, p in enumerate(parents) if p < 0):
        block(root, 0)
    columns = np.concatenate([np.arange(starts[j], starts[j + 1]) for j in written])
    lines += ["MOTION", f"Frames: {len(values)}", f"Frame Time: {hierarchy.frame_time!r}"]
    lines += [" ".join(repr(float(v)) for v in row) for row in values[:, columns]]
    path.write_text("\n".join(lines) + "\n")
    return path


def reversed_children(kids: list[int]) -> list[int]:
    return kids[::-1]


def branches_folder(root: Path, frames: int = 7) -> tuple[Path, np.ndarray]:
    """a.bvh in BRANCHES' joint order and b.bvh with the same motion, every joint's children reversed."""
    hierarchy = parse_bvh(BRANCHES)
    values = np.random.default_rng(0).uniform(-60, 60, (frames, sum(len(c) for c in hierarchy.channels)))
    root.mkdir(parents=True, exist_ok=True)
    write_bvh(root / "a.bvh", hierarchy, values)
    write_bvh(root / "b.bvh", hierarchy, values, reversed_children)
    return root, values


def test_writer_keeps_the_motion_of_a_file(tmp_path):
    hierarchy = parse_bvh(BRANCHES)
    values = np.random.default_rng(1).uniform(-60, 60, (3, 22))
    text = BRANCHES.replace("Frames: 0", "Frames: 3") + "".join(" ".join(map(str, row)) + "\n" for row in values)
    original = parse_bvh(text)
    rewritten = read_bvh(write_bvh(tmp_path / "w.bvh", hierarchy, values))
    np.testing.assert_array_equal(rewritten.global_positions(), original.global_positions())


def test_files_listing_the_joints_in_another_order_read_as_the_first_file(tmp_path):
    root, values = branches_folder(tmp_path / "bvh")
    a, b = read_bvh(root / "a.bvh"), read_bvh(root / "b.bvh")
    assert a.joint_names == ("Hips", "Spine", "LeftUpLeg", "LeftLeg", "RightUpLeg", "RightLeg")
    assert b.joint_names == ("Hips", "RightUpLeg", "RightLeg", "LeftUpLeg", "LeftLeg", "Spine")
    data = BVHFolder(str(root), train=["a", "b"])
    clips = {clip.id: clip.motion for clip in data.clips("train")}
    np.testing.assert_array_equal(clips["b"], clips["a"])
    np.testing.assert_array_equal(data.rotations("b"), data.rotations("a"))
    positions, rotations = a.global_transforms()
    np.testing.assert_array_equal(data.format.to_joints(clips["b"]), positions.astype(np.float32))
    np.testing.assert_array_equal(data.rotations("b"), rotations)
    # The reordered clip is b's motion with a's joint list: names, parents, offsets, channels, End Sites.
    order = match_joints(a, b)
    moved = b.reordered(order)
    assert moved.joint_names == a.joint_names and moved.channels == a.channels
    np.testing.assert_array_equal(moved.parents, a.parents)
    np.testing.assert_array_equal(moved.offsets, a.offsets)
    np.testing.assert_array_equal(moved.end_site_parents, a.end_site_parents)
    np.testing.assert_array_equal(moved.end_site_positions(), a.end_site_positions())
    # A folder whose first file is the reordered one reads in that order instead.
    (root / "a.bvh").rename(root / "c.bvh")
    data = BVHFolder(str(root), train=["b", "c"])
    assert data.format.skeleton.joint_names == b.joint_names
    np.testing.assert_array_equal(data.format.to_joints(next(data.clips("train")).motion),
                                  b.global_positions().astype(np.float32))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text.replace("JOINT RightLeg", "JOINT RightShin"),
         "b.bvh has another skeleton than the folder's first file a.bvh: no joint 'RightLeg'; joint 'RightShin' "
         "that a.bvh has not; keep one skeleton per folder (its joints may be listed in any order)"),
        (lambda text: text.replace("JOINT Spine", "JOINT Chest"),
         "a.bvh: no joint 'Spine'; joint 'Chest' that a.bvh has not"),
        (lambda text: text.replace("End Site\n    {\n      OFFSET 0.0 2.0 0.0\n    }",
                                   "JOINT Head\n    {\n      OFFSET 0 2 0\n      CHANNELS 0\n    }", 1),
         "a.bvh: joint 'Head' that a.bvh has not"),
    ],
)
def test_files_of_other_joints_are_refused_naming_the_joints(tmp_path, edit, message):
    root, _ = branches_folder(tmp_path / "bvh")
    (root / "b.bvh").write_text(edit((root / "b.bvh").read_text()))
    with pytest.raises(ClipError) as info:
        list(BVHFolder(str(root), train=["a", "b"]).clips("train"))
    assert message in str(info.value) and info.value.reason == "other skeleton"


def test_a_joint_under_another_parent_is_refused_naming_both_parents(tmp_path):
    hierarchy = parse_bvh(BRANCHES)
    values = np.zeros((2, 22))
    root = tmp_path / "bvh"
    root.mkdir()
    write_bvh(root / "a.bvh", hierarchy, values)
    # RightLeg hangs from the hips in b.bvh: the same joint names, another tree.
    moved = dataclasses.replace(hierarchy, parents=np.array([-1, 0, 0, 2, 0, 0]))
    write_bvh(root / "b.bvh", moved, values)
    with pytest.raises(ClipError, match="a.bvh: joint 'RightLeg' under 'Hips' instead of 'RightUpLeg'; keep one"):
        list(BVHFolder(str(root), train=["a", "b"]).clips("train"))
    with pytest.raises(SkeletonMismatch, match="joint 'Hips' under 'Spine' instead of no parent"):
        match_joints(hierarchy, dataclasses.replace(hierarchy, parents=np.array([1, -1, 0, 2, 0, 4])))
    twice = dataclasses.replace(hierarchy, joint_names=("Hips", "Spine", "Leg", "Leg", "RightUpLeg", "RightLeg"))
    with pytest.raises(SkeletonMismatch, match="this file names joint 'Leg' more than once"):
        match_joints(hierarchy, twice)


@pytest.mark.slow
def test_real_pfnn_clip_written_in_another_joint_order_reads_the_same(tmp_path):
    path = PFNN_ANIMATIONS / "LocomotionFlat04_000.bvh"
    if not path.exists():
        pytest.skip(f"real PFNN data not found at {path}; set MOTIONHUB_REAL_DATA to the real_data folder")
    motion, values = read_bvh(path), frame_values(path)[:240]
    root = tmp_path / "bvh"
    root.mkdir()
    write_bvh(root / "a.bvh", motion, values)
    write_bvh(root / "b.bvh", motion, values, reversed_children)
    assert read_bvh(root / "b.bvh").joint_names[:3] == ("Hips", "LowerBack", "Spine")
    data = BVHFolder(str(root), unit="cmu", train=["a", "b"])
    assert data.format.skeleton.joint_names == motion.joint_names
    clips = {clip.id: clip.motion for clip in data.clips("train")}
    np.testing.assert_array_equal(clips["b"], clips["a"])
    np.testing.assert_array_equal(data.rotations("b"), data.rotations("a"))
    np.testing.assert_allclose(data.format.to_joints(clips["a"]), motion.global_positions()[:240], atol=1e-4)
