"""From a data-set plugin to what the training loop consumes: batches, eval batches, statistics."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator

import numpy as np
import torch

from .dataset import Dataset
from .formats import MotionFormat
from .layouts import group_averaged_std
from .recipe import EvalConfig, Recipe
from .windows import ClipBank, EvalBatches, WindowSampler


@dataclasses.dataclass
class TrainingData:
    """Everything the loop needs from the data, built once per run.

    ``unit`` is the model's temporal down-sampling: evaluation crops each clip to a
    multiple of it. Set it once the model is built.
    """

    format: MotionFormat  # with the statistics used for normalisation
    description: str
    sampler: WindowSampler
    train: ClipBank
    val: ClipBank | None
    eval_config: EvalConfig
    rank: int = 0
    world_size: int = 1
    unit: int = 1

    @property
    def batches_per_epoch(self) -> int:
        return self.sampler.batches_per_epoch

    @property
    def train_clips(self) -> int:
        return len(self.train)

    @property
    def train_frames(self) -> int:
        return int(self.train.offsets[-1])

    @property
    def dropped(self) -> int:
        return self.sampler.dropped

    def train_batch(self, index: int, device: torch.device) -> dict:
        batch = self.sampler.batch(index)
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def example_window(self) -> torch.Tensor:
        """One normalised training window (1, window, *F), e.g. for counting FLOPs."""
        return self.sampler.batch(0)["motion"][:1]

    def val_batches(self) -> Iterator[dict]:
        """This process's share of the val split: whole clips within the length bounds."""
        ev = self.eval_config
        return self._eval_batches(self.val, min_length=ev.min_length, max_length=ev.max_length)

    def train_eval_batches(self) -> Iterator[dict]:
        """This process's share of the whole train split, as whole clips."""
        return self._eval_batches(self.train)

    def _eval_batches(self, source, **bounds) -> Iterator[dict]:
        if source is None:
            return iter(())
        batches = EvalBatches(source, self.format, unit=self.unit, batch_size=self.eval_config.batch_size, **bounds)
        return itertools.islice(iter(batches), self.rank, None, self.world_size)


def with_train_statistics(fmt: MotionFormat, frames: np.ndarray) -> MotionFormat:
    """``fmt`` with statistics computed from the train frames when the data set gave none."""
    if fmt.mean is not None:
        return fmt
    flat = frames.reshape(len(frames), -1).astype(np.float64)
    return fmt.with_stats(flat.mean(axis=0), group_averaged_std(flat, fmt))


def prepare_data(recipe: Recipe, dataset: Dataset, accelerator, console) -> TrainingData:
    """Read the train and val splits, fix the statistics, and set up sampling."""
    train = ClipBank.from_clips(dataset.clips("train"))
    fmt = with_train_statistics(dataset.format, train.frames)
    val_clips = list(dataset.clips("val"))
    rank, world = accelerator.process_index, accelerator.num_processes
    sampler = WindowSampler(train, fmt, recipe.data.window, recipe.train.batch_size, seed=recipe.run.seed,
                            rank=rank, world_size=world)
    return TrainingData(format=fmt, description=dataset.describe(), sampler=sampler, train=train,
                        val=ClipBank.from_clips(val_clips) if val_clips else None,
                        eval_config=recipe.eval, rank=rank, world_size=world)
