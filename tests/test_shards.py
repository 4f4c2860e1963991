"""data.shards: each process draws windows from its own contiguous shards only, balanced, in an
order that depends on (seed, shards, step) and not on how many processes share the global batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import TINY_RECIPE, write_recipe

from motionhub.data.dataset import Clip
from motionhub.data.formats import MotionFormat
from motionhub.data.windows import ClipBank, WindowSampler
from motionhub.errors import DataError, MotionhubError
from motionhub.recipes import load_recipe

FMT = MotionFormat("toy", (3,), 30.0, {"all": slice(0, 3)})


def bank(clips: int = 30, seed: int = 0) -> ClipBank:
    """Clips of 10-39 frames whose frames hold (clip index, frame index, noise), so a window
    tells where it was cut from."""
    rng = np.random.default_rng(seed)
    made = []
    for i, n in enumerate(rng.integers(10, 40, size=clips)):
        motion = np.stack([np.full(n, i), np.arange(n), rng.standard_normal(n)], axis=1).astype(np.float32)
        made.append(Clip(f"c{i:03d}", motion))
    return ClipBank.from_clips(made)


def windows(batch) -> np.ndarray:
    """(B, W, 3) windows of a batch in a canonical row order, to compare batches as sets."""
    motion = batch["motion"].numpy()
    return motion[np.lexsort(motion[:, :2, :2].reshape(len(motion), -1).T)]


@pytest.mark.parametrize("weighting", ["uniform", "length"])
def test_two_processes_draw_the_global_batch_one_process_draws(weighting):
    source = bank()
    one = WindowSampler(source, FMT, 8, 8, seed=4, shards=4, weighting=weighting)
    ranks = [WindowSampler(source, FMT, 8, 4, seed=4, rank=r, world_size=2, shards=4, weighting=weighting)
             for r in range(2)]
    assert one.batches_per_epoch == ranks[0].batches_per_epoch == ranks[1].batches_per_epoch
    for step in range(3 * one.batches_per_epoch + 1):  # across epoch boundaries
        together = np.concatenate([r.batch(step)["motion"].numpy() for r in ranks])
        assert np.array_equal(windows({"motion": one.batch(step)["motion"]}),
                              windows({"motion": torch.from_numpy(together)}))


@pytest.mark.parametrize("weighting", ["uniform", "length"])
def test_each_process_reads_only_its_own_byte_range(weighting):
    source = bank(clips=24)
    samplers = [WindowSampler(source, FMT, 8, 2, seed=1, rank=r, world_size=3, shards=6, weighting=weighting)
                for r in range(3)]
    ranges = [s.frame_range for s in samplers]
    assert ranges[0][0] == 0 and ranges[-1][1] == source.offsets[-1]
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))  # contiguous, disjoint, in order
    for sampler, (first, stop) in zip(samplers, ranges):
        poisoned = ClipBank(source.frames.copy(), source.offsets, source.ids)
        poisoned.frames[:first] = np.nan
        poisoned.frames[stop:] = np.nan
        reader = WindowSampler(poisoned, FMT, 8, 2, seed=1, rank=sampler.rank, world_size=3, shards=6,
                               weighting=weighting)
        for step in range(12):
            assert np.isfinite(reader.batch(step)["motion"].numpy()).all()


def test_shards_are_balanced_and_every_step_takes_the_same_share_of_each():
    source = bank(clips=31)
    sampler = WindowSampler(source, FMT, 8, 6, seed=0, rank=1, world_size=2, shards=4)
    sizes = np.diff(sampler.shard_bounds)
    assert sizes.sum() == len(sampler.clips) and sizes.max() - sizes.min() <= 1
    assert list(sampler.own_shards) == [2, 3]
    seen = []
    for step in range(sampler.batches_per_epoch):
        clips = sampler.batch(step)["motion"].numpy()[:, 0, 0].astype(int)  # the clip index of each window
        shard_of = np.searchsorted(sampler.shard_bounds, np.searchsorted(sampler.clips, clips), side="right") - 1
        assert sorted(np.bincount(shard_of, minlength=4).tolist()) == [0, 0, 3, 3]
        seen.extend(clips.tolist())
    assert len(seen) == len(set(seen))  # an epoch visits each clip at most once


def test_the_order_is_reproducible_and_resumes_at_any_step():
    source = bank()
    first = WindowSampler(source, FMT, 8, 4, seed=9, rank=1, world_size=2, shards=2)
    steps = [first.batch(step)["motion"] for step in range(10)]
    resumed = WindowSampler(bank(), FMT, 8, 4, seed=9, rank=1, world_size=2, shards=2)
    for step in (7, 3, 9, 0):  # any step, in any order, from a fresh sampler
        assert np.array_equal(resumed.batch(step)["motion"].numpy(), steps[step].numpy())
    other_seed = WindowSampler(source, FMT, 8, 4, seed=10, rank=1, world_size=2, shards=2)
    assert not np.array_equal(other_seed.batch(0)["motion"].numpy(), steps[0].numpy())


def test_one_shard_is_the_unsharded_order():
    source = bank()
    plain = WindowSampler(source, FMT, 8, 4, seed=2, rank=0, world_size=2)
    one = WindowSampler(source, FMT, 8, 4, seed=2, rank=0, world_size=2, shards=1)
    for step in range(5):
        assert np.array_equal(plain.batch(step)["motion"].numpy(), one.batch(step)["motion"].numpy())


@pytest.mark.parametrize(("shards", "world", "batch", "message"), [
    (40, 1, 8, "only 30 train clips are usable; use at most 30 shards"),
    (3, 2, 6, "does not split over 2 processes .* use a multiple of 2, e.g. 4"),
    (4, 2, 3, "does not divide the global batch of 6 windows .* use a divisor of 6"),
])
def test_shard_counts_that_cannot_work_are_explained(shards, world, batch, message):
    with pytest.raises(DataError, match=message):
        WindowSampler(bank(), FMT, 8, batch, seed=0, rank=0, world_size=world, shards=shards)


def test_the_recipe_key_is_checked(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", {**TINY_RECIPE, "data": {**TINY_RECIPE["data"],
                                                                                      "shards": 2}}))
    assert recipe.data.shards == 2
    with pytest.raises(MotionhubError, match="shards"):
        load_recipe(write_recipe(tmp_path / "bad.yaml", {**TINY_RECIPE, "data": {**TINY_RECIPE["data"], "shards": 0}}))
