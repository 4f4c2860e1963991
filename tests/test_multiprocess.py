"""Data-parallel training with 2 CPU processes (gloo), launched as users launch it."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from helpers import TINY_RECIPE, run_cli, write_recipe

from motionhub.train.rundir import RunDir

pytestmark = pytest.mark.slow

RECIPE = {**TINY_RECIPE,
          "data": {**TINY_RECIPE["data"], "clips": 24},
          "quantizer": {"name": "vq_ema_reset", "codebook_size": 32},
          "losses": [{"name": "recon"}, {"name": "commit", "weight": 0.02}],
          "train": {**TINY_RECIPE["train"], "iters": 8, "warmup_iters": 4, "milestones": [4], "gamma": 0.5,
                    "log_every": 2, "threads": 1}}


def test_two_processes_train_one_run_with_identical_replicas_and_the_same_schedule(tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", RECIPE)
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    result = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", "29571", "-m", "motionhub.cli",
                             "train", str(recipe), f"run.out={tmp_path / 'two'}"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.yaml", "two"]  # one run, not two
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == ["best.pt", "last.pt"]

    report = json.loads((tmp_path / "two" / "report.json").read_text())
    assert report["run"]["processes"] == 2
    assert report["run"]["replicas_identical"] is True  # EMA codebooks included

    rows = RunDir(tmp_path / "two").rows()
    train_rows = [r for r in rows if "split" not in r]
    assert [r["step"] for r in train_rows] == [2, 4, 6, 8, 10, 12]  # logged once, by the main process
    val = [r for r in rows if r.get("split") == "val"]
    assert len(val) == 1 and val[0]["mpjpe_mm"] > 0  # gathered over both processes' shares

    single = run_cli("train", str(recipe), f"run.out={tmp_path / 'one'}")
    assert single.returncode == 0, single.stderr
    one = [r["lr"] for r in RunDir(tmp_path / "one").rows() if "split" not in r]
    assert [r["lr"] for r in train_rows] == one  # the schedule does not depend on the process count


@pytest.mark.parametrize("on_nonfinite", ["skip", "stop"])
def test_a_nan_on_one_process_is_handled_by_every_process(on_nonfinite, tmp_path):
    # One process alone skipping its backward would leave the other waiting in the
    # gradient all-reduce for ever; both must take the same branch.
    recipe = write_recipe(tmp_path / "r.yaml", {
        **RECIPE, "losses": [{"name": "recon"}, {"name": "nan_once"}],
        "train": {**RECIPE["train"], "iters": 6, "warmup_iters": 0, "milestones": [], "log_every": 1,
                  "on_nonfinite": on_nonfinite}})
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    launch = os.path.join(os.path.dirname(__file__), "nonfinite_launch.py")
    port = "29572" if on_nonfinite == "skip" else "29573"
    result = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", port, launch,
                             "train", str(recipe), f"run.out={tmp_path / 'run'}"],
                            capture_output=True, text=True, timeout=240)
    if on_nonfinite == "skip":
        assert result.returncode == 0, result.stderr[-3000:]
        report = json.loads((tmp_path / "run" / "report.json").read_text())
        assert report["time"]["nonfinite_skipped"] == 1
        assert report["run"]["replicas_identical"] is True
        logged = [r["step"] for r in RunDir(tmp_path / "run").rows() if "split" not in r]
        assert logged == [1, 2, 3, 4, 5, 6]
    else:
        assert result.returncode != 0
        assert "non-finite loss at step 2: nan_once=nan" in result.stderr
        assert "non-finite loss at step 2: on another process" in result.stderr
