"""The options of a loss entry: every (with or without scaling), linear and step schedules,
down-sampling in time, and the weight in force logged beside each term."""

import json

import pytest
import torch
from helpers import TINY_RECIPE

from motionhub.api import Loss
from motionhub.errors import MotionhubError, RecipeError
from motionhub.model.build import build_losses
from motionhub.model.losses import LossSet, LossTerm, downsample_time
from motionhub.plugins.arguments import LOSS_KEYS
from motionhub.recipes import LossSpec, recipe_from_tree
from motionhub.train.trainer import train


class Constant(Loss):
    """Returns ``value`` (a leaf that requires grad), whatever the batch."""

    def __init__(self, value: float):
        self.value = torch.tensor(value, requires_grad=True)

    def __call__(self, batch, outputs, format):
        return self.value * 1


def total_and_values(terms, step, training=True):
    batch = {"motion": torch.zeros(1, 4, 1)}
    total, values = LossSet(terms)(batch, {"recon": torch.zeros(1, 4, 1)}, None, step, training=training)
    return total.item(), {k: v.item() for k, v in values.items()}


# ---------------------------------------------------------------------------- schedules
SCHEDULE = [[0, 0.0], [10, 1.0], [20, 0.5]]


@pytest.mark.parametrize("step, linear, held", [
    (0, 0.0, 0.0), (5, 0.5, 0.0), (9, 0.9, 0.0), (10, 1.0, 1.0), (15, 0.75, 1.0), (19, 0.55, 1.0),
    (20, 0.5, 0.5), (1000, 0.5, 0.5)])
def test_a_schedule_interpolates_or_steps(step, linear, held):
    assert LossTerm("a", Constant(1.0), schedule=SCHEDULE).weight_at(step) == pytest.approx(linear)
    assert LossTerm("a", Constant(1.0), schedule=SCHEDULE, schedule_mode="step").weight_at(step) == held


def test_before_its_first_point_a_schedule_gives_the_first_weight_in_both_modes():
    for mode in ("linear", "step"):
        assert LossTerm("a", Constant(1.0), weight=9.0, schedule=[[100, 2.0], [200, 3.0]],
                        schedule_mode=mode).weight_at(0) == 2.0


def test_a_step_schedule_switches_a_term_on_and_logs_its_weight():
    term = LossTerm("late", Constant(3.0), schedule=[[0, 0.0], [2, 0.5]], schedule_mode="step")
    assert total_and_values([term], step=1) == (0.0, {"late_weight": 0.0})  # off: not even computed
    assert total_and_values([term], step=2) == (1.5, {"late_weight": 0.5, "late": 3.0})


# ---------------------------------------------------------------------------- every
def test_every_scales_the_weight_by_default_as_it_always_did():
    term = LossTerm("sparse", Constant(3.0), weight=0.5, every=4)
    assert total_and_values([term], step=8) == (6.0, {"sparse_weight": 2.0, "sparse": 3.0})  # 0.5 * 4 * 3
    assert total_and_values([term], step=9) == (0.0, {"sparse_weight": 0.0})
    assert total_and_values([term], step=9, training=False) == (1.5, {"sparse": 3.0})  # evaluation: unscaled


def test_every_scale_false_keeps_the_weight():
    term = LossTerm("sparse", Constant(3.0), weight=0.5, every=4, every_scale=False)
    assert total_and_values([term], step=8) == (1.5, {"sparse_weight": 0.5, "sparse": 3.0})
    assert total_and_values([term], step=10) == (0.0, {"sparse_weight": 0.0})


def test_a_constant_term_logs_no_weight():
    assert total_and_values([LossTerm("plain", Constant(3.0), weight=0.5)], step=3) == (1.5, {"plain": 3.0})


# ---------------------------------------------------------------------------- downsample
class MeanError(Loss):
    """Mean absolute error between ``recon`` and the motion over the real frames."""

    def __call__(self, batch, outputs, format):
        per_frame = (outputs["recon"] - batch["motion"]).abs().mean(-1)
        mask = batch.get("mask")
        if mask is None:
            return per_frame.mean()
        return (per_frame * mask).sum() / mask.sum()


def squares():
    motion = torch.tensor([0.0, 1, 4, 9, 16, 25]).reshape(1, 6, 1)
    return {"motion": motion}, {"recon": torch.zeros(1, 6, 1, requires_grad=True)}


@pytest.mark.parametrize("k, expected", [(1, 55 / 6), (2, (0 + 4 + 16) / 3), (3, (0 + 9) / 2), (6, 0.0)])
def test_downsample_computes_the_loss_on_every_kth_frame(k, expected):
    batch, outputs = squares()
    total, values = LossSet([LossTerm("err", MeanError(), downsample=k)])(batch, outputs, None, step=0)
    assert values["err"].item() == pytest.approx(expected)
    total.backward()
    # the gradient reaches exactly the frames kept: d|0 - m| / d recon = -sign(m) / frames kept
    kept = list(range(0, 6, k))
    expected_grad = [-(1.0 if m else 0.0) / len(kept) if t in kept else 0.0
                     for t, m in enumerate([0, 1, 4, 9, 16, 25])]
    assert outputs["recon"].grad.flatten().tolist() == pytest.approx(expected_grad)


def test_evaluation_computes_a_downsampled_term_on_every_frame():
    batch, outputs = squares()
    _, values = LossSet([LossTerm("err", MeanError(), downsample=2)])(batch, outputs, None, 0, training=False)
    assert values["err"].item() == pytest.approx(55 / 6)


def test_downsample_thins_the_mask_lengths_and_outputs_at_the_input_rate_only():
    batch = {"motion": torch.arange(10.0).reshape(1, 5, 2), "mask": torch.tensor([[1, 1, 1, 1, 0]]).bool(),
             "lengths": torch.tensor([4, 5, 1]), "texts": ["a"]}
    quantizer = torch.nn.Identity()
    outputs = {"recon": torch.zeros(1, 5, 2), "latents": torch.zeros(1, 3, 4), "aux_loss": torch.zeros(()),
               "logits": torch.zeros(1, 4, 7), "quantizer": quantizer}
    thin_batch, thin_outputs = downsample_time(batch, outputs, 2)
    assert thin_batch["motion"][0].tolist() == [[0.0, 1.0], [4.0, 5.0], [8.0, 9.0]]
    assert thin_batch["mask"].tolist() == [[True, True, False]]
    assert thin_batch["lengths"].tolist() == [2, 3, 1]  # real frames among 0, 2, 4: ceil(length / 2)
    assert thin_batch["texts"] == ["a"]
    assert thin_outputs["recon"].shape == (1, 3, 2)
    assert thin_outputs["latents"].shape == (1, 3, 4) and thin_outputs["logits"].shape == (1, 4, 7)
    assert thin_outputs["aux_loss"] is outputs["aux_loss"] and thin_outputs["quantizer"] is quantizer
    assert downsample_time(batch, outputs, 1) == (batch, outputs)


def test_a_loss_that_cannot_be_downsampled_says_why():
    class Steps(Loss):  # compares per-step outputs (T - 1) with frame differences (T - 1)
        def __call__(self, batch, outputs, format):
            return (outputs["steps"] - batch["motion"].diff(dim=1)).abs().mean()

    batch = {"motion": torch.zeros(1, 6, 1)}
    outputs = {"steps": torch.zeros(1, 5, 1)}
    terms = LossSet([LossTerm("steps", Steps(), downsample=2, path="losses[1]")])
    assert terms(batch, outputs, None, 0, training=False)[1]["steps"].item() == 0.0
    with pytest.raises(MotionhubError) as info:
        terms(batch, outputs, None, step=0)
    message = str(info.value)
    assert message.startswith("losses[1] loss 'steps' with downsample: 2 failed:")
    assert "second axis has the input's 6 frames" in message and "motion (1, 6, 1), steps (1, 5, 1)" in message
    assert "use every: N" in message


# ---------------------------------------------------------------------------- recipes
def tree(tmp_path, losses, **train_settings):
    return {**TINY_RECIPE, "run": {"name": "o", "out": str(tmp_path / "o"), "seed": 0}, "losses": losses,
            "train": {**TINY_RECIPE["train"], **train_settings}, "eval": {"train_codebook": False}}


def test_the_framework_keys_of_a_loss_entry_are_the_loss_spec_fields():
    assert set(LOSS_KEYS) == LossSpec.__dataclass_fields__.keys() - {"path", "component", "kwargs"}


def test_a_recipe_carries_the_loss_options_to_the_terms(tmp_path):
    recipe = recipe_from_tree(tree(tmp_path, [
        {"name": "recon", "every": 3, "every_scale": False, "downsample": 2},
        {"name": "feature", "slice": "positions", "schedule": [[0, 0], [5, 1]], "schedule_mode": "step"}]), "o.yaml")
    recon, feature = build_losses(recipe).terms
    assert (recon.every, recon.every_scale, recon.downsample, recon.path) == (3, False, 2, "losses[0]")
    assert (feature.schedule, feature.schedule_mode, feature.every_scale, feature.downsample) == (
        [[0, 0], [5, 1]], "step", True, 1)
    assert recon.loss.kind == "smooth_l1" and feature.loss.slice_name == "positions"  # not taken for arguments


@pytest.mark.parametrize("entry, path, message", [
    ({"downsample": 0}, "losses[0].downsample", "must be at least 1, got 0 (1 keeps every frame)"),
    ({"downsample": 1.5}, "losses[0].downsample", "expected int, got float 1.5"),
    ({"every_scale": "yes"}, "losses[0].every_scale", "expected bool, got str 'yes'"),
    ({"schedule_mode": "steps"}, "losses[0].schedule_mode", "expected one of 'linear', 'step', got str 'steps'"),
    ({"schedule": []}, "losses[0].schedule", "holds no point: give [[step, weight], ...]"),
    ({"schedule": [[0, 1.0], [10]]}, "losses[0].schedule", "each point must be [step, weight], got [10] at index 1"),
    ({"schedule": [[0, 1.0], [10, -1]]}, "losses[0].schedule", "weights must be at least 0, got -1 at step 10"),
    ({"schedule": [[-5, 1.0]]}, "losses[0].schedule", "steps must be whole numbers from 0, got -5 at index 0"),
    ({"schedule": [[0, 1.0], [2.5, 0.0]]}, "losses[0].schedule", "steps must be whole numbers from 0, got 2.5"),
    ({"schedule": [[0, 1.0], [100, 0.5], [50, 0.0]]}, "losses[0].schedule",
     "steps must increase from point to point, got 50 after 100 (index 2); e.g. [[0, 0.0], [1000, 1.0]]"),
])
def test_bad_loss_options_are_reported_with_their_path(tmp_path, entry, path, message):
    with pytest.raises(RecipeError) as info:
        recipe_from_tree(tree(tmp_path, [{"name": "recon", **entry}]), "bad.yaml")
    problems = dict(info.value.problems)
    assert problems[path].startswith(message), problems[path]


def test_the_weight_in_force_is_logged_beside_each_scheduled_or_sparse_term(tmp_path):
    recipe = recipe_from_tree(tree(tmp_path, [
        {"name": "recon", "every": 2, "every_scale": False, "weight": 0.5},
        {"name": "feature", "slice": "positions", "schedule": [[0, 0.0], [3, 2.0]], "schedule_mode": "step"},
        {"name": "commit", "weight": 0.1}], iters=6, log_every=1, profile_every=0), "o.yaml")
    run_dir = train(recipe)  # at step index 1 no term carries a gradient: the step takes a zero gradient
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "split" not in r]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]  # the row after step index s is s + 1
    assert [r["recon_weight"] for r in rows] == [0.5, 0.0, 0.5, 0.0, 0.5, 0.0]
    assert [r["feature_weight"] for r in rows] == [0.0, 0.0, 0.0, 2.0, 2.0, 2.0]
    assert ["feature" in r for r in rows] == [False] * 3 + [True] * 3  # not computed while its weight is 0
    assert all("commit_weight" not in r for r in rows)
    # the total is the sum of the terms at the weights logged
    for r in rows:
        expected = (r.get("recon", 0.0) * r["recon_weight"] + r.get("feature", 0.0) * r["feature_weight"]
                    + 0.1 * r["commit"])
        assert r["loss"] == pytest.approx(expected, rel=1e-5)


def test_a_sparse_term_logs_its_mean_over_the_steps_it_ran(tmp_path):
    """With every: 3 and a row every 6 steps, recon's logged value is the mean of its two values,
    not their sum over six steps (which would read three times too low)."""
    def run(log_every):
        recipe = recipe_from_tree(tree(tmp_path / str(log_every), [
            {"name": "recon", "every": 3}, {"name": "feature", "slice": "positions"}],
            iters=6, log_every=log_every, profile_every=0), "o.yaml")
        rows = [json.loads(line) for line in (train(recipe) / "metrics.jsonl").read_text().splitlines()]
        return [r for r in rows if "split" not in r]

    every_step, interval = run(1), run(6)
    ran = [r["recon"] for r in every_step if "recon" in r]
    assert len(ran) == 2 and [r["step"] for r in every_step if "recon" in r] == [1, 4]
    assert interval[-1]["recon"] == pytest.approx(sum(ran) / 2, rel=1e-6)
    assert interval[-1]["feature"] == pytest.approx(sum(r["feature"] for r in every_step) / 6, rel=1e-6)
