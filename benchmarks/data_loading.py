"""Training-window loading: one .npy file per clip (MotionMillion's way) vs the packed store.

    python benchmarks/data_loading.py [--clips N] [--batches K] [--rounds R] [--index-clips M] [--threads T]

A data set is written to disk as MotionMillion stores it: ``<id>.npy`` per clip (64-300
frames x 263 float32), a split file and float64 ``mean.npy`` / ``std.npy``. It is packed once
into a store. Both contenders then make K batches of 256 normalised 64-frame windows as a
torch float32 tensor, in this one process, with a warm page cache:

  reference  ``VQMotionDataset.__getitem__`` as MotionMillion writes it (np.load, random crop,
             normalise with its float64 statistics, cast to float32), a shuffled torch
             DataLoader with drop_last and the default collate, no worker processes;
  motionhub  ``WindowSampler.batch(step)`` over the memory-mapped store.

Contenders alternate for R rounds (neither always runs first); figures are medians. The
reference spreads its per-item cost over 64 worker processes in practice; both figures
here are per process. torch runs T intra-op threads (default 1) for both: on a small shared
machine a thread pool waiting for busy cores makes every figure noisy.

Last, a store index of M clips (1,000,000 by default: realistic ids and captions, one
small frame per clip, since only the index is read) is written and opened. Its opening time
and the peak memory it adds are the median and maximum of a few openings; peak memory is
the kernel's high-water mark (VmHWM, reset through /proc/self/clear_refs) above the resting
RSS. Files live under --workdir and are reused by later runs with the same sizes.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import random
import statistics
import time
from os.path import join as pjoin
from pathlib import Path

import numpy as np
import torch
from torch.utils import data

from motionhub.data import layouts
from motionhub.data.dataset import Clip, Dataset
from motionhub.errors import DataError
from motionhub.data.formats import MotionFormat
from motionhub.data.store import Store, open_or_pack, pack_arrays
from motionhub.data.windows import WindowSampler

FEATURES = 263


# ---- the data set on disk, as MotionMillion lays it out


def make_npy_dataset(root: Path, clips: int, seed: int = 0) -> None:
    """``root/motions/<id>.npy`` (T, 263) float32, ``train.txt``, float64 ``mean.npy`` / ``std.npy``."""
    marker = root / "dataset.json"
    if marker.is_file() and json.loads(marker.read_text()) == {"clips": clips, "seed": seed}:
        return
    rng = np.random.default_rng(seed)
    (root / "motions").mkdir(parents=True, exist_ok=True)
    ids = [f"clip_{i:07d}" for i in range(clips)]
    for clip_id in ids:
        frames = int(rng.integers(64, 301))
        motion = rng.standard_normal((frames, FEATURES), dtype=np.float32) * 0.5 + 0.1
        np.save(root / "motions" / f"{clip_id}.npy", motion)
    (root / "train.txt").write_text("\n".join(ids) + "\n")
    np.save(root / "mean.npy", np.full(FEATURES, 0.1))
    np.save(root / "std.npy", np.full(FEATURES, 0.5))
    marker.write_text(json.dumps({"clips": clips, "seed": seed}))


class NpyFolder(Dataset):
    """The on-disk data set as a motionhub data set (train split only)."""

    def __init__(self, root: Path):
        self.root = root
        mean, std = np.load(root / "mean.npy"), np.load(root / "std.npy")
        self.format = layouts.humanml3d_263().with_stats(mean, std)

    def clips(self, split: str):
        ids = (self.root / "train.txt").read_text().split() if split == "train" else []
        return (Clip(clip_id, np.load(self.root / "motions" / f"{clip_id}.npy")) for clip_id in ids)

    def fingerprint(self) -> str:
        return (self.root / "dataset.json").read_text()


# ---- the reference way: one .npy per clip, loaded per item (MotionMillion's training loader)


class PerFileWindows(data.Dataset):
    def __init__(self, motion_dir: str, split_file: str, mean: np.ndarray, std: np.ndarray, window_size: int):
        self.motion_dir, self.window_size = motion_dir, window_size
        with open(split_file) as f:
            self.id_list = [line.strip() for line in f.readlines()]
        self.mean, self.std = mean, std

    def __len__(self):
        return len(self.id_list)

    def __getitem__(self, item):
        name = self.id_list[item]
        motion = np.load(pjoin(self.motion_dir, name + ".npy"))
        idx = random.randint(0, len(motion) - self.window_size)
        motion = motion[idx:idx + self.window_size]
        motion = (motion - self.mean) / self.std
        motion = motion.astype(np.float32)
        return motion


def reference_loader(root: Path, window: int, batch_size: int) -> data.DataLoader:
    dataset = PerFileWindows(str(root / "motions"), str(root / "train.txt"),
                              np.load(root / "mean.npy"), np.load(root / "std.npy"), window)
    return data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=0, drop_last=True)


# ---- timing


def endless(loader: data.DataLoader):
    while True:
        yield from loader


def windows_per_second(make_batch, batches: int, batch_size: int) -> float:
    start = time.perf_counter()
    for _ in range(batches):
        batch = make_batch()
    elapsed = time.perf_counter() - start
    assert batch.dtype == torch.float32 and batch.shape[0] == batch_size
    return batches * batch_size / elapsed


def compare(root: Path, store: Store, fmt: MotionFormat, window: int, batch_size: int, batches: int,
            rounds: int) -> dict[str, float]:
    """Median windows/s of each contender over ``rounds`` alternating rounds of ``batches`` batches."""
    random.seed(0)
    torch.manual_seed(0)
    reference = endless(reference_loader(root, window, batch_size))
    sampler = WindowSampler(store, fmt, window, batch_size, seed=0)
    steps = iter(range(10**9))
    contenders = {
        "reference": lambda: next(reference),
        "motionhub": lambda: sampler.batch(next(steps))["motion"],
    }
    for make_batch in contenders.values():  # warm-up
        windows_per_second(make_batch, 2, batch_size)
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for round_ in range(rounds):
        order = list(contenders) if round_ % 2 == 0 else list(reversed(contenders))
        for name in order:
            results[name].append(windows_per_second(contenders[name], batches, batch_size))
    return {name: statistics.median(values) for name, values in results.items()}


def warm_page_cache(root: Path, store: Store) -> None:
    for path in (root / "motions").iterdir():
        path.read_bytes()
    block = 1 << 20
    for start in range(0, store.frames.shape[0], block):
        np.asarray(store.frames[start:start + block]).sum()


# ---- opening a large index


def make_index_store(path: Path, clips: int) -> None:
    """A store of ``clips`` clips of one frame each, with realistic ids and captions."""
    with contextlib.suppress(DataError):
        if len(Store.open(path)) == clips:
            return
    fmt = MotionFormat("index_only", (4,), 30.0, {"values": slice(0, 4)})
    ids = [f"motionmillion/subset_{i % 97:03d}/sequence_{i:07d}@clip_{i % 7}" for i in range(clips)]
    texts = [f"a person walks forward and turns {i % 360} degrees." for i in range(clips)]
    frames = np.zeros((clips, 4), dtype=np.float16)
    pack_arrays(frames, np.arange(clips + 1), ids, fmt, path, fingerprint="index", texts=texts,
                dtype="float16")


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def open_index(path: Path) -> tuple[float, float]:
    """(seconds, MiB of peak RSS added) to open the store and read its clip lengths."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    rest = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    start = time.perf_counter()
    store = Store.open(path)
    lengths = store.lengths
    elapsed = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    assert len(lengths) == len(store)
    del store, lengths
    return elapsed, (peak - rest) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4000)
    parser.add_argument("--batches", type=int, default=40, help="batches per contender per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--index-clips", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/motionhub_data_loading"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    root = args.workdir / f"npy_{args.clips}"
    started = time.perf_counter()
    make_npy_dataset(root, args.clips)
    print(f"data set: {args.clips} clips of 64-300 frames x {FEATURES} float32, one .npy each "
          f"({time.perf_counter() - started:.1f} s to make or find)")
    dataset = NpyFolder(root)
    started = time.perf_counter()
    store = open_or_pack(dataset, "train", args.workdir / "cache")
    print(f"store: {store} ({time.perf_counter() - started:.1f} s to pack or open)")

    warm_page_cache(root, store)
    rates = compare(root, store, dataset.format, args.window, args.batch_size, args.batches, args.rounds)
    print(f"\ntraining windows ({args.window} frames, batch {args.batch_size}, float32 normalised), "
          f"{args.batches} batches x {args.rounds} rounds, medians; {torch.get_num_threads()} torch "
          f"thread(s); load average {os.getloadavg()[0]:.2f}")
    for name, rate in rates.items():
        print(f"  {name:10} {rate:12,.0f} windows/s")
    print(f"  {'ratio':10} {rates['motionhub'] / rates['reference']:11.1f}x  (motionhub / reference)")

    index_path = args.workdir / f"index_{args.index_clips}.h5"
    started = time.perf_counter()
    make_index_store(index_path, args.index_clips)
    print(f"\nindex of {args.index_clips:,} clips: {index_path.stat().st_size / 2**20:.0f} MiB file "
          f"({time.perf_counter() - started:.1f} s to write or find)")
    openings = [open_index(index_path) for _ in range(5)]
    seconds = statistics.median(s for s, _ in openings)
    added = max(m for _, m in openings)
    print(f"  open + lengths: {seconds * 1000:.0f} ms (median of {len(openings)}), "
          f"peak RSS added {added:.1f} MiB (max)")


if __name__ == "__main__":
    main()
