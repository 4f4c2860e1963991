"""Recipe loading: validation with YAML paths, all problems at once, overrides, references."""

from pathlib import Path

import pytest
import yaml
from helpers import REPO, TINY_RECIPE, run_cli, write_recipe

from motionhub.errors import MotionhubError, RecipeError
from motionhub.recipes import load_recipe, recipe_from_tree

SHIPPED = sorted((REPO / "configs").rglob("*.yaml"))


def problems_of(tree, overrides=()):
    with pytest.raises(RecipeError) as info:
        recipe_from_tree(tree, "recipe.yaml", list(overrides))
    return dict(info.value.problems), str(info.value)


def test_tiny_recipe_validates_and_binds_arguments():
    recipe = recipe_from_tree(TINY_RECIPE, "recipe.yaml")
    assert recipe.quantizer.name == "fsq" and recipe.quantizer.kwargs == {"levels": [8, 5, 5]}
    assert recipe.data.window == 32 and "window" not in recipe.data.kwargs
    assert [loss.name for loss in recipe.losses] == ["recon", "feature"]
    assert recipe.losses[1].weight == 0.5 and recipe.losses[1].kwargs == {"slice": "positions"}
    assert recipe.train.batch_size == 4 and recipe.run.out == "runs/tiny"


def test_misspelled_name_key_and_wrong_type_are_reported_together():
    tree = {**TINY_RECIPE,
            "encoder": {**TINY_RECIPE["encoder"], "name": "conv1dd"},
            "quantizer": {"name": "fsq", "levles": [8, 5, 5]},
            "train": {**TINY_RECIPE["train"], "lr": "fast"}}
    problems, message = problems_of(tree)
    assert message.startswith("recipe.yaml: 3 problems:")
    assert "unknown encoder 'conv1dd'; did you mean 'conv1d'?" in problems["encoder.name"]
    assert problems["quantizer.levles"].startswith("unknown key; did you mean 'levels'?")
    assert problems["train.lr"] == "expected number, got str 'fast'"


def test_unknown_sections_missing_sections_and_missing_required_arguments():
    tree = {k: v for k, v in TINY_RECIPE.items() if k != "decoder"}
    tree["trian"] = {}
    tree["losses"] = [{"name": "feature"}]  # feature needs slice
    problems, _ = problems_of(tree)
    assert "did you mean 'train'?" in problems["trian"]
    assert problems["decoder"].startswith("missing section")
    assert problems["losses[0].slice"] == "missing required argument of loss 'feature'"


def test_bench_section_defaults_values_and_mistakes():
    assert recipe_from_tree(TINY_RECIPE, "recipe.yaml").bench.stride is None
    recipe = recipe_from_tree({**TINY_RECIPE, "bench": {"window": 16, "stride": 4}}, "recipe.yaml")
    assert (recipe.bench.window, recipe.bench.stride, recipe.bench.warmup, recipe.bench.split) == (16, 4, 10, "val")
    problems, message = problems_of({**TINY_RECIPE, "bench": {"stride": 0, "strde": 4, "precision": "int8",
                                                              "warmup": -1}})
    assert message.startswith("recipe.yaml: 4 problems:")
    assert problems["bench.stride"] == "must be at least 1, got 0"
    assert problems["bench.warmup"] == "must be at least 0, got -1"
    assert problems["bench.strde"].startswith("unknown key; did you mean 'stride'?")
    assert "fp32" in problems["bench.precision"]


def test_injected_arguments_are_not_required_but_can_be_set():
    recipe = recipe_from_tree({**TINY_RECIPE, "quantizer": {"name": "fsq", "levels": [8, 5], "dim": 16}},
                              "recipe.yaml")
    assert recipe.quantizer.kwargs["dim"] == 16


def test_types_are_checked_against_constructor_annotations():
    tree = {**TINY_RECIPE,
            "encoder": {**TINY_RECIPE["encoder"], "width": 3.5, "activation": "tanh"},
            "quantizer": {"name": "fsq", "levels": [8, "five"]},
            "losses": [{"name": "recon", "kind": "l3", "every": 0}]}
    problems, _ = problems_of(tree)
    assert problems["encoder.width"] == "expected int, got float 3.5"
    assert problems["encoder.activation"].startswith("expected one of 'relu', 'silu', 'gelu'")
    assert problems["quantizer.levels"].startswith("expected list of int")
    assert problems["losses[0].kind"].startswith("expected one of 'l1', 'l2', 'smooth_l1'")
    assert problems["losses[0].every"] == "must be at least 1, got 0"


def test_overrides_use_dotted_paths_and_yaml_values():
    recipe = recipe_from_tree(TINY_RECIPE, "recipe.yaml",
                              ["train.lr=2e-4", "quantizer.levels=[8,8,8]", "losses.1.weight=0.25",
                               "run.name=other", "data.window=16"])
    assert recipe.train.lr == 2e-4 and isinstance(recipe.train.lr, float)
    assert recipe.quantizer.kwargs["levels"] == [8, 8, 8]
    assert recipe.losses[1].weight == 0.25
    assert recipe.run.out == "runs/other"  # references resolve after overrides
    assert recipe.data.window == 16


def test_bad_overrides_are_reported_with_the_other_problems():
    problems, message = problems_of(TINY_RECIPE, ["train.lr", "losses.7.weight=1", "train.itres=5"])
    assert "is not key=value" in message
    assert "no such list item" in problems["losses.7"]
    assert "did you mean 'iters'?" in problems["train.itres"]


def test_references_keep_types_and_report_missing_targets_and_cycles():
    tree = {**TINY_RECIPE, "run": {"name": "r", "seed": 3},
            "train": {**TINY_RECIPE["train"], "iters": "${train.batch_size}"}}
    recipe = recipe_from_tree(tree, "recipe.yaml")
    assert recipe.train.iters == 4 and recipe.run.out == "runs/r"
    problems, _ = problems_of({**TINY_RECIPE, "run": {"name": "${run.nope}"}})
    assert "${run.nope} names nothing" in problems["run"]
    problems, _ = problems_of({**TINY_RECIPE, "run": {"name": "${run.out}", "out": "${run.name}"}})
    assert "cycle" in problems["run"]


def test_yaml_floats_without_a_dot(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(TINY_RECIPE).replace("lr: 0.001", "lr: 1e-3"))
    assert "lr: 1e-3" in path.read_text()
    assert load_recipe(path).train.lr == 1e-3


def test_unreadable_recipes_give_one_clear_error(tmp_path):
    with pytest.raises(MotionhubError, match="recipe file not found"):
        load_recipe(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: {name: [unclosed\n")
    with pytest.raises(MotionhubError, match="not valid YAML"):
        load_recipe(bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(MotionhubError, match="a recipe is a mapping of sections"):
        load_recipe(bad)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_recipe_validates_and_opens_with_its_command(path: Path):
    load_recipe(path)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# "), "a recipe opens with a comment saying what it is"
    command = f"#   motionhub train {path.relative_to(REPO)}"
    assert any(line.strip() == command or line.startswith(command + " ") for line in lines[:15])


def test_cli_reports_all_three_mistakes_in_one_message_and_exits_non_zero(tmp_path):
    tree = {**TINY_RECIPE,
            "quantizer": {"name": "fsqq", "levels": [8, 5, 5]},
            "encoder": {**TINY_RECIPE["encoder"], "widht": 32},
            "train": {**TINY_RECIPE["train"], "batch_size": "eight"}}
    recipe = write_recipe(tmp_path / "bad.yaml", tree)
    result = run_cli("train", str(recipe), env={"MOTIONHUB_LOAD_PLUGINS": ""})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "3 problems" in result.stderr
    assert "quantizer.name: unknown quantizer 'fsqq'; did you mean 'fsq'?" in result.stderr
    assert "encoder.widht: unknown key; did you mean 'width'?" in result.stderr
    assert "train.batch_size: expected int, got str 'eight'" in result.stderr
