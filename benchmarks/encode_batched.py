"""Encoding a whole split: length-bucketed batches (``motionhub encode``) vs one clip at a time.

    python benchmarks/encode_batched.py [--clips N] [--batch-size B] [--rounds R] [--threads T]
                                        [--width W] [--depth D] [--down-t K] [--device cpu|cuda]
                                        [--precision fp32|bf16]

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

Both contenders do the same arithmetic (no batch holds padding), so the script also counts
the encoder's floating-point operations for the split and prints each contender's rate next
to a dense matrix product's on the same device and threads, in the same dtype (``--precision
bf16``: both contenders encode under bf16 autocast, the quantizer in fp32, and the product is a
bf16 one), with the share of it each reaches: the most any batching can gain
is roughly that product's rate over the one-at-a-time rate. On a CPU a single clip already
keeps the cores busy and the gain is small; on a GPU a single clip is bound by kernel
launches and batching gains far more. With ``--device cuda`` every clip's ids are copied back
to the host, which waits for its kernels, as a one-at-a-time loop does.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from motionhub.data import layouts
from motionhub.model.build import build_tokenizer
from motionhub.data.dataset import Clip
from motionhub.data.formats import MotionFormat
from motionhub.recipes import recipe_from_tree
from motionhub.train.hardware import matmul_ceiling
from motionhub.model.precision import describe_precision
from motionhub.train.hardware import PRECISION_DTYPES
from motionhub.use.encoding import autocast_for, encode_clips, length_buckets
from motionhub.data.windows import ClipBank

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
def one_at_a_time(model, fmt, bank: ClipBank, device: torch.device, precision: str = "fp32") -> list[np.ndarray]:
    unit, ids = model.downsample, []
    with autocast_for(device, precision):
        for start, length in zip(bank.offsets[:-1], bank.lengths):
            frames = torch.from_numpy(bank.frames[start:start + length // unit * unit])
            ids.append(model.encode(fmt.normalise(frames)[None].to(device))[0].cpu().numpy())
    return ids


def split_flops(model, fmt, bank: ClipBank, batch_size: int, device: torch.device, precision: str = "fp32") -> int:
    """Floating-point operations of encoding the whole split (the same for both contenders)."""
    with FlopCounterMode(display=False) as counter:
        encode_clips(model, fmt, bank, batch_size=batch_size, device=device, precision=precision)
    return counter.get_total_flops()


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
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch finds no CUDA GPU here")

    bank = make_split(args.clips)
    fmt = layouts.humanml3d_263().with_stats(np.zeros(FEATURES), np.ones(FEATURES))
    model = make_model(fmt, args.width, args.depth, args.down_t).to(device)
    cropped = bank.lengths // model.downsample * model.downsample
    batches = len(length_buckets(cropped, args.batch_size))
    print(f"{len(bank.ids)} clips, {int(bank.lengths.sum()):,} frames, {len(np.unique(cropped))} cropped lengths "
          f"-> {batches} batches (mean {len(cropped) / batches:.1f} clips); encoder width {args.width}, "
          f"depth {args.depth}, x{model.downsample}; {device.type}, {args.threads} threads")
    print(f"precision {describe_precision(args.precision, model, networks=('encoder',))}")

    flops = split_flops(model, fmt, bank, args.batch_size, device, args.precision)  # also the warm-up
    one_at_a_time(model, fmt, make_split(8, seed=1), device, args.precision)
    reference_s, batched_s = [], []
    for round_ in range(args.rounds):
        contenders = [("reference", reference_s), ("motionhub", batched_s)]
        for name, times in contenders if round_ % 2 == 0 else contenders[::-1]:
            if name == "reference":
                seconds, reference = timed(lambda: one_at_a_time(model, fmt, bank, device, args.precision))
            else:
                seconds, encoded = timed(lambda: encode_clips(model, fmt, bank, batch_size=args.batch_size,
                                                              device=device, precision=args.precision))
            times.append(seconds)

    differing = sum(not np.array_equal(encoded.clip_tokens(i), ids) for i, ids in enumerate(reference))
    one, batched = statistics.median(reference_s), statistics.median(batched_s)
    # the run report's routine, in the dtype the encoder's products run in
    ceiling = matmul_ceiling(device, PRECISION_DTYPES[args.precision], budget_s=2.0)["flop_per_s"]
    print(f"encoder arithmetic: {flops / 1e9:.1f} GFLOP for the split ({flops / len(bank.ids) / 1e9:.3f} per clip); "
          f"dense {args.precision} matmul on this device: {ceiling / 1e9:.0f} GFLOP/s")
    for name, seconds in ((f"one clip at a time:", one), (f"batched (B={args.batch_size}):", batched)):
        rate = flops / seconds
        print(f"{name:20s} {len(bank.ids) / seconds:8.1f} clips/s ({seconds:.2f} s, {rate / 1e9:.0f} GFLOP/s, "
              f"{rate / ceiling:.0%} of the {args.precision} matmul ceiling)")
    print(f"speed-up: {one / batched:.2f}x (at most ~{ceiling * one / flops:.1f}x at the matmul rate); "
          f"clips whose ids differ from one-at-a-time: {differing} / {len(bank.ids)}")


if __name__ == "__main__":
    main()
