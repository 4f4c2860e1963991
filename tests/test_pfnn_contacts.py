"""Foot contacts of ``export-pfnn``: from speed and height in the data's units, from the layout's own
contact features where they fire, or by PFNN's rule; every layout the project reads exports rows."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import REAL_DATA, write_recipe

import motionhub_pfnn
from motionhub.cli import main
from motionhub.data import layouts
from motionhub.data.dataset import Clip, Dataset
from motionhub.errors import MotionhubError
from motionhub.plugins.manager import load_plugins, pm
from motionhub.plugins.testing import registered_plugin
from motionhub.use.export import ExportSource
from motionhub_pfnn.database import load_database, prepare_clip, speed_height_contacts, x_layout, y_layout
from motionhub_pfnn.exporter import FIRING_SHARE, PFNNExporter, features_fire, pfnn_config
from motionhub_synthetic.dataset import SyntheticMotion

LAYOUTS = ("humanml3d_263", "kit_251", "motionmillion_272")
SYNTHETIC = {"name": "synthetic", "clips": 12, "min_frames": 100, "max_frames": 160}
WALKING = ("synthetic_00000", "synthetic_00008")  # walking slowly in every layout (seed 0)
MOTION_272 = REAL_DATA / "Li-xingXiao-272-dim-Motion-Representation" / "output" / "Representation_272" / "000000.npy"
STATS_272 = REAL_DATA / "VankouF-MotionMillion-Codes" / "dataset" / "MotionMillion" / "mean_std" / "vector_272"


@pytest.fixture(scope="module", autouse=True)
def pfnn_plugin():
    load_plugins()
    with contextlib.ExitStack() as stack:
        if pm.get_plugin(motionhub_pfnn.__name__) is None:
            stack.enter_context(registered_plugin(motionhub_pfnn, motionhub_pfnn.__name__))
        yield


def export(folder: Path, data: dict, *flags: str) -> tuple[int, Path, str, str]:
    """``motionhub export-pfnn`` on a recipe with ``data``: exit code, database path, stdout, stderr."""
    folder.mkdir(parents=True, exist_ok=True)
    recipe = write_recipe(folder / "recipe.yaml", data=data)
    out = folder / "pfnn" / "database.npz"
    printed, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        code = main(["export-pfnn", str(recipe), "--out", str(out), *flags])
    return code, out, printed.getvalue(), errors.getvalue()


def summary_line(printed: str, key: str) -> str:
    (line,) = [line for line in printed.splitlines() if line.startswith(f"{key}: ")]
    return line[len(key) + 2 :]


# ------------------------------------------------------------------------- the rule itself


def test_a_foot_joint_is_in_contact_when_slow_and_low():
    """One joint at 60 fps: still and low, still and high, moving and low. Speed is in units per
    second, height above the joint's own lowest point, so a floor at y = 50 changes nothing."""
    fps = 60.0
    heights = np.array([50.0] * 10 + [60.0] * 10 + [50.0] * 10)
    x = np.concatenate([np.zeros(20), np.arange(10) * 2.0])  # 2 units a frame = 120 units/s
    positions = np.stack([x, heights, np.zeros(30)], -1)[:, None]
    contacts = speed_height_contacts(positions, [0], fps, speed=100.0, height=5.0)[:, 0]
    expected = np.r_[np.ones(9), 0.0, np.zeros(10), np.zeros(9)]  # frame 9 steps up by 10 units
    np.testing.assert_array_equal(contacts, expected)
    # Faster than 120 units/s allowed: the moving low frames are in contact too; no height test:
    # the still high frames are too.
    np.testing.assert_array_equal(speed_height_contacts(positions, [0], fps, 130.0, 5.0)[:, 0],
                                  np.r_[np.ones(9), 0.0, np.zeros(10), np.ones(9)])
    np.testing.assert_array_equal(speed_height_contacts(positions, [0], fps, 100.0)[:, 0],
                                  np.r_[np.ones(9), 0.0, np.ones(9), 0.0, np.zeros(9)])


class Positions(Dataset):
    """Clips of global joint positions in a format of the given millimetres per unit."""

    def __init__(self, clips: list[Clip], mm_per_unit: float, fps: float = 20.0):
        fmt = layouts.joint_positions(SyntheticMotion(layout="joints", clips=3).format.skeleton, fps)
        self.format = dataclasses.replace(fmt, mm_per_unit=mm_per_unit)
        self._clips = clips

    def clips(self, split):
        return iter(self._clips)

    def describe(self):
        return f"positions in {self.format.mm_per_unit:g} mm units"


def test_the_same_motion_in_metres_and_millimetres_has_the_same_contacts_and_rows(tmp_path):
    """The contact thresholds are metres converted through the format's mm_per_unit: clips stored
    in millimetres give what they give in metres (rows in PFNN units, equal to float32 rounding)."""
    metres = list(SyntheticMotion(layout="joints", clips=12, min_frames=100, max_frames=160).clips("train"))
    millimetres = [Clip(clip.id, clip.motion * 1000.0, clip.texts) for clip in metres]
    databases, results = [], []
    for clips, mm_per_unit, name in ((metres, 1000.0, "m"), (millimetres, 1.0, "mm")):
        result = PFNNExporter().export(ExportSource(Positions(clips, mm_per_unit)), tmp_path / name / "database.npz")
        databases.append(load_database(tmp_path / name / "database.npz")[0])
        results.append(result)
    m, mm = databases
    y_lay = y_layout(22, rotations=False)
    assert len(m) == len(mm) > 0 and results[0].details["cycles"] == results[1].details["cycles"]
    np.testing.assert_array_equal(m.Yun[:, y_lay["contacts"]], mm.Yun[:, y_lay["contacts"]])
    assert 0.1 < m.Yun[:, y_lay["contacts"]].mean() < 0.9
    np.testing.assert_array_equal(m.Pun, mm.Pun)
    np.testing.assert_allclose(mm.Yun, m.Yun, atol=1e-3)
    # The summary gives the thresholds in metres and in each data set's own units.
    assert "0.9 m/s and height below 0.08 m" in results[0].details["contacts"]
    assert "(0.9 units/s and 0.08 units of the data, 1000 mm per unit)" in results[0].details["contacts"]
    assert "(900 units/s and 80 units of the data, 1 mm per unit)" in results[1].details["contacts"]


# ----------------------------------------------------------------------------- every layout


@pytest.mark.parametrize("layout", LAYOUTS)
def test_synthetic_walking_feet_are_in_contact_a_third_to_two_thirds_of_the_time(layout):
    dataset = SyntheticMotion(layout=layout, clips=12, min_frames=100, max_frames=160)
    fmt = dataset.format
    config = pfnn_config(fmt, 60.0, None, None, None, None, (), (0.9, 0.08))
    for clip in dataset.clips("train"):
        if clip.id not in WALKING:
            continue
        assert clip.texts[0].startswith("a person walks")
        contacts = prepare_clip(np.asarray(fmt.to_joints(clip.motion), dtype=np.float64), fmt.fps, config).contacts
        for side in (contacts[:, :2], contacts[:, 2:]):  # a foot is in contact where its ankle or toe is
            assert 0.3 <= side.max(axis=1).mean() <= 0.7, (layout, clip.id, side.max(axis=1).mean())


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_exports_rows_with_contacts_from_speed_where_its_features_do_not_fire(tmp_path, layout):
    code, out, printed, errors = export(tmp_path, {**SYNTHETIC, "layout": layout})
    assert code == 0, errors
    database, _ = load_database(out)
    contacts = database.Yun[:, y_layout(21 if layout == "kit_251" else 22)["contacts"]]
    rows = int(summary_line(printed, "rows"))
    shares = [float(part.rsplit(" ", 1)[1]) for part in summary_line(printed, "contact share").split(", ")]
    print(f"\n{layout}: {rows} rows, contact share {shares}, {summary_line(printed, 'phase')}")
    assert rows == len(database) > 500
    assert summary_line(printed, "clips").split(" in ")[0] in ("7 of 10", "8 of 10")
    np.testing.assert_allclose(shares, contacts.mean(axis=0), atol=0.006)
    assert all(0.1 < share < 0.5 for share in shares)
    # HumanML3D's contact features fire, KIT-ML's (made with a metre threshold on millimetres) do
    # not, and the 272 layout has none: their landings come from speed and height.
    source = "the layout's contact features" if layout == "humanml3d_263" else "speed and height"
    assert summary_line(printed, "phase").startswith(f"contacts, landings from {source} (")
    assert summary_line(printed, "contacts").startswith("auto: speed below 0.9 m/s and height below 0.08 m")


def test_kit_contact_features_never_fire_so_every_clip_lacked_a_landing(tmp_path):
    """The cause of KIT-ML's empty export: its contact features mark no frame, so with them no foot
    lands and no clip has a phase cycle. The message says so and names the option that helps."""
    dataset = SyntheticMotion(layout="kit_251", clips=12, min_frames=100, max_frames=160)
    fmt = dataset.format
    features = [clip.motion[:, fmt.slice("contacts")] for clip in dataset.clips("train")]
    assert max(float(f.max()) for f in features) == 0.0 and not any(features_fire(f) for f in features)
    walking = SyntheticMotion(layout="humanml3d_263", clips=12, min_frames=100, max_frames=160)
    assert features_fire(next(walking.clips("train")).motion[:, walking.format.slice("contacts")])

    code, _, _, errors = export(tmp_path, {**SYNTHETIC, "layout": "kit_251"}, "--contacts", "format")
    assert code == 2
    assert ("no rows from split 'train' of synthetic kit_251, 12 clips (seed 0) (the right foot lands fewer than "
            "twice (landings from the layout's contact features): 10); with foot contacts from speed and height "
            "(contacts (--contacts) speed, thresholds contact speed (--contact-speed) and contact height "
            "(--contact-height)) more feet may land") in " ".join(errors.split())


def test_contacts_format_on_a_layout_without_contact_features_is_refused(tmp_path):
    code, _, _, errors = export(tmp_path, {**SYNTHETIC, "layout": "motionmillion_272"}, "--contacts", "format")
    assert code == 2
    assert ("contacts (--contacts) format: format 'motionmillion_272' of synthetic motionmillion_272, 12 clips "
            "(seed 0) has no foot-contact features (its slices: root_lin_vel, heading_6d, positions, velocities, "
            "rotations_6d); use --contacts speed (or auto)") in " ".join(errors.split())


def test_humanml3d_landings_come_from_its_features_and_thresholds_change_the_contacts(tmp_path):
    """auto on HumanML3D is format (the same rows); a lower contact speed or height marks fewer
    contacts; speed finds its landings in the speed-and-height contacts instead."""
    data = {**SYNTHETIC, "layout": "humanml3d_263"}
    runs = {}
    for name, flags in (("auto", ()), ("format", ("--contacts", "format")), ("speed", ("--contacts", "speed")),
                        ("slow", ("--contact-speed", "0.5")), ("low", ("--contact-height", "0.03"))):
        code, out, printed, errors = export(tmp_path / name, data, *flags)
        assert code == 0, errors
        runs[name] = (load_database(out)[0], printed)
    auto, fmt = runs["auto"][0], runs["format"][0]
    np.testing.assert_array_equal(auto.Yun, fmt.Yun)
    assert "landings from the layout's contact features (8 clips)" in runs["auto"][1]
    assert "landings from speed and height" in runs["speed"][1] and len(runs["speed"][0]) != len(auto)
    contacts = y_layout(22)["contacts"]
    share = {name: run.Yun[:, contacts].mean() for name, (run, _) in runs.items()}
    assert share["slow"] < share["auto"] and share["low"] < share["auto"], share
    assert len(runs["slow"][0]) == len(auto)  # the same landings: only Y's contacts change


def test_pfnn_rule_finds_no_contact_on_sliding_synthetic_feet(tmp_path):
    """PFNN's rule (8.5 cm/s, for its clean 120 fps captures) on synthetic HumanML3D, whose feet
    slide: the landings of the layout's features (the same cycles as auto), no contact in Y, which
    is what the export gave before contacts from speed and height. On the 272 layout the rule finds
    no landing at all."""
    data = {**SYNTHETIC, "layout": "humanml3d_263"}
    code, out, printed, errors = export(tmp_path / "pfnn", data, "--contacts", "pfnn")
    assert code == 0, errors
    database, _ = load_database(out)
    assert database.Yun[:, y_layout(22)["contacts"]].max() == 0.0
    assert "contacts: pfnn: squared step below 0.02 PFNN units² per 60 fps frame" in printed
    assert (summary_line(printed, "rows"), summary_line(printed, "cycles")) == ("2041", "70")
    assert "landings from the layout's contact features (8 clips)" in printed
    code, _, auto, errors = export(tmp_path / "auto", data)
    assert (summary_line(auto, "rows"), summary_line(auto, "cycles")) == ("2041", "70")
    code, _, _, errors = export(tmp_path / "272", {**SYNTHETIC, "layout": "motionmillion_272"}, "--contacts", "pfnn")
    assert code == 2 and "the right foot lands fewer than twice (landings from PFNN's rule): 10" in errors


def test_contact_option_help_names_the_units(capsys):
    with pytest.raises(SystemExit):
        main(["export-pfnn", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--contacts {auto,format,speed,pfnn}" in text
    assert ("speed in metres per second below which a foot joint is in contact (converted to the data's units "
            "through the format's mm_per_unit: KIT-ML is in mm, HumanML3D in m)") in text
    assert "(default: 0.9)" in text and "(default: 0.08)" in text
    with pytest.raises(SystemExit):
        main(["export-pfnn", "recipe.yaml", "--out", "x.npz", "--contact-height", "0"])
    assert "argument --contact-height: must be greater than 0" in capsys.readouterr().err


# ------------------------------------------------------------------------------- real data


def test_published_statistics_show_kit_contact_features_do_not_fire_and_humanml3d_ones_do():
    """The evaluator statistics of both data sets: the mean of each contact channel is the share of
    frames it marks. KIT-ML's stay under the share auto needs, HumanML3D's far above it."""
    folder = REAL_DATA / "GuyTevet-motion-diffusion-model" / "dataset"
    if not (folder / "kit_mean.npy").is_file() or not (folder / "t2m_mean.npy").is_file():
        pytest.skip(f"kit_mean.npy / t2m_mean.npy not found under {folder}; set MOTIONHUB_REAL_DATA")
    kit, t2m = np.load(folder / "kit_mean.npy"), np.load(folder / "t2m_mean.npy")
    kit_contacts = kit[layouts.kit_251().slice("contacts")]
    t2m_contacts = t2m[layouts.humanml3d_263().slice("contacts")]
    print(f"\nshare of frames in contact: KIT-ML {kit_contacts.round(3)}, HumanML3D {t2m_contacts.round(3)}")
    assert np.all(kit_contacts < FIRING_SHARE / 4) and np.all(t2m_contacts > 0.8)




def test_real_272_clip_exports_rows_with_contacts_from_speed(tmp_path):
    if not MOTION_272.is_file() or not STATS_272.is_dir():
        pytest.skip(f"272 sample or MotionMillion statistics not found under {REAL_DATA}; set MOTIONHUB_REAL_DATA")
    root = tmp_path / "MotionMillion"
    motion = root / "motion_data" / "vector_272" / "humanml" / "000000.npy"
    motion.parent.mkdir(parents=True)
    shutil.copy(MOTION_272, motion)
    shutil.copytree(STATS_272, root / "mean_std" / "vector_272")
    for split in ("train", "val", "test"):
        path = root / "split" / "version1" / "tokenizer_96" / f"{split}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("humanml/000000\n")
    code, out, printed, errors = export(tmp_path, {"name": "motionmillion", "root": str(root)})
    assert code == 0, errors
    database, _ = load_database(out)
    shares = database.Yun[:, y_layout(22)["contacts"]].mean(axis=0)
    print(f"\nreal 272 clip: {len(database)} rows, {summary_line(printed, 'cycles')} cycles, contact share {shares}")
    assert int(summary_line(printed, "cycles")) >= 10 and "landings from speed and height (1 clip)" in printed
    assert np.all((shares > 0.3) & (shares < 0.9))
    # Contacts only where a foot moves slower than 0.9 m/s (1.5 cm a 60 fps frame).
    velocity = database.Yun[:, y_layout(22)["joint_velocities"]].reshape(len(database), 22, 3)[:, [7, 10, 8, 11]]
    planted = database.Yun[:, y_layout(22)["contacts"]] == 1
    assert np.linalg.norm(velocity, axis=-1)[planted].max() < 1.5 + 1e-4
    assert x_layout(22).size == database.Xun.shape[1]


def test_exporter_refuses_format_contacts_without_features_through_python(tmp_path):
    clips = list(SyntheticMotion(layout="joints", clips=3).clips("train"))
    with pytest.raises(MotionhubError, match=r"has no foot-contact features"):
        PFNNExporter(contacts="format").export(ExportSource(Positions(clips, 1000.0)), tmp_path / "d.npz")
