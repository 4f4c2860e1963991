"""A run killed with SIGKILL mid-training and resumed logs the same losses as one never interrupted."""

import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import TINY_RECIPE, run_cli, write_recipe

from motionhub.train.rundir import RunDir

pytestmark = pytest.mark.slow

RECIPE = {**TINY_RECIPE,
          "quantizer": {"name": "vq_ema_reset", "codebook_size": 32},  # codebook state must survive too
          "losses": [{"name": "recon"}, {"name": "commit", "weight": 0.02}],
          "train": {**TINY_RECIPE["train"], "iters": 24, "log_every": 1, "checkpoint_every": 4,
                    "eval_every": 8, "threads": 1},
          "eval": {"train_codebook": False}}


def losses_by_step(run_dir):
    """Every logged value but wall-clock throughput, keyed by (step, split)."""
    return {(r["step"], r.get("split", "train")): {k: v for k, v in r.items() if k != "samples_per_s"}
            for r in RunDir(run_dir).rows()}


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", RECIPE)
    reference = run_cli("train", str(recipe), f"run.out={tmp_path / 'straight'}")
    assert reference.returncode == 0, reference.stderr

    env = {k: v for k, v in os.environ.items() if k != "MOTIONHUB_LOAD_PLUGINS"}
    killed = subprocess.Popen([sys.executable, "-m", "motionhub.cli", "train", str(recipe),
                               f"run.out={tmp_path / 'killed'}"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:  # kill between checkpoints, past the first evaluation
        steps = [r["step"] for r in RunDir(tmp_path / "killed").rows()]
        if steps and max(steps) >= 14:
            break
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    interrupted_at = max(r["step"] for r in RunDir(tmp_path / "killed").rows())
    assert interrupted_at < 24, "the run finished before it could be killed"

    resumed = run_cli("train", str(tmp_path / "killed"))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at step" in resumed.stderr

    straight, after = losses_by_step(tmp_path / "straight"), losses_by_step(tmp_path / "killed")
    assert list(straight) == list(after)  # no step lost or logged twice
    assert straight == after  # bit-identical losses, learning rates, val metrics


def test_resume_without_a_checkpoint_says_so(tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", RECIPE)
    result = run_cli("train", str(recipe), "--resume", f"run.out={tmp_path / 'nothing'}")
    assert result.returncode == 2
    assert f"nothing to resume in {tmp_path / 'nothing'}: no checkpoints/last.pt" in result.stderr
