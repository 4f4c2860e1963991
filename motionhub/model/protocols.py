"""The evaluation-protocol contract: a standard evaluation that a plugin offers (a field's table,
with its own split, repetitions and networks), run on a trained run by
``motionhub eval RUN_DIR --protocol NAME`` and, where a recipe lists it under ``eval.protocols``,
at the end of training into the run's report.

A protocol plugin registers its class with ``register_protocols``; its constructor arguments are
its settings (recipe keys of an ``eval.protocols`` entry, ``--set key=value`` on the command
line), checked like any component's. The core never names one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from motionhub.data.dataset import Dataset
from motionhub.data.formats import MotionFormat
from motionhub.recipes import Recipe


@dataclasses.dataclass
class ProtocolRun:
    """What a protocol evaluates: a trained model, its data set and the statistics it trained with.

    path:       the run directory.
    checkpoint: the checkpoint file the weights come from.
    step:       the training step of those weights.
    recipe:     the run's recipe (its data arguments say which statistics normalised the data).
    dataset:    the run's data set, built from the recipe.
    format:     the data format with the run's normalisation statistics.
    model:      the tokenizer, in eval mode.
    """

    path: Path
    checkpoint: Path
    step: int
    recipe: Recipe
    dataset: Dataset
    format: MotionFormat
    model: Any


class Protocol:
    """Base class for protocol plugins.

    Must provide:
      ``evaluate(run: ProtocolRun, device: str | None = None, on_repeat=None) -> dict``: the
          protocol's figures, JSON-ready, holding at least ``protocol`` (its name), ``split``,
          ``repeats`` (1 for a single pass), ``table`` (the reported figures) and
          ``repetitions`` (every repetition's figures); ``on_repeat(i)`` is called after each
          repetition, for progress.
      ``render(result) -> str``: the table as text, in the field's order, with the units, the
          split, the number of repetitions and which statistics normalised what.
    Settings every protocol takes, so that ``--split``, ``--repeats`` and ``--seed`` reach it:
      ``split``, ``repeats``, ``seed`` (constructor arguments with the protocol's defaults).
    """

    split: str
    repeats: int
    seed: int

    def evaluate(self, run: ProtocolRun, device: str | None = None,
                 on_repeat: Callable[[int], None] | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def render(self, result: dict[str, Any]) -> str:
        raise NotImplementedError
