"""Recipes: the YAML tree (``tree``: read, override, resolve), its typed sections (``sections``)
and their validation against the registry, every problem at once (``validate``)."""

from motionhub.recipes.sections import (
    BenchConfig,
    ComponentSpec,
    DataSpec,
    EvalConfig,
    LossSpec,
    Recipe,
    RunConfig,
    TrainConfig,
)
from motionhub.recipes.tree import read_tree
from motionhub.recipes.validate import bind_arguments, load_recipe, recipe_from_tree

__all__ = ["BenchConfig", "ComponentSpec", "DataSpec", "EvalConfig", "LossSpec", "Recipe", "RunConfig",
           "TrainConfig", "bind_arguments", "load_recipe", "read_tree", "recipe_from_tree"]
