"""The report against the hardware: FLOPs, the matmul ceiling and the share of it a run reached,
the memory of weights, gradients and optimizer state beside the peak, where the run was, and the
figures (drawn with matplotlib; without it, a note saying how to get them)."""

from __future__ import annotations

import importlib.util
import io
import json
import math
import sys
import time
from datetime import datetime
from types import SimpleNamespace

import pytest
import torch
from helpers import TINY_RECIPE
from rich.console import Console

from motionhub.cli import main
from motionhub.recipes import recipe_from_tree
from motionhub.train.hardware import MATMUL_FLAGS, matmul_ceiling, memory_row
from motionhub.train.report import (count_flops, flops_record, load_report, parameter_counts, render_markdown,
                                    speed_record, tensor_bytes, tracker_records)
from motionhub.train.rundir import RunDir
from motionhub.train.trainer import train
from motionhub.train.figures import plot_codebook_splits

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
NEW_FIGURES = ("codebook_splits.png", "time_breakdown.png", "memory.png")


def tiny(out, **train_settings):
    tree = {**TINY_RECIPE, "run": {"name": "hw", "out": str(out), "seed": 0},
            "train": {**TINY_RECIPE["train"], "iters": 6, "log_every": 2, **train_settings}}
    return recipe_from_tree(tree, "hw.yaml")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny fp32 run, its printout kept."""
    out = io.StringIO()
    run_dir = train(tiny(tmp_path_factory.mktemp("hw") / "run"), console=Console(file=out, width=200))
    return SimpleNamespace(path=run_dir, report=load_report(run_dir), printed=out.getvalue())


# ---------------------------------------------------------------------------- FLOPs
def test_flops_of_a_conv_layer_match_the_hand_count():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 10)  # batch 2, 3 channels, 10 frames
    one = torch.nn.Conv1d(3, 4, kernel_size=3, padding=1)
    # forward: 2 FLOPs per multiply-add, for each of 2 x 4 x 10 outputs over 3 channels x 3 taps
    forward = 2 * (2 * 4 * 10) * (3 * 3)
    # backward: the weight's gradient alone costs as much (the input asks for none)
    assert count_flops(one, x, lambda y: y.sum()) == {"forward": forward, "backward": forward, "train": 2 * forward}
    two = torch.nn.Sequential(torch.nn.Conv1d(3, 4, 3, padding=1), torch.nn.Conv1d(4, 5, 1))
    second = 2 * (2 * 5 * 10) * 4  # the 1x1 layer; its backward also gives its input's gradient: twice that
    assert count_flops(two, x, lambda y: y.sum()) == {"forward": forward + second, "backward": forward + 2 * second,
                                                      "train": 2 * forward + 3 * second}
    assert all(p.grad is None for p in two.parameters())  # the counting leaves no gradient behind

    record = flops_record({"forward": 1440, "backward": 1440, "train": 2880}, windows=2, grad_accum=3)
    assert (record["forward"], record["train"], record["batch_train"], record["step_train"]) == (720, 1440, 2880, 8640)
    assert "FlopCounterMode" in record["method"] and "2 windows" in record["method"]


def test_the_run_counts_its_flops_on_its_first_training_batch(run):
    flops = run.report["flops"]
    assert flops["batch_windows"] == TINY_RECIPE["train"]["batch_size"]
    assert flops["train"] == flops["batch_train"] // flops["batch_windows"] > flops["forward"] > 0
    assert flops["step_train"] == flops["batch_train"]  # one micro-batch a step


# ---------------------------------------------------------------------------- the ceiling
def test_the_matmul_ceiling_is_measured_quickly_and_leaves_the_rng_alone():
    rng = torch.get_rng_state()
    started = time.perf_counter()
    ceiling = matmul_ceiling("cpu", "fp32", budget_s=0.3)
    assert time.perf_counter() - started < 3.0
    assert torch.equal(torch.get_rng_state(), rng)
    assert ceiling["flop_per_s"] > 1e8 and ceiling["dtype"] == "float32" and ceiling["device"] == "cpu"
    assert ceiling["threads"] == torch.get_num_threads()
    best = ceiling["sizes"][str(ceiling["size"])]
    assert best == ceiling["flop_per_s"] == max(ceiling["sizes"].values())
    assert set(ceiling["cpu_flags"]) <= set(MATMUL_FLAGS) and ceiling["cpu"]
    bf16 = matmul_ceiling("cpu", torch.bfloat16, budget_s=0.2, sizes=(256, 512))
    assert bf16["dtype"] == "bfloat16" and bf16["flop_per_s"] > 0 and set(bf16["sizes"]) <= {"256", "512"}


def test_achieved_speed_is_flops_over_time_as_a_share_of_the_ceiling():
    flops = {"step_train": 6e9}
    speed = speed_record(flops, step_s=0.5, steps=100, train_s=80.0, processes=2, ceiling={"flop_per_s": 1e11})
    assert speed["step_flop_per_s"] == pytest.approx(1.2e10) and speed["step_fraction"] == pytest.approx(0.12)
    assert speed["run_flops"] == pytest.approx(6e9 * 100 * 2)
    assert speed["run_flop_per_s"] == pytest.approx(1.5e10)  # every process's FLOPs over the wall time
    assert speed["run_fraction"] == pytest.approx(1.5e10 / 2e11)  # against two devices' ceilings


def test_the_run_reports_its_speed_against_a_ceiling_measured_in_the_run(run):
    speed, t = run.report["speed"], run.report["time"]
    ceiling = speed["ceiling"]
    assert ceiling["flop_per_s"] > 0 and ceiling["dtype"] == "float32" and ceiling["device"] == "cpu"
    assert ceiling["threads"] == run.report["environment"]["threads"] == torch.get_num_threads()
    assert speed["step_flop_per_s"] == pytest.approx(run.report["flops"]["step_train"] / t["step_s"])
    assert speed["step_fraction"] == pytest.approx(speed["step_flop_per_s"] / ceiling["flop_per_s"])
    assert speed["run_flop_per_s"] == pytest.approx(run.report["flops"]["step_train"] * t["steps"] / t["train_s"])
    assert speed["run_fraction"] == pytest.approx(speed["run_flop_per_s"] / ceiling["flop_per_s"])
    assert 0 < speed["step_fraction"] < 1


def test_a_bf16_run_is_held_against_a_bf16_ceiling(tmp_path):
    report = load_report(train(tiny(tmp_path / "bf16", iters=2, precision="bf16")))
    assert report["speed"]["ceiling"]["dtype"] == "bfloat16"
    assert report["speed"]["step_fraction"] == pytest.approx(
        report["speed"]["step_flop_per_s"] / report["speed"]["ceiling"]["flop_per_s"])


# ---------------------------------------------------------------------------- parameters and memory
def test_tensor_memory_counts_parameters_gradients_and_adam_moments():
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.BatchNorm1d(5), torch.nn.Linear(5, 2))
    model[2].bias.requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    model(torch.randn(4, 6)).sum().backward()
    optimizer.step()
    trainable = [p for p in model.parameters() if p.requires_grad]
    memory = tensor_bytes(model, optimizer)
    assert memory["parameters"] == sum(p.numel() * p.element_size() for p in model.parameters()) == (30 + 5 + 10 + 10 + 2) * 4
    assert memory["gradients"] == sum(p.numel() * p.element_size() for p in trainable) == memory["parameters"] - 2 * 4
    # AdamW: two moments per trainable parameter, and a one-number step count per tensor
    assert memory["optimizer"] == 2 * memory["gradients"] + 4 * len(trainable)
    assert memory["buffers"] == (5 + 5) * 4 + 8  # BatchNorm's running mean and variance, and its int64 count
    assert memory["total"] == sum(memory[k] for k in ("parameters", "gradients", "optimizer", "buffers"))
    assert tensor_bytes(model)["optimizer"] == 0


def test_parameter_counts_give_the_trainable_share():
    class Parts(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.quantizer, self.decoder = torch.nn.Linear(3, 3), torch.nn.Identity(), torch.nn.Linear(3, 1)
            self.decoder.weight.requires_grad_(False)

    counts = parameter_counts(Parts())
    assert (counts["total"], counts["trainable"], counts["non_trainable"]) == (16, 13, 3)
    assert counts["trainable_share"] == pytest.approx(13 / 16) and counts["decoder"] == 1


def test_the_run_reports_memory_of_its_tensors_beside_the_measured_peak(run):
    memory, p = run.report["memory"], run.report["parameters"]
    tensors = memory["tensors"]
    assert tensors["parameters"] == p["total"] * 4 and tensors["gradients"] == p["trainable"] * 4  # float32
    parameter_tensors = len(torch.load(run.path / "checkpoints" / "last.pt", weights_only=False)["optimizer"]["state"])
    assert tensors["optimizer"] == 2 * tensors["gradients"] + 4 * parameter_tensors and memory["optimizer"] == "AdamW"
    assert memory["peak_mib"] >= memory["cpu_peak_rss_mib"] > 50 and "ru_maxrss" in memory["peak_kind"]
    assert p["non_trainable"] == p["total"] - p["trainable"] and p["trainable_share"] == pytest.approx(1.0)
    rows = [row for row in RunDir(run.path).rows() if "split" not in row]
    assert rows and all(row["memory_peak_mib"] >= row["memory_mib"] > 50 for row in rows)
    assert memory_row("cpu")["memory_mib"] > 0


# ---------------------------------------------------------------------------- where it ran
def test_the_run_says_where_it_ran(run):
    env = run.report["environment"]
    assert env["device"] == "cpu" and env["cpu"] and env["processes"] == 1 and env["cpus"] >= 1
    assert env["torch"] == torch.__version__ and env["python"] == ".".join(map(str, sys.version_info[:3]))
    assert env["motionhub"] == run.report["run"]["motionhub"]
    assert datetime.fromisoformat(env["started"]).tzinfo is not None
    assert env["plugins"]["motionhub_conv"]["components"] == ["encoder conv1d", "decoder conv1d"]
    assert env["plugins"]["motionhub_conv"]["origin"].startswith("built-in (motionhub ")
    assert "data synthetic" in env["plugins"]["motionhub_synthetic"]["components"]
    assert env["trackers"] == []


def test_tracker_records_name_the_run():
    wandb_like = SimpleNamespace(name="wandb", run=SimpleNamespace(id="abc123", url="https://wandb.ai/x/abc123"))
    tensorboard_like = SimpleNamespace(name="tensorboard", logging_dir="runs/x/hw")
    assert tracker_records([wandb_like, tensorboard_like]) == [
        {"name": "wandb", "run_id": "abc123", "url": "https://wandb.ai/x/abc123"},
        {"name": "tensorboard", "log_dir": "runs/x/hw"}]


# ---------------------------------------------------------------------------- report.md and the printout
def test_report_md_and_the_printout_show_each_new_row(run):
    markdown = (run.path / "report.md").read_text()
    for row in ("| non-trainable | 0 |", "| trainable | ", "(100.0% of the total)",
                "| training FLOPs / batch (4 windows) |", "| counted by | torch.utils.flop_counter.FlopCounterMode, over one forward and backward",
                "## Speed against the hardware", "| dense matmul ceiling | ", "float32, cpu (",
                "(measured in this run)", "| achieved, median step | ", "of the ceiling (",
                "| achieved, whole run | ", "| parameters | ", "| gradients | ",
                "| optimizer state | ", "(AdamW: two moments per parameter", "| buffers | ",
                "| weights, gradients, optimizer, buffers | ", "| measured peak | ",
                "## Where it ran", "| device | CPU: ", "| threads | ", "| versions | Python ",
                "| plugins | ", "motionhub_conv built-in", "| started | ", "| tracker | none configured |"):
        assert row in markdown, row
    fraction = run.report["speed"]["step_fraction"]
    assert f"= {fraction:.2%} of the ceiling" in markdown
    for label in ("dense matmul ceiling", "achieved, median step", "optimizer state", "measured peak", "started"):
        assert label in run.printed


def test_an_older_report_still_renders(run):
    old = json.loads((run.path / "report.json").read_text())
    for key in ("speed", "environment", "figures"):
        old.pop(key)
    old["memory"] = {"cpu_peak_rss_mib": 300.0}
    old["parameters"] = {k: v for k, v in old["parameters"].items() if k not in ("non_trainable", "trainable_share")}
    markdown = render_markdown(old)
    assert "| cpu peak rss | 300 MiB |" in markdown and "Speed against the hardware" not in markdown


# ---------------------------------------------------------------------------- figures
@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed")
def test_the_figures_are_drawn_and_shown_in_report_md(run):
    markdown = (run.path / "report.md").read_text()
    assert set(NEW_FIGURES) <= set(run.report["figures"]["drawn"])
    for name in ("loss_curves.png", *NEW_FIGURES):
        assert (run.path / name).read_bytes().startswith(b"\x89PNG")
        assert f"![{name}]({name})" in markdown
    assert "skipped" not in run.report["figures"] and "Figures skipped" not in run.printed


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed")
def test_codebook_use_is_drawn_for_val_alone_when_train_was_not_counted(tmp_path):
    assert plot_codebook_splits({"val": [5, 0, 1, 0]}, tmp_path / "val.png")
    assert (tmp_path / "val.png").read_bytes().startswith(b"\x89PNG")
    assert not plot_codebook_splits({}, tmp_path / "none.png") and not (tmp_path / "none.png").exists()


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="the second half draws the figures with matplotlib")
def test_without_matplotlib_the_run_says_once_how_to_get_figures_and_report_draws_them(tmp_path, monkeypatch,
                                                                                      capsys):
    out = io.StringIO()
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "matplotlib", None)  # as where `pip install motionhub` left it out
        run_dir = train(tiny(tmp_path / "plain", iters=2), console=Console(file=out, width=300))
    printed = out.getvalue()
    assert not list(run_dir.glob("*.png"))
    report = load_report(run_dir)
    note = report["figures"]["skipped"]
    assert report["figures"]["drawn"] == [] and "matplotlib is not installed" in note
    assert "pip install 'motionhub[render]'" in note and f"motionhub report {run_dir}" in note
    assert printed.count("Figures skipped") == 1 and "pip install 'motionhub[render]'" in printed
    assert (run_dir / "report.md").read_text().count(note) == 1

    assert main(["report", str(run_dir)]) == 0  # matplotlib is back: the figures are drawn now
    for name in ("loss_curves.png", *NEW_FIGURES):
        assert (run_dir / name).read_bytes().startswith(b"\x89PNG"), name
    markdown = (run_dir / "report.md").read_text()
    assert "Figures skipped" not in markdown and "![memory.png](memory.png)" in markdown
    assert "skipped" not in load_report(run_dir)["figures"]
    assert "drew loss_curves.png" in capsys.readouterr().err
    assert main(["report", str(run_dir)]) == 0 and "drew" not in capsys.readouterr().err  # nothing left to draw


def test_report_without_matplotlib_repeats_the_note(run, tmp_path, monkeypatch, capsys):
    import shutil

    copy = shutil.copytree(run.path, tmp_path / "copy")
    for png in copy.glob("*.png"):
        png.unlink()
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["report", str(copy)]) == 0
    assert "Figures skipped" in capsys.readouterr().err
    assert "Figures skipped" in (copy / "report.md").read_text()
    assert not list(copy.glob("*.png")) and math.isfinite(load_report(copy)["speed"]["step_fraction"])
