"""Recipes: YAML -> a validated ``Recipe``, with every problem reported at once.

A recipe has fixed sections. ``run`` and ``train`` are plain settings; ``data``,
``encoder``, ``quantizer`` and ``decoder`` are components (``name:`` plus the registered
class's keyword arguments); ``losses`` is a list of loss components, each with optional
``weight``, ``every``, ``every_scale``, ``schedule``, ``schedule_mode`` and ``downsample``.
Values may reference other values with ``${section.key}``, and ``key=value`` overrides use the same dotted paths.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
from pathlib import Path
from typing import Any

from motionhub.errors import RecipeError, UnknownComponentError, did_you_mean
from motionhub.plugins.arguments import DATA_KEYS, LOSS_KEYS
from motionhub.plugins.registry import Component, Registry
from motionhub.plugins.types import Bounds, annotations_of, bounds_of, coerce, type_problem
from motionhub.recipes.sections import (
    COMPONENT_SECTIONS, INJECTED, SECTIONS, SETTING_SECTIONS, ComponentSpec, DataSpec, EvalConfig,
    LossSpec, Recipe, RunConfig, TrainConfig,
)
from motionhub.recipes.tree import apply_overrides, read_tree, resolve_references

def load_recipe(path: str | Path, overrides: list[str] | None = None, registry: Registry | None = None) -> Recipe:
    """Read, override, resolve and validate a recipe; raise one ``RecipeError`` listing every problem."""
    tree = read_tree(path)
    return recipe_from_tree(tree, str(path), overrides or [], registry)


def recipe_from_tree(tree: dict[str, Any], source: str, overrides: list[str] | None = None,
                     registry: Registry | None = None) -> Recipe:
    if registry is None:
        from motionhub.plugins.manager import get_registry

        registry = get_registry()
    tree = copy.deepcopy(tree)
    run = tree.get("run")
    if run is None or isinstance(run, dict):  # defaults first, so ${run.name} in run.out resolves
        tree["run"] = {**_defaults(RunConfig), **(run or {})}
    names_in_file = {section: _component_name(tree.get(section)) for section in COMPONENT_SECTIONS}
    problems = apply_overrides(tree, overrides or [])
    problems += resolve_references(tree)

    for key in tree:
        if key not in SECTIONS:
            problems.append((key, f"unknown section{did_you_mean(key, SECTIONS) or '.'} Sections: {', '.join(SECTIONS)}"))
    settings = {name: _settings(tree.get(name), cls, name, problems) for name, cls in SETTING_SECTIONS.items()}
    problems += _between_settings(settings["train"], settings["eval"])
    components = {}
    for section, kind in COMPONENT_SECTIONS.items():
        if section not in tree:
            problems.append((section, f"missing section: name the {kind} to use, e.g. {section}: {{name: ...}} "
                                      f"(see 'motionhub list {kind}s')"))
            continue
        extra = DATA_KEYS if section == "data" else ()
        first = len(problems)
        components[section] = _component(tree[section], kind, section, registry, problems, extra)
        swapped_from = names_in_file[section]
        if swapped_from not in (None, _component_name(tree[section])):
            problems[first:] = _swap_problems(problems[first:], tree[section], section, kind, swapped_from)
    if components.get("data") is not None:
        node = tree["data"] if isinstance(tree["data"], dict) else {}
        components["data"] = _data_spec(components["data"], node, problems)
    losses = _losses(tree.get("losses"), registry, problems)
    metrics = None
    if settings["eval"] is not None and settings["eval"].metrics is not None:
        metrics = [_component(entry, "metric", f"eval.metrics[{i}]", registry, problems)
                   for i, entry in enumerate(settings["eval"].metrics)]
    protocols = []
    if settings["eval"] is not None and settings["eval"].protocols:
        protocols = [_component(entry, "protocol", f"eval.protocols[{i}]", registry, problems)
                     for i, entry in enumerate(settings["eval"].protocols)]

    if problems:
        raise RecipeError(source, problems)
    return Recipe(source=source, tree=tree, run=settings["run"], train=settings["train"], eval=settings["eval"],
                  bench=settings["bench"], losses=losses, metrics=metrics, protocols=protocols, **components)


def _component_name(node: Any) -> Any:
    """The ``name`` a component section gives (``quantizer: fsq`` or ``{name: fsq, ...}``), else None."""
    return node if isinstance(node, str) else node.get("name") if isinstance(node, dict) else None


def _swap_problems(problems: list[tuple[str, str]], node: Any, section: str, kind: str, old: str
                   ) -> list[tuple[str, str]]:
    """After an override renamed a section's component, fold the arguments it kept from the
    recipe's own component (unknown to the new one) into one problem saying so."""
    leftovers = [path.removeprefix(f"{section}.") for path, message in problems
                 if path.startswith(f"{section}.") and message.startswith("unknown key")]
    if not leftovers:
        return problems
    new = node["name"]
    kept = [(path, message) for path, message in problems
            if not (path.startswith(f"{section}.") and message.startswith("unknown key"))]
    takes = next(message for path, message in problems if message.startswith("unknown key")).split(" takes: ")[-1]
    return kept + [(section, f"the override {section}.name={new} replaces the recipe's {kind} '{old}', but the "
                             f"section still holds its arguments {', '.join(leftovers)}, which '{new}' does not take "
                             f"('{new}' takes: {takes}). Replace the whole section in one override instead, e.g. "
                             f"'{section}={{name: {new}, ...}}', or use a recipe written for '{new}'.")]


def _defaults(cls: type) -> dict[str, Any]:
    return {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(cls)}


def _settings(node: Any, cls: type, path: str, problems: list) -> Any:
    if node is None:
        node = {}
    if not isinstance(node, dict):
        problems.append((path, f"expected a mapping of settings, got {type(node).__name__}"))
        return None
    hints, bounds = annotations_of(cls), bounds_of(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in node.items():
        if key not in fields:
            problems.append((f"{path}.{key}", f"unknown key{did_you_mean(key, fields) or '.'} "
                                              f"Keys of '{path}': {', '.join(fields)}"))
        elif (problem := value_problem(value, hints.get(key), bounds.get(key))) is not None:
            problems.append((f"{path}.{key}", problem))
        else:
            values[key] = value
    return cls(**values)


def value_problem(value: Any, annotation: Any, bounds: Bounds | None) -> str | None:
    """What is wrong with ``value`` for a field or argument of this type and these bounds, or None."""
    problem = type_problem(value, annotation)
    if problem is None and bounds is not None:
        problem = bounds.problem(value)
    return problem


def _between_settings(train: TrainConfig | None, ev: EvalConfig | None) -> list[tuple[str, str]]:
    """Problems between settings that are each valid alone."""
    problems = []
    if train is not None and train.iters is not None and train.epochs is not None:
        problems.append(("train.epochs", f"{train.epochs:g} is given with train.iters={train.iters}: the run's "
                                         f"length is one or the other. Keep train.epochs (passes over the train "
                                         f"windows) or train.iters (steps after warm-up); to switch with an "
                                         f"override, null the other, e.g. train.iters=null train.epochs=10"))
    elif train is not None and train.epochs is not None and not math.isfinite(train.epochs):
        problems.append(("train.epochs", f"must be a finite number of passes over the train windows, got "
                                         f"{train.epochs}"))
    elif train is not None and train.iters is not None and (problem := milestones_problem(
            train, train.iters, f"train.iters={train.iters} steps long", "raise train.iters")):
        problems.append(("train.milestones", problem))
    if ev is not None and ev.min_length is not None and ev.max_length is not None and ev.min_length > ev.max_length:
        problems.append(("eval.min_length", f"{ev.min_length} is above eval.max_length={ev.max_length}, so every val "
                                            f"clip would be skipped. Lower eval.min_length or raise eval.max_length"))
    return problems


def milestones_problem(train: TrainConfig, iters: int, length: str, longer: str) -> str | None:
    """What is wrong with ``train.milestones`` in a run of ``iters`` steps after warm-up, or None.

    ``length`` completes "the run is ..." and ``longer`` says how to lengthen the run. A run given
    in ``train.epochs`` is checked when the data say how many steps that is.
    """
    late = [m for m in train.milestones if m >= iters] if train.schedule == "multistep" else []
    if not late:
        return None
    return (f"{late[0]} is not within the run: milestones count steps after warm-up, and the run is {length}. "
            f"Use milestones below {iters}, {longer}, or drop them with train.milestones=[]")


def _component(node: Any, kind: str, path: str, registry: Registry, problems: list,
               extra_keys: tuple[str, ...] = ()) -> ComponentSpec | None:
    if isinstance(node, str):  # shorthand: "quantizer: fsq"
        node = {"name": node}
    if not isinstance(node, dict):
        problems.append((path, f"expected a mapping with 'name:' and the {kind}'s arguments, got {type(node).__name__}"))
        return None
    kwargs = {k: v for k, v in node.items() if k != "name" and k not in extra_keys}
    name = node.get("name")
    if name is None:
        problems.append((f"{path}.name", f"missing: which {kind}? Available {kind}s: "
                                         f"{', '.join(registry.names(kind)) or 'none'}"))
        return None
    try:
        component = registry.get(kind, name)
    except UnknownComponentError as exc:
        problems.append((f"{path}.name", str(exc)))
        return None
    problems += bind_arguments(component, kwargs, path)
    return ComponentSpec(path, component, kwargs)


def bind_arguments(component: Component, kwargs: dict[str, Any], path: str) -> list[tuple[str, str]]:
    """Problems binding ``kwargs`` to the component's constructor: unknown, missing, mistyped."""
    try:
        params = dict(inspect.signature(component.cls).parameters)
    except (TypeError, ValueError):
        return []
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    named = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    hints, bounds = annotations_of(component.cls), bounds_of(component.cls)
    problems = []
    for key, value in kwargs.items():
        if key not in named:
            if not takes_any:
                hint = did_you_mean(key, named) or "."
                problems.append((f"{path}.{key}", f"unknown key{hint} {component.kind} '{component.name}' takes: "
                                                  f"{', '.join(named) or 'no arguments'}"))
            continue
        if (problem := value_problem(value, hints.get(key), bounds.get(key))) is not None:
            problems.append((f"{path}.{key}", problem))
        else:
            kwargs[key] = coerce(value, hints.get(key))
    for name in named:
        param = params[name]
        if param.default is param.empty and name not in kwargs and name not in INJECTED[component.kind]:
            problems.append((f"{path}.{name}", f"missing required argument of {component.kind} '{component.name}'"))
    return problems


def _data_spec(spec: ComponentSpec, node: dict[str, Any], problems: list) -> DataSpec:
    extras = {k: node[k] for k in DATA_KEYS if k in node}
    hints, bounds = annotations_of(DataSpec), bounds_of(DataSpec)
    for key, value in list(extras.items()):
        if (problem := value_problem(value, hints.get(key), bounds.get(key))) is not None:
            problems.append((f"data.{key}", problem))
            del extras[key]
    return DataSpec(spec.path, spec.component, spec.kwargs, **extras)


def _losses(node: Any, registry: Registry, problems: list) -> list[LossSpec]:
    if not node:
        problems.append(("losses", "missing: list at least one loss, e.g. losses: [{name: recon}] "
                                   "(see 'motionhub list losses')"))
        return []
    if not isinstance(node, list):
        problems.append(("losses", f"expected a list of losses, got {type(node).__name__}"))
        return []
    specs = []
    for i, item in enumerate(node):
        path = f"losses[{i}]"
        spec = _component(item, "loss", path, registry, problems, extra_keys=LOSS_KEYS)
        if spec is None:
            continue
        extras = {k: item[k] for k in LOSS_KEYS if isinstance(item, dict) and k in item}
        hints, bounds = annotations_of(LossSpec), bounds_of(LossSpec)
        for key in list(extras):
            problem = value_problem(extras[key], hints.get(key), bounds.get(key))
            if problem is None and key == "schedule":
                problem = schedule_problem(extras[key])
            if problem is not None:
                problems.append((f"{path}.{key}", problem))
                del extras[key]
        specs.append(LossSpec(spec.path, spec.component, spec.kwargs, **extras))
    return specs


def schedule_problem(schedule: list[list[float]] | None) -> str | None:
    """What is wrong with a loss's ``schedule`` (already a list of lists of numbers), or None."""
    example = "e.g. [[0, 0.0], [1000, 1.0]]"
    if schedule is None:
        return None
    if not schedule:
        return f"holds no point: give [[step, weight], ...], {example}, or null for the constant weight"
    for i, point in enumerate(schedule):
        if len(point) != 2:
            return f"each point must be [step, weight], got {point!r} at index {i}; {example}"
        step, weight = point
        if step < 0 or step != int(step):
            return f"steps must be whole numbers from 0, got {step!r} at index {i}; {example}"
        if weight < 0 or weight != weight:
            return f"weights must be at least 0, got {weight!r} at step {step:g}; {example}"
    steps = [point[0] for point in schedule]
    for i in range(1, len(steps)):
        if steps[i] <= steps[i - 1]:
            return (f"steps must increase from point to point, got {steps[i]:g} after {steps[i - 1]:g} "
                    f"(index {i}); {example}")
    return None
