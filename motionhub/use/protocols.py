"""Evaluation protocols of plugins (``motionhub.model.protocols``) on trained runs: which one a
name means, its settings, and the run it reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from motionhub.errors import MotionhubError, RecipeError
from motionhub.model.protocols import Protocol, ProtocolRun
from motionhub.recipes import ComponentSpec, Recipe
from motionhub.recipes.validate import bind_arguments


def recipe_settings(recipe: Recipe, name: str) -> dict[str, Any]:
    """The settings the recipe's ``eval.protocols`` gives protocol ``name`` ({} when it lists none)."""
    for spec in recipe.protocols:
        if spec.name == name:
            return dict(spec.kwargs)
    return {}


def parse_settings(words: list[str]) -> dict[str, Any]:
    """``["repeats=5", "evaluator_dir=/x"]`` -> ``{"repeats": 5, "evaluator_dir": "/x"}`` (values read as YAML)."""
    settings = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key.strip():
            raise MotionhubError(f"--set {word!r}: write key=value, e.g. --set repeats=5")
        settings[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return settings


def build_protocol(name: str, settings: dict[str, Any], where: str = "--protocol") -> Protocol:
    """Protocol ``name`` built with ``settings``, checked like a recipe component's arguments.

    An unknown name is a ``MotionhubError`` listing the protocols there are and the closest one.
    """
    from motionhub.model.build import instantiate
    from motionhub.plugins.manager import get_registry
    from motionhub.errors import UnknownComponentError

    registry = get_registry()
    try:
        component = registry.get("protocol", name)
    except UnknownComponentError as exc:
        raise MotionhubError(f"{where} {name}: {exc}") from None
    kwargs = dict(settings)
    problems = bind_arguments(component, kwargs, f"protocol {name}")
    if problems:
        raise RecipeError(where, problems)
    return instantiate(ComponentSpec(f"protocol {name}", component, kwargs))


def protocol_run(loaded) -> ProtocolRun:
    """The ``ProtocolRun`` of a ``LoadedRun``: its weights file (a checkpoint, or a package's
    weights) is the one ``load_run`` read."""
    return ProtocolRun(path=Path(loaded.run.path), checkpoint=loaded.weights, step=loaded.step, recipe=loaded.recipe,
                       dataset=loaded.dataset, format=loaded.format, model=loaded.model)


def run_and_write(protocol: Protocol, name: str, loaded, device: str | None, out: Path) -> dict:
    """Every repetition of ``protocol`` (registered as ``name``) on a ``LoadedRun`` with a progress
    bar; the result with every repetition goes to ``out`` as JSON, its table and path to stdout."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(f"{name} {protocol.split} repetitions", total=protocol.repeats)
        result = protocol.evaluate(protocol_run(loaded), device, on_repeat=lambda _: progress.advance(task))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(protocol.render(result))
    print(out)
    return result
