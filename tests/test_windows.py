"""Training windows and evaluation batches over a clip bank or a packed store."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from motionhub.data.dataset import Clip
from motionhub.errors import DataError
from motionhub.data.formats import MotionFormat
from motionhub.data.store import pack_split
from motionhub.data.windows import ClipBank, EvalBatches, WindowSampler

# feature 0 = clip number, 1 = frame number within the clip, 2 = noise: a window tells where it came from
FMT = MotionFormat("tagged", (3,), 20.0, {"tag": slice(0, 2), "noise": slice(2, 3)},
                   mean=np.array([5.0, 50.0, 0.5], dtype=np.float32),
                   std=np.array([4.0, 40.0, 0.25], dtype=np.float32))


def tagged_clips(lengths) -> list[Clip]:
    rng = np.random.default_rng(0)
    return [Clip(f"c{i}", np.stack([np.full(n, i), np.arange(n), rng.random(n)], axis=1).astype(np.float32))
            for i, n in enumerate(lengths)]


def tagged_bank(lengths) -> ClipBank:
    return ClipBank.from_clips(tagged_clips(lengths))


def origins(motion: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(clip numbers (B,), frame numbers (B, T)) of normalised tagged windows."""
    raw = FMT.denormalise(motion).numpy()
    return np.rint(raw[:, 0, 0]).astype(int), np.rint(raw[..., 1]).astype(int)


def test_windows_are_normalised_crops_of_one_clip():
    lengths = [40, 70, 33, 90, 52, 64]
    bank = tagged_bank(lengths)
    sampler = WindowSampler(bank, FMT, 32, 4, seed=0)
    batch = sampler.batch(0)
    assert batch["motion"].shape == (4, 32, 3) and batch["motion"].dtype == torch.float32
    assert batch["mask"] is None
    clips, frames = origins(batch["motion"])
    for clip, steps, window in zip(clips, frames, batch["motion"]):
        assert steps[0] >= 0 and steps[-1] < lengths[clip]
        np.testing.assert_array_equal(np.diff(steps), 1)
        raw = bank.frames[bank.offsets[clip] + steps[0]:][:32]
        torch.testing.assert_close(window, FMT.normalise(torch.from_numpy(raw)), rtol=0, atol=1e-5)


def test_batches_depend_only_on_seed_rank_and_step():
    bank = tagged_bank(range(40, 100, 3))
    run = WindowSampler(bank, FMT, 32, 4, seed=7)
    straight = [run.batch(step)["motion"] for step in range(12)]
    resumed = WindowSampler(bank, FMT, 32, 4, seed=7)  # a fresh sampler, as after a restart
    for step in (9, 3, 11, 3, 0):
        assert torch.equal(resumed.batch(step)["motion"], straight[step])
    other_seed = WindowSampler(bank, FMT, 32, 4, seed=8)
    assert not torch.equal(other_seed.batch(0)["motion"], straight[0])
    assert torch.equal(run[5]["motion"], straight[5])


def test_an_epoch_visits_each_clip_once():
    bank = tagged_bank([50] * 13)
    sampler = WindowSampler(bank, FMT, 16, 4, seed=1)
    assert sampler.batches_per_epoch == 3
    for epoch in range(2):
        seen = np.concatenate([origins(sampler.batch(epoch * 3 + s)["motion"])[0] for s in range(3)])
        assert len(set(seen)) == 12


def test_ranks_draw_disjoint_shards_of_each_epoch():
    bank = tagged_bank([40] * 25)
    ranks = [WindowSampler(bank, FMT, 16, 4, seed=2, rank=r, world_size=3) for r in range(3)]
    assert ranks[0].batches_per_epoch == 2
    for epoch in range(2):
        drawn = [np.concatenate([origins(s.batch(epoch * 2 + k)["motion"])[0] for k in range(2)]) for s in ranks]
        everything = np.concatenate(drawn)
        assert len(everything) == len(set(everything)) == 24
    with pytest.raises(ValueError, match="rank 3 is outside world_size 3"):
        WindowSampler(bank, FMT, 16, 4, seed=2, rank=3, world_size=3)


def test_short_clips_are_dropped_and_counted():
    bank = tagged_bank([40, 10, 35, 0, 31])
    sampler = WindowSampler(bank, FMT, 32, 8, seed=0)
    assert sampler.dropped == 3 and sampler.dropped_ids == ["c1", "c3", "c4"]
    for step in range(4):
        assert set(origins(sampler.batch(step)["motion"])[0]) <= {0, 2}
    with pytest.raises(DataError, match="no clip is at least 64 frames long \\(longest: 40\\)"):
        WindowSampler(bank, FMT, 64, 8, seed=0)


def test_short_clips_are_padded_with_a_mask():
    lengths = [3, 12, 5, 8]
    bank = tagged_bank([*lengths, 0])
    sampler = WindowSampler(bank, FMT, 8, 4, seed=0, short="pad")
    assert sampler.dropped == 1 and sampler.dropped_ids == ["c4"]
    batch = sampler.batch(0)
    motion, mask = batch["motion"], batch["mask"]
    assert mask.dtype == torch.bool and mask.shape == (4, 8)
    real_rows = mask.sum(dim=1).tolist()
    raw = FMT.denormalise(motion).numpy()
    clips = np.rint(raw[:, 0, 0]).astype(int)
    assert sorted(clips) == [0, 1, 2, 3]
    for row, clip in enumerate(clips):
        real = min(lengths[clip], 8)
        assert real_rows[row] == real and mask[row, :real].all()
        assert (motion[row, real:] == 0).all()
        if lengths[clip] < 8:  # a short clip is used whole, from its first frame
            np.testing.assert_array_equal(np.rint(raw[row, :real, 1]), np.arange(real))

    long_only = WindowSampler(tagged_bank([20, 30]), FMT, 8, 2, seed=0, short="pad")
    assert long_only.batch(0)["mask"] is None


def test_length_weighting_draws_clips_in_proportion_to_their_windows():
    lengths = [10, 20, 40]  # 1, 11 and 31 window positions
    sampler = WindowSampler(tagged_bank(lengths), FMT, 10, 64, seed=0, weighting="length")
    counts = np.zeros(3)
    for step in range(60):
        clips, frames = origins(sampler.batch(step)["motion"])
        counts += np.bincount(clips, minlength=3)
        assert all(f[-1] < lengths[c] for c, f in zip(clips, frames))
    np.testing.assert_allclose(counts / counts.sum(), np.array([1, 11, 31]) / 43, atol=0.02)
    other_rank = WindowSampler(tagged_bank(lengths), FMT, 10, 64, seed=0, rank=1, world_size=2,
                               weighting="length")
    assert not torch.equal(other_rank.batch(0)["motion"], sampler.batch(0)["motion"])


def test_a_float16_store_gives_float32_batches(tmp_path):
    clips = tagged_clips([40, 50, 60])
    half = pack_split(clips, FMT, tmp_path / "half.h5", fingerprint="f", dtype="float16")
    full = pack_split(clips, FMT, tmp_path / "full.h5", fingerprint="f")
    a = WindowSampler(half, FMT, 16, 3, seed=0).batch(4)["motion"]
    b = WindowSampler(full, FMT, 16, 3, seed=0).batch(4)["motion"]
    assert a.dtype == torch.float32
    torch.testing.assert_close(a, b, rtol=0, atol=0.01)


def test_features_must_match_the_format():
    bank = ClipBank.from_clips([Clip("x", np.zeros((40, 4), dtype=np.float32))])
    with pytest.raises(DataError, match="feature shape \\(4,\\), but format 'tagged' has \\(3,\\)"):
        WindowSampler(bank, FMT, 16, 2, seed=0)
    with pytest.raises(DataError, match="feature shape"):
        EvalBatches(bank, FMT, unit=4, batch_size=2)


def test_eval_batches_crop_sort_and_pad():
    lengths = [17, 5, 3, 30, 12, 9]
    bank = tagged_bank(lengths)
    batches = EvalBatches(bank, FMT, unit=4, batch_size=3, max_length=20)
    assert batches.skipped == 2  # 3 frames is less than one unit, 30 is over the bound
    assert len(batches) == 2
    out = list(batches)
    assert [b["lengths"].tolist() for b in out] == [[4, 8, 12], [16]]
    assert [b["ids"] for b in out] == [["c1", "c5", "c4"], ["c0"]]
    first = out[0]
    assert first["motion"].shape == (3, 12, 3) and first["mask"].shape == (3, 12)
    assert first["lengths"].dtype == torch.int64
    assert first["mask"].sum(dim=1).tolist() == [4, 8, 12]
    for row, (clip, length) in enumerate(zip([1, 5, 4], [4, 8, 12])):
        raw = bank.frames[bank.offsets[clip]:bank.offsets[clip] + length]  # the clip's first frames
        torch.testing.assert_close(first["motion"][row, :length], FMT.normalise(torch.from_numpy(raw)),
                                   rtol=0, atol=1e-5)
        assert (first["motion"][row, length:] == 0).all()
    assert out[1]["mask"].all()


def test_eval_batches_bounds():
    bank = tagged_bank([17, 5, 3, 30, 12, 9])
    assert EvalBatches(bank, FMT, unit=1, batch_size=8, min_length=9).skipped == 2
    assert EvalBatches(bank, FMT, unit=2, batch_size=8, min_length=9, max_length=17).lengths.tolist() == [8, 12, 16]
    with pytest.raises(DataError, match="no clip is at least 40 and at most 50 frames long \\(6 skipped\\)"):
        EvalBatches(bank, FMT, unit=4, batch_size=8, min_length=40, max_length=50)


def test_eval_batches_read_a_store_like_a_bank(tmp_path):
    clips = tagged_clips([21, 14, 9, 33])
    store = pack_split(clips, FMT, tmp_path / "s.h5", fingerprint="f")
    from_store = list(EvalBatches(store, FMT, unit=4, batch_size=2))
    from_bank = list(EvalBatches(ClipBank.from_clips(clips), FMT, unit=4, batch_size=2))
    for a, b in zip(from_store, from_bank, strict=True):
        assert torch.equal(a["motion"], b["motion"]) and torch.equal(a["mask"], b["mask"])
        assert a["ids"] == b["ids"] and torch.equal(a["lengths"], b["lengths"])


def test_clips_left_out_are_named_with_their_lengths_the_first_ten_and_a_count():
    bank = tagged_bank([40, 10, 35, 0, 31])
    sampler = WindowSampler(bank, FMT, 32, 8, seed=0)
    assert sampler.dropped_clips == [("c1", 10), ("c3", 0), ("c4", 31)]
    assert sampler.dropped_summary() == ("3 clips shorter than the 32-frame window left out: "
                                         "c1 (10 frames), c3 (0 frames), c4 (31 frames)")
    many = WindowSampler(tagged_bank([40] + [1] * 13), FMT, 32, 8, seed=0)
    assert many.dropped_summary() == ("13 clips shorter than the 32-frame window left out: "
                                      + ", ".join(f"c{i} (1 frame)" for i in range(1, 11)) + ", … and 3 more")
    assert len(many.dropped_clips) == 13
    assert WindowSampler(tagged_bank([40, 33]), FMT, 32, 8, seed=0).dropped_summary() == \
        "0 clips shorter than the 32-frame window left out"


def test_with_padding_only_empty_clips_are_left_out_and_short_ones_are_counted_as_padded():
    sampler = WindowSampler(tagged_bank([3, 12, 5, 8, 0]), FMT, 8, 4, seed=0, short="pad")
    assert sampler.dropped_summary() == ("2 clips shorter than the 8-frame window padded; "
                                         "1 empty clip left out: c4 (0 frames)")


def test_a_packed_store_names_the_clips_left_out_by_their_ids(tmp_path):
    store = pack_split(tagged_clips([40, 12, 50]), FMT, tmp_path / "train.h5", fingerprint="x")
    sampler = WindowSampler(store, FMT, 32, 2, seed=0)
    assert sampler.dropped_summary() == "1 clip shorter than the 32-frame window left out: c1 (12 frames)"
