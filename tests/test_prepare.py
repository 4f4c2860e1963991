"""``motionhub prepare``: joint positions to HumanML3D features, on synthetic and real clips.

The command is the HumanML3D plugin's, registered with ``register_commands``; the core has none.
"""

import numpy as np
import pytest
from helpers import run_cli

from motionhub.cli import main
from motionhub.plugins.manager import get_registry
from motionhub.motion import humanml3d
from motionhub.motion.skeletons import T2M_SKELETON
from motionhub_synthetic.motion import rest_offsets, synthesize


def write_joints(folder, count=3):
    folder.mkdir()
    offsets = rest_offsets(T2M_SKELETON, humanml3d.T2M_TARGET_BONE_LENGTHS)
    for i in range(count):
        motion = synthesize(np.random.default_rng(i), T2M_SKELETON, offsets, 50 + 10 * i, 20.0)
        np.save(folder / f"{i:06d}.npy", motion.joints.astype(np.float32))


def test_prepare_writes_features_joints_statistics_and_ids(tmp_path, capsys):
    write_joints(tmp_path / "joints")
    assert main(["prepare", str(tmp_path / "joints"), "--out", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    assert (out / "all.txt").read_text().split() == ["000000", "000001", "000002"]
    joints = np.load(tmp_path / "joints" / "000001.npy")
    features = np.load(out / "new_joint_vecs" / "000001.npy")
    assert features.shape == (59, 263) and features.dtype == np.float32
    np.testing.assert_allclose(features, humanml3d.features_from_joints(joints, T2M_SKELETON), atol=1e-5)
    np.testing.assert_allclose(np.load(out / "new_joints" / "000001.npy"),
                               humanml3d.recover_from_ric(features, 22), atol=1e-5)
    std = np.load(out / "Std.npy")
    assert std.shape == (263,) and len(np.unique(std)) <= 7  # one value per feature group
    assert "3 clips" in capsys.readouterr().err


def test_prepare_reports_bad_input(tmp_path, capsys):
    (tmp_path / "joints").mkdir()
    np.save(tmp_path / "joints" / "bad.npy", np.zeros((10, 21, 3), np.float32))
    assert main(["prepare", str(tmp_path / "joints"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "bad" in err and "22, 3" in err
    assert main(["prepare", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "no joint files" in capsys.readouterr().err


def test_prepare_reproduces_the_published_features_of_a_real_clip(tmp_path, real_data):
    source = real_data / "EricGuo5513-HumanML3D" / "HumanML3D"
    if not (source / "new_joints" / "012314.npy").is_file():
        pytest.skip("HumanML3D clip 012314 not in the real data folder")
    (tmp_path / "joints").mkdir()
    np.save(tmp_path / "joints" / "012314.npy", np.load(source / "new_joints" / "012314.npy"))
    assert main(["prepare", str(tmp_path / "joints"), "--out", str(tmp_path / "out")]) == 0
    ours = np.load(tmp_path / "out" / "new_joint_vecs" / "012314.npy")
    published = np.load(source / "new_joint_vecs" / "012314.npy")[: len(ours)]
    # The published clip was made from one more frame; away from the end the smoothed facing
    # direction is unaffected and every slice matches to float32 precision.
    np.testing.assert_allclose(ours[:80], published[:80], atol=2e-5)
    for name, part in humanml3d.slices(22).items():
        assert np.abs(ours[:, part] - published[:, part]).max() < 3e-2, name


def test_prepare_is_a_command_of_the_humanml3d_plugin_not_of_the_core(tmp_path):
    assert get_registry().get("command", "prepare").provider == "motionhub_humanml3d"
    without = run_cli("prepare", str(tmp_path), "--out", str(tmp_path / "out"),
                      env={"MOTIONHUB_DISABLE_PLUGINS": "motionhub_humanml3d"})
    assert without.returncode == 2
    assert "unknown command 'prepare'" in without.stderr and "Switched off by MOTIONHUB_DISABLE_PLUGINS" in without.stderr
