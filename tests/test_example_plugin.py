"""The example third-party plugin distribution, installed with pip into a temporary folder."""

import json
import os
import subprocess
import sys

import pytest
from helpers import REPO, run_cli

EXAMPLE = REPO / "plugins" / "motionhub-example"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """pip-install the example distribution into its own folder (not the test virtualenv)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-qq", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(EXAMPLE)], check=True, timeout=300)
    return target


def test_pip_installed_plugin_is_listed(installed):
    result = run_cli("plugins", pythonpath=[installed])
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["example"]["distribution"] == "motionhub-example"
    assert rows["example"]["version"] == "0.1.0"
    assert rows["example"]["registered"] == {"datasets": ["pendulums"], "losses": ["smoothness"]}


def test_its_components_train_from_a_recipe_without_changing_motionhub(installed, tmp_path):
    result = run_cli("train", str(EXAMPLE / "recipe.yaml"), "train.iters=4", "train.log_every=2",
                     f"run.out={tmp_path / 'run'}", pythonpath=[installed])
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if "split" not in row] == [2, 4]
    assert all(row["smoothness"] >= 0 for row in rows if "smoothness" in row)
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()


def test_load_plugins_empty_hides_it(installed):
    hidden = run_cli("plugins", pythonpath=[installed], env={"MOTIONHUB_LOAD_PLUGINS": ""})
    assert "example" not in {row["name"] for row in json.loads(hidden.stdout)}
    result = run_cli("validate", str(EXAMPLE / "recipe.yaml"), pythonpath=[installed],
                     env={"MOTIONHUB_LOAD_PLUGINS": ""})
    assert result.returncode == 2
    assert "data.name: unknown dataset 'pendulums'" in result.stderr
    assert "losses[1].name: unknown loss 'smoothness'" in result.stderr


def test_the_plugins_own_tests_pass(installed):
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                            capture_output=True, text=True, cwd=EXAMPLE,
                            env={**os.environ, "PYTHONPATH": str(installed)}, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
