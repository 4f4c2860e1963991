"""Data-parallel training with 2 CPU processes (gloo), launched as users launch it."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from helpers import TINY_RECIPE, run_cli, write_recipe

from motionhub.rundir import RunDir

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
