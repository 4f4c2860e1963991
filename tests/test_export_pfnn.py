"""``motionhub export-pfnn``: PFNN data of synthetic and real HumanML3D clips, and of a real PFNN BVH clip
fed to the released network."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import REAL_DATA, write_recipe
from test_pfnn import PFNN_CLIP, released_clip_database, released_network_table, require_released_pfnn

import motionhub_bvh
import motionhub_pfnn
from motionhub.data import layouts
from motionhub.cli import main
from motionhub.errors import MotionhubError
from motionhub.motion.humanml3d import recover_root
from motionhub.motion.rotations import cont6d_to_matrix, quat_to_matrix
from motionhub.motion.skeletons import T2M_SKELETON
from motionhub.plugins.manager import get_registry, load_plugins, pm
from motionhub.plugins.testing import registered_plugin
from motionhub_pfnn.database import PFNNConfig, layouts as pfnn_layouts, load_database, read_bin, x_layout, y_layout
from motionhub_pfnn.exporter import default_foot_heights, swing_rotations

HUMANML3D = REAL_DATA / "EricGuo5513-HumanML3D" / "HumanML3D"

SYNTHETIC = {"name": "synthetic", "layout": "humanml3d_263", "clips": 12, "min_frames": 100, "max_frames": 160}
T2M_FEET = (7, 10, 8, 11)  # left ankle, left foot, right ankle, right foot
CONTACT_THRESHOLD = PFNNConfig().contact_threshold
# The exporter's default contact speed, 0.9 m/s, in PFNN units (cm) per 60 fps frame.
CONTACT_STEP = 0.9 * 100 / 60


@pytest.fixture(scope="module")
def pfnn_plugins():
    """The bvh and pfnn plugins, registered for this module where they are not loaded already."""
    load_plugins()
    with contextlib.ExitStack() as stack:
        for module in (motionhub_bvh, motionhub_pfnn):
            if pm.get_plugin(module.__name__) is None:
                stack.enter_context(registered_plugin(module, module.__name__))
        yield


def export(folder: Path, data: dict, *flags: str) -> tuple[Path, str]:
    """Run ``motionhub export-pfnn`` on a recipe with ``data``; the database path and the printed summary."""
    folder.mkdir(parents=True, exist_ok=True)
    recipe = write_recipe(folder / "recipe.yaml", data=data)
    out = folder / "pfnn" / "database.npz"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["export-pfnn", str(recipe), "--out", str(out), *flags])
    assert code == 0
    return out, printed.getvalue()


def cycle_pairs(pun: np.ndarray) -> np.ndarray:
    """Rows k whose next row is the next frame of the same cycle (a cycle starts where Pun is 0)."""
    return np.flatnonzero(pun[1:] != 0.0)


def consistency(out: Path, num_joints: int, feet: tuple[int, ...], contact_step: float | None = CONTACT_STEP
                ) -> dict[str, float]:
    """Check the rows of ``out`` against each other; returns the figures checked.

    ``contact_step``: the largest per-frame step (PFNN units) of a foot joint in contact, for contacts
    from speed and height (whose height test needs the whole clip, so only the speed is checked);
    None for PFNN's rule, checked exactly.
    """
    database, _ = load_database(out)
    X, Y, P = database.Xun.astype(np.float64), database.Yun.astype(np.float64), database.Pun.astype(np.float64)
    x_lay, y_lay = x_layout(num_joints), y_layout(num_joints)
    k = cycle_pairs(P)

    # Frame k+1's root-space positions, turned by -Y[2] and moved by the root velocity into
    # frame k's root space, are frame k's positions plus velocities.
    pos = Y[:, y_lay["joint_positions"]].reshape(len(Y), num_joints, 3)
    vel = Y[:, y_lay["joint_velocities"]].reshape(len(Y), num_joints, 3)
    root_vel, turn = Y[:, y_lay["root_velocity"]], Y[:, y_lay["root_angular_velocity"]][:, 0]
    c, s, nxt = np.cos(turn[k])[:, None], np.sin(turn[k])[:, None], pos[k + 1]
    moved = np.stack([c * nxt[..., 0] - s * nxt[..., 2] + root_vel[k, :1], nxt[..., 1],
                      s * nxt[..., 0] + c * nxt[..., 2] + root_vel[k, 1:]], -1)
    integration = np.abs(moved - (pos[k] + vel[k])).max()

    # Contacts: squared per-frame foot displacement below PFNN's threshold (float32 rounding aside),
    # or a foot in contact moving less than the contact speed allows.
    speed2 = np.sum(vel[:, list(feet)] ** 2, axis=-1)
    contacts = Y[:, y_lay["contacts"]]
    if contact_step is None:
        disagree = (contacts != (speed2 < CONTACT_THRESHOLD)) & (np.abs(speed2 - CONTACT_THRESHOLD) > 1e-4)
    else:
        disagree = (contacts == 1) & (speed2 > contact_step**2 + 1e-4)

    # Phase: each cycle runs from exactly 0 up to exactly 1, and advances by Y's phase delta.
    starts, ends = np.flatnonzero(P == 0.0), np.flatnonzero(P == 1.0)
    delta = Y[:, y_lay["phase_delta"]][:, 0]
    step = np.abs((P[k] + delta[k] - P[k + 1] + 0.5) % 1.0 - 0.5)

    gait = np.stack([X[:, x_lay[f"gait_{name}"]] for name in ("stand", "walk", "jog", "crouch", "jump", "unused")])
    figures = {
        "rows": len(P), "cycles": len(starts), "root-space integration max error": integration,
        "contact fraction": contacts.mean(), "contacts off threshold": int(disagree.sum()),
        "phase step max error": step.max(), "min phase delta": delta[k].min(),
    }
    print("\n" + "\n".join(f"{key}: {value:.6g}" for key, value in figures.items()))
    assert integration < 1e-3, figures
    assert not disagree.any(), figures
    assert len(starts) == len(ends) and np.all(ends > starts) and np.all(starts[1:] == ends[:-1] + 1)
    assert np.all(np.diff(P)[k] > 0) and np.all(delta[k] > 0) and step.max() < 1e-5, figures
    assert set(np.unique(gait)) <= {0.0, 1.0} and np.all(gait.sum(axis=0) == 1.0)
    return figures


# -------------------------------------------------------------------- synthetic HumanML3D


@pytest.fixture(scope="module")
def synthetic_export(pfnn_plugins, tmp_path_factory):
    return export(tmp_path_factory.mktemp("synthetic"), SYNTHETIC)


def test_export_writes_database_and_bins_with_the_generalised_columns(synthetic_export):
    out, printed = synthetic_export
    # 22 joints, 12 samples: X = 156 + 6 * 22, Y = 8 + 24 + 9 * 22 (swing rotations included).
    x_lay, y_lay = pfnn_layouts(22, PFNNConfig(left_feet=(7, 10), right_feet=(8, 11)))
    assert (x_lay.size, y_lay.size) == (288, 230)
    with np.load(out) as data:
        assert sorted(data.files) == ["Pun", "Xmean", "Xstd", "Xun", "Ymean", "Ystd", "Yun"]
        assert data["Xun"].shape[1] == 288 and data["Yun"].shape[1] == 230 and data["Xun"].dtype == np.float32
        assert len(data["Xun"]) == len(data["Yun"]) == len(data["Pun"]) > 0
        for name, size in (("Xmean", 288), ("Xstd", 288), ("Ymean", 230), ("Ystd", 230)):
            np.testing.assert_array_equal(read_bin(out.parent / f"{name}.bin", (size,)), data[name])
        assert np.all(data["Xstd"] > 0) and np.all(data["Ystd"] > 0)
    assert "rows: " in printed and "X columns: 288: trajectory_position_x 12" in printed
    assert "joint_rotations 66" in printed and "rotations: swing" in printed
    # The two standing clips land no foot, so they have no phase cycle; the summary counts them.
    assert "skipped 2: the right foot lands fewer than twice (landings from the layout's contact features)" in printed
    assert "clips: 8 of 10" in printed


def test_synthetic_rows_are_consistent(synthetic_export):
    figures = consistency(synthetic_export[0], 22, T2M_FEET)
    assert figures["cycles"] > 20


def test_run_directory_source_reads_its_recipe_without_a_model(pfnn_plugins, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_recipe(run_dir / "recipe.yaml", data={**SYNTHETIC, "clips": 4})
    out = tmp_path / "database.npz"
    assert main(["export-pfnn", str(run_dir), "--out", str(out), "data.min_frames=120"]) == 0
    assert out.is_file() and (tmp_path / "Ystd.bin").is_file()
    assert "needs no model" in capsys.readouterr().err


def test_export_pfnn_is_the_generic_export_command_with_the_pfnn_exporter(pfnn_plugins, tmp_path, capsys):
    recipe = write_recipe(tmp_path / "recipe.yaml", data={**SYNTHETIC, "clips": 4, "min_frames": 120})
    flags = ["--split", "train", "--fps", "30", "--masked", "left_wrist,right_wrist", "--rotations", "none"]
    assert main(["export", "pfnn", str(recipe), "--out", str(tmp_path / "a" / "database.npz"), *flags]) == 0
    generic = capsys.readouterr().out
    assert main(["export-pfnn", str(recipe), "--out", str(tmp_path / "b" / "database.npz"), *flags]) == 0
    assert capsys.readouterr().out.replace("/b/", "/a/") == generic
    assert "frame rate: 30 fps" in generic and "rotations: none" in generic
    with np.load(tmp_path / "a" / "database.npz") as a, np.load(tmp_path / "b" / "database.npz") as b:
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name])
    assert get_registry().get("command", "export-pfnn").provider == "motionhub_pfnn"
    with pytest.raises(SystemExit):
        main(["export", "pfnn", str(recipe), "--out", str(tmp_path / "c.npz"), "--fps", "0"])
    assert "argument --fps: must be greater than 0, got 0.0" in capsys.readouterr().err


OPTION_NAMES = ("foot_heights", "phase_from", "gait_from", "crouch_head")  # how Python spells them


@pytest.mark.parametrize("command", [["export-pfnn"], ["export", "pfnn"]])
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--phase-from", "labels"], "has no phase labels (labels it has: none); phase from (--phase-from) labels "
                                     "needs them"),
        (["--feet", "left_ankle,left_foot,right_ankel,right_foot"],
         "feet (--feet): no joint named 'right_ankel'; did you mean 'right_ankle'"),
        (["--feet", "left_ankle,left_foot,right_ankle"], "feet (--feet): give the left foot joints, then as many"),
        (["--foot-heights", "5,4,3"], "foot heights (--foot-heights): 3 values for 2 foot joints a side"),
        (["--feet", "left_ankle,right_ankle", "--foot-heights", "5,4"],
         "foot heights (--foot-heights): 2 values for 1 foot joint a side"),
        (["--crouch-head", "hed"], "crouch head (--crouch-head): no joint named 'hed'; did you mean 'head'"),
        (["--rotations", "source"], "gives no joint rotations"),
    ],
)
def test_user_errors_end_in_one_message_naming_the_option(pfnn_plugins, tmp_path, capsys, command, flags, message):
    recipe = write_recipe(tmp_path / "recipe.yaml", data={**SYNTHETIC, "clips": 3})
    assert main([*command, str(recipe), "--out", str(tmp_path / "database.npz"), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not [name for name in OPTION_NAMES if name in err], err


@pytest.mark.parametrize("command", [["export-pfnn"], ["export", "pfnn"]])
def test_one_joint_per_foot_has_no_default_foot_heights(pfnn_plugins, tmp_path, capsys, command):
    """The t2m skeleton's measured heights are for its ankle and foot: with one joint a side the
    heights must be given, and the message says so by the option's name."""
    recipe = write_recipe(tmp_path / "recipe.yaml", data={**SYNTHETIC, "clips": 3})
    feet = ["--feet", "left_ankle,right_ankle"]
    assert main([*command, str(recipe), "--out", str(tmp_path / "a" / "database.npz"), *feet]) == 2
    err = capsys.readouterr().err
    assert ("no planted foot heights known for 1 foot joint a side of skeleton 't2m' (there are defaults for 2 a "
            "side only); give foot heights (--foot-heights): 1 value") in err
    assert "foot_heights" not in err and "2 values" not in err
    out = tmp_path / "b" / "database.npz"
    assert main([*command, str(recipe), "--out", str(out), *feet, "--foot-heights", "5.4"]) == 0
    with np.load(out) as data:  # one contact column a foot
        assert data["Yun"].shape[1] == pfnn_layouts(22, PFNNConfig(left_feet=(7,), right_feet=(8,),
                                                                   foot_heights=(5.4,)))[1].size


@pytest.mark.parametrize("command", [["export-pfnn"], ["export", "pfnn"]])
def test_help_states_the_foot_height_default_of_each_foot_joint_count(pfnn_plugins, capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    start = help_text.rindex("--foot-heights FOOT_HEIGHTS,...")  # its entry under options, after the usage line
    stated = help_text[start:help_text.index("--crouch-head CROUCH_HEAD", start)]
    # What the exporter does: t2m's measured heights and PFNN's heel and toe for two joints a side ...
    assert default_foot_heights("t2m", 2) == (5.4, 1.0) and default_foot_heights("bvh", 2) == (5.0, 4.0)
    assert "default for 2 joints a side: 5.4,1.0 on t2m (measured), else PFNN's 5,4" in stated
    # ... and nothing for one joint a side, on any skeleton.
    for skeleton in ("t2m", "bvh"):
        with pytest.raises(MotionhubError, match="--foot-heights"):
            default_foot_heights(skeleton, 1)
    assert "none for 1 joint a side" in stated
    assert "(default:" not in stated  # argparse adds none: the option's default is None


# --------------------------------------------------------------------- real HumanML3D clip


def require_humanml3d_clip() -> None:
    if not (HUMANML3D / "new_joint_vecs" / "012314.npy").is_file():
        pytest.skip(f"real HumanML3D clip 012314 not found under {HUMANML3D}; set MOTIONHUB_REAL_DATA")


def test_real_humanml3d_clip_exports_consistent_rows(pfnn_plugins, tmp_path):
    require_humanml3d_clip()
    if "humanml3d" not in get_registry().names("dataset"):
        pytest.skip("the humanml3d data set plugin is not registered")
    root = tmp_path / "HumanML3D"
    (root / "new_joint_vecs").mkdir(parents=True)
    shutil.copy(HUMANML3D / "new_joint_vecs" / "012314.npy", root / "new_joint_vecs")
    for name in ("Mean.npy", "Std.npy"):
        shutil.copy(HUMANML3D / name, root)
    (root / "train.txt").write_text("012314\n")
    data = {"name": "humanml3d", "root": str(root), "stats": "dataset", "splits": {"val": "train", "test": "train"}}
    out, printed = export(tmp_path, data)
    assert "clips: 1 of 1" in printed and "landings from the layout's contact features (1 clip)" in printed
    figures = consistency(out, 22, T2M_FEET)
    assert figures["cycles"] >= 2 and 0.1 < figures["contact fraction"] < 0.9


def test_swing_rotations_are_the_bone_rotations_behind_humanml3d_rotations_6d():
    """Composing HumanML3D's 6D rotations along its chains (first bones on the recovered root
    rotation) gives the shortest-arc bone rotations that the exporter derives from positions."""
    require_humanml3d_clip()
    features = np.load(HUMANML3D / "new_joint_vecs" / "012314.npy").astype(np.float64)
    fmt, skeleton = layouts.humanml3d_263(), T2M_SKELETON
    swing = swing_rotations(fmt.to_joints(features), skeleton.parents, skeleton.raw_offsets_array(), ((16, 17), (1, 2)))
    local = cont6d_to_matrix(features[:, fmt.slice("rotations_6d")].reshape(len(features), 21, 6))
    previous = [0] * skeleton.num_joints
    for chain in skeleton.chains:
        for a, b in zip(chain[1:-1], chain[2:]):
            previous[b] = a
    composed = np.empty_like(swing)
    composed[:, 0] = quat_to_matrix(recover_root(features)[0])
    for j in range(1, skeleton.num_joints):
        composed[:, j] = composed[:, previous[j]] @ local[:, j - 1]
    np.testing.assert_allclose(composed[:, 1:], swing[:, 1:], atol=1e-5)


# ---------------------------------------------------------------------- real PFNN BVH clip


@pytest.mark.slow
def test_bvh_clip_exported_with_labels_is_predicted_by_the_released_network(pfnn_plugins, tmp_path):
    """The real PFNN clip through the bvh data set and the CLI (phase, gait and footsteps from
    its label files, PFNN's contact rule) gives the rows of the direct pipeline, and the released network predicts
    every output group of them better than their mean does."""
    require_released_pfnn()
    folder = tmp_path / "animations"
    folder.mkdir()
    for path in PFNN_CLIP.parent.glob(f"{PFNN_CLIP.name}*"):
        shutil.copy(path, folder)
    data = {"name": "bvh", "root": str(folder), "unit": "cmu", "train": [PFNN_CLIP.name],
            "feet": ["LeftFoot", "LeftToeBase", "RightFoot", "RightToeBase"],
            "facing": ["LeftArm", "RightArm", "LeftUpLeg", "RightUpLeg"]}
    out, printed = export(tmp_path, data, "--phase-from", "labels", "--gait-from", "labels", "--crouch-head", "Head",
                          "--contacts", "pfnn")
    assert "rotations: source" in printed and "X columns: 342" in printed and "Y columns: 311" in printed
    database, _ = load_database(out)
    direct = released_clip_database()
    assert database.Xun.shape == direct.Xun.shape and database.Yun.shape == direct.Yun.shape
    # The data set hands positions over as float32 (file units; about 1e-5 relative).
    np.testing.assert_allclose(database.Xun, direct.Xun, atol=2e-3)
    np.testing.assert_allclose(database.Yun, direct.Yun, atol=2e-3)
    np.testing.assert_array_equal(database.Pun, direct.Pun)
    lines, worst = released_network_table(database, y_layout(31))
    print("\n" + "\n".join(lines))
    assert worst < 0.75, "\n".join(lines)
