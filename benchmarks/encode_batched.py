"""Encoding a whole split: length-bucketed batches (``motionhub encode``) vs one clip at a time.

    python benchmarks/encode_batched.py [--clips N] [--batch-size B] [--rounds R] [--threads T]
                                        [--width W] [--depth D] [--down-t K]

One process, one model, one split. The split is N clips of 263 random features (HumanML3D's
layout) with lengths drawn uniformly from 40-196 frames, HumanML3D's range; the model is a
conv1d encoder with FSQ (T2M-GPT's encoder shape by default: width 512, depth 3, x4
down-sampling) at its initial weights, in eval mode; timings do not depend on the values.
Contenders, both under ``torch.inference_mode``, on ``--threads`` CPU threads (default 1: on
a machine shared with other jobs, more threads wait on each other and the figures scatter):

  reference  for each clip: crop to a multiple of the down-sampling, normalise, ``model.encode``
             on a batch of one;
  motionhub  ``encode_clips(..., batch_size=B)``: clips of one cropped length batched together.

Contenders alternate for R rounds (neither always runs first); figures are medians. The
reference's ids are also the oracle: the script counts clips whose batched ids differ.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from motionhub import layouts
from motionhub.build import build_tokenizer
from motionhub.dataset import Clip
from motionhub.formats import MotionFormat
from motionhub.recipe import recipe_from_tree
from motionhub.tokens import encode_clips, length_buckets
from motionhub.windows import ClipBank

FEATURES = 263


def make_split(clips: int, seed: int = 0) -> ClipBank:
    """``clips`` clips of (40-196, 263) standard-normal float32 frames."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(40, 197, size=clips)
    return ClipBank.from_clips(Clip(f"clip_{i:05d}", rng.standard_normal((n, FEATURES), dtype=np.float32))
                               for i, n in enumerate(lengths))


def make_model(fmt: MotionFormat, width: int, depth: int, down_t: int):
    tree = {"run": {"name": "bench"}, "data": {"name": "synthetic"},
            "encoder": {"name": "conv1d", "width": width, "depth": depth, "down_t": down_t,
                        "output_emb_width": width},
            "quantizer": {"name": "fsq", "levels": [8, 8, 8]}, "decoder": {"name": "conv1d"},
            "losses": [{"name": "recon"}]}
    torch.manual_seed(0)
    return build_tokenizer(recipe_from_tree(tree, "bench.yaml"), fmt).eval()


@torch.inference_mode()
def one_at_a_time(model, fmt, bank: ClipBank) -> list[np.ndarray]:
    unit, ids = model.downsample, []
    for start, length in zip(bank.offsets[:-1], bank.lengths):
        frames = torch.from_numpy(bank.frames[start:start + length // unit * unit])
        ids.append(model.encode(fmt.normalise(frames)[None])[0].numpy())
    return ids


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--down-t", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    bank = make_split(args.clips)
    fmt = layouts.humanml3d_263().with_stats(np.zeros(FEATURES), np.ones(FEATURES))
    model = make_model(fmt, args.width, args.depth, args.down_t)
    cropped = bank.lengths // model.downsample * model.downsample
    batches = len(length_buckets(cropped, args.batch_size))
    print(f"{len(bank.ids)} clips, {int(bank.lengths.sum()):,} frames, {len(np.unique(cropped))} cropped lengths "
          f"-> {batches} batches (mean {len(cropped) / batches:.1f} clips); encoder width {args.width}, "
          f"depth {args.depth}, x{model.downsample}; {args.threads} threads")

    encode_clips(model, fmt, bank, batch_size=args.batch_size)  # warm-up: allocator, kernels
    reference_s, batched_s = [], []
    for round_ in range(args.rounds):
        contenders = [("reference", reference_s), ("motionhub", batched_s)]
        for name, times in contenders if round_ % 2 == 0 else contenders[::-1]:
            if name == "reference":
                seconds, reference = timed(lambda: one_at_a_time(model, fmt, bank))
            else:
                seconds, encoded = timed(lambda: encode_clips(model, fmt, bank, batch_size=args.batch_size))
            times.append(seconds)

    differing = sum(not np.array_equal(encoded.clip_tokens(i), ids) for i, ids in enumerate(reference))
    one, batched = statistics.median(reference_s), statistics.median(batched_s)
    print(f"one clip at a time: {len(bank.ids) / one:8.1f} clips/s ({one:.2f} s)")
    print(f"batched (B={args.batch_size}):    {len(bank.ids) / batched:8.1f} clips/s ({batched:.2f} s)")
    print(f"speed-up: {one / batched:.2f}x; clips whose ids differ from one-at-a-time: {differing} / {len(bank.ids)}")


if __name__ == "__main__":
    main()
