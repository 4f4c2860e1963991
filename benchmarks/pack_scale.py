"""Packing at scale: ``motionhub pack`` time and peak memory against reading the same files.

    python benchmarks/pack_scale.py [--clips 250,1000] [--code DIR ...] [--parts N] [--workdir DIR]

For each size in --clips, a MotionMillion folder (motion_data/vector_272/<name>.npy of random
(T, 272) float32 clips, T drawn from 120-600 frames; texts/, split/version1/tokenizer_96/ and
mean_std/) is written under --workdir (reused by later runs of the same size). Then, for each
checkout in --code (default: this one; add an older checkout, e.g. one made with
``git worktree add /tmp/old <commit>``, to compare), with the page cache of the data files
dropped before each run:

  pack   the train split packed as ``motionhub pack <recipe> --splits train`` does, in a child
         process, from an empty cache folder: the packing's own wall time (after imports) and
         the child's peak resident memory (ru_maxrss), with its resident memory before packing;
  parts  with --parts N, N children packing ``--part i/N`` at once, then the merge: the
         slowest part plus the merge;
  read   the same .npy files read through once, 1 MiB at a time (what ``cat`` does), and
         again with the caption .txt files that packing reads too.

The page cache is dropped for these files with ``posix_fadvise(DONTNEED)`` after a sync,
which needs no root; the whole cache is also dropped through /proc/sys/vm/drop_caches where
that is allowed (the printout says which). The ratios printed are within one run: pack
throughput as a share of the read rate, and peak memory of the largest size over the
smallest (1.0 = flat). Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

FEATURES = 272
SPLIT_DIR = Path("split") / "version1" / "tokenizer_96"
REPO = Path(__file__).resolve().parent.parent


def make_motionmillion(root: Path, clips: int, seed: int = 0) -> list[Path]:
    """A MotionMillion-layout folder of ``clips`` random train clips (and 2 val clips); its .npy files."""
    marker = root / "dataset.json"
    files = [root / "motion_data" / "vector_272" / f"{name}.npy" for name in _names(clips + 2)]
    if marker.is_file() and json.loads(marker.read_text()) == {"clips": clips, "seed": seed}:
        return files[:clips]
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(seed)
    names = _names(clips + 2)
    for name, path in zip(names, files):
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, rng.standard_normal((int(rng.integers(120, 601)), FEATURES), dtype=np.float32))
        text = root / "texts" / f"{name}.txt"
        text.parent.mkdir(parents=True, exist_ok=True)
        text.write_text("a person walks forward\na person strolls\n")
    (root / SPLIT_DIR).mkdir(parents=True, exist_ok=True)
    (root / SPLIT_DIR / "train.txt").write_text("\n".join(names[:clips]) + "\n")
    (root / SPLIT_DIR / "val.txt").write_text("\n".join(names[clips:]) + "\n")
    (root / SPLIT_DIR / "test.txt").write_text("\n".join(names[clips:]) + "\n")
    stats = root / "mean_std" / "vector_272"
    stats.mkdir(parents=True, exist_ok=True)
    np.save(stats / "mean.npy", np.zeros(FEATURES, dtype=np.float32))
    np.save(stats / "std.npy", np.ones(FEATURES, dtype=np.float32))
    marker.write_text(json.dumps({"clips": clips, "seed": seed}))
    return files[:clips]


def _names(count: int) -> list[str]:
    return [f"subset_{i % 7:02d}/sequence_{i:07d}" for i in range(count)]


def write_recipe(path: Path, root: Path, cache: Path) -> Path:
    tree = {"run": {"name": "pack_scale", "out": str(path.parent / "runs"), "seed": 0},
            "data": {"name": "motionmillion", "root": str(root), "window": 64, "cache_dir": str(cache)},
            "encoder": {"name": "conv1d", "width": 32, "depth": 1, "down_t": 1, "output_emb_width": 16},
            "quantizer": {"name": "fsq", "levels": [8, 5, 5]}, "decoder": {"name": "conv1d"},
            "losses": [{"name": "recon"}], "train": {"batch_size": 4, "iters": 1}}
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def drop_caches(files: list[Path]) -> str:
    """Drop the page cache of ``files`` (and the whole cache where allowed); says how."""
    os.sync()
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return "whole page cache dropped (/proc/sys/vm/drop_caches)"
    except OSError:
        return "page cache of the data files dropped (posix_fadvise); the whole cache cannot be dropped here"


def read_through(files: list[Path]) -> float:
    """Seconds to read every file once, 1 MiB at a time, as ``cat`` does."""
    buffer = bytearray(1 << 20)
    start = time.perf_counter()
    for path in files:
        with open(path, "rb", buffering=0) as handle:
            while handle.readinto(buffer):
                pass
    return time.perf_counter() - start


# Run in a child with a checkout first on its path: import everything, drop the data files' cache,
# then pack the train split (whole, or one part with I/N) and report the packing's own time and the
# process's peak RSS, so that interpreter start-up and imports are not counted.
_DRIVER = """
import json, resource, sys, time
from pathlib import Path
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/plugins"]
from motionhub.data.batches import open_split
from motionhub.model.build import build_dataset
from motionhub.recipes import load_recipe
sys.path.insert(0, sys.argv[3])
from pack_scale import drop_caches
recipe = load_recipe(sys.argv[2])
dataset = build_dataset(recipe)
files = [f(i) for i in dataset.split_ids["train"] for f in (dataset.motion_file, dataset.text_file)]
drop_caches(files)
rest = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
part = tuple(int(v) for v in sys.argv[4].split("/")) if len(sys.argv) > 4 else None
store = open_split(dataset, "train", recipe, None, **({"part": part} if part else {}))
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "clips": len(store), "rss_before_mib": rest,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def start_driver(recipe: Path, code: Path, part: str | None = None) -> subprocess.Popen:
    command = [sys.executable, "-c", _DRIVER, str(code), str(recipe), str(Path(__file__).parent), *([part] if part else [])]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_driver(child: subprocess.Popen) -> dict:
    out, err = child.communicate()
    if child.returncode:
        raise SystemExit(f"packing failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def pack_once(recipe: Path, code: Path) -> dict:
    return finish_driver(start_driver(recipe, code))


def pack_in_parts(recipe: Path, code: Path, parts: int) -> dict:
    """``parts`` children packing one part each at once, then the merge: the slowest part's seconds
    plus the merge's, and the largest peak RSS."""
    results = [finish_driver(child) for child in [start_driver(recipe, code, f"{i}/{parts}") for i in range(parts)]]
    merge = pack_once(recipe, code)
    return {"seconds": max(r["seconds"] for r in results) + merge["seconds"],
            "merge_seconds": merge["seconds"], "peak_rss_mib": max(r["peak_rss_mib"] for r in [*results, merge])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", default="250,1000", help="comma-separated data sizes in clips")
    parser.add_argument("--code", action="append", type=Path,
                        help="checkout(s) whose motionhub packs (repeatable; default: this one)")
    parser.add_argument("--parts", type=int, default=0, help="also pack in N parts at once, then merge")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/motionhub_pack_scale"))
    args = parser.parse_args()
    codes = args.code or [REPO]
    sizes = [int(n) for n in args.clips.split(",")]
    results, how = [], ""
    for clips in sizes:
        root = args.workdir / f"motionmillion_{clips}"
        files = make_motionmillion(root, clips)
        size_mb = sum(p.stat().st_size for p in files) / 1e6
        texts = [root / "texts" / f"{name}.txt" for name in _names(clips)]
        how = drop_caches(files + texts)
        row = {"clips": clips, "mb": size_mb, "read_s": read_through(files), "runs": []}
        drop_caches(files + texts)
        row["read_all_s"] = read_through(files + texts)
        for number, code in enumerate(codes):
            cache = args.workdir / f"cache_{number}"
            shutil.rmtree(cache, ignore_errors=True)
            recipe = write_recipe(args.workdir / f"recipe_{clips}_{number}.yaml", root, cache)
            run = pack_once(recipe, code)
            if args.parts and number == 0:
                shutil.rmtree(cache, ignore_errors=True)
                run["parts"] = pack_in_parts(recipe, code, args.parts)
            shutil.rmtree(cache, ignore_errors=True)
            row["runs"].append(run)
        results.append(row)
        print(f"{clips:,} clips, {size_mb:,.0f} MB: read {row['read_s']:.2f} s (with the caption files "
              f"{row['read_all_s']:.2f} s); " + "; ".join(
            f"{code}: pack {run['seconds']:.2f} s ({row['read_s'] / run['seconds']:.2f} of the read rate), "
            f"peak RSS {run['peak_rss_mib']:,.0f} MiB ({run['rss_before_mib']:,.0f} before packing)"
            for code, run in zip(codes, row["runs"])), flush=True)
        if args.parts:
            parts = row["runs"][0]["parts"]
            print(f"  {args.parts} parts at once + merge: {parts['seconds']:.2f} s (merge {parts['merge_seconds']:.2f} s), "
                  f"peak RSS {parts['peak_rss_mib']:,.0f} MiB", flush=True)
    print(f"cache: {how}")
    for number, code in enumerate(codes):
        runs = [r["runs"][number] for r in results]
        growth = runs[-1]["peak_rss_mib"] / runs[0]["peak_rss_mib"]
        added = [(run["peak_rss_mib"] - run["rss_before_mib"]) for run in runs]
        print(f"{code}: pack throughput / read rate "
              + ", ".join(f"{r['read_s'] / run['seconds']:.2f}" for r, run in zip(results, runs))
              + " (with the caption files read too: "
              + ", ".join(f"{r['read_all_s'] / run['seconds']:.2f}" for r, run in zip(results, runs)) + ")"
              + f"; peak RSS {results[-1]['clips']:,} / {results[0]['clips']:,} clips: {growth:.2f}x"
              + "; added by packing " + ", ".join(f"{a:,.0f} MiB" for a in added))
    if len(codes) > 1:
        print("pack time, other checkouts / first: " + ", ".join(
            f"{r['runs'][n]['seconds'] / r['runs'][0]['seconds']:.2f}" for r in results for n in range(1, len(codes))))
    print(json.dumps({"results": results, "codes": [str(c) for c in codes], "cache": how}))


if __name__ == "__main__":
    main()
