"""``motionhub eval``: the run's own precision reproduces its final evaluation, and per-clip results."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from helpers import TINY_RECIPE
from motionhub.recipes import recipe_from_tree
from motionhub.train.trainer import train

# 6 val clips of 20-60 frames in batches of 4: two batches, both padded
DATA = {**TINY_RECIPE["data"], "clips": 16, "min_frames": 20, "max_frames": 60, "val_fraction": 0.4}


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval_clips")
    tree = {**TINY_RECIPE, "run": {"name": "bf16", "out": str(out / "run"), "seed": 0}, "data": DATA,
            "train": {**TINY_RECIPE["train"], "iters": 8, "precision": "bf16"},
            "eval": {"batch_size": 4, "train_codebook": False}}
    run_dir = train(recipe_from_tree(tree, "bf16.yaml"))
    return run_dir, json.loads((run_dir / "report.json").read_text())


def evaluate(run_dir, *args: str) -> dict:
    from motionhub.cli import main

    assert main(["eval", str(run_dir), "--checkpoint", "last", *args]) == 0
    return json.loads((run_dir / "eval_val.json").read_text())


def test_eval_of_a_bf16_run_gives_the_figures_of_its_final_evaluation(bf16_run):
    run_dir, report = bf16_run
    assert report["run"]["precision"] == "bf16"
    result = evaluate(run_dir)  # the final model, on val, in the run's precision
    assert result["precision"] == "bf16" and result["step"] == 8
    assert {key: result[key] for key in report["eval"]} == report["eval"]  # exactly, every figure

    fp32 = evaluate(run_dir, "--precision", "fp32")
    assert fp32["precision"] == "fp32"
    assert fp32["loss"] != report["eval"]["loss"] and fp32["mpjpe_mm"] != report["eval"]["mpjpe_mm"]
    assert fp32["loss"] == pytest.approx(report["eval"]["loss"], rel=0.05)  # the same model all the same


def test_per_clip_figures_are_consistent_with_the_split(bf16_run, capsys):
    run_dir, _ = bf16_run
    capsys.readouterr()
    split = evaluate(run_dir, "--per-clip")
    out = capsys.readouterr().out
    path = run_dir / "eval_val_clips.csv"
    assert split["per_clip"] == {"path": str(path), "sorted_by": "loss", "higher_is_better": False}
    with path.open() as f:
        rows = [{k: v if k == "id" else float(v) for k, v in row.items()} for row in csv.DictReader(f)]

    # every clip once, at its true length cropped to a multiple of the model's down-sampling (2)
    from motionhub.use.trained_run import load_run
    source = load_run(run_dir, "last").split("val")
    lengths = dict(zip(source.ids, source.lengths))
    assert len(rows) == split["clips"] == 6 and sorted(r["id"] for r in rows) == sorted(lengths)
    assert all(r["frames"] == lengths[r["id"]] // 2 * 2 for r in rows)
    assert len({r["frames"] for r in rows}) > 1

    # frame-weighted means of the per-frame figures are the split's (to float32 rounding)
    frames = np.array([r["frames"] for r in rows])
    for key in ("loss", "recon", "feature", "mpjpe_mm", "global_mpjpe_mm"):
        mean = float(np.dot([r[key] for r in rows], frames) / frames.sum())
        assert mean == pytest.approx(split[key], rel=1e-6), key
    assert all(1 <= r["codebook_used"] <= split["codebook_used"] for r in rows)
    assert len({r["mpjpe_mm"] for r in rows}) == len(rows)  # each clip's own, not the split's

    # worst first, and the worst named on the terminal
    losses = [r["loss"] for r in rows]
    assert losses == sorted(losses, reverse=True)
    assert rows[0]["id"] in out and "worst 6 of 6 clips by loss" in out


def test_per_clip_as_json_lines_sorted_by_another_figure(bf16_run, tmp_path, capsys):
    run_dir, _ = bf16_run
    target = tmp_path / "clips.jsonl"
    split = evaluate(run_dir, "--per-clip", "--out", str(target), "--sort", "mpjpe_mm", "--worst", "2")
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert split["per_clip"]["path"] == str(target) and len(rows) == split["clips"]
    errors = [r["mpjpe_mm"] for r in rows]
    assert errors == sorted(errors, reverse=True)
    assert "worst 2 of 6 clips by mpjpe_mm" in capsys.readouterr().out


def test_per_clip_options_explain_their_mistakes(bf16_run, capsys):
    from motionhub.cli import main

    run_dir, _ = bf16_run
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--out", "clips.csv"]) != 0
    assert "add --per-clip" in capsys.readouterr().err
    assert main(["eval", str(run_dir), "--per-clip", "--out", "clips.txt"]) != 0
    assert ".csv" in capsys.readouterr().err
    assert main(["eval", str(run_dir), "--per-clip", "--sort", "mpjpe"]) != 0
    err = capsys.readouterr().err
    assert "did you mean 'mpjpe_mm'" in err and "global_mpjpe_mm" in err
