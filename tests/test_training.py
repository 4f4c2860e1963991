"""The training loop: schedule, metrics, checkpoints, run directories."""

import json
import math

import pytest
import torch
from helpers import TINY_RECIPE

import motionhub

from motionhub.model.build import build_tokenizer
from motionhub.train.checkpoint import CheckpointError, load_checkpoint, read_torch_file, save_atomic
from motionhub.errors import MotionhubError
from motionhub.recipes import TrainConfig, recipe_from_tree
from motionhub.train.rundir import RunDir
from motionhub.plugins.testing import registered_plugin
from motionhub.train.trainer import TrainingError, learning_rate, train
from motionhub_synthetic.dataset import SyntheticMotion


def test_warmup_then_milestones_per_optimizer_step():
    cfg = TrainConfig(lr=1.0, warmup_iters=4, milestones=[3, 5], gamma=0.1)
    lrs = [learning_rate(step, cfg) for step in range(12)]
    assert lrs[:4] == pytest.approx([1 / 5, 2 / 5, 3 / 5, 4 / 5])  # (step + 1) / (warmup + 1)
    assert lrs[4:7] == pytest.approx([1.0] * 3)
    assert lrs[7:9] == pytest.approx([0.1] * 2)  # 3 steps after warm-up
    assert lrs[9:] == pytest.approx([0.01] * 3)


def test_a_cosine_schedule_runs_over_the_steps_after_warm_up_it_is_given():
    cfg = TrainConfig(lr=1.0, epochs=2, schedule="cosine", warmup_iters=1)
    assert cfg.iters is None  # a run in epochs: its steps follow from the data
    assert [learning_rate(step, cfg, iters=4) for step in range(6)] == pytest.approx(
        [0.5, 1.0, (1 + math.cos(math.pi / 4)) / 2, 0.5, (1 + math.cos(3 * math.pi / 4)) / 2, 0.0])
    with pytest.raises(ValueError, match="pass them as iters"):
        learning_rate(1, cfg)
    assert learning_rate(3, TrainConfig(lr=1.0, schedule="cosine", iters=4)) == pytest.approx(
        (1 + math.cos(3 * math.pi / 4)) / 2)  # train.iters by default


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
    assert checkpoint["state"]["step"] == 60 and checkpoint["recipe"]["run"]["name"] == "t"
    assert checkpoint["versions"]["motionhub"]
    model = build_tokenizer(recipe, SyntheticMotion(**recipe.data.kwargs).format)
    model.load_state_dict(checkpoint["model"])  # strict: every key matches
    assert (run_dir / "recipe.yaml").read_text().startswith("run:")


def test_a_second_run_with_the_same_out_gets_a_new_directory(tmp_path):
    first = RunDir.create(tmp_path / "run")
    assert first.path == tmp_path / "run" and (first.path / "checkpoints").is_dir()
    assert RunDir.create(tmp_path / "run").path == tmp_path / "run-2"


def test_atomic_save_keeps_the_last_good_checkpoint_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_atomic({"step": 1}, path)

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(CheckpointError, match="cannot write .*last.pt: disk full. The previous last.pt is intact"):
        save_atomic({"step": 2}, path)
    monkeypatch.undo()
    assert read_torch_file(path) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


class NaNAfter:
    """A loss that is fine for ``calls`` calls, then NaN (stands for a diverging run)."""

    calls = 0

    def __init__(self, after: int = 3):
        self.after = after

    def __call__(self, batch, outputs, format):
        NaNAfter.calls += 1
        value = outputs["recon"].abs().mean()
        return value * float("nan") if NaNAfter.calls > self.after else value


class NaNPlugin:
    @motionhub.hookimpl
    def register_losses(self, register):
        register("nan_after", NaNAfter)


def nan_recipe(tmp_path, **train):
    tree = {**TINY_RECIPE, "run": {"name": "n", "out": str(tmp_path / "run")},
            "losses": [{"name": "recon"}, {"name": "nan_after", "after": 5}],
            "train": {**TINY_RECIPE["train"], "iters": 8, "checkpoint_every": 2, "log_every": 1, **train}}
    return recipe_from_tree(tree, "nan.yaml")


def test_a_non_finite_loss_stops_naming_the_step_and_term_and_keeps_the_checkpoint(tmp_path):
    NaNAfter.calls = 0
    with registered_plugin(NaNPlugin(), "nan-plugin"):
        with pytest.raises(TrainingError) as info:
            train(nan_recipe(tmp_path))
    message = str(info.value)
    assert "non-finite loss at step 5: nan_after=nan" in message
    assert "train.on_nonfinite=skip" in message
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert checkpoint["state"]["step"] == 4 and str(tmp_path / "run" / "checkpoints" / "last.pt") in message


def test_non_finite_steps_can_be_skipped_and_counted(tmp_path):
    NaNAfter.calls = 0
    with registered_plugin(NaNPlugin(), "nan-plugin"):
        recipe = nan_recipe(tmp_path, on_nonfinite="skip", checkpoint_every=0)
        recipe.eval.train_codebook = False
        run_dir = train(recipe)
    report = json.loads((run_dir / "report.json").read_text())
    assert report["time"]["nonfinite_skipped"] == 3  # steps 5, 6, 7
    weights = load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]
    assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())


def test_report_has_every_section_with_plausible_figures(tmp_path):
    run_dir = train(tiny(tmp_path, iters=8, log_every=2, eval_every=4))
    report = json.loads((run_dir / "report.json").read_text())
    p = report["parameters"]
    assert p["trainable"] == p["encoder"] + p["quantizer"] + p["decoder"] > 0
    assert report["flops"]["train"] > report["flops"]["forward"] > 0
    assert report["time"]["steps"] == 8 and report["time"]["step_s"] > 0 and report["time"]["samples_per_s"] > 0
    assert report["memory"]["cpu_peak_rss_mib"] > 50
    assert report["checkpoint"]["size_mib"] > 0
    for split in ("train", "val"):
        usage = report["codebook"][split]
        assert usage["size"] == 200 and 0 < usage["used"] <= 200 and usage["used"] + usage["dead"] == 200
    assert report["eval"]["mpjpe_mm"] > 0 and "recon" in report["eval"]
    assert set(report["losses"]["final"]) == {"loss", "recon", "feature"}
    phases = report["breakdown"]
    assert {"data", "forward", "backward", "optimizer", "evaluation", "checkpoint",
            "loss: recon", "loss: feature"} <= set(phases)
    assert sum(v["fraction"] for v in phases.values()) == pytest.approx(1.0)
    markdown = (run_dir / "report.md").read_text()
    assert "## Time breakdown" in markdown and "| loss: feature |" in markdown
    assert "![loss_curves.png](loss_curves.png)" in markdown and (run_dir / "codebook_usage.png").is_file()
    rows = RunDir(run_dir).rows()
    assert [r["step"] for r in rows if r.get("split") == "val"] == [4, 8]
    assert (run_dir / "checkpoints" / "best.pt").is_file()


def test_eval_and_report_commands_on_a_finished_run(tmp_path, capsys):
    from motionhub.cli import main

    run_dir = train(tiny(tmp_path, iters=4, log_every=2))
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--split", "test"]) == 0
    result = json.loads((run_dir / "eval_test.json").read_text())
    assert result["split"] == "test" and result["step"] == 4 and result["clips"] > 0
    assert result["mpjpe_mm"] > 0 and 0 < result["codebook_used"] <= result["codebook_size"]
    assert f"{result['clips']}/{result['clips']} clips" in capsys.readouterr().err  # the progress bar
    # the command's figures on val are the ones training logged for its final model
    assert main(["eval", str(run_dir)]) == 0
    logged = [r for r in RunDir(run_dir).rows() if r.get("split") == "val"][-1]
    again = json.loads((run_dir / "eval_val.json").read_text())
    for key in ("loss", "mpjpe_mm", "codebook_used"):
        assert again[key] == pytest.approx(logged[key], rel=1e-6)
    (run_dir / "report.md").unlink()
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "report.md").read_text().startswith("# Training report: t")
    assert "Time breakdown" in capsys.readouterr().out
    assert main(["report", str(tmp_path)]) == 2
    assert "no report.json" in capsys.readouterr().err


def test_a_tracker_that_is_not_installed_is_reported_before_training(tmp_path, monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(MotionhubError, match="train.trackers asks for tensorboard, which is not installed"):
        train(tiny(tmp_path, trackers=["tensorboard"]))
    assert not (tmp_path / "run").exists()


def test_gradient_accumulation_and_cosine_schedule(tmp_path):
    run_dir = train(tiny(tmp_path, iters=4, grad_accum=2, schedule="cosine", log_every=1, lr=1e-3))
    rows = [r for r in RunDir(run_dir).rows() if "split" not in r]
    assert [r["lr"] for r in rows] == pytest.approx([1e-3, 1e-3 * 0.5 * (1 + math.cos(math.pi / 4)),
                                                     5e-4, 1e-3 * 0.5 * (1 + math.cos(3 * math.pi / 4))])
    report = json.loads((run_dir / "report.json").read_text())
    assert report["time"]["samples"] == 4 * 4 * 2  # steps x batch x micro-batches


def test_bf16_mixed_precision_trains_on_the_cpu(tmp_path):
    run_dir = train(tiny(tmp_path, iters=3, log_every=1, precision="bf16"))
    rows = [r for r in RunDir(run_dir).rows() if "split" not in r]
    assert len(rows) == 3 and all(math.isfinite(r["loss"]) for r in rows)
    weights = load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]
    assert all(t.dtype == torch.float32 for t in weights.values() if t.is_floating_point())  # master weights


class HalfPrecisionLoss:
    """A loss that returns a constant in bfloat16 (stands for a loss computed in half precision)."""

    def __call__(self, batch, outputs, format):
        return torch.tensor(5.4321, dtype=torch.bfloat16)  # 5.4375 in bfloat16


class HalfPrecisionPlugin:
    @motionhub.hookimpl
    def register_losses(self, register):
        register("half_precision", HalfPrecisionLoss)


def test_a_half_precision_loss_is_logged_as_its_exact_mean_over_the_log_interval(tmp_path):
    # Summed in bfloat16 over the 16 steps of a log interval, 5.4375 would be logged as 5.46875.
    tree = {**TINY_RECIPE, "run": {"name": "h", "out": str(tmp_path / "run"), "seed": 0},
            "losses": [{"name": "recon"}, {"name": "half_precision"}],
            "train": {**TINY_RECIPE["train"], "iters": 32, "log_every": 16}, "eval": {"train_codebook": False}}
    with registered_plugin(HalfPrecisionPlugin(), "half-plugin"):
        run_dir = train(recipe_from_tree(tree, "half.yaml"))
    rows = [r for r in RunDir(run_dir).rows() if "split" not in r]
    assert [r["step"] for r in rows] == [16, 32]
    assert [r["half_precision"] for r in rows] == [5.4375, 5.4375]
    report = json.loads((run_dir / "report.json").read_text())
    assert report["losses"]["final"]["half_precision"] == 5.4375
    assert report["losses"]["mean"]["half_precision"] == 5.4375
    assert report["losses"]["without_gradient"] == ["half_precision"]


def test_replica_checksum_ignores_per_process_norm_statistics_only():
    import copy

    from motionhub.train.trainer import replica_checksum

    model = torch.nn.Sequential(torch.nn.Conv1d(4, 4, 3), torch.nn.BatchNorm1d(4))
    other = copy.deepcopy(model)
    other[1].running_mean += 1.0  # each process's BatchNorm sees its own batches
    other[1].num_batches_tracked += 3
    assert torch.equal(replica_checksum(model), replica_checksum(other))
    with torch.no_grad():
        other[0].weight[0, 0, 0] += 1e-3
    assert not torch.equal(replica_checksum(model), replica_checksum(other))
