"""From a data-set plugin to what the training loop consumes: batches, eval batches, statistics."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
from collections.abc import Iterator

import numpy as np
import torch

from motionhub.data.dataset import Dataset
from motionhub.data.formats import MotionFormat
from motionhub.data.layouts import group_averaged_std
from motionhub.recipes import EvalConfig, Recipe
from motionhub.data.store import EmptySplitError, Store, open_or_pack, pack_part, store_fingerprint
from motionhub.data.windows import ClipBank, EvalBatches, WindowSampler


@dataclasses.dataclass
class TrainingData:
    """Everything the loop needs from the data, built once per run.

    The eval batches take ``unit``, the model's temporal down-sampling (each clip is cropped
    to a multiple of it), from the caller: the data are prepared before the model exists.
    """

    format: MotionFormat  # with the statistics used for normalisation
    description: str
    sampler: WindowSampler
    train: ClipBank | Store
    val: ClipBank | Store | None
    eval_config: EvalConfig
    rank: int = 0
    world_size: int = 1
    captions: bool = False  # batches carry one caption per window or clip (data.captions)

    @property
    def batches_per_epoch(self) -> int:
        return self.sampler.batches_per_epoch

    @property
    def train_clips(self) -> int:
        return len(self.train)

    @property
    def usable_train_clips(self) -> int:
        """Train clips the sampler draws windows from (those it does not leave out)."""
        return len(self.sampler.clips)

    @property
    def train_frames(self) -> int:
        return int(self.train.offsets[-1])

    @property
    def dropped(self) -> int:
        return self.sampler.dropped

    def dropped_summary(self) -> str:
        """The train clips the sampler leaves out, counted and named (``WindowSampler.dropped_summary``)."""
        return self.sampler.dropped_summary()

    def train_batch(self, index: int, device: torch.device) -> dict:
        batch = self.sampler.batch(index)
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def example_window(self) -> torch.Tensor:
        """One normalised training window (1, window, *F), e.g. for counting FLOPs."""
        return self.sampler.batch(0)["motion"][:1]

    def val_batches(self, unit: int) -> Iterator[dict]:
        """This process's share of the val split: whole clips within the length bounds, cropped to a
        multiple of ``unit`` frames."""
        ev = self.eval_config
        return self._eval_batches(self.val, unit, min_length=ev.min_length, max_length=ev.max_length)

    def train_eval_batches(self, unit: int) -> Iterator[dict]:
        """This process's share of the whole train split, as whole clips cropped to a multiple of ``unit``."""
        return self._eval_batches(self.train, unit)

    def train_subset(self, unit: int) -> np.ndarray:
        """Source indices of the train clips evaluated like val at the end (``eval.train_clips``).

        The clips val would keep (within the eval length bounds, at least ``unit`` frames), and of
        those at most ``eval.train_clips``, evenly spaced over the split in its order, so the subset
        spans the whole split and is the same in every run on it. Empty when the setting is 0 or
        no clip qualifies.
        """
        ev = self.eval_config
        lengths = self.train.lengths
        keep = lengths >= max(unit, ev.min_length or 0)
        if ev.max_length is not None:
            keep &= lengths <= ev.max_length
        eligible = np.flatnonzero(keep)
        limit = ev.train_clips
        if limit is None or limit >= len(eligible):
            return eligible
        return eligible[np.arange(limit) * len(eligible) // limit]

    def train_subset_batches(self, unit: int) -> Iterator[dict]:
        """This process's share of ``train_subset(unit)``, batched as the val split is."""
        chosen = self.train_subset(unit)
        if not len(chosen):
            return iter(())
        ev = self.eval_config
        return self._eval_batches(ClipSelection(self.train, chosen), unit, min_length=ev.min_length,
                                  max_length=ev.max_length)

    def _eval_batches(self, source, unit: int, **bounds) -> Iterator[dict]:
        if source is None:
            return iter(())
        batches = EvalBatches(source, self.format, unit=unit, batch_size=self.eval_config.batch_size,
                              captions=self.captions, **bounds)
        return itertools.islice(iter(batches), self.rank, None, self.world_size)


class ClipSelection:
    """Some clips of a clip source, read in place (nothing is copied), for ``EvalBatches``.

    ``offsets[i]`` is the first frame of selected clip i in ``frames`` and ``lengths[i]`` its
    length: the selected clips need not lie next to each other.
    """

    def __init__(self, source, indices: np.ndarray):
        self.source, self.indices = source, np.asarray(indices, dtype=np.int64)
        self.frames = source.frames
        self.offsets = source.offsets[self.indices]
        self.lengths = source.lengths[self.indices]

    @property
    def ids(self) -> list[str]:
        ids = self.source.ids
        return [ids[i] for i in self.indices]

    @property
    def texts(self) -> list[str]:
        texts = getattr(self.source, "texts", None) or [""] * len(self.source.lengths)
        return [texts[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)


log = logging.getLogger("motionhub.data.batches")

STD_FLOOR = 1e-3  # keeps constant channels (contacts that never fire) from dividing by ~0


def with_train_statistics(fmt: MotionFormat, frames: np.ndarray) -> MotionFormat:
    """``fmt`` with statistics computed from the train frames when the data set gave none."""
    if fmt.mean is not None:
        return fmt
    flat = frames.reshape(len(frames), -1).astype(np.float64)
    return fmt.with_stats(flat.mean(axis=0), group_averaged_std(flat, fmt, floor=STD_FLOOR))


def prepare_data(recipe: Recipe, dataset: Dataset, accelerator, console) -> TrainingData:
    """Open (packing on first use) the train and val splits, fix the statistics, set up sampling."""
    spec = recipe.data
    if spec.store == "packed":
        # The main process packs first; the others then find the packed files in the cache.
        with accelerator.main_process_first():
            train = open_split(dataset, "train", recipe, console)
            val = open_split(dataset, "val", recipe, console, required=False)
        fmt = dataset.format
        if fmt.mean is None:
            fmt = fmt.with_stats(train.feature_mean(), np.maximum(train.feature_std(per_slice=True), STD_FLOOR))
    else:
        train = ClipBank.from_clips(dataset.clips("train"))
        fmt = with_train_statistics(dataset.format, train.frames)
        val_clips = list(dataset.clips("val"))
        val = ClipBank.from_clips(val_clips) if val_clips else None
    rank, world = accelerator.process_index, accelerator.num_processes
    sampler = WindowSampler(train, fmt, spec.window, recipe.train.batch_size, seed=recipe.run.seed,
                            rank=rank, world_size=world, short=spec.short, weighting=spec.weighting,
                            captions=spec.captions, shards=spec.shards)
    return TrainingData(format=fmt, description=dataset.describe(), sampler=sampler, train=train, val=val,
                        eval_config=recipe.eval, rank=rank, world_size=world, captions=spec.captions)


def open_split(dataset: Dataset, split: str, recipe: Recipe, console, required: bool = True,
               part: tuple[int, int] | None = None) -> Store | None:
    """The split's packed store; the fingerprint covers the recipe's data arguments and plugin.
    ``part=(i, n)`` packs (or opens) only part i of n of the split (``pack_part``)."""
    spec = recipe.data
    try:
        if part is not None:
            store = pack_part(dataset, split, *part, spec.cache_dir, extra_fingerprint=_data_arguments(recipe),
                              dtype=spec.store_dtype, console=console)
        else:
            store = open_or_pack(dataset, split, spec.cache_dir, extra_fingerprint=_data_arguments(recipe),
                                 dtype=spec.store_dtype, console=console)
    except EmptySplitError:
        if required:
            raise
        return None
    # What packing reported (skipped clips, replaced values) is kept in the store, so a run
    # that reuses it says so too, instead of silently training on fewer or altered clips.
    # (A data set built for this run has notes about this split only if it just packed it.)
    fresh = dataset.packing_notes(split)
    for note in fresh:
        store.add_note(note)
    if not fresh:
        for note in store.notes:
            log.warning("%s (recorded when %s was packed)", note, store.path)
    return store


def split_fingerprint(dataset: Dataset, split: str, recipe: Recipe) -> str:
    """The fingerprint a packed store of ``split`` has (whether or not the run packs it):
    equal fingerprints mean the same clips, read the same way."""
    return store_fingerprint(dataset, split, extra_fingerprint=_data_arguments(recipe), dtype=recipe.data.store_dtype)


def data_record(recipe: Recipe, dataset: Dataset, data: TrainingData) -> dict:
    """What a run trained and evaluated on, for its report: the data set, each split's size and
    fingerprint (``motionhub compare`` compares val figures only when they agree), and every
    train clip the sampler left out (id and frames) with the sentence that summarises them."""
    splits = {}
    for split, source in (("train", data.train), ("val", data.val)):
        if source is None:
            continue
        # a packed store knows its fingerprint; clips held in memory get the one a store would have
        fingerprint = getattr(source, "fingerprint", None) or split_fingerprint(dataset, split, recipe)
        splits[split] = {"clips": len(source), "frames": int(source.offsets[-1]), "fingerprint": fingerprint,
                         **storage(source)}
    return {"dataset": recipe.data.name, "description": data.description, "splits": splits,
            "dropped_short_clips": [{"id": clip_id, "frames": frames} for clip_id, frames in data.sampler.dropped_clips],
            "dropped_summary": data.dropped_summary()}


def storage(source: ClipBank | Store) -> dict:
    """Where a split's frames live: ``{"store": "packed", "path": ..., "bytes": the file's size on
    disk}`` for a packed store, ``{"store": "memory", "bytes": None}`` for clips held in memory."""
    if isinstance(source, Store):
        return {"store": "packed", "path": str(source.path), "bytes": source.size_bytes}
    return {"store": "memory", "bytes": None}


def _data_arguments(recipe: Recipe) -> str:
    """The recipe's side of a store fingerprint: the data plugin, its version and arguments."""
    spec = recipe.data
    provider = spec.component.provider
    return json.dumps([spec.name, provider, _plugin_version(provider), spec.kwargs], sort_keys=True, default=str)


def _plugin_version(provider: str) -> str:
    from motionhub import __version__
    from motionhub.plugins.manager import plugin_infos

    versions = {info.name: info.version for info in plugin_infos()}
    return versions.get(provider) or __version__
