"""The ``bvh`` data set checks its declared unit against the skeleton's size: files in metres read as
centimetres are refused, naming the file, the size and the unit that fits."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import REAL_DATA, write_recipe

from motionhub.cli import main
from motionhub.errors import DataError
from motionhub_bvh.bvh import read_bvh_header
from motionhub_bvh.dataset import BVHFolder, rest_span, unit_problem

PFNN_ANIMATIONS = REAL_DATA / "sreyafrancis-PFNN" / "data" / "animations"
LOGGER = "motionhub_bvh.dataset"

# A standing human of about 1.7 m, in centimetres: (name, parent, offset).
BODY = [
    ("Hips", None, (0, 0, 0)),
    ("LeftUpLeg", "Hips", (9, -5, 0)), ("LeftLeg", "LeftUpLeg", (0, -42, 0)),
    ("LeftFoot", "LeftLeg", (0, -41, 0)), ("LeftToe", "LeftFoot", (0, -7, 13)),
    ("RightUpLeg", "Hips", (-9, -5, 0)), ("RightLeg", "RightUpLeg", (0, -42, 0)),
    ("RightFoot", "RightLeg", (0, -41, 0)), ("RightToe", "RightFoot", (0, -7, 13)),
    ("Spine", "Hips", (0, 12, 0)), ("Chest", "Spine", (0, 25, 0)), ("Neck", "Chest", (0, 20, 0)),
    ("Head", "Neck", (0, 12, 0)),
    ("LeftArm", "Chest", (17, 15, 0)), ("LeftForeArm", "LeftArm", (0, -28, 0)),
    ("LeftHand", "LeftForeArm", (0, -25, 0)),
    ("RightArm", "Chest", (-17, 15, 0)), ("RightForeArm", "RightArm", (0, -28, 0)),
    ("RightHand", "RightForeArm", (0, -25, 0)),
]


def body_bvh(scale: float, frames: int = 6, seed: int = 0) -> str:
    """BODY walking in place, every length multiplied by ``scale`` (1: cm, 0.01: m, 10: mm)."""
    children: dict[str | None, list[int]] = {}
    for index, (_, parent, _) in enumerate(BODY):
        children.setdefault(parent, []).append(index)
    lines = ["HIERARCHY"]

    def joint(index: int, depth: int) -> None:
        name, parent, offset = BODY[index]
        pad = "  " * depth
        lines.append(f"{pad}{'ROOT' if parent is None else 'JOINT'} {name}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {' '.join(f'{v * scale:.6g}' for v in offset)}")
        position = "Xposition Yposition Zposition " if parent is None else ""
        lines.append(f"{pad}  CHANNELS {6 if parent is None else 3} {position}Zrotation Yrotation Xrotation")
        kids = children.get(name, [])
        for child in kids:
            joint(child, depth + 1)
        if not kids:
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET 0 {5 * scale:.6g} 0", f"{pad}  }}"])
        lines.append(f"{pad}}}")

    joint(0, 0)
    rng = np.random.default_rng(seed)
    lines += ["MOTION", f"Frames: {frames}", "Frame Time: 0.0333333"]
    for k in range(frames):
        root = np.array([2.0 * k, 95.0, 0.5 * k]) * scale
        angles = rng.uniform(-20, 20, 3 * len(BODY))
        lines.append(" ".join(f"{v:.6f}" for v in (*root, *angles)))
    return "\n".join(lines) + "\n"


def folder(tmp_path: Path, name: str, scale: float) -> Path:
    root = tmp_path / name
    root.mkdir()
    (root / "walk.bvh").write_text(body_bvh(scale))
    return root


def positions_mm(data: BVHFolder) -> np.ndarray:
    (clip,) = data.clips("train")
    return np.asarray(data.format.to_joints(clip.motion), dtype=np.float64) * data.format.mm_per_unit


def test_the_rest_pose_span_is_the_height_of_a_standing_skeleton(tmp_path):
    root = folder(tmp_path, "cm", 1.0)
    # Toes 95 cm below the hips, the head 69 cm above them: 164 cm between joints.
    assert rest_span(read_bvh_header(root / "walk.bvh")) == pytest.approx(164.0)


def test_files_in_metres_read_as_centimetres_are_refused_and_read_right_as_metres(tmp_path, caplog):
    cm, m = folder(tmp_path, "cm", 1.0), folder(tmp_path, "m", 0.01)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        reference = positions_mm(BVHFolder(str(cm), train=["walk"]))
    assert caplog.messages == []  # centimetres is the default and fits
    with pytest.raises(DataError) as info:
        BVHFolder(str(m), train=["walk"])
    message = str(info.value)
    print("\n" + message)
    assert message.startswith(f"BVH file {m / 'walk.bvh'}: its skeleton spans 1.64 cm (0.0164 m) in its rest pose")
    assert "a human skeleton spans 0.8 to 2.5 m. In m it spans 1.64 m: set data.unit: m." in message
    assert "Units 100 times apart are refused" in message
    assert message.endswith("For a skeleton that is not human-sized, set data.unit_check: false (or give "
                            "data.mm_per_unit).")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        in_metres = positions_mm(BVHFolder(str(m), unit="m", train=["walk"]))
    assert caplog.messages == []
    np.testing.assert_allclose(in_metres, reference, rtol=1e-5, atol=1e-3)
    assert np.abs(reference).max() > 500  # joints a metre from the origin, not 10 mm
    # The check can be switched off, and an explicit mm_per_unit is not checked.
    assert BVHFolder(str(m), train=["walk"], unit_check=False).format.mm_per_unit == 10.0
    np.testing.assert_allclose(positions_mm(BVHFolder(str(m), mm_per_unit=1000.0, train=["walk"])), reference,
                               rtol=1e-5, atol=1e-3)


def test_millimetres_read_as_centimetres_are_refused_too(tmp_path):
    mm = folder(tmp_path, "mm", 10.0)
    with pytest.raises(DataError, match=r"spans 1640 cm \(16\.4 m\).* In mm it spans 1\.64 m: set data\.unit: mm\. "
                                        r"Units 10 times apart are refused"):
        BVHFolder(str(mm), train=["walk"])
    np.testing.assert_allclose(positions_mm(BVHFolder(str(mm), unit="mm", train=["walk"])),
                               positions_mm(BVHFolder(str(folder(tmp_path, "cm", 1.0)), train=["walk"])),
                               rtol=1e-5, atol=1e-2)


def test_a_unit_a_few_times_off_is_warned_about_and_read(tmp_path, caplog):
    """Inches read as centimetres: 2.54 times apart, which a small character could also be."""
    inches = folder(tmp_path, "inch", 1 / 2.54)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        data = BVHFolder(str(inches), train=["walk"])
    assert data.format.mm_per_unit == 10.0
    (message,) = caplog.messages
    assert "its skeleton spans 64.57 cm (0.646 m) in its rest pose" in message
    assert "In inch it spans 1.64 m: if the files are in inch, set data.unit: inch." in message


def test_a_skeleton_no_unit_makes_human_is_warned_about_only(tmp_path, caplog):
    root = folder(tmp_path, "tiny", 0.02)  # 3.3 cm tall in centimetres, 3.3 m in metres: no unit fits
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        BVHFolder(str(root), train=["walk"])
    (message,) = caplog.messages
    assert "and no unit (mm, cm, m, inch, cmu) makes it one. For a skeleton that is not human-sized" in message
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        BVHFolder(str(root), train=["walk"], unit_check=False)
    assert caplog.messages == []


def test_the_refusal_is_one_message_from_the_command_line(tmp_path, capsys):
    m = folder(tmp_path, "m", 0.01)
    data = {"name": "bvh", "root": str(m), "train": ["walk"], "val": [], "test": [],
            "feet": ["LeftFoot", "LeftToe", "RightFoot", "RightToe"], "facing": ["LeftUpLeg", "RightUpLeg"]}
    recipe = write_recipe(tmp_path / "recipe.yaml", data=data)
    assert main(["export-pfnn", str(recipe), "--out", str(tmp_path / "out" / "database.npz")]) == 2
    err = capsys.readouterr().err
    assert "set data.unit: m" in err and "Traceback" not in err


def test_unit_problem_names_each_unit_that_fits():
    assert unit_problem(1.7, "m", Path("a.bvh")) == ("", False)
    assert unit_problem(67.0, "inch", Path("a.bvh")) == ("", False)
    assert unit_problem(1700.0, "mm", Path("a.bvh")) == ("", False)
    assert unit_problem(0.0, "cm", Path("a.bvh")) == ("", False)  # no extent: nothing to measure
    message, refused = unit_problem(1.7, "mm", Path("a.bvh"))
    assert refused and "set data.unit: m" in message and "Units 1e+03 times apart" in message


@pytest.mark.slow
def test_real_pfnn_files_pass_in_their_declared_cmu_unit(tmp_path, caplog):
    source = PFNN_ANIMATIONS / "LocomotionFlat04_000.bvh"
    if not source.is_file():
        pytest.skip(f"real PFNN data not found at {source}; set MOTIONHUB_REAL_DATA to the real_data folder")
    root = tmp_path / "animations"
    root.mkdir()
    shutil.copy(PFNN_ANIMATIONS / "rest.bvh", root)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        data = BVHFolder(str(root), unit="cmu")
    assert caplog.messages == []
    assert rest_span(data.header) * data.format.mm_per_unit == pytest.approx(1410.6, abs=0.5)
    # Read as centimetres (the default) it is 5.6 times too small: a warning that names cmu.
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        BVHFolder(str(root))
    (message,) = caplog.messages
    assert "spans 24.99 cm (0.25 m)" in message and "In cmu it spans 1.41 m: if the files are in cmu, set " \
                                                     "data.unit: cmu." in message
