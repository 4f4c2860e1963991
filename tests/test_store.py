"""Packed stores: round trips, statistics, cache reuse and rebuilds, locking, errors, workers."""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from motionhub.data.dataset import Clip, Dataset
from motionhub.errors import DataError
from motionhub.data.formats import MotionFormat
from motionhub.data.store import EmptySplitError, Store, open_or_pack, pack_arrays, pack_split
from motionhub.data.windows import WindowSampler
from motionhub_synthetic.dataset import SyntheticMotion

TOY = MotionFormat("toy", (5,), 25.0, {"root": slice(0, 2), "rest": slice(2, 5)},
                   mean=np.arange(5, dtype=np.float32), std=np.full(5, 2.0, dtype=np.float32))


def make_clips(lengths, shape=(5,), seed=0, offset=0.0) -> list[Clip]:
    rng = np.random.default_rng(seed)
    captions = [["walks forward", "a person walks"], [], ["jumps"]]
    return [Clip(f"clip_{i:03d}", (rng.standard_normal((n, *shape)) + offset).astype(np.float32),
                 captions[i % 3]) for i, n in enumerate(lengths)]


class ToyClips(Dataset):
    """Hand-made clips; ``version`` changes the fingerprint, ``log`` records each packing."""

    format = TOY

    def __init__(self, lengths=(30, 12, 50), version="1", log: Path | None = None, delay: float = 0.0):
        self.lengths, self.version, self.log, self.delay = lengths, version, log, delay

    def clips(self, split):
        if self.log is not None:
            with open(self.log, "a") as f:
                f.write(f"{os.getpid()} {split}\n")
        for clip in make_clips(self.lengths if split == "train" else ()):
            time.sleep(self.delay)
            yield clip

    def fingerprint(self) -> str:
        return self.version


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_pack_and_open_round_trip(tmp_path, dtype):
    clips = make_clips([7, 0, 12, 3])
    store = pack_split(iter(clips), TOY, tmp_path / "train.h5", fingerprint="abc", dtype=dtype)

    assert isinstance(store.frames, np.memmap) and store.frames.dtype == np.dtype(dtype)
    expected = np.concatenate([c.motion for c in clips])
    tolerance = 1e-3 if dtype == "float16" else 0
    np.testing.assert_allclose(store.frames, expected, rtol=tolerance, atol=tolerance)
    np.testing.assert_array_equal(store.offsets, [0, 7, 7, 19, 22])
    np.testing.assert_array_equal(store.lengths, [7, 0, 12, 3])
    assert len(store) == 4
    assert store.ids == [c.id for c in clips]
    assert store.texts == ["walks forward\na person walks", "", "jumps", "walks forward\na person walks"]
    clip = store.clip(2)
    assert clip.id == "clip_002" and clip.texts == ["jumps"] and clip.motion.dtype == np.float32
    np.testing.assert_allclose(clip.motion, clips[2].motion, atol=1e-2)
    assert store.clip(1).texts == [] and store.clip(1).motion.shape == (0, 5)
    assert (store.fingerprint, store.dtype, store.format_name, store.feature_shape, store.fps) == (
        "abc", dtype, "toy", (5,), 25.0)
    assert store.slices == {"root": slice(0, 2), "rest": slice(2, 5)}
    np.testing.assert_array_equal(store.format_mean, TOY.mean)
    np.testing.assert_array_equal(store.format_std, TOY.std)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.h5"]  # no temporary files left


def test_frames_are_one_contiguous_dataset(tmp_path):
    fmt = MotionFormat("tracks", (2, 3, 2), 10.0)
    store = pack_split(make_clips([4, 6], shape=(2, 3, 2)), fmt, tmp_path / "s.h5", fingerprint="f")
    with h5py.File(store.path, "r") as f:
        assert f["frames"].chunks is None and f["frames"].compression is None
        assert f["frames"].shape == (10, 2, 3, 2)
    assert store.frames.shape == (10, 2, 3, 2) and store.format_mean is None


def test_pack_arrays_matches_pack_split(tmp_path):
    clips = make_clips([5, 9, 2])
    streamed = pack_split(clips, TOY, tmp_path / "a.h5", fingerprint="f")
    bulk = pack_arrays(np.concatenate([c.motion for c in clips]), streamed.offsets, streamed.ids, TOY,
                       tmp_path / "b.h5", fingerprint="f", texts=streamed.texts)
    np.testing.assert_array_equal(bulk.frames, streamed.frames)
    assert bulk.ids == streamed.ids and bulk.texts == streamed.texts
    np.testing.assert_allclose(bulk.feature_std(), streamed.feature_std())


def test_statistics_equal_numpy_over_all_frames(tmp_path):
    # millimetre-scale values far from zero: the variance must not cancel
    clips = make_clips([40, 1, 73, 18], offset=1000.0)
    store = pack_split(clips, TOY, tmp_path / "s.h5", fingerprint="f")
    frames = np.concatenate([c.motion for c in clips]).astype(np.float64)
    np.testing.assert_allclose(store.feature_mean(), frames.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(store.feature_std(), frames.std(axis=0), rtol=1e-9)
    grouped = store.feature_std(per_slice=True)
    std = frames.std(axis=0)
    np.testing.assert_allclose(grouped, [std[:2].mean()] * 2 + [std[2:].mean()] * 3, rtol=1e-9)


def test_open_or_pack_reuses_an_unchanged_store(tmp_path):
    data = SyntheticMotion(clips=12)
    first = open_or_pack(data, "train", tmp_path, extra_fingerprint="recipe-a")
    before = first.path.stat()
    again = open_or_pack(SyntheticMotion(clips=12), "train", tmp_path, extra_fingerprint="recipe-a")
    after = again.path.stat()
    assert again.path == first.path
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert len(again) == len(list(data.clips("train")))
    assert first.path.parent.parent == tmp_path and first.path.name == "train.h5"


def test_open_or_pack_rebuilds_when_the_fingerprint_changes(tmp_path):
    old = open_or_pack(ToyClips(version="1"), "train", tmp_path)
    new = open_or_pack(ToyClips(version="2"), "train", tmp_path)
    recipe = open_or_pack(ToyClips(version="1"), "train", tmp_path, extra_fingerprint="window: 32")
    half = open_or_pack(ToyClips(version="1"), "train", tmp_path, dtype="float16")
    assert len({old.path, new.path, recipe.path, half.path}) == 4
    assert len({old.fingerprint, new.fingerprint, recipe.fingerprint, half.fingerprint}) == 4
    assert half.dtype == "float16"

    # a file at the expected place but packed from something else is packed again
    pack_split(make_clips([3]), TOY, old.path, fingerprint="stale")
    inode = old.path.stat().st_ino
    repacked = open_or_pack(ToyClips(version="1"), "train", tmp_path)
    assert repacked.path == old.path and repacked.fingerprint == old.fingerprint
    assert repacked.path.stat().st_ino != inode and len(repacked) == 3


def test_default_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MOTIONHUB_CACHE", str(tmp_path / "cache"))
    store = open_or_pack(ToyClips(), "train")
    assert store.path.is_relative_to(tmp_path / "cache")


def _pack_in_child(cache: str, log: str, out: str) -> None:
    store = open_or_pack(ToyClips(log=Path(log), delay=0.1), "train", cache)
    Path(out).write_text(f"{store.path}\n{store.fingerprint}\n{len(store)}")


def test_two_processes_packing_at_once_pack_once(tmp_path):
    log = tmp_path / "log.txt"
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_pack_in_child, args=(tmp_path / "cache", log, tmp_path / f"out{i}"))
                for i in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    results = {(tmp_path / f"out{i}").read_text() for i in range(2)}
    assert len(results) == 1  # both opened the same file
    assert len(log.read_text().splitlines()) == 1  # only one of them packed it
    path = Path(results.pop().splitlines()[0])
    assert len(Store.open(path)) == 3
    assert sorted(p.name for p in path.parent.iterdir()) == ["train.h5", "train.h5.lock"]


def test_truncated_store_is_reported_and_repacked(tmp_path):
    store = open_or_pack(ToyClips(lengths=(400, 300)), "train", tmp_path)
    path = store.path
    del store
    gc.collect()
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 2000)
    with pytest.raises(DataError) as error:
        Store.open(path)
    message = str(error.value)
    assert str(path) in message and "packed again" in message and f"rm '{path}'" in message

    import io

    from rich.console import Console

    out = io.StringIO()
    repacked = open_or_pack(ToyClips(lengths=(400, 300)), "train", tmp_path, console=Console(file=out, width=1000))
    assert repacked.path == path and len(repacked) == 2
    assert f"rm '{path}'. Packing it again." in out.getvalue()  # two sentences, not one run together


def test_a_file_that_is_not_a_store_is_reported(tmp_path):
    path = tmp_path / "train.h5"
    path.write_bytes(b"not hdf5 at all" * 100)
    with pytest.raises(DataError, match="not a readable motionhub store"):
        Store.open(path)
    with h5py.File(path, "w") as f:
        f["frames"] = np.zeros((3, 5))
    with pytest.raises(DataError, match="store version None"):
        Store.open(path)


def test_empty_split_names_the_data_set_and_split(tmp_path):
    with pytest.raises(EmptySplitError) as error:
        open_or_pack(ToyClips(), "val", tmp_path)
    assert "ToyClips (toy)" in str(error.value) and "'val'" in str(error.value)
    with pytest.raises(DataError, match="no clips to pack"):
        pack_split([], TOY, tmp_path / "empty.h5", fingerprint="f")
    assert not (tmp_path / "empty.h5").exists()


def test_unusable_clips_are_named(tmp_path):
    bad = make_clips([4, 4])
    bad[1].motion[2, 3] = np.nan
    with pytest.raises(DataError, match="clip 'clip_001': NaN or Inf values \\(first at frame 2\\)"):
        pack_split(bad, TOY, tmp_path / "s.h5", fingerprint="f")
    with pytest.raises(DataError, match="clip 'clip_000': frames have shape \\(4, 3\\)"):
        pack_split(make_clips([4], shape=(3,)), TOY, tmp_path / "s.h5", fingerprint="f")
    with pytest.raises(DataError, match="float16 range"):
        pack_split(make_clips([4], offset=1e5), TOY, tmp_path / "s.h5", fingerprint="f", dtype="float16")
    assert list(tmp_path.iterdir()) == []


def test_progress_is_called_with_clips_done(tmp_path):
    done = []
    pack_split(make_clips([3, 4, 5]), TOY, tmp_path / "s.h5", fingerprint="f", progress=done.append)
    assert done == [1, 2, 3]


def test_a_pickled_store_maps_its_file_again(tmp_path):
    store = pack_split(make_clips([300, 200]), TOY, tmp_path / "s.h5", fingerprint="f")
    payload = pickle.dumps(store)
    assert len(payload) < 1000  # the path, not the frames
    copy = pickle.loads(payload)
    assert isinstance(copy.frames, np.memmap)
    np.testing.assert_array_equal(copy.frames, store.frames)


def test_dataloader_workers_read_the_same_batches(tmp_path):
    data = SyntheticMotion(clips=12)
    sampler = WindowSampler(open_or_pack(data, "train", tmp_path), data.format, 32, 4, seed=3)
    loader = torch.utils.data.DataLoader(sampler, batch_size=None, sampler=range(2, 8), num_workers=2)
    from_workers = list(loader)
    for step, batch in zip(range(2, 8), from_workers, strict=True):
        expected = sampler.batch(step)
        assert torch.equal(batch["motion"], expected["motion"])
        assert batch["mask"] is None and expected["mask"] is None


def _peak_rss_reset() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"{field} missing from /proc/self/status")


@pytest.mark.slow
def test_opening_a_million_clip_index_is_fast_and_small(tmp_path):
    clips = 1_000_000
    fmt = MotionFormat("index_only", (2,), 30.0)
    ids_at = "motionmillion/subset_{:03d}/sequence_{:07d}".format
    ids = [ids_at(i % 97, i) for i in range(clips)]
    pack_arrays(np.zeros((clips, 2), dtype=np.float16), np.arange(clips + 1), ids, fmt,
                tmp_path / "big.h5", fingerprint="f", dtype="float16")
    del ids
    gc.collect()
    if not _peak_rss_reset():
        pytest.skip("cannot reset the peak-RSS mark on this system")
    rest = _status_mib("VmRSS")
    start = time.perf_counter()
    store = Store.open(tmp_path / "big.h5")
    lengths = store.lengths
    elapsed = time.perf_counter() - start
    added = _status_mib("VmHWM") - rest
    assert len(store) == clips and lengths.sum() == clips
    # generous bounds for a shared machine; benchmarks/data_loading.py reports the real figures
    assert elapsed < 5.0, f"opening took {elapsed:.2f} s"
    assert added < 300, f"opening added {added:.0f} MiB"
    assert store.ids[123_456] == ids_at(123_456 % 97, 123_456)
