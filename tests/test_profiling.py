"""Profiled steps: the forward and backward seconds of each loss term and of the encoder, quantizer
and decoder, charged to the right part, without changing a bit of the training."""

import json
import time

import pytest
import torch
from helpers import TINY_RECIPE
from rich.console import Console

import motionhub
from motionhub.api import Loss
from motionhub.model.build import build_tokenizer
from motionhub.model.losses import LossSet, LossTerm
from motionhub.plugins.testing import registered_plugin
from motionhub.recipes import recipe_from_tree
from motionhub.train.checkpoint import load_checkpoint
from motionhub.train.hardware import MEASURED_KEYS
from motionhub.train.state import LoopState
from motionhub.train.timing import Clock, StepProbe, StepProfiler
from motionhub.train.trainer import train
from motionhub_synthetic.dataset import SyntheticMotion


class MatmulChain(Loss):
    """A deliberately expensive loss: a chain of large matrix products of the reconstruction, as
    costly in its backward (the gradient goes back through every product) as in its forward."""

    def __init__(self, width: int = 512, depth: int = 16):
        generator = torch.Generator().manual_seed(0)
        self.project = torch.randn(263, width, generator=generator) / 16
        self.chain = [torch.randn(width, width, generator=generator) / width ** 0.5 for _ in range(depth)]

    def __call__(self, batch, outputs, format):
        hidden = outputs["recon"].flatten(0, 1) @ self.project
        for matrix in self.chain:
            hidden = torch.tanh(hidden @ matrix)
        return hidden.square().mean()


class ExpensivePlugin:
    @motionhub.hookimpl
    def register_losses(self, register):
        register("matmul_chain", MatmulChain)


def recipe(tmp_path, name="p", losses=None, **train_settings):
    tree = {**TINY_RECIPE, "run": {"name": name, "out": str(tmp_path / name), "seed": 0},
            "losses": losses or TINY_RECIPE["losses"],
            "train": {**TINY_RECIPE["train"], "threads": 1, **train_settings}, "eval": {"train_codebook": False}}
    return recipe_from_tree(tree, f"{name}.yaml")


@pytest.mark.parametrize("position", ["first", "last"])
def test_an_expensive_loss_is_the_costliest_part_forward_and_backward(tmp_path, capsys, position):
    expensive = {"name": "matmul_chain", "weight": 0.01}
    losses = [expensive, *TINY_RECIPE["losses"]] if position == "first" else [*TINY_RECIPE["losses"], expensive]
    with registered_plugin(ExpensivePlugin(), "expensive-plugin"):
        run_dir = train(recipe(tmp_path, losses=losses, iters=4, profile_every=1),
                        console=Console(file=None, width=150))
    profile = json.loads((run_dir / "report.json").read_text())["profile"]
    assert profile["every"] == 1 and profile["steps"] == 4
    parts = profile["parts"]
    assert set(parts) == {"encoder", "quantizer", "decoder", "other", "loss: recon", "loss: feature",
                          "loss: matmul_chain"}
    for column in ("forward_s", "backward_s"):
        costliest = max(parts, key=lambda name: parts[name][column])
        assert costliest == "loss: matmul_chain", (column, parts)
        others = [parts[name][column] for name in parts if name != costliest]
        assert parts[costliest][column] > 2 * max(others), (column, parts)
        assert profile[column] == pytest.approx(sum(p[column] for p in parts.values()))
    assert list(parts)[0] == "loss: matmul_chain" and parts["loss: matmul_chain"]["fraction"] > 0.5
    # the cheap terms are charged for their own graphs only, not the expensive one's
    assert parts["loss: recon"]["backward_s"] < 0.1 * parts["loss: matmul_chain"]["backward_s"]

    printed = capsys.readouterr().out
    assert "Time per part (mean of 4 profiled steps)" in printed
    line = next(line for line in printed.splitlines() if "loss: matmul_chain" in line and "forward" in line)
    assert "backward" in line and "ms" in line
    markdown = (run_dir / "report.md").read_text()
    assert "## Time per part (mean of 4 profiled steps)" in markdown and "| loss: matmul_chain | forward " in markdown


class SlowBackward(torch.autograd.Function):
    """Identity that sleeps ``seconds`` in its backward: a part whose backward cost is known."""

    @staticmethod
    def forward(ctx, x, seconds):
        ctx.seconds = seconds
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        time.sleep(ctx.seconds)
        return grad, None


class SlowLoss(Loss):
    """Sleeps ``forward`` seconds when called and ``backward`` seconds in its backward."""

    def __init__(self, forward: float, backward: float):
        self.forward, self.backward = forward, backward

    def __call__(self, batch, outputs, format):
        time.sleep(self.forward)
        return SlowBackward.apply(outputs["recon"], self.backward).abs().mean()


def tiny_model_and_batch():
    tree = {**TINY_RECIPE, "run": {"name": "u", "out": "unused", "seed": 0}}
    rec = recipe_from_tree(tree, "u.yaml")
    fmt = SyntheticMotion(**rec.data.kwargs).format
    torch.manual_seed(0)
    return build_tokenizer(rec, fmt), fmt, {"motion": torch.randn(2, 32, 263)}


def test_each_backward_segment_is_charged_to_the_part_or_term_that_ran_it():
    model, fmt, batch = tiny_model_and_batch()
    # the encoder's and decoder's backward sleep a known time: their outputs pass through SlowBackward
    model.encoder.register_forward_hook(lambda module, args, out: SlowBackward.apply(out, 0.15))
    model.decoder.register_forward_hook(lambda module, args, out: SlowBackward.apply(out, 0.05))
    cheap = LossTerm("cheap", SlowLoss(0.0, 0.0))
    slow = LossTerm("slow", SlowLoss(0.03, 0.10), weight=0.5)
    for order in ([cheap, slow], [slow, cheap]):
        losses = LossSet(order)
        probe = StepProbe(Clock())
        probe.attach(model)
        outputs = model(batch["motion"])
        total, _ = losses(batch, outputs, fmt, step=0, probe=probe)
        with probe.measuring_backward():
            total.backward()
        probe.close()
        parts = probe.parts()
        backward = {name: columns["backward"] for name, columns in parts.items()}
        for name, delay in (("encoder", 0.15), ("loss: slow", 0.10), ("decoder", 0.05)):
            assert delay <= backward[name] < delay + 0.08, (name, backward)
        assert backward["loss: cheap"] < 0.04 and backward["quantizer"] < 0.04, backward
        assert 0.03 <= parts["loss: slow"]["forward"] < 0.1 and parts["loss: cheap"]["forward"] < 0.04
        model.zero_grad(set_to_none=True)
    # closing removed the probe's hooks: the next forward is not timed
    probe.forward.clear()
    model(batch["motion"])
    assert probe.forward == {}

    # without hooks on the parts (a compiled model), the model's backward is charged to it as a whole
    probe = StepProbe(Clock())
    with probe.forward_pass():
        outputs = model(batch["motion"])
    total, _ = LossSet([cheap, slow])(batch, outputs, fmt, step=0, probe=probe)
    with probe.measuring_backward():
        total.backward()
    parts = probe.parts()
    assert {"tokenizer", "loss: cheap", "loss: slow", "other"} == set(parts)
    assert 0.20 <= parts["tokenizer"]["backward"] < 0.20 + 0.08, parts
    assert 0.10 <= parts["loss: slow"]["backward"] < 0.10 + 0.08, parts
    assert parts["tokenizer"]["forward"] > 0


def test_the_clock_charges_queued_device_work_to_the_part_that_queued_it():
    """On a GPU kernels run after the call that queued them returns: the clock waits for the
    device (``sync``) so the term that queued expensive work is charged for it."""
    queued = []

    def sync():  # the device finishing what was queued
        while queued:
            time.sleep(queued.pop())

    class Queues(Loss):  # returns at once, leaving 0.05 s of work on the "device"
        def __call__(self, batch, outputs, format):
            queued.append(0.05)
            return outputs["recon"].mean()

    outputs = {"recon": torch.zeros(1, 4, 1, requires_grad=True)}
    batch = {"motion": torch.zeros(1, 4, 1)}
    unsynced = LossSet([LossTerm("queues", Queues()), LossTerm("after", SlowLoss(0.0, 0.0))])
    unsynced(batch, outputs, None, step=0)
    assert unsynced.seconds["queues"] < 0.04  # charged only for queueing, as before the clock waited
    queued.clear()
    synced = LossSet(unsynced.terms, clock=Clock(sync))
    synced(batch, outputs, None, step=0)
    assert synced.seconds["queues"] >= 0.05 and synced.seconds["after"] < 0.04


def small_recipe(tmp_path, name, **train_settings):
    return recipe(tmp_path, name, iters=5, log_every=1, **train_settings)


def test_a_profiled_run_trains_bit_for_bit_as_an_unprofiled_one(tmp_path):
    plain = train(small_recipe(tmp_path, "plain", profile_every=0))
    profiled = train(small_recipe(tmp_path, "profiled", profile_every=1))
    assert json.loads((plain / "report.json").read_text())["profile"] is None
    assert json.loads((profiled / "report.json").read_text())["profile"]["steps"] == 5
    a, b = (load_checkpoint(run / "checkpoints" / "last.pt") for run in (plain, profiled))
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    moments = [(s["exp_avg"], t["exp_avg"]) for s, t in zip(a["optimizer"]["state"].values(),
                                                           b["optimizer"]["state"].values())]
    assert moments and all(torch.equal(x, y) for x, y in moments)

    def rows(run):
        return [{k: v for k, v in json.loads(line).items() if k not in MEASURED_KEYS}
                for line in (run / "metrics.jsonl").read_text().splitlines()]

    assert rows(plain) == rows(profiled)
    assert b["state"]["profile"]["steps"] == 5 and "profile" not in a["state"]


def test_profiled_steps_follow_profile_every_and_survive_a_checkpoint():
    profiler = StepProfiler(every=4, clock=Clock())
    assert [step for step in range(12) if profiler.due(step)] == [1, 5, 9]
    assert all(StepProfiler(1, Clock()).due(step) for step in range(3))
    assert not any(StepProfiler(0, Clock()).due(step) for step in range(3))
    profiler.add({"encoder": {"forward": 0.5, "backward": 1.0}, "loss: a": {"forward": 2.0, "backward": 0.5}})
    profiler.add({"encoder": {"forward": 0.5, "backward": 1.0}, "loss: a": {"forward": 2.0, "backward": 0.5}})
    summary = profiler.summary()
    assert summary["steps"] == 2 and list(summary["parts"]) == ["loss: a", "encoder"]
    assert summary["parts"]["encoder"] == {"forward_s": 0.5, "backward_s": 1.0, "fraction": 1.5 / 4}
    loop = LoopState.from_dict(LoopState(step=9, profile=profiler.state()).to_dict())
    again = StepProfiler(every=4, clock=Clock())
    again.load(loop.profile)
    assert again.summary() == summary
    assert "profile" not in LoopState(step=9, profile=StepProfiler(4, Clock()).state()).to_dict()


def test_a_skipped_step_is_not_profiled():
    profiler = StepProfiler(every=1, clock=Clock())
    with profiler.step(0) as probe:
        probe.loss_forward("a", 1.0, torch.zeros(()))
        probe.discard()
    assert profiler.steps == 0 and profiler.summary() is None
    with profiler.step(1) as probe:
        probe.loss_forward("a", 1.0, torch.zeros(()))
    assert profiler.summary()["parts"]["loss: a"]["forward_s"] == 1.0
