"""The training loop: schedule, metrics, checkpoints, run directories."""

import json

import pytest
import torch
from helpers import TINY_RECIPE

from motionhub.build import build_tokenizer
from motionhub.checkpoint import load_checkpoint, save_atomic
from motionhub.recipe import TrainConfig, recipe_from_tree
from motionhub.trainer import learning_rate, new_run_dir, train
from motionhub_synthetic.dataset import SyntheticMotion


def test_warmup_then_milestones_per_optimizer_step():
    cfg = TrainConfig(lr=1.0, warmup_iters=4, milestones=[3, 5], gamma=0.1)
    lrs = [learning_rate(step, cfg) for step in range(12)]
    assert lrs[:4] == pytest.approx([1 / 5, 2 / 5, 3 / 5, 4 / 5])  # (step + 1) / (warmup + 1)
    assert lrs[4:7] == pytest.approx([1.0] * 3)
    assert lrs[7:9] == pytest.approx([0.1] * 2)  # 3 steps after warm-up
    assert lrs[9:] == pytest.approx([0.01] * 3)


def tiny(tmp_path, **train):
    tree = {**TINY_RECIPE, "run": {"name": "t", "out": str(tmp_path / "run"), "seed": 0},
            "train": {**TINY_RECIPE["train"], **train}}
    return recipe_from_tree(tree, "tiny.yaml")


def test_training_writes_metrics_and_a_loadable_checkpoint_and_the_loss_falls(tmp_path):
    recipe = tiny(tmp_path, iters=60, log_every=10, lr=3e-3, batch_size=8)
    run_dir = train(recipe)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "split" not in r]
    assert [r["step"] for r in steps] == [10, 20, 30, 40, 50, 60]
    assert {"loss", "recon", "feature", "lr", "samples_per_s"} <= set(steps[0])
    assert steps[-1]["recon"] < 0.7 * steps[0]["recon"]
    assert rows[-1]["split"] == "val" and rows[-1]["loss"] > 0

    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert checkpoint["step"] == 60 and checkpoint["recipe"]["run"]["name"] == "t"
    assert checkpoint["versions"]["motionhub"]
    model = build_tokenizer(recipe, SyntheticMotion(**recipe.data.kwargs).format)
    model.load_state_dict(checkpoint["model"])  # strict: every key matches
    assert (run_dir / "recipe.yaml").read_text().startswith("run:")


def test_a_second_run_with_the_same_out_gets_a_new_directory(tmp_path):
    first = new_run_dir(tmp_path / "run")
    (first / "checkpoints").mkdir()
    assert new_run_dir(tmp_path / "run") == tmp_path / "run-2"


def test_atomic_save_keeps_the_last_good_checkpoint_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_atomic({"step": 1}, path)

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_atomic({"step": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind
