"""Runs given in epochs, and what the report says about the data, the train split and the codebook."""

from __future__ import annotations

import json
import math
import os
import statistics

import numpy as np
import pytest
from helpers import TINY_RECIPE
from rich.console import Console

from motionhub.data.batches import TrainingData
from motionhub.data.store import Store
from motionhub.data.windows import ClipBank
from motionhub.errors import RecipeError
from motionhub.recipes import EvalConfig, recipe_from_tree
from motionhub.train.report import codes_used, render_markdown
from motionhub.train.rundir import RunDir
from motionhub.train.state import steps_for_epochs
from motionhub.train.trainer import train

# TINY_RECIPE's synthetic data: 12 clips of 40-60 frames, 10 of them in train, all longer than the
# 32-frame window. With 4 windows a batch, an epoch is 10 // 4 = 2 batches (8 windows, the other 2
# clips wait for the next shuffled order): 2.5 epochs are ceil(2.5 x 2) = 5 steps.
TRAIN_CLIPS, BATCHES_PER_EPOCH = 10, 2


def tree(out, train=None, **sections):
    settings = {k: v for k, v in TINY_RECIPE["train"].items() if k != "iters"}
    return {**TINY_RECIPE, "run": {"name": "e", "out": str(out), "seed": 0},
            "train": {**settings, "threads": 1, **(train or {})}, **sections}


@pytest.fixture(scope="module")
def epochs_run(tmp_path_factory):
    """2.5 epochs, one of them warm-up, a cosine schedule, evaluations at steps 2, 4 and 5, an FSQ
    asking for 2048 codes, and 4 of the 10 train clips evaluated at the end."""
    out = tmp_path_factory.mktemp("epochs")
    recipe = recipe_from_tree(tree(out / "run", {"epochs": 2.5, "warmup_iters": 1, "schedule": "cosine",
                                                 "log_every": 1, "eval_every": 2},
                                   quantizer={"name": "fsq", "codebook_size": 2048},
                                   eval={"train_clips": 4, "train_codebook": False}), "epochs.yaml")
    console = Console(record=True, width=400)
    run_dir = train(recipe, console)
    return run_dir, json.loads((run_dir / "report.json").read_text()), console.export_text()


def test_an_epochs_recipe_runs_the_steps_its_epochs_make(epochs_run):
    run_dir, report, printed = epochs_run
    assert report["data"]["train_clips"] == TRAIN_CLIPS and report["epoch"]["usable_clips"] == TRAIN_CLIPS
    assert report["epoch"]["batches"] == BATCHES_PER_EPOCH and report["epoch"]["windows"] == 8
    steps = [row["step"] for row in RunDir(run_dir).rows() if "split" not in row]
    assert steps == [1, 2, 3, 4, 5]  # ceil(2.5 x 2)
    assert report["time"]["steps"] == 5 and report["time"]["epochs"] == 2.5
    assert "codebook 1,920 codes (nominal 2048, the recipe's codebook_size)" in printed
    assert "an epoch is 2 batches of 4 windows x 1 process(es) = 8 windows, one from each of the 10 usable " \
           "train clips, in a fresh order (2 left to the next order); 2 steps; train.epochs=2.5: 5 steps" in printed


def test_the_schedule_runs_over_the_steps_the_epochs_leave_after_warm_up(epochs_run):
    run_dir, _, _ = epochs_run
    lrs = [row["lr"] for row in RunDir(run_dir).rows() if "split" not in row]
    # one warm-up step, then a half cosine over the 5 - 1 = 4 steps after it
    expected = [1e-3 / 2] + [1e-3 * 0.5 * (1 + math.cos(math.pi * after / 4)) for after in range(4)]
    assert lrs == pytest.approx(expected)


def test_the_measured_epoch_time_is_the_training_clock_per_epoch(epochs_run):
    _, report, _ = epochs_run
    t = report["time"]
    assert t["train_s"] > 0 and t["epoch_s"] == pytest.approx(t["train_s"] / 2.5)
    markdown = render_markdown(report)
    assert "| epochs | 2.5 (2 steps, 8 windows per epoch) |" in markdown
    assert f"| time / epoch | {t['epoch_s']:.3g} s (measured: {t['train_s']:.3g} s in training steps / 2.5 epochs) |" \
        in markdown


def test_epochs_are_worked_out_on_the_decimal_the_recipe_gives():
    assert steps_for_epochs(0.1, 30, 1) == 3  # 0.1 x 30 is 3.0000000000000004 in floats
    assert steps_for_epochs(2.5, 2, 1) == 5 and steps_for_epochs(3, 2, 2) == 3 and steps_for_epochs(1, 3, 2) == 2
    assert steps_for_epochs(0.01, 2, 1) == 1  # never less than one step


def test_milestones_and_warm_up_are_checked_against_the_steps_epochs_make(tmp_path):
    # 2 epochs are 4 steps; with one warm-up step, 3 after it: milestone 3 falls outside
    recipe = recipe_from_tree(tree(tmp_path / "m", {"epochs": 2, "warmup_iters": 1, "milestones": [1, 3]}), "m.yaml")
    with pytest.raises(RecipeError) as error:
        train(recipe)
    assert error.value.problems == [("train.milestones", (
        "3 is not within the run: milestones count steps after warm-up, and the run is train.epochs=2 long: 4 steps "
        "at 2 steps per epoch, 3 after warm-up. Use milestones below 3, raise train.epochs, or drop them with "
        "train.milestones=[]"))]
    recipe = recipe_from_tree(tree(tmp_path / "w", {"epochs": 1, "warmup_iters": 2}), "w.yaml")
    with pytest.raises(RecipeError, match=r"train.warmup_iters: 2 warm-up steps leave nothing of the run: it is "
                                          r"train.epochs=1 long: 2 steps at 2 steps per epoch\. Raise train.epochs "
                                          r"above 1 or shorten the warm-up"):
        train(recipe)
    assert not (tmp_path / "m").exists() and not (tmp_path / "w").exists()  # refused before a run directory
    assert recipe_from_tree(tree(tmp_path / "ok", {"epochs": 2, "milestones": [3]}), "ok.yaml").train.iters is None


def test_a_recipe_gives_iters_or_epochs_not_both():
    with pytest.raises(RecipeError) as error:
        recipe_from_tree(TINY_RECIPE, "r.yaml", ["train.epochs=3"])
    assert error.value.problems == [("train.epochs", (
        "3 is given with train.iters=6: the run's length is one or the other. Keep train.epochs (passes over the "
        "train windows) or train.iters (steps after warm-up); to switch with an override, null the other, e.g. "
        "train.iters=null train.epochs=10"))]
    switched = recipe_from_tree(TINY_RECIPE, "r.yaml", ["train.iters=null", "train.epochs=3"])
    assert (switched.train.iters, switched.train.epochs) == (None, 3)
    neither = recipe_from_tree({**TINY_RECIPE, "train": {"batch_size": 4}}, "r.yaml")
    assert (neither.train.iters, neither.train.epochs) == (1000, None)  # as before epochs existed


def test_each_split_has_its_size_on_disk_and_the_samples_processed(epochs_run):
    _, report, _ = epochs_run
    splits = report["data"]["splits"]
    for split in ("train", "val"):
        assert splits[split]["store"] == "packed"
        assert splits[split]["bytes"] == os.path.getsize(splits[split]["path"]) > 0
        assert splits[split]["bytes"] == Store.open(splits[split]["path"]).size_bytes
    assert report["data"]["samples"]["windows"] == report["time"]["samples"] == 5 * 4  # steps x batch
    markdown = render_markdown(report)
    assert f"{splits['train']['bytes'] / 2**20:.1f} MiB on disk |" in markdown
    assert "| samples processed | 20 windows (5 steps x 4 windows x 1 micro-batch x 1 process) |" in markdown


def test_memory_stores_and_micro_batches(tmp_path):
    # 3 epochs of 2 batches at 2 micro-batches a step: 3 steps of 2 x 4 windows
    data = {**TINY_RECIPE["data"], "store": "memory"}
    run_dir = train(recipe_from_tree(tree(tmp_path / "run", {"epochs": 3, "grad_accum": 2, "log_every": 1}, data=data,
                                          eval={"train_clips": 0}), "mem.yaml"))
    report = json.loads((run_dir / "report.json").read_text())
    assert report["time"]["steps"] == 3 and report["time"]["epochs"] == 3
    assert report["epoch"]["steps"] == 1
    assert report["data"]["samples"]["windows"] == 3 * 4 * 2
    assert report["data"]["splits"]["train"]["store"] == "memory" and report["data"]["splits"]["train"]["bytes"] is None
    markdown = render_markdown(report)
    assert "frames (fingerprint" in markdown and ", in memory |" in markdown
    assert "| samples processed | 24 windows (3 steps x 4 windows x 2 micro-batches x 1 process) |" in markdown
    assert report["eval_train"] == {} and "## Evaluation (val)" in markdown  # no train figures asked for


def test_the_train_figures_are_the_models_on_the_train_clips_chosen(epochs_run):
    from motionhub.use.evaluate import evaluate_run
    from motionhub.use.trained_run import load_run

    run_dir, report, _ = epochs_run
    train_figures, val_figures = report["eval_train"], report["eval"]
    assert report["data"]["train_eval_clips"] == 4
    assert set(train_figures) == set(val_figures) and train_figures["mpjpe_mm"] != val_figures["mpjpe_mm"]
    # 4 of the 10 train clips, evenly spaced: 0, 2, 5 and 7 (i x 10 // 4), evaluated by `motionhub eval`
    loaded = load_run(run_dir, "last")
    store = loaded.split("train")
    chosen = ClipBank.from_clips([store.clip(i) for i in (0, 2, 5, 7)])
    independent = evaluate_run(loaded, "train", clips=chosen)
    for figure in ("loss", "recon", "feature", "mpjpe_mm", "codebook_used"):
        assert train_figures[figure] == pytest.approx(independent[figure], rel=1e-6), figure
    markdown = render_markdown(report)
    assert "| | val | train (4 clips) |" in markdown.replace("|  |", "| |")
    assert f"| mpjpe_mm (mm) | {val_figures['mpjpe_mm']:.4f} | {train_figures['mpjpe_mm']:.4f} |" in markdown


def test_the_train_subset_spans_the_split_within_the_eval_bounds():
    lengths = np.array([10, 50, 3, 40, 70, 45, 20, 60, 8, 30])  # clip i has lengths[i] frames
    bank = ClipBank(np.zeros((lengths.sum(), 2), np.float32), np.concatenate([[0], np.cumsum(lengths)]),
                    [f"c{i}" for i in range(len(lengths))])

    def subset(**ev):
        return TrainingData(format=None, description="", sampler=None, train=bank, val=None,
                            eval_config=EvalConfig(**ev)).train_subset(unit=4).tolist()

    assert subset(train_clips=None) == [0, 1, 3, 4, 5, 6, 7, 8, 9]  # all but the clip shorter than one unit
    assert subset(train_clips=3, min_length=20, max_length=60) == [1, 5, 7]  # of 1, 3, 5, 6, 7, 9
    assert subset(train_clips=0) == [] and subset(train_clips=100, min_length=65) == [4]


def test_mean_val_loss_over_every_evaluation(epochs_run):
    run_dir, report, _ = epochs_run
    losses = [row["loss"] for row in RunDir(run_dir).rows() if row.get("split") == "val"]
    assert len(losses) == 3  # steps 2, 4 and the final 5
    history = report["eval_history"]
    assert history["steps"] == [2, 4, 5] and history["evaluations"] == 3
    assert history["mean_loss"] == pytest.approx(statistics.fmean(losses))
    assert report["eval"]["loss"] == losses[-1]
    assert f"| loss: mean of 3 evaluations | {statistics.fmean(losses):.4f} |  |" in render_markdown(report)


def test_codebook_use_against_the_real_and_the_nominal_number_of_codes(epochs_run):
    run_dir, report, _ = epochs_run
    val, train_usage = report["codebook"]["val"], report["codebook"]["train"]
    assert (val["size"], val["nominal_size"]) == (1920, 2048)  # FSQ 2048 is levels [8, 8, 6, 5]
    used = val["used"]
    markdown = render_markdown(report)
    assert f"| val: codes used | {used:,} used: {used / 1920:.1%} of the 1,920 real codes (nominal 2048: " \
           f"{used / 2048:.1%}) |" in markdown
    # train: the 4 clips evaluated (eval.train_codebook is off), counts saved beside val's
    assert train_usage["clips"] == 4 and train_usage["used"] == report["eval_train"]["codebook_used"]
    counts = json.loads((run_dir / "codebook_counts.json").read_text())
    assert sorted(counts) == ["train", "val"] and len(counts["train"]) == len(counts["val"]) == 1920
    assert int((np.array(counts["train"]) > 0).sum()) == train_usage["used"]
    assert "| train (4 clips): codes used |" in markdown


def test_codes_used_reads_as_the_real_size_and_the_nominal_one():
    assert codes_used({"used": 1864, "size": 1920, "nominal_size": 2048}) == \
        "1,864 used: 97.1% of the 1,920 real codes (nominal 2048: 91.0%)"
    assert codes_used({"used": 30, "size": 32}) == "30 used: 93.8% of the 32 codes"  # VQ: the size asked for


def test_a_vq_codebook_shows_one_size(tmp_path):
    tree_ = tree(tmp_path / "vq", {"iters": 2}, quantizer={"name": "vq_ema_reset", "codebook_size": 32},
                 losses=[{"name": "recon"}, {"name": "commit", "weight": 0.02}])
    report = json.loads((train(recipe_from_tree(tree_, "vq.yaml")) / "report.json").read_text())
    assert all(usage["size"] == 32 and "nominal_size" not in usage for usage in report["codebook"].values())
    assert "of the 32 codes |" in render_markdown(report) and "nominal" not in render_markdown(report)
