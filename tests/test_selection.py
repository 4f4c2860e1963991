"""Loss terms that report figures or carry no gradient, best-checkpoint selection by a figure's
direction, collapse warnings, and swapping a component from the command line."""

import json

import pytest
import torch
from helpers import REPO, TINY_RECIPE

import motionhub
from motionhub.errors import RecipeError
from motionhub.model.losses import Loss, LossSet, LossTerm
from motionhub.model.metrics import Metric
from motionhub.model.quantizer import Quantizer, QuantizerOutput
from motionhub.recipes import load_recipe, recipe_from_tree
from motionhub.plugins.testing import registered_plugin
from motionhub.train.trainer import train


class HalfMasked(Loss):
    """Mean absolute reconstruction error, with the share of elements it counted as a figure."""

    def __call__(self, batch, outputs, format):
        self.kept = (batch["motion"] > 0).float().mean()
        return outputs["recon"].abs().mean()

    def figures(self):
        return {"mask_ratio": self.kept}


class Histogram(Loss):
    """A term computed from integer code ids: a constant, so it has no gradient."""

    def __call__(self, batch, outputs, format):
        return -torch.bincount(outputs["indices"].reshape(-1)).float().max()


class Counter(Metric):
    """A figure that grows each evaluation (higher is better) and one that falls (lower is better)."""

    higher_is_better = frozenset({"score"})
    evaluations = 0

    def update(self, batch, outputs, fmt):
        return {"batches": torch.tensor(1.0)}

    def compute(self, sums):
        Counter.evaluations += 1
        return {"score": float(Counter.evaluations if Counter.evaluations != 2 else 100), "error": 5.0 - Counter.evaluations}


class OneCode(Quantizer):
    """Maps every latent to code 0 of 4: a collapsed codebook."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    @property
    def codebook_size(self):
        return 4

    def forward(self, z):
        return QuantizerOutput(z * 0, torch.zeros(z.shape[:2], dtype=torch.long), z.new_zeros(()))

    def indices_to_codes(self, indices):
        return torch.zeros(*indices.shape, self.dim)


class Plugin:
    @motionhub.hookimpl
    def register_quantizers(self, register):
        register("one_code", OneCode)

    @motionhub.hookimpl
    def register_losses(self, register):
        register("half_masked", HalfMasked)
        register("histogram", Histogram)

    @motionhub.hookimpl
    def register_metrics(self, register):
        register("counter", Counter)


def recipe(tmp_path, losses, **eval_settings):
    tree = {**TINY_RECIPE, "run": {"name": "s", "out": str(tmp_path / "run")}, "losses": losses,
            "train": {**TINY_RECIPE["train"], "iters": 8, "eval_every": 2, "log_every": 2},
            "eval": {"train_codebook": False, **eval_settings}}
    return recipe_from_tree(tree, "selection.yaml")


def test_loss_figures_are_logged_beside_their_term_and_never_enter_the_total():
    term = LossTerm("half_masked", HalfMasked())
    motion = torch.tensor([[1.0, -1.0, 2.0, -3.0]])
    outputs = {"recon": torch.full((1, 4), 2.0, requires_grad=True), "aux_loss": torch.zeros(())}
    total, values = LossSet([term])({"motion": motion}, outputs, None, step=0)
    assert values["half_masked_mask_ratio"].item() == pytest.approx(0.5)
    assert total.item() == pytest.approx(2.0)


def test_terms_without_gradient_are_found_and_named_in_the_report(tmp_path):
    with registered_plugin(Plugin(), "selection-plugin"):
        run_dir = train(recipe(tmp_path, [{"name": "recon"}, {"name": "histogram", "weight": 0.1},
                                          {"name": "half_masked"}]))
    report = json.loads((run_dir / "report.json").read_text())
    assert report["losses"]["without_gradient"] == ["histogram"]
    assert "half_masked_mask_ratio" in report["losses"]["mean"]
    markdown = (run_dir / "report.md").read_text()
    assert "histogram | final" in markdown and "(no gradient" in markdown.split("histogram | final")[1].split("\n")[0]
    assert "(no gradient" not in markdown.split("| recon | ")[1].split("\n")[0]


@pytest.mark.parametrize("figure, expected_step", [("score", 4), ("error", 8)])
def test_best_checkpoint_follows_the_direction_its_metric_declares(tmp_path, figure, expected_step):
    Counter.evaluations = 0
    with registered_plugin(Plugin(), "selection-plugin"):
        run_dir = train(recipe(tmp_path, [{"name": "recon"}], metrics=["counter"], best=figure))
    best = json.loads((run_dir / "report.json").read_text())["best"]
    # evaluations at steps 2, 4, 6, 8: score 1, 100, 3, 4 (higher wins); error 4, 3, 2, 1 (lower wins)
    assert best["step"] == expected_step and best["figure"] == figure
    assert torch.load(run_dir / "checkpoints" / "best.pt", weights_only=False)["state"]["step"] == expected_step


def test_a_best_checkpoint_that_uses_one_code_is_reported_as_collapsed(tmp_path, capsys):
    tree = {**TINY_RECIPE, "run": {"name": "c", "out": str(tmp_path / "run")}, "quantizer": {"name": "one_code"},
            "train": {**TINY_RECIPE["train"], "iters": 4, "eval_every": 2}, "eval": {"train_codebook": False}}
    with registered_plugin(Plugin(), "selection-plugin"):
        run_dir = train(recipe_from_tree(tree, "collapse.yaml"))
    assert "uses a single code" in " ".join(capsys.readouterr().err.split())
    best = json.loads((run_dir / "report.json").read_text())["best"]
    assert "uses a single code" in best["collapse_warning"]
    assert "uses a single code" in (run_dir / "report.md").read_text()


def test_overriding_a_component_name_says_which_arguments_belong_to_the_old_one():
    recipe_path = REPO / "configs" / "humanml3d" / "t2m_gpt_vq.yaml"
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe_path, ["quantizer.name=fsq"])
    problems = dict(info.value.problems)
    assert list(problems) == ["quantizer"]
    message = problems["quantizer"]
    assert "replaces the recipe's quantizer 'vq_ema_reset'" in message and "decay" in message
    assert "quantizer={name: fsq" in message
    swapped = load_recipe(recipe_path, ["quantizer={name: fsq, levels: [8, 8, 6, 5]}"])
    assert swapped.quantizer.name == "fsq" and swapped.quantizer.kwargs == {"levels": [8, 8, 6, 5]}


def test_a_misspelled_argument_is_still_reported_as_such_after_a_swap():
    tree = {**TINY_RECIPE, "quantizer": {"name": "fsq", "levles": [8, 5, 5]}}
    with pytest.raises(RecipeError) as info:
        recipe_from_tree(tree, "r.yaml", ["quantizer.name=lfq"])
    assert "replaces the recipe's quantizer 'fsq'" in dict(info.value.problems)["quantizer"]


class Scaled(Metric):
    """A metric with an argument and an injected codebook size."""

    def __init__(self, scale: float = 1.0, codebook_size: int | None = None):
        self.scale, self.codebook_size = scale, codebook_size

    def update(self, batch, outputs, fmt):
        return {"batches": torch.tensor(1.0)}

    def compute(self, sums):
        return {"scaled": self.scale * sums["batches"], "codes": float(self.codebook_size)}


class ScaledPlugin:
    @motionhub.hookimpl
    def register_metrics(self, register):
        register("scaled", Scaled)


def test_metrics_take_arguments_in_the_recipe_and_get_the_real_codebook_size():
    from motionhub.model.build import build_metrics
    from motionhub_synthetic.dataset import SyntheticMotion

    with registered_plugin(ScaledPlugin(), "scaled-plugin"):
        tree = {**TINY_RECIPE, "eval": {"metrics": ["mpjpe", {"name": "scaled", "scale": 3.0}]}}
        recipe = recipe_from_tree(tree, "m.yaml")
        metrics = build_metrics(recipe, SyntheticMotion(**recipe.data.kwargs).format, codebook_size=200)
        assert list(metrics) == ["mpjpe", "scaled"]
        assert metrics["scaled"].scale == 3.0 and metrics["scaled"].codebook_size == 200

        bad = {**TINY_RECIPE, "eval": {"metrics": [{"name": "scaled", "scael": 3.0}, "mpjpee"]}}
        with pytest.raises(RecipeError) as info:
            recipe_from_tree(bad, "m.yaml")
    problems = dict(info.value.problems)
    assert problems["eval.metrics[0].scael"].startswith("unknown key; did you mean 'scale'?")
    assert "did you mean 'mpjpe'?" in problems["eval.metrics[1].name"]
