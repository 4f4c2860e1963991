"""The reconstruction metrics in a trained run: per residual level of an RVQ, with units in the report and
in ``motionhub eval``, on whole test clips whatever the recipe's length bounds."""

from __future__ import annotations

import csv
import json

import pytest

from helpers import TINY_RECIPE
from motionhub.recipes import recipe_from_tree
from motionhub.train.trainer import train

FIGURES = ("mpjpe_mm", "global_mpjpe_mm", "pa_mpjpe_mm", "accel_error_mm_f2", "jitter_mm_f3", "foot_skating_ratio")


@pytest.fixture(scope="module")
def rvq_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("metrics_eval")
    tree = {**TINY_RECIPE, "run": {"name": "rvq", "out": str(out / "run"), "seed": 0},
            "data": {**TINY_RECIPE["data"], "clips": 16, "min_frames": 30, "max_frames": 70,
                     "val_fraction": 0.25, "test_fraction": 0.25},
            "quantizer": {"name": "rvq", "num_quantizers": 3, "codebook_size": 16},
            "train": {**TINY_RECIPE["train"], "iters": 4},
            "eval": {"batch_size": 3, "max_length": 58, "train_codebook": False, "train_clips": 0}}
    run_dir = train(recipe_from_tree(tree, "rvq.yaml"))
    return run_dir, json.loads((run_dir / "report.json").read_text())


def test_an_rvq_run_reports_each_figure_per_level_and_all_levels_are_the_full_model(rvq_run):
    run_dir, report = rvq_run
    figures = report["eval"]
    for name in FIGURES + ("gt_jitter_mm_f3", "gt_foot_skating_ratio"):
        assert name in figures, name
    for name in FIGURES:
        assert [f"{name}@k{k}" in figures for k in (1, 2, 3, 4)] == [True, True, True, False], name
        assert figures[f"{name}@k3"] == pytest.approx(figures[name], rel=1e-5, abs=1e-9), name
    assert figures["mpjpe_mm@k1"] != figures["mpjpe_mm@k3"]  # fewer levels decode to another motion
    markdown = (run_dir / "report.md").read_text()
    for row in ("| pa_mpjpe_mm (mm) |", "| accel_error_mm_f2 (mm/frame²) |", "| jitter_mm_f3 (mm/frame³) |",
                "| foot_skating_ratio (fraction) |", "| mpjpe_mm@k2 (mm) |", "| loss |"):
        assert row in markdown, row


def test_eval_scores_whole_test_clips_when_the_length_bounds_are_lifted(rvq_run, capsys):
    from motionhub.cli import main
    from motionhub.use.trained_run import load_run

    run_dir, _ = rvq_run
    lengths = dict(zip(*(lambda s: (s.ids, s.lengths))(load_run(run_dir, "last").split("test"))))
    assert len(lengths) == 4 and any(n > 58 for n in lengths.values())

    capsys.readouterr()
    assert main(["eval", str(run_dir), "--checkpoint", "last", "--split", "test"]) == 0
    bounded = json.loads((run_dir / "eval_test.json").read_text())
    out = capsys.readouterr().out
    assert "mm/frame²" in out and "mm/frame³" in out and "fraction" in out  # units beside the figures
    assert bounded["skipped"] == sum(n > 58 for n in lengths.values()) and bounded["clips"] < 4

    assert main(["eval", str(run_dir), "eval.max_length=null", "--checkpoint", "last", "--split", "test",
                 "--per-clip"]) == 0
    whole = json.loads((run_dir / "eval_test.json").read_text())
    assert whole["clips"] == 4 and whole["skipped"] == 0
    with (run_dir / "eval_test_clips.csv").open() as f:
        rows = list(csv.DictReader(f))
    # every clip from its first frame, cropped only to a multiple of the encoder's down-sampling (2)
    assert {row["id"]: int(float(row["frames"])) for row in rows} == {i: n // 2 * 2 for i, n in lengths.items()}
