"""Load a trained run back: its recipe, data format (with the statistics it trained with) and model."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from motionhub.model.build import build_dataset, build_tokenizer
from motionhub.train.checkpoint import CheckpointError, check_model_fits, load_checkpoint
from motionhub.data.batches import open_split
from motionhub.data.dataset import Dataset
from motionhub.errors import MotionhubError
from motionhub.data.formats import MotionFormat
from motionhub.recipes import Recipe, recipe_from_tree
from motionhub.train.rundir import RunDir
from motionhub.data.store import Store
from motionhub.model.tokenizer import Tokenizer
from motionhub.data.windows import ClipBank


@dataclasses.dataclass
class LoadedRun:
    run: RunDir
    recipe: Recipe
    dataset: Dataset
    format: MotionFormat  # normalisation statistics as used in training
    model: Tokenizer  # in eval mode, on the CPU
    step: int
    weights: Path | None = None  # the file the weights came from: a checkpoint, or a package's weights

    def split(self, name: str, console=None) -> Store | ClipBank:
        """The clips of split ``name`` as training reads them: the packed store (packing it
        first if needed) or, with ``data.store: memory``, a bank in memory."""
        if self.recipe.data.store == "packed":
            store = open_split(self.dataset, name, self.recipe, console, required=False)
        else:
            clips = list(self.dataset.clips(name))
            store = ClipBank.from_clips(clips) if clips else None
        if store is None:
            raise MotionhubError(f"split '{name}' of {self.dataset.describe()} has no clips")
        return store


def load_run(run_dir: str | Path, checkpoint: str = "best", overrides: list[str] | None = None) -> LoadedRun:
    """The model of ``run_dir`` from ``checkpoints/<checkpoint>.pt`` (``best`` falls back to ``last``).

    ``overrides`` change the recipe before the data set is built, e.g. ``data.root=/elsewhere``.
    A packaged tokenizer (``motionhub package``) loads in place of a run directory.
    """
    from motionhub.use.package import is_package, load_package

    if is_package(run_dir):
        return load_package(run_dir, checkpoint, overrides)
    run = RunDir(Path(run_dir))
    if not (run.path / "recipe.yaml").is_file():
        raise MotionhubError(f"{run.path} is not a run directory (no recipe.yaml) nor a packaged tokenizer (no "
                             f"manifest.json); pass the folder 'motionhub train' printed at the end")
    path = run.path / "checkpoints" / f"{checkpoint}.pt"
    if checkpoint == "best" and not path.is_file():
        path = run.last
    state = load_checkpoint(path)
    recipe = recipe_from_tree(state["recipe"], str(run.path / "recipe.yaml"), overrides)
    dataset = build_dataset(recipe)
    fmt = dataset.format
    stats = state.get("stats") or {}
    changed = f" (overrides: {' '.join(overrides)})" if overrides else ""
    if stats.get("mean") is not None:
        mean, std = np.asarray(stats["mean"]), np.asarray(stats["std"])
        if mean.size != math.prod(fmt.feature_shape) or std.shape != mean.shape:
            raise CheckpointError(
                f"{path} was trained on frames of shape {tuple(mean.shape)} (its normalisation statistics), "
                f"but the recipe's data{changed}, {dataset.describe()}, has frames of shape "
                f"{tuple(fmt.feature_shape)}; use the data layout the run was trained with.")
        fmt = fmt.with_stats(mean, std)
    model = build_tokenizer(recipe, fmt)
    check_model_fits(state["model"], model, path,
                     f"The run's recipe{changed} builds another model than the one trained"
                     + ("; drop the overrides that change its shape or the data layout." if overrides else "."))
    model.load_state_dict(state["model"])
    model.eval()
    return LoadedRun(run, recipe, dataset, fmt, model, state["state"]["step"] if "state" in state else 0, path)
