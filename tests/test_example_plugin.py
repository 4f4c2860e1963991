"""The example third-party plugin distribution: in-process (its command, importer and exporter through
``motionhub.cli.main``), and installed with pip into a temporary folder."""

import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import REPO, run_cli

from motionhub.cli import main
from motionhub.model.build import build_dataset, build_tokenizer
from motionhub.plugins.testing import registered_plugin
from motionhub.recipes import load_recipe
from motionhub.use.importing import training_format
from motionhub.use.trained_run import load_run

EXAMPLE = REPO / "plugins" / "motionhub-example"
RECIPE = EXAMPLE / "recipe.yaml"


@pytest.fixture
def example(monkeypatch):
    """The example plugin registered in this process (not installed)."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import motionhub_example

    with registered_plugin(motionhub_example, "example"):
        yield motionhub_example


def test_its_command_describes_a_pendulums_data_set(example, capsys):
    assert main(["pendulums", "--links", "2", "--clips", "10", "--frames", "30"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "pendulums: 2 links of 0.3 m (reach 0.6 m), 10 clips of 30 frames at 30 fps, seed 0"
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    data = example.Pendulums(links=2, clips=10, frames=30)
    for split in ("train", "val", "test"):
        tips = [clip.motion.reshape(30, 2, 3)[:, -1] for clip in data.clips(split)]
        speed = max(np.linalg.norm(np.diff(tip, axis=0), axis=-1).max() * 30 for tip in tips)
        assert rows[split][:2] == [str(len(tips)), str(30 * len(tips))]
        assert float(rows[split][2]) == pytest.approx(speed, abs=1e-3)


def test_its_command_is_listed_by_help(example, capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "pendulums" in capsys.readouterr().out


def test_its_exporter_writes_the_clips_as_csv(example, tmp_path, capsys):
    out = tmp_path / "csv" / "val.csv"
    assert main(["export", "positions_csv", str(RECIPE), "--out", str(out), "--split", "val", "--every", "4",
                 "--decimals", "3", "data.clips=20"]) == 0
    printed = capsys.readouterr().out
    assert f"positions csv: {out}" in printed and "clips: 2 of 2 in split 'val'" in printed
    with out.open() as file:
        header, *rows = list(csv.reader(file))
    assert header[:5] == ["clip", "frame", "joint0_x", "joint0_y", "joint0_z"] and len(header) == 2 + 4 * 3
    clips = list(example.Pendulums(links=4, clips=20).clips("val"))
    assert len(rows) == len(clips) * math.ceil(90 / 4)
    first = clips[0].motion[::4]
    assert [row[1] for row in rows[:3]] == ["0", "4", "8"] and rows[0][0] == clips[0].id
    np.testing.assert_allclose(np.array([row[2:] for row in rows[: len(first)]], dtype=float), first, atol=5e-4)


def test_its_exporter_options_come_from_its_constructor(example, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "positions_csv", str(RECIPE), "--out", str(tmp_path / "x.csv"), "--every", "0"])
    assert exit_info.value.code == 2
    assert "argument --every: must be at least 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", "positions_csv", "--help"])
    out = capsys.readouterr().out
    assert "--every EVERY" in out and "keep every n-th frame of each clip" in out and "(default: 4)" in out


def test_its_importer_turns_an_npz_archive_into_a_run(example, tmp_path, capsys):
    recipe = load_recipe(RECIPE)
    torch.manual_seed(3)
    model = build_tokenizer(recipe, training_format(recipe))
    weights = {"params/" + key.replace(".", "/"): value.numpy() for key, value in model.state_dict().items()}
    np.savez(tmp_path / "weights.npz", **weights)
    run = tmp_path / "run"
    args = ["import", "npz", str(tmp_path / "weights.npz"), "--recipe", str(RECIPE), "--out", str(run)]
    assert main([*args, "--prefix", "params/"]) == 0
    assert capsys.readouterr().out.strip().endswith(str(run))
    loaded = load_run(run)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    clip = next(build_dataset(recipe).clips("val")).motion[:32]
    x = torch.as_tensor(loaded.format.normalise(clip))[None]
    with torch.no_grad():
        assert torch.equal(loaded.model(x)["indices"], model.eval()(x)["indices"])

    assert main([*args[:-1], str(tmp_path / "run2")]) == 2  # without the prefix, no name fits
    assert "checkpoint tensors have no place in the model: params.encoder." in capsys.readouterr().err
    assert main([*args[:-1], str(tmp_path / "run2"), "--prefix", "model/"]) == 2
    assert "arrays do not start with the prefix 'model/' (e.g. params/" in capsys.readouterr().err
    np.savez(tmp_path / "partial.npz", **dict(list(weights.items())[1:]))
    assert main(["import", "npz", str(tmp_path / "partial.npz"), "--recipe", str(RECIPE), "--out",
                 str(tmp_path / "run3"), "--prefix", "params/"]) == 2
    assert "1 model tensors are missing from the checkpoint: encoder.stem.weight" in capsys.readouterr().err


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """pip-install the example distribution into its own folder (not the test virtualenv)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-qq", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(EXAMPLE)], check=True, timeout=300)
    return target


@pytest.mark.slow
def test_pip_installed_plugin_is_listed(installed):
    result = run_cli("plugins", pythonpath=[installed])
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["example"]["distribution"] == "motionhub-example"
    assert rows["example"]["version"] == "0.1.0"
    assert rows["example"]["registered"] == {"datasets": ["pendulums"], "losses": ["smoothness"],
                                             "exporters": ["positions_csv"], "importers": ["npz"],
                                             "commands": ["pendulums"]}


@pytest.mark.slow
def test_its_components_train_from_a_recipe_without_changing_motionhub(installed, tmp_path):
    result = run_cli("train", str(EXAMPLE / "recipe.yaml"), "train.iters=4", "train.log_every=2",
                     f"run.out={tmp_path / 'run'}", pythonpath=[installed])
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if "split" not in row] == [2, 4]
    assert all(row["smoothness"] >= 0 for row in rows if "smoothness" in row)
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()


@pytest.mark.slow
def test_load_plugins_empty_hides_it(installed):
    hidden = run_cli("plugins", pythonpath=[installed], env={"MOTIONHUB_LOAD_PLUGINS": ""})
    assert "example" not in {row["name"] for row in json.loads(hidden.stdout)}
    result = run_cli("validate", str(EXAMPLE / "recipe.yaml"), pythonpath=[installed],
                     env={"MOTIONHUB_LOAD_PLUGINS": ""})
    assert result.returncode == 2
    assert "data.name: unknown dataset 'pendulums'" in result.stderr
    assert "losses[1].name: unknown loss 'smoothness'" in result.stderr


@pytest.mark.slow
def test_the_plugins_own_tests_pass(installed):
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                            capture_output=True, text=True, cwd=EXAMPLE,
                            env={**os.environ, "PYTHONPATH": str(installed)}, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
