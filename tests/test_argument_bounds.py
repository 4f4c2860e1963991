"""The numeric bounds declared on the first-party components' arguments, through ``motionhub validate``.

Each bounded argument gets one value out of its range, which must end in exit code 2 and one
problem naming the recipe key, and a value at its bound, which must validate.
"""

from __future__ import annotations

import contextlib
import io

import pytest
import yaml
from helpers import TINY_RECIPE, write_recipe

from motionhub.cli import main
from motionhub.plugins.arguments import arguments_of
from motionhub.plugins.manager import get_registry

KINDS = ("encoder", "decoder", "quantizer", "loss", "metric")
FIRST_PARTY = ("motionhub_conv", "motionhub_transformer", "motionhub_amplify", "motionhub_quantizers",
               "motionhub_losses")
# arguments a recipe must give with the one under test, by component
REQUIRED = {("quantizer", "fsq"): {"levels": [8, 5, 5]}}

DROPOUT = "must be at least 0 and below 1, got"
GRID = "([rows, cols] of displacement classes)"
IMAGE_SIZE = "([height, width] in pixels)"
HORIZON = "(frames per window; horizon - 1 velocity steps)"

# (kind, component, argument, out-of-range value, message, a value at the bound)
CASES = [
    ("encoder", "conv1d", "width", 0, "must be at least 1, got 0", 1),
    ("encoder", "conv1d", "depth", -1, "must be at least 0, got -1", 0),
    ("encoder", "conv1d", "down_t", -1, "must be at least 0, got -1", 0),
    ("encoder", "conv1d", "stride_t", 1, "must be at least 2, got 1 (even strides only)", 2),
    ("encoder", "conv1d", "dilation_growth", 0, "must be at least 1, got 0", 1),
    ("encoder", "conv1d", "output_emb_width", 0, "must be at least 1, got 0", 1),
    ("decoder", "conv1d", "dim", 0, "must be at least 1, got 0", 1),
    ("decoder", "conv1d", "width", 0, "must be at least 1, got 0", 1),
    ("decoder", "conv1d", "depth", -1, "must be at least 0, got -1", 0),
    ("decoder", "conv1d", "down_t", -2, "must be at least 0, got -2", 0),
    ("decoder", "conv1d", "stride_t", 0, "must be at least 2, got 0 (even strides only)", 2),
    ("decoder", "conv1d", "dilation_growth", 0, "must be at least 1, got 0", 1),
    ("encoder", "transformer", "width", 0, "must be at least 1, got 0", 1),
    ("encoder", "transformer", "depth", -1, "must be at least 0, got -1", 0),
    ("encoder", "transformer", "heads", 0, "must be at least 1, got 0", 1),
    ("encoder", "transformer", "down_t", -1, "must be at least 0, got -1", 0),
    ("encoder", "transformer", "output_emb_width", 0, "must be at least 1, got 0", 1),
    ("encoder", "transformer", "max_len", 0, "must be at least 1, got 0", 1),
    ("encoder", "transformer", "dropout", -0.1, f"{DROPOUT} -0.1", 0.0),
    ("encoder", "transformer", "dropout", 1.0, f"{DROPOUT} 1.0", 0.999),
    ("decoder", "transformer", "dim", 0, "must be at least 1, got 0", 1),
    ("decoder", "transformer", "width", 0, "must be at least 1, got 0", 1),
    ("decoder", "transformer", "depth", -1, "must be at least 0, got -1", 0),
    ("decoder", "transformer", "heads", 0, "must be at least 1, got 0", 1),
    ("decoder", "transformer", "down_t", -1, "must be at least 0, got -1", 0),
    ("decoder", "transformer", "max_len", 0, "must be at least 1, got 0", 1),
    ("decoder", "transformer", "dropout", 1.5, f"{DROPOUT} 1.5", 0.0),
    ("encoder", "amplify", "hidden_dim", 0, "must be at least 1, got 0", 1),
    ("encoder", "amplify", "num_heads", 0, "must be at least 1, got 0", 1),
    ("encoder", "amplify", "num_layers", 0, "must be at least 1, got 0", 1),
    ("encoder", "amplify", "horizon", 1, f"must be at least 2, got 1 {HORIZON}", 2),
    ("encoder", "amplify", "dropout", 1.0, f"{DROPOUT} 1.0", 0.0),
    ("decoder", "amplify", "dim", 0, "must be at least 1, got 0", 1),
    ("decoder", "amplify", "num_heads", 0, "must be at least 1, got 0", 1),
    ("decoder", "amplify", "num_layers", 0, "must be at least 1, got 0", 1),
    ("decoder", "amplify", "mlp_hidden_dim", 0, "must be at least 1, got 0", 1),
    ("decoder", "amplify", "grid", [15, 0], f"each item must be at least 1, got 0 in [15, 0] {GRID}", [1, 1]),
    ("decoder", "amplify", "grid", [15], f"must hold 2 numbers, got 1: [15] {GRID}", [15, 15]),
    ("decoder", "amplify", "horizon", 0, f"must be at least 2, got 0 {HORIZON}", 2),
    ("decoder", "amplify", "dropout", -0.5, f"{DROPOUT} -0.5", 0.0),
    ("encoder", "laps", "hidden_dim", 0, "must be at least 1, got 0", 1),
    ("encoder", "laps", "num_heads", 0, "must be at least 1, got 0", 1),
    ("encoder", "laps", "num_layers", -1, "must be at least 0, got -1", 0),
    ("encoder", "laps", "dropout", 1.0, f"{DROPOUT} 1.0", 0.0),
    ("encoder", "laps", "codes", 0, "must be at least 1, got 0 (at most horizon)", 1),
    ("encoder", "laps", "horizon", 1, f"must be at least 2, got 1 {HORIZON}", 2),
    ("encoder", "laps", "radius", 0, "must be greater than 0, got 0 (pixels per unit of velocity)", 0.001),
    ("encoder", "laps", "image_size", [0, 512], f"each item must be at least 1, got 0 in [0, 512] {IMAGE_SIZE}",
     [1, 1]),
    ("decoder", "laps", "dim", 0, "must be at least 1, got 0", 1),
    ("decoder", "laps", "num_heads", 0, "must be at least 1, got 0", 1),
    ("decoder", "laps", "num_layers", -1, "must be at least 0, got -1", 0),
    ("decoder", "laps", "dropout", -0.1, f"{DROPOUT} -0.1", 0.0),
    ("decoder", "laps", "horizon", 1, f"must be at least 2, got 1 {HORIZON}", 2),
    ("decoder", "laps", "grid", [0, 15], f"each item must be at least 1, got 0 in [0, 15] {GRID}", [1, 1]),
    ("quantizer", "vq", "dim", 0, "must be at least 1, got 0", 1),
    ("quantizer", "vq", "codebook_size", 1, "must be at least 2, got 1", 2),
    ("quantizer", "vq", "decay", -0.1, "must be at least 0 and at most 1, got -0.1", 0.0),
    ("quantizer", "vq", "decay", 1.01, "must be at least 0 and at most 1, got 1.01", 1.0),
    ("quantizer", "vq", "commitment_weight", -1.0, "must be at least 0, got -1.0", 0.0),
    ("quantizer", "vq", "threshold_ema_dead_code", -1, "must be at least 0, got -1", 0),
    ("quantizer", "vq", "codebook_dim", 0, "must be at least 1, got 0", 1),
    ("quantizer", "rvq", "dim", 0, "must be at least 1, got 0", 1),
    ("quantizer", "rvq", "num_quantizers", 0, "must be at least 1, got 0", 1),
    ("quantizer", "rvq", "codebook_size", 0, "must be at least 2, got 0", 2),
    ("quantizer", "rvq", "decay", 2, "must be at least 0 and at most 1, got 2", 1),
    ("quantizer", "rvq", "commitment_weight", -0.5, "must be at least 0, got -0.5", 0),
    ("quantizer", "rvq", "threshold_ema_dead_code", -2.0, "must be at least 0, got -2.0", 0.0),
    ("quantizer", "rvq", "codebook_dim", 0, "must be at least 1, got 0", 1),
    ("quantizer", "lfq", "dim", 0, "must be at least 1, got 0", 1),
    ("quantizer", "lfq", "codebook_size", 1, "must be at least 2, got 1 (a power of two)", 2),
    ("quantizer", "lfq", "entropy_loss_weight", -0.1, "must be at least 0, got -0.1", 0.0),
    ("quantizer", "lfq", "commitment_loss_weight", -0.1, "must be at least 0, got -0.1", 0.0),
    ("quantizer", "lfq", "diversity_gamma", -1.0, "must be at least 0, got -1.0", 0.0),
    ("quantizer", "fsq", "dim", 0, "must be at least 1, got 0", 1),
    ("quantizer", "fsq", "levels", [8, 2, 5], "each item must be at least 3, got 2 in [8, 2, 5]", [3, 3, 3]),
    ("quantizer", "vq_ema_reset", "dim", 0, "must be at least 1, got 0", 1),
    ("quantizer", "vq_ema_reset", "codebook_size", 1, "must be at least 2, got 1", 2),
    ("quantizer", "vq_ema_reset", "decay", -0.1, "must be at least 0 and below 1, got -0.1", 0.0),
    ("quantizer", "vq_ema_reset", "decay", 1.0, "must be at least 0 and below 1, got 1.0", 0.999),
    ("quantizer", "rvq_ema_reset", "dim", 0, "must be at least 1, got 0", 1),
    ("quantizer", "rvq_ema_reset", "num_quantizers", 0, "must be at least 1, got 0", 1),
    ("quantizer", "rvq_ema_reset", "codebook_size", 1, "must be at least 2, got 1", 2),
    ("quantizer", "rvq_ema_reset", "decay", 1.0, "must be at least 0 and below 1, got 1.0", 0.999),
    ("quantizer", "rvq_ema_reset", "quantize_dropout_prob", 1.5, "must be at least 0 and at most 1, got 1.5", 1.0),
    ("quantizer", "rvq_ema_reset", "sample_temperature", -0.5, "must be at least 0, got -0.5", 0.0),
    ("loss", "codebook_entropy", "temperature", 0, "must be greater than 0, got 0", 0.001),
    ("loss", "codebook_entropy", "diversity_weight", -1, "must be at least 0, got -1", 0),
    ("loss", "focal", "gamma", -1.0, "must be at least 0, got -1.0", 0.0),
    ("loss", "focal", "alpha", -0.25, "must be at least 0, got -0.25", 0.0),
    ("loss", "focal", "center_weight", -0.5, "must be at least 0, got -0.5", 0.0),
    ("loss", "focal", "view_weights", [0.9, -0.1], "each item must be at least 0, got -0.1 in [0.9, -0.1]", [0, 0]),
    ("loss", "focal", "image_size", [384], f"must hold 2 numbers, got 1: [384] {IMAGE_SIZE}", [1, 1]),
    ("loss", "focal", "grid", [15, -1], f"each item must be at least 1, got -1 in [15, -1] {GRID}", [1, 1]),
    ("loss", "focal", "static_threshold", -0.1, "must be at least 0, got -0.1", 0.0),
    ("loss", "focal", "static_min_keep", -1, "must be at least 0, got -1", 0),
    ("loss", "relative_ce", "view_weights", [-1.0], "each item must be at least 0, got -1.0 in [-1.0]", [0.0]),
    ("loss", "relative_ce", "image_size", [384, 0], f"each item must be at least 1, got 0 in [384, 0] {IMAGE_SIZE}",
     [1, 1]),
    ("loss", "relative_ce", "grid", [0, 0], f"each item must be at least 1, got 0 in [0, 0] {GRID}", [1, 1]),
    ("loss", "relative_ce", "static_threshold", -1, "must be at least 0, got -1", 0),
    ("loss", "relative_ce", "static_min_keep", -16, "must be at least 0, got -16", 0),
    ("loss", "code_histogram_entropy", "codebook_size", 0, "must be at least 1, got 0", 1),
    ("metric", "tracks", "image_size", [0, 0], f"each item must be at least 1, got 0 in [0, 0] {IMAGE_SIZE}", [1, 1]),
    ("metric", "tracks", "grid", [15, 15, 15], f"must hold 2 numbers, got 3: [15, 15, 15] {GRID}", [1, 1]),
    ("metric", "track_classes", "image_size", [1], f"must hold 2 numbers, got 1: [1] {IMAGE_SIZE}", [1, 1]),
    ("metric", "track_classes", "grid", [15, 0], f"each item must be at least 1, got 0 in [15, 0] {GRID}", [1, 1]),
    ("metric", "track_classes", "static_threshold", -0.1, "must be at least 0, got -0.1", 0.0),
    ("metric", "track_classes", "static_min_keep", -1, "must be at least 0, got -1", 0),
    ("metric", "track_classes", "codebook_size", 0, "must be at least 1, got 0", 1),
]


def recipe_with(kind: str, name: str, argument: str, value) -> tuple[dict, str]:
    """The tiny recipe with ``name`` as its ``kind`` given ``argument: value``; the recipe key of it."""
    entry = {"name": name, **REQUIRED.get((kind, name), {}), argument: value}
    if kind == "loss":
        return {**TINY_RECIPE, "losses": [{"name": "recon"}, entry]}, f"losses[1].{argument}"
    if kind == "metric":
        return {**TINY_RECIPE, "eval": {"metrics": [entry]}}, f"eval.metrics[0].{argument}"
    return {**TINY_RECIPE, kind: entry}, f"{kind}.{argument}"


def validate(tmp_path, tree: dict) -> tuple[int, str, str]:
    recipe = write_recipe(tmp_path / "recipe.yaml", tree)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", str(recipe)])
    return code, out.getvalue(), err.getvalue()


def case_id(case) -> str:
    kind, name, argument, bad = case[:4]
    return f"{kind}-{name}-{argument}={yaml.safe_dump(bad, default_flow_style=True).strip()}"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_a_value_out_of_bounds_is_one_problem_naming_the_recipe_key(tmp_path, case):
    kind, name, argument, bad, message, _ = case
    tree, key = recipe_with(kind, name, argument, bad)
    code, _, err = validate(tmp_path, tree)
    assert code == 2, err
    assert "Traceback" not in err and err.count("Error: ") == 1, err
    assert "1 problem:" in err, err
    assert f"\n  {key}: {message}\n" in err, err


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_the_value_at_the_bound_is_accepted(tmp_path, case):
    kind, name, argument, _, _, at_bound = case
    tree, _ = recipe_with(kind, name, argument, at_bound)
    code, out, err = validate(tmp_path, tree)
    assert code == 0 and ": OK (" in out, err


def test_every_declared_bound_of_the_first_party_components_has_a_case():
    registry = get_registry()
    declared = {
        (kind, component.name, argument.name)
        for kind in KINDS for component in registry.components(kind) if component.provider in FIRST_PARTY
        for argument in arguments_of(component.cls) if argument.bounds is not None
    }
    assert declared == {case[:3] for case in CASES}
