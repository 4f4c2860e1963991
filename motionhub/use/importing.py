"""Checkpoints written elsewhere -> motionhub run directories: the importer contract and its machinery.

An importer plugin registers a class with ``register_importers``;
``motionhub import NAME CHECKPOINT --out RUN_DIR [options]`` builds it from its options and
calls ``import_run``. What a run directory holds after an import is what training writes:
``recipe.yaml`` (resolved) and ``checkpoints/last.pt`` in the trainer's format, so
``motionhub eval`` / ``encode`` read it and ``motionhub train RUN_DIR`` continues it. The
optimizer starts fresh (another code base's optimizer moments are not carried over) and the
random generators start from the recipe's seed.

Most importers bring a tokenizer's weights from another code base: ``StateDictImporter``
does everything but naming the tensors. The recipe names the model; its encoder, decoder and
quantizer are built and every tensor of the checkpoint is given its place by name (the
importer's ``key_map``). Every checkpoint tensor must be used and every model tensor filled
(or derived), with equal shapes; otherwise a ``MotionhubError`` lists what does not fit and
what the checkpoint reveals about its model.

Nothing heavy is imported with this module (so plugins can subclass its classes and still load
without torch); the machinery imports what it needs when it runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from motionhub.errors import DataError, MotionhubError

if TYPE_CHECKING:
    import torch

    from motionhub.data.formats import MotionFormat
    from motionhub.model.tokenizer import Tokenizer
    from motionhub.recipes import Recipe
    from motionhub.train.rundir import RunDir

WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile
LISTED = 10  # unmatched keys shown in an error


@dataclasses.dataclass
class Imported:
    """What an import wrote: the run directory, the step it starts at, the tensors it placed."""

    run: Path
    step: int
    tensors: int  # checkpoint tensors given a place in the model


class Importer:
    """A checkpoint written elsewhere, turned into a motionhub run directory.

    An importer's constructor keyword arguments are its options: ``motionhub import NAME
    CHECKPOINT --out RUN_DIR --option value`` passes them, typed and documented as a recipe
    component's arguments are (annotations, defaults, one docstring line ``name: meaning`` each).
    It provides ``import_run(checkpoint, out) -> Imported``: read ``checkpoint`` and write the run
    directory ``out`` (``new_run_dir`` refuses one that already holds a run; ``write_run`` writes
    ``recipe.yaml`` and ``checkpoints/last.pt`` as training does). A problem the user can fix (a
    file that does not fit, a missing option) raises ``MotionhubError`` naming the file and the fix.
    """

    def import_run(self, checkpoint: Path, out: Path) -> Imported:
        """Read ``checkpoint`` and write the run directory ``out``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement import_run(checkpoint, out)")


@dataclasses.dataclass
class ForeignCheckpoint:
    """A checkpoint written elsewhere, as read: its weights (wrapper prefixes removed) and what it
    says about its training. ``source`` names the code base that wrote it."""

    source: str
    path: Path
    state_dict: dict[str, torch.Tensor]
    iteration: int | None  # optimizer steps after warm-up, where the checkpoint counts them
    samples: int | None  # samples seen, where the checkpoint counts those instead
    config: dict[str, Any]  # its training configuration, where it saved one


# ---------------------------------------------------------------------------- the state-dict importer
class StateDictImporter(Importer):
    """A tokenizer's weights from another code base, placed by name into the model a recipe builds.

    recipe: recipe describing the checkpoint's model and data
    no_data: do not read the data set; take the statistics from --stats-mean / --stats-std
    stats_mean: with --no-data: mean.npy the model was trained with
    stats_std: with --no-data: std.npy the model was trained with
    overrides: recipe overrides, e.g. data.root=/elsewhere

    Subclasses say where the checkpoint keeps its weights (``state_entry``) and its training
    counters, and implement ``key_map``; ``skipped``, ``derived_keys``/``derive``, ``check`` and
    ``likely_cause`` refine it. What describes the checkpoint's layout is a class method, usable
    without options (``importer_class(name).convert(model, state)``); ``import_run`` calls them
    through the instance, so a subclass whose layout depends on its options may override them as
    instance methods.
    """

    source = ""  # the code base that writes these checkpoints, in messages and the run's record
    state_entry: str | None = None  # top-level key holding the weights (absent: the file is the state dict)
    iteration_key: str | None = None  # top-level key counting optimizer steps after warm-up
    samples_key: str | None = None  # top-level key counting samples seen (``config["batch_size"]`` a step)
    quantizer_hint = ""  # which quantizers fit these checkpoints, for the message when the recipe's does not

    def __init__(self, recipe: Path, no_data: bool = False, stats_mean: Path | None = None,
                 stats_std: Path | None = None, overrides: Sequence[str] = ()):
        given = stats_mean is not None, stats_std is not None
        if no_data and not all(given):
            raise MotionhubError("--no-data needs both --stats-mean and --stats-std (the .npy statistics the "
                                 "checkpoint was trained with)")
        if any(given) and not no_data:
            raise MotionhubError("--stats-mean / --stats-std are read only with --no-data; without it the "
                                 "statistics come from the recipe's data set")
        self.recipe, self.overrides = Path(recipe), list(overrides)
        self.stats = (stats_mean, stats_std) if no_data else None

    # ------------------------------------------------------------------ what subclasses describe
    @classmethod
    def key_map(cls, model: Tokenizer, reference: Mapping[str, torch.Tensor]) -> dict[str, str]:
        """``{model key: checkpoint key}`` for every model tensor read from the checkpoint."""
        raise NotImplementedError(f"{cls.__name__} does not implement key_map(model, reference)")

    @classmethod
    def skipped(cls, key: str) -> bool:
        """Whether checkpoint tensor ``key`` holds no trained state (a fixed filter, a mask)."""
        return False

    @classmethod
    def part_keys(cls, model: Tokenizer, method: str, name: str, prefixes: Mapping[str, str],
                  **options: Any) -> dict[str, str]:
        """``{model key: checkpoint key}`` of the encoder and decoder, each from its own ``method()``
        (``{own key: the reference's key}``), the checkpoint keys under ``prefixes[part]``; a part
        without ``method`` is refused, naming the component ``name`` to use instead. ``options`` go
        to the encoder's ``method``."""
        keys = {}
        for part in ("encoder", "decoder"):
            module = getattr(model, part)
            if not hasattr(module, method):
                raise MotionhubError(f"the recipe's {part} ({type(module).__name__}) has no counterpart in a "
                                     f"{cls.source} checkpoint (it declares no {method}()); "
                                     f"use {part}: {{name: {name}}}")
            mapping = getattr(module, method)(**(options if part == "encoder" else {}))
            keys |= {f"{part}.{ours}": prefixes[part] + ref for ours, ref in mapping.items()}
        return keys

    @classmethod
    def quantizer_keys(cls, model: Tokenizer, prefix: str) -> dict[str, str]:
        """``{model key: checkpoint key}`` of the quantizer, from its ``reference_key_map()``, for a
        checkpoint that keeps its quantizer's tensors under ``prefix``."""
        quantizer = model.quantizer
        if not hasattr(quantizer, "reference_key_map"):
            hint = f"; {cls.quantizer_hint}" if cls.quantizer_hint else ""
            raise MotionhubError(f"the recipe's quantizer ({type(quantizer).__name__}) has no counterpart in a "
                                 f"{cls.source or 'foreign'} checkpoint (it declares no reference_key_map()){hint}")
        return {f"quantizer.{ours}": prefix + ref for ours, ref in quantizer.reference_key_map().items()}

    @classmethod
    def derived_keys(cls, model: Tokenizer) -> set[str]:
        """Model tensors computed from the others (``derive``) rather than read: by default the
        quantizer state its ``reference_key_map`` leaves out (e.g. EMA sums and counts)."""
        quantizer = model.quantizer
        if not hasattr(quantizer, "reference_key_map"):
            return set()
        mapped = set(quantizer.reference_key_map())
        return {f"quantizer.{key}" for key in quantizer.state_dict() if key not in mapped}

    @classmethod
    def derive(cls, model: Tokenizer, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The ``derived_keys`` tensors, from the tensors read: by default the quantizer's
        ``reference_derived_state``."""
        quantizer = model.quantizer
        if not hasattr(quantizer, "reference_derived_state"):
            return {}
        read = {key.removeprefix("quantizer."): value for key, value in state.items() if key.startswith("quantizer.")}
        return {f"quantizer.{key}": value for key, value in quantizer.reference_derived_state(read).items()}

    @classmethod
    def check(cls, model: Tokenizer, reference: Mapping[str, torch.Tensor]) -> None:
        """Refuse, with a ``MotionhubError``, a checkpoint that fits by name and shape but not otherwise."""

    @classmethod
    def likely_cause(cls, reference: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> str:
        """What to change in the recipe when the checkpoint does not fit (appended to the error)."""
        return ""

    # ------------------------------------------------------------------ the machinery
    @classmethod
    def read(cls, path: str | Path) -> ForeignCheckpoint:
        """The weights and training counters of a torch checkpoint file, read weights-only.

        An importer of another file format overrides it (as an instance method where its options
        matter) and returns a ``ForeignCheckpoint`` all the same."""
        path = Path(path)
        checkpoint = read_foreign_checkpoint(path, cls.source)
        if not isinstance(checkpoint, dict):
            raise MotionhubError(f"{path}: expected a dict, got {type(checkpoint).__name__}")
        entry = cls.state_entry
        state = checkpoint.get(entry, checkpoint) if entry else checkpoint
        if not _is_state_dict(state):
            where = f"no '{entry}' state dict, where" if entry else "no state dict, which"
            raise MotionhubError(f"{path} has {where} {cls.source} checkpoints keep their weights "
                                 f"(top-level keys: {', '.join(map(str, checkpoint)) or 'none'}"
                                 f"{_other_entries(cls, entry)})")
        config = checkpoint.get("config")
        return ForeignCheckpoint(cls.source, path, strip_wrappers(state),
                         _int_or_none(checkpoint.get(cls.iteration_key)) if cls.iteration_key else None,
                         _int_or_none(checkpoint.get(cls.samples_key)) if cls.samples_key else None,
                         config if isinstance(config, dict) else {})

    @classmethod
    def convert(cls, model: Tokenizer, reference: Mapping[str, torch.Tensor], checkpoint: str = "the checkpoint",
                config: Mapping[str, Any] | None = None) -> dict[str, torch.Tensor]:
        """The model's full state dict from a checkpoint's state dict; a ``MotionhubError`` when they do not fit."""
        return _convert(cls, model, reference, checkpoint, config)

    def import_run(self, checkpoint: Path, out: Path) -> Imported:
        """Write the run directory ``out`` (recipe.yaml, checkpoints/last.pt) for ``checkpoint``."""
        from motionhub.model.build import build_tokenizer
        from motionhub.recipes import load_recipe

        run = new_run_dir(out)
        recipe = load_recipe(self.recipe, [*self.overrides, f"run.out={run.path}"])
        reference = self.read(checkpoint)
        try:
            fmt = statistics_format(*self.stats) if self.stats else training_format(recipe)
        except DataError as exc:
            raise DataError(f"{exc}\nWithout the data at hand, import with --no-data --stats-mean MEAN.npy "
                            f"--stats-std STD.npy.") from None
        model = build_tokenizer(recipe, fmt)
        model.load_state_dict(_convert(self, model, reference.state_dict, str(reference.path), reference.config))
        step = completed_steps(reference, recipe.train.warmup_iters)
        record = {"source": reference.source, "checkpoint": str(reference.path.resolve()),
                  "iteration": reference.iteration, "samples": reference.samples}
        write_run(run, recipe, model, fmt, step, record)
        return Imported(run.path, step, sum(1 for key in reference.state_dict if not self.skipped(key)))


def _convert(layout: StateDictImporter | type[StateDictImporter], model: Tokenizer,
             reference: Mapping[str, torch.Tensor], checkpoint: str, config: Mapping[str, Any] | None
             ) -> dict[str, torch.Tensor]:
    """``convert`` through ``layout``: the importer class, or an instance whose options shape its names."""
    keys = layout.key_map(model, reference)
    derived = layout.derived_keys(model)
    problems = fit_problems(model.state_dict(), reference, keys, layout.skipped, derived)
    if problems:
        cause = layout.likely_cause(reference, config or {})
        raise MotionhubError(f"{checkpoint} does not fit the recipe's model:\n" + "\n".join(problems)
                             + (f"\n{cause}" if cause else ""))
    layout.check(model, reference)
    state = {ours: reference[ref] for ours, ref in keys.items()}
    return state | layout.derive(model, state)


def _is_state_dict(state: Any) -> bool:
    import torch

    return isinstance(state, dict) and bool(state) and all(isinstance(v, torch.Tensor) for v in state.values())


def _other_entries(cls: type, entry: str | None) -> str:
    """``; x and y checkpoints keep 'model'``: where the other registered state-dict importers look."""
    from motionhub.plugins.manager import get_registry

    keep: dict[str, list[str]] = {}
    for component in get_registry(strict=False).components("importer"):
        try:
            other = component.cls
        except MotionhubError:
            continue
        if isinstance(other, type) and issubclass(other, StateDictImporter) and other.state_entry \
                and other.state_entry != entry:
            keep.setdefault(other.state_entry, []).append(component.name)
    return "".join(f"; {' and '.join(names)} checkpoints keep '{e}'" for e, names in sorted(keep.items()))


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# ---------------------------------------------------------------------------- by registered name
def importer_class(name: str) -> type:
    """The class registered as importer ``name`` (an unknown name lists the registered ones)."""
    from motionhub.plugins.manager import get_registry

    return get_registry().get("importer", name).cls


def read_reference(path: str | Path, name: str) -> ForeignCheckpoint:
    """``importer_class(name).read(path)``."""
    return importer_class(name).read(path)


def key_map(name: str, model: Tokenizer, reference: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """``{model key: checkpoint key}`` of importer ``name`` for ``model``."""
    return importer_class(name).key_map(model, reference)


def convert_state_dict(name: str, model: Tokenizer, reference: Mapping[str, torch.Tensor],
                       checkpoint: str = "the checkpoint", config: Mapping[str, Any] | None = None
                       ) -> dict[str, torch.Tensor]:
    """``model``'s full state dict from a state dict of the kind importer ``name`` reads."""
    return importer_class(name).convert(model, reference, checkpoint, config)


def import_checkpoint(name: str, checkpoint: str | Path, recipe_path: str | Path, out: str | Path,
                      overrides: Sequence[str] = (), stats: tuple[str | Path, str | Path] | None = None) -> Imported:
    """Import ``checkpoint`` with the state-dict importer ``name`` into the run directory ``out``.

    ``stats``: (mean.npy, std.npy) to use instead of building the recipe's data set.
    """
    options = {"no_data": True, "stats_mean": Path(stats[0]), "stats_std": Path(stats[1])} if stats else {}
    return importer_class(name)(recipe=Path(recipe_path), overrides=overrides, **options).import_run(
        Path(checkpoint), Path(out))


# ---------------------------------------------------------------------------- reading
def read_foreign_checkpoint(path: Path, source: str = "another code base's") -> Any:
    """What a checkpoint file holds, read weights-only; a motionhub checkpoint is refused (it needs no import)."""
    from motionhub.train.checkpoint import UnsafeCheckpoint, is_motionhub_checkpoint, read_torch_file, unsafe_globals

    try:
        checkpoint = read_torch_file(path)
    except UnsafeCheckpoint as exc:
        if unsafe_globals(path) and all(name.startswith("numpy") for name in unsafe_globals(path)):
            raise UnsafeCheckpoint(f"{exc}\nIf it is a checkpoint of an older motionhub version, it needs no import: "
                                   f"its run directory works with 'motionhub eval' / 'train RUN_DIR' as it is.") from None
        raise
    if is_motionhub_checkpoint(checkpoint):
        raise MotionhubError(f"{path} is a motionhub checkpoint (written by 'motionhub train' or 'import'), not a "
                             f"{source} one: it needs no import. Use the run directory that holds it "
                             f"({path.parent.parent}) directly: 'motionhub eval RUN_DIR', 'motionhub train RUN_DIR' "
                             f"to continue it.")
    return checkpoint


def strip_wrappers(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Keys without the prefixes DistributedDataParallel (``module.``) and torch.compile (``_orig_mod.``) add."""
    out = {}
    for key, value in state_dict.items():
        while key.startswith(WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        out[key.replace("._orig_mod.", ".")] = value
    return out


def completed_steps(reference: ForeignCheckpoint, warmup_iters: int) -> int:
    """Optimizer steps the checkpoint had taken, counted as the trainer counts them (warm-up included).

    A count of steps after warm-up gets the warm-up added; a count of samples is divided by the
    configuration's ``batch_size``. A checkpoint that counts neither starts at step 0.
    """
    if reference.iteration is not None:
        return warmup_iters + reference.iteration
    batch = _int_or_none(reference.config.get("batch_size"))
    if reference.samples is not None and batch:
        return reference.samples // batch
    return 0


def fit_problems(ours: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor], keys: Mapping[str, str],
                 skip: Callable[[str], bool], derived: set[str]) -> list[str]:
    """What keeps ``reference`` from filling ``ours`` through ``keys``: one line per kind of problem."""
    wanted = set(keys.values())
    unused = [k for k in reference if k not in wanted and not skip(k)]
    absent = [f"{ref} (for {mine})" for mine, ref in keys.items() if ref not in reference]
    unmapped = [k for k in ours if k not in keys and k not in derived]
    shapes = [(mine, ref) for mine, ref in keys.items()
              if ref in reference and reference[ref].shape != ours[mine].shape]
    problems = []
    for items, what in ((unused, "checkpoint tensors have no place in the model"),
                        (absent, "model tensors are missing from the checkpoint"),
                        (unmapped, "model tensors have no reference name")):
        if items:
            more = f", ... ({len(items) - LISTED} more)" if len(items) > LISTED else ""
            problems.append(f"  {len(items)} {what}: {', '.join(items[:LISTED])}{more}")
    if shapes:
        mine, ref = shapes[0]
        problems.append(f"  {len(shapes)} shapes differ; the first: {ref} is {tuple(reference[ref].shape)} in the "
                        f"checkpoint, {mine} is {tuple(ours[mine].shape)} in the model")
    return problems


# ---------------------------------------------------------------------------- formats
def training_format(recipe: Recipe) -> MotionFormat:
    """The data set's format with the statistics training would normalise with."""
    from motionhub.data.batches import with_train_statistics
    from motionhub.data.windows import ClipBank
    from motionhub.model.build import build_dataset

    dataset = build_dataset(recipe)
    if dataset.format.mean is not None:
        return dataset.format
    return with_train_statistics(dataset.format, ClipBank.from_clips(dataset.clips("train")).frames)


def statistics_format(mean_path: str | Path, std_path: str | Path) -> MotionFormat:
    """A format known only by its statistics: frames shaped like the mean array.

    Enough to build an encoder and decoder, which read only the frame shape.
    """
    from motionhub.data.formats import MotionFormat

    mean, std = (_load_array(p) for p in (mean_path, std_path))
    if mean.shape != std.shape:
        raise MotionhubError(f"statistics differ in shape: mean {mean.shape} ({mean_path}), "
                             f"std {std.shape} ({std_path})")
    return MotionFormat(name="statistics", feature_shape=tuple(mean.shape), fps=0.0).with_stats(mean, std)


def _load_array(path: str | Path):
    import numpy as np

    try:
        return np.load(path)
    except (OSError, ValueError) as exc:
        raise MotionhubError(f"cannot read statistics {path}: {exc}") from None


# ---------------------------------------------------------------------------- the run directory
def new_run_dir(out: str | Path) -> RunDir:
    """The run directory ``out`` to import into; one that already holds a run is refused."""
    from motionhub.train.rundir import RunDir

    run = RunDir(Path(out))
    if (run.path / "checkpoints").exists():
        raise MotionhubError(f"{run.path} already holds a run; choose another --out")
    return run


def write_run(run: RunDir, recipe: Recipe, model: Tokenizer, fmt: MotionFormat, step: int,
              record: Mapping[str, Any]) -> None:
    """``checkpoints/last.pt`` as training writes it, for a run that starts at ``step`` with a fresh
    optimizer and the recipe's seed, and the resolved ``recipe.yaml``. ``record`` (where the
    weights came from) is kept as the checkpoint's ``state["imported"]``."""
    from motionhub.plugins.manager import versions
    from motionhub.train.checkpoint import save_checkpoint

    payload = {"model": model.state_dict(), "optimizer": fresh_optimizer_state(model, recipe), "scaler": None,
               "state": {"step": step, "imported": dict(record)}, "rng": [seeded_rng_state(recipe.run.seed)],
               "recipe": recipe.tree, "versions": versions(), "stats": {"mean": fmt.mean, "std": fmt.std}}
    save_checkpoint(payload, run.last)
    (run.path / "recipe.yaml").write_text(recipe.to_yaml())


def fresh_optimizer_state(model: Tokenizer, recipe: Recipe) -> dict:
    """The state of a new AdamW over ``model`` with the recipe's betas and weight decay: no moments
    yet. (The learning rate in it does not matter: training sets the rate of every step itself.)"""
    import torch

    cfg = recipe.train
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    return optimizer.state_dict()


def seeded_rng_state(seed: int) -> dict:
    """The random generators' state right after seeding every one with ``seed``, as a checkpoint
    keeps it; this process's own generators are left alone."""
    import random

    import numpy as np
    import torch

    state = {"python": random.Random(seed).getstate(), "numpy": np.random.RandomState(seed).get_state(),
             "torch": torch.Generator().manual_seed(seed).get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.Generator(device="cuda").manual_seed(seed).get_state()
    return state
