"""A run interrupted mid-training and resumed logs the same losses as one never interrupted."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import TINY_RECIPE, run_cli, write_recipe

from motionhub.data.batches import TrainingData
from motionhub.recipes import recipe_from_tree
from motionhub.train.checkpoint import load_checkpoint, save_checkpoint
from motionhub.train.hardware import MEASURED_KEYS
from motionhub.train.rundir import RunDir
from motionhub.train.trainer import train

RECIPE = {**TINY_RECIPE,
          "quantizer": {"name": "vq_ema_reset", "codebook_size": 32},  # codebook state must survive too
          "losses": [{"name": "recon"}, {"name": "commit", "weight": 0.02}],
          "train": {**TINY_RECIPE["train"], "iters": 24, "log_every": 1, "checkpoint_every": 4,
                    "eval_every": 8, "threads": 1},
          "eval": {"train_codebook": False}}


def losses_by_step(run_dir):
    """Every logged value but the process's measurements (throughput, memory), keyed by (step, split)."""
    return {(r["step"], r.get("split", "train")): {k: v for k, v in r.items() if k not in MEASURED_KEYS}
            for r in RunDir(run_dir).rows()}


@pytest.mark.slow
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


@pytest.mark.slow
def test_resume_without_a_checkpoint_says_so(tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", RECIPE)
    result = run_cli("train", str(recipe), "--resume", f"run.out={tmp_path / 'nothing'}")
    assert result.returncode == 2
    assert f"nothing to resume in {tmp_path / 'nothing'}: no checkpoints/last.pt" in result.stderr


# ---------------------------------------------------------------------------- in-process interruption
# Rows every 4 steps, checkpoints every 3 and an evaluation at 6: the run stops during step 7,
# so it resumes from step 6, in the middle of the log interval 5..8.
INTERVALS = {**RECIPE["train"], "iters": 12, "log_every": 4, "checkpoint_every": 3, "eval_every": 6}


class Interrupted(Exception):
    pass


def interval_recipe(out):
    return recipe_from_tree({**RECIPE, "run": {"name": "r", "out": str(out), "seed": 0}, "train": INTERVALS}, "r.yaml")


def interrupted_run(out, monkeypatch, at_step=6):
    """A run stopped while drawing the batch of 0-based step ``at_step``; last.pt is the one before."""
    draw = TrainingData.train_batch

    def train_batch(self, index, device):
        if index == at_step:
            raise Interrupted
        return draw(self, index, device)

    with monkeypatch.context() as patch:
        patch.setattr(TrainingData, "train_batch", train_batch)
        with pytest.raises(Interrupted):
            train(interval_recipe(out))
    return out


def metrics_lines(run_dir):
    """metrics.jsonl, line by line, without the process's measurements (throughput, memory)."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in MEASURED_KEYS} for line in lines]


def test_a_resume_inside_a_log_interval_logs_the_same_means_as_an_uninterrupted_run(tmp_path, monkeypatch):
    straight = train(interval_recipe(tmp_path / "straight"))
    stopped = interrupted_run(tmp_path / "stopped", monkeypatch)
    assert load_checkpoint(stopped / "checkpoints" / "last.pt")["state"]["step"] == 6
    assert [r["step"] for r in metrics_lines(stopped)] == [4, 6]  # the interval 5..8 was open

    resumed = train(interval_recipe(stopped), resume=True)
    assert resumed == stopped
    assert [(r["step"], r.get("split", "train")) for r in metrics_lines(resumed)] == [
        (4, "train"), (6, "val"), (8, "train"), (12, "train"), (12, "val")]
    assert metrics_lines(resumed) == metrics_lines(straight)  # the row at 8 averages steps 5..8, all of them
    report, again = (json.loads((run / "report.json").read_text()) for run in (straight, resumed))
    assert again["losses"]["mean"] == report["losses"]["mean"] and again["losses"]["final"] == report["losses"]["final"]
    weights, resumed_weights = (load_checkpoint(run / "checkpoints" / "last.pt")["model"] for run in (straight, resumed))
    assert all(torch.equal(weights[k], resumed_weights[k]) for k in weights)


def test_a_checkpoint_from_before_log_intervals_were_kept_still_resumes_exactly(tmp_path, monkeypatch):
    straight = train(interval_recipe(tmp_path / "straight"))
    stopped = interrupted_run(tmp_path / "stopped", monkeypatch)
    last = stopped / "checkpoints" / "last.pt"
    older = load_checkpoint(last)
    del older["state"]["log_windows"]  # as written by earlier versions
    save_checkpoint(older, last)

    resumed = train(interval_recipe(stopped), resume=True)
    rows, expected = metrics_lines(resumed), metrics_lines(straight)
    assert [r["step"] for r in rows] == [r["step"] for r in expected]
    # Only the interval the checkpoint cut differs (it restarts at step 7); what follows is exact.
    assert rows[2]["step"] == 8 and rows[2]["loss"] != expected[2]["loss"]
    assert rows[3:] == expected[3:]
    assert "log_windows" in load_checkpoint(last)["state"]  # written again from then on


# ---------------------------------------------------------------------------- a run given in epochs
# 10 train clips in batches of 4: an epoch is 2 steps, 3.5 epochs are 7. The run stops during
# step 4, so it resumes from the checkpoint at step 3, halfway through the second epoch.
EPOCHS = {**{k: v for k, v in INTERVALS.items() if k != "iters"}, "epochs": 3.5, "log_every": 2,
          "checkpoint_every": 3, "eval_every": 4}


def epochs_recipe(out):
    return recipe_from_tree({**RECIPE, "run": {"name": "r", "out": str(out), "seed": 0}, "train": EPOCHS}, "r.yaml")


def test_a_run_given_in_epochs_resumes_mid_epoch_exactly(tmp_path, monkeypatch):
    straight = train(epochs_recipe(tmp_path / "straight"))
    draw = TrainingData.train_batch

    def train_batch(self, index, device):
        if index == 3:
            raise Interrupted
        return draw(self, index, device)

    with monkeypatch.context() as patch:
        patch.setattr(TrainingData, "train_batch", train_batch)
        with pytest.raises(Interrupted):
            train(epochs_recipe(tmp_path / "stopped"))
    assert load_checkpoint(tmp_path / "stopped" / "checkpoints" / "last.pt")["state"]["step"] == 3  # 1.5 epochs

    resumed = train(epochs_recipe(tmp_path / "stopped"), resume=True)
    assert [r["step"] for r in metrics_lines(resumed) if "split" not in r] == [2, 4, 6, 7]
    assert metrics_lines(resumed) == metrics_lines(straight)
    weights, resumed_weights = (load_checkpoint(run / "checkpoints" / "last.pt")["model"] for run in (straight, resumed))
    assert all(torch.equal(weights[k], resumed_weights[k]) for k in weights)
    report, again = (json.loads((run / "report.json").read_text()) for run in (straight, resumed))
    assert report["time"]["epochs"] == again["time"]["epochs"] == 3.5 and again["time"]["steps"] == 7
    assert again["eval"] == report["eval"] and again["eval_train"] == report["eval_train"]
    assert again["eval_history"] == report["eval_history"] and again["eval_history"]["steps"] == [4, 7]
