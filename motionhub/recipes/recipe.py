"""Recipes: YAML -> a validated ``Recipe``, with every problem reported at once.

A recipe has fixed sections. ``run`` and ``train`` are plain settings; ``data``,
``encoder``, ``quantizer`` and ``decoder`` are components (``name:`` plus the registered
class's keyword arguments); ``losses`` is a list of loss components, each with optional
``weight``, ``every`` and ``schedule``. Values may reference other values with
``${section.key}``, and ``key=value`` overrides use the same dotted paths.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml

from motionhub.errors import MotionhubError, RecipeError, UnknownComponentError, did_you_mean
from motionhub.plugins.registry import Component, Registry
from motionhub.plugins.arguments import DATA_KEYS, LOSS_KEYS
from motionhub.plugins.types import Bounds, annotations_of, bounds_of, coerce, type_problem


# ---------------------------------------------------------------------------- sections
@dataclasses.dataclass
class RunConfig:
    name: str = "run"  # names the run directory
    out: str = "runs/${run.name}"  # where checkpoints, metrics and reports go
    # seeds data sampling, initialisation and every RNG the loop uses
    seed: Annotated[int, Bounds(low=0, high=2**32 - 1)] = 0


@dataclasses.dataclass
class TrainConfig:
    batch_size: Annotated[int, Bounds(low=1)] = 32  # per process
    iters: Annotated[int, Bounds(low=1)] = 1000  # optimizer steps after warm-up
    lr: Annotated[float, Bounds(low=0, low_open=True)] = 2e-4
    betas: Annotated[list[float], Bounds(low=0, high=1, high_open=True, length=2, hint="AdamW's [beta1, beta2], "
                                         "e.g. [0.9, 0.99]")] = dataclasses.field(default_factory=lambda: [0.9, 0.99])
    weight_decay: Annotated[float, Bounds(low=0)] = 0.0
    warmup_iters: Annotated[int, Bounds(low=0)] = 0  # linear warm-up steps, taken before ``iters``
    schedule: Literal["multistep", "cosine"] = "multistep"  # after warm-up
    # multistep: steps after warm-up, each within the run (below ``iters``)
    milestones: Annotated[list[int], Bounds(low=1)] = dataclasses.field(default_factory=list)
    gamma: Annotated[float, Bounds(low=0, low_open=True)] = 0.05  # multistep: lr factor at each milestone
    # max gradient norm; null = no clipping
    grad_clip: Annotated[float | None, Bounds(low=0, low_open=True, hint="the largest gradient norm; null turns "
                                                                       "clipping off")] = None
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    grad_accum: Annotated[int, Bounds(low=1)] = 1  # micro-batches per optimizer step
    on_nonfinite: Literal["stop", "skip"] = "stop"  # a NaN/Inf loss stops the run, or skips the step
    compile: bool = False  # torch.compile the model (slower start, faster steps on GPU)
    log_every: Annotated[int, Bounds(low=1)] = 10  # steps between metrics.jsonl rows
    # steps between evaluations on the val split; 0 = only at the end
    eval_every: Annotated[int, Bounds(low=0, hint="0 evaluates only at the end")] = 0
    # steps between checkpoints (last.pt and step_N.pt); 0 = only at the end
    checkpoint_every: Annotated[int, Bounds(low=0, hint="0 checkpoints only at the end")] = 0
    trackers: list[Literal["tensorboard", "wandb"]] = dataclasses.field(default_factory=list)
    threads: Annotated[int | None, Bounds(low=1)] = None  # torch CPU threads; fixed for bit-exact resumes on CPU


@dataclasses.dataclass
class EvalConfig:
    batch_size: Annotated[int, Bounds(low=1)] = 32
    min_length: Annotated[int | None, Bounds(low=1)] = None  # frames; shorter val clips are skipped
    max_length: Annotated[int | None, Bounds(low=1)] = None  # frames; longer val clips are skipped
    # metric plugins, each a name or {name: ..., its arguments}; null = every one that applies to the data
    metrics: list[str | dict[str, Any]] | None = None
    best: str = "loss"  # val figure that selects checkpoints/best.pt (its metric says whether higher is better)
    train_codebook: bool = True  # codebook usage over the whole train split at the end


@dataclasses.dataclass
class BenchConfig:
    """How ``motionhub bench`` streams: each value can also be given on its command line."""

    window: Annotated[int | None, Bounds(low=1)] = None  # frames per streaming window; null = data.window
    # frames between window starts (a new window every S frames); null = window
    stride: Annotated[int | None, Bounds(low=1)] = None
    windows: Annotated[int, Bounds(low=1)] = 1000  # windows timed, at most
    warmup: Annotated[int, Bounds(low=0)] = 10  # untimed encodes first
    split: Literal["train", "val", "test"] = "val"  # clips played back to back as the stream
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # bf16 / fp16: autocast, as mixed-precision inference


@dataclasses.dataclass
class ComponentSpec:
    """A recipe section naming a registered component and its keyword arguments."""

    path: str  # YAML path, e.g. "quantizer" or "losses[1]"
    component: Component
    kwargs: dict[str, Any]

    @property
    def name(self) -> str:
        return self.component.name


@dataclasses.dataclass
class DataSpec(ComponentSpec):
    window: Annotated[int, Bounds(low=1)] = 64  # frames per training window (T2M-GPT 64, MotionMillion 96)
    short: Literal["drop", "pad"] = "drop"  # clips shorter than the window: dropped, or padded and masked
    weighting: Literal["uniform", "length"] = "uniform"  # clip choice: uniform, or by number of windows
    store: Literal["packed", "memory"] = "packed"  # packed HDF5 store in the cache, or clips held in memory
    store_dtype: Literal["float32", "float16"] = "float32"  # frames in the packed store
    cache_dir: str | None = None  # packed stores; default $MOTIONHUB_CACHE or ~/.cache/motionhub


@dataclasses.dataclass
class LossSpec(ComponentSpec):
    weight: Annotated[float, Bounds(low=0)] = 1.0
    every: Annotated[int, Bounds(low=1)] = 1  # compute every N steps (expensive losses)
    schedule: list[list[float]] | None = None  # [[step, weight], ...], linear in between


@dataclasses.dataclass
class Recipe:
    source: str
    tree: dict[str, Any]  # the resolved YAML tree, saved into the run directory
    run: RunConfig
    data: DataSpec
    encoder: ComponentSpec
    quantizer: ComponentSpec
    decoder: ComponentSpec
    losses: list[LossSpec]
    train: TrainConfig
    eval: EvalConfig
    bench: BenchConfig = dataclasses.field(default_factory=BenchConfig)
    metrics: list[ComponentSpec] | None = None  # eval.metrics bound to their plugins; None = the defaults

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.tree, sort_keys=False)


COMPONENT_SECTIONS = {"data": "dataset", "encoder": "encoder", "quantizer": "quantizer", "decoder": "decoder"}
SETTING_SECTIONS = {"run": RunConfig, "train": TrainConfig, "eval": EvalConfig, "bench": BenchConfig}
SECTIONS = ("run", "data", "encoder", "quantizer", "decoder", "losses", "train", "eval", "bench")

# Arguments the framework supplies at build time when the recipe leaves them unset.
INJECTED = {
    "dataset": (),
    "encoder": ("format",),
    "quantizer": ("dim",),
    "decoder": ("format", "dim", "encoder"),
    "loss": (),
    "metric": ("codebook_size",),
    "exporter": (),
}


# ---------------------------------------------------------------------------- YAML
class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``2e-4`` as a float (YAML 1.1 wants ``2.0e-4``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)?(?:\.\d*)?[eE][-+]?\d+$|^[-+]?\d[\d_]*\.\d*$|^[-+]?\.\d+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        hint = " (quote values that contain '{', e.g. \"runs/${run.name}\")" if "{" in text and "flow" in str(exc) else ""
        raise MotionhubError(f"{where}: not valid YAML: {problem}{hint}") from None


def read_tree(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            inside = path / "recipe.yaml"
            hint = f", e.g. {inside}" if inside.is_file() else ""
            raise MotionhubError(f"{path} is a directory, not a recipe file: pass a recipe's YAML file{hint}")
        raise MotionhubError(f"recipe file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except PermissionError:
        raise MotionhubError(f"{path}: cannot read the recipe file: permission denied. "
                             f"Make it readable (chmod u+r {path}) or pass another recipe") from None
    except OSError as exc:
        raise MotionhubError(f"{path}: cannot read the recipe file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise MotionhubError(f"{path}: not a text recipe: byte {exc.start} is not UTF-8 "
                             f"(0x{exc.object[exc.start]:02x}). A recipe is a YAML text file saved as UTF-8; "
                             f"is this the right file?") from None
    if "\x00" in text:
        raise MotionhubError(f"{path}: not a text recipe: it holds NUL bytes (a binary file?). "
                             f"A recipe is a YAML text file saved as UTF-8; is this the right file?")
    tree = parse_yaml(text, str(path))
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise MotionhubError(f"{path}: a recipe is a mapping of sections ({', '.join(SECTIONS)}), got {type(tree).__name__}")
    return tree


# ---------------------------------------------------------------------------- overrides
def apply_overrides(tree: dict[str, Any], overrides: list[str]) -> list[tuple[str, str]]:
    """Set ``a.b.c=value`` items in place (value parsed as YAML); returns the problems."""
    problems = []
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            problems.append(("", f"override {item!r} is not key=value (e.g. train.lr=1e-4)"))
            continue
        parts = _split_path(key.strip())
        value = parse_yaml(text, f"override {item!r}") if text.strip() else ""
        node: Any = tree
        for i, part in enumerate(parts[:-1]):
            nxt = _child(node, part)
            if nxt is None:
                if isinstance(node, dict):
                    node[part] = nxt = {}
                else:
                    problems.append((".".join(parts[: i + 1]), f"override {item!r}: no such list item"))
                    break
            node = nxt
        else:
            if isinstance(node, list) and parts[-1].isdigit() and int(parts[-1]) < len(node):
                node[int(parts[-1])] = value
            elif isinstance(node, dict):
                node[parts[-1]] = value
            else:
                problems.append((key, f"override {item!r}: cannot set a key inside {type(node).__name__}"))
    return problems


def _split_path(path: str) -> list[str]:
    return [p for p in re.split(r"[.\[\]]+", path) if p]


def _child(node: Any, part: str) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return node[int(part)]
    return None


# ---------------------------------------------------------------------------- ${...}
_REF = re.compile(r"\$\{([^}]+)\}")


def resolve_references(tree: dict[str, Any]) -> list[tuple[str, str]]:
    """Replace ``${a.b}`` in strings, in place; a string that is one reference keeps the type."""
    problems: list[tuple[str, str]] = []

    def lookup(ref: str, path: str, stack: tuple[str, ...]) -> Any:
        if ref in stack:
            raise _Cycle(" -> ".join(stack + (ref,)))
        node: Any = tree
        for part in _split_path(ref):
            node = _child(node, part)
            if node is None:
                raise KeyError(ref)
        return resolve(node, path, stack + (ref,))

    def resolve(value: Any, path: str, stack: tuple[str, ...]) -> Any:
        if isinstance(value, dict):
            return {k: resolve(v, f"{path}.{k}" if path else k, stack) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v, f"{path}[{i}]", stack) for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value
        whole = _REF.fullmatch(value)
        if whole:
            return lookup(whole.group(1).strip(), path, stack)
        return _REF.sub(lambda m: str(lookup(m.group(1).strip(), path, stack)), value)

    for section in list(tree):
        try:
            tree[section] = resolve(tree[section], section, ())
        except KeyError as exc:
            problems.append((section, f"reference ${{{exc.args[0]}}} names nothing in the recipe"))
        except _Cycle as exc:
            problems.append((section, f"references form a cycle: {exc}"))
    return problems


class _Cycle(Exception):
    pass


# ---------------------------------------------------------------------------- validation
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

    if problems:
        raise RecipeError(source, problems)
    return Recipe(source=source, tree=tree, run=settings["run"], train=settings["train"], eval=settings["eval"],
                  bench=settings["bench"], losses=losses, metrics=metrics, **components)


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
    if train is not None and train.schedule == "multistep":
        late = [m for m in train.milestones if m >= train.iters]
        if late:
            problems.append(("train.milestones", f"{late[0]} is not within the run: milestones count steps after "
                                                 f"warm-up, and the run is train.iters={train.iters} steps long. Use "
                                                 f"milestones below {train.iters}, raise train.iters, or drop them "
                                                 f"with train.milestones=[]"))
    if ev is not None and ev.min_length is not None and ev.max_length is not None and ev.min_length > ev.max_length:
        problems.append(("eval.min_length", f"{ev.min_length} is above eval.max_length={ev.max_length}, so every val "
                                            f"clip would be skipped. Lower eval.min_length or raise eval.max_length"))
    return problems


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
            if (problem := value_problem(extras[key], hints.get(key), bounds.get(key))) is not None:
                problems.append((f"{path}.{key}", problem))
                del extras[key]
        specs.append(LossSpec(spec.path, spec.component, spec.kwargs, **extras))
    return specs
