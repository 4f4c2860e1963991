"""Encoding a whole split: batched (``motionhub encode``) vs one clip at a time.

    python benchmarks/encode_batched.py [--clips N] [--batch-size B] [--rounds R] [--threads T]
                                        [--width W] [--depth D] [--down-t K] [--device cpu|cuda]
                                        [--precision fp32|bf16|both]

One process, one model, one split. The split is N clips of 263 random features (HumanML3D's
layout) with lengths drawn uniformly from 40-196 frames, HumanML3D's range; the model is a
conv1d encoder with FSQ (T2M-GPT's encoder shape by default: width 512, depth 3, x4
down-sampling) at its initial weights, in eval mode; timings do not depend on the values.
Contenders, both under ``torch.inference_mode``, on ``--threads`` CPU threads (default 1: on
a machine shared with other jobs, more threads wait on each other and the figures scatter):

  reference  for each clip: crop to a multiple of the down-sampling, normalise, ``model.encode``
             on a batch of one;
  motionhub  ``encode_clips(..., batch_size=B)``: full batches of neighbouring lengths, padded
             on the right, every conv reading zeros past each clip's end (the conv encoder
             ``pads_exactly``: ``motionhub.model.padding``).

Contenders alternate for R rounds (neither always runs first); figures are medians. Each is
timed in wall seconds and in the process's CPU seconds: on one thread the CPU seconds are the
time the encoding really ran, which other jobs on a shared machine barely change. The
reference's ids are also the oracle: the script counts clips whose batched ids differ.

The script counts the encoder's floating-point operations of encoding each clip alone (the
useful work; the batched contender also computes a little padding) and prints each contender's rate next
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
from motionhub.train.hardware import PRECISION_DTYPES, matmul_ceiling
from motionhub.model.precision import describe_precision
from motionhub.model.padding import pads_exactly
from motionhub.use.encoding import autocast_for, encode_clips, length_buckets, sorted_batches
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
    """Floating-point operations of encoding the whole split one clip at a time (the useful work),
    after a batched warm-up."""
    encode_clips(model, fmt, bank, batch_size=batch_size, device=device, precision=precision)
    with FlopCounterMode(display=False) as counter:
        one_at_a_time(model, fmt, bank, device, precision)
    return counter.get_total_flops()


def timed(fn) -> tuple[float, float, object]:
    """Wall seconds, CPU seconds of the process (on one thread: the time it really ran, whatever
    other jobs took of the machine meanwhile) and ``fn()``."""
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - start, time.process_time() - cpu, result


def reconstruction_error(model, fmt, bank: ClipBank, encoded, device: torch.device) -> float:
    """Mean absolute error of the fp32 decoder's reconstruction of each clip from ``encoded``'s ids,
    against the clip's normalised frames cropped alike, averaged over clips."""
    unit, errors = model.downsample, []
    with torch.inference_mode():
        for i, (start, length) in enumerate(zip(bank.offsets[:-1], bank.lengths)):
            frames = fmt.normalise(torch.from_numpy(bank.frames[start:start + length // unit * unit]))
            ids = torch.as_tensor(np.asarray(encoded.clip_tokens(i)), device=device)[None]
            decoded = model.decode(ids)
            decoded = model.to_features(decoded, frames[None]) if isinstance(decoded, dict) else decoded
            errors.append((decoded[0].float().cpu().reshape(frames.shape) - frames).abs().mean().item())
    return float(np.mean(errors))


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
    parser.add_argument("--precision", choices=("fp32", "bf16", "both"), default="both",
                        help="the precision(s) of the batched contender; the reference is always fp32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch finds no CUDA GPU here")
    precisions = ("fp32", "bf16") if args.precision == "both" else (args.precision,)

    bank = make_split(args.clips)
    fmt = layouts.humanml3d_263().with_stats(np.zeros(FEATURES), np.ones(FEATURES))
    model = make_model(fmt, args.width, args.depth, args.down_t).to(device)
    cropped = bank.lengths // model.downsample * model.downsample
    batching = sorted_batches if pads_exactly(model.encoder) else length_buckets
    batches = len(batching(cropped, args.batch_size))
    print(f"{len(bank.ids)} clips, {int(bank.lengths.sum()):,} frames, {len(np.unique(cropped))} cropped lengths "
          f"-> {batches} batches (mean {len(cropped) / batches:.1f} clips); encoder width {args.width}, "
          f"depth {args.depth}, x{model.downsample}; {device.type}, {args.threads} threads; conv1d encoder "
          f"(nn.Conv1d, the layout benchmarks/kernel_layouts.py found fastest)")
    for precision in precisions:
        print(f"precision {precision}: {describe_precision(precision, model, networks=('encoder',))}")

    flops = {p: split_flops(model, fmt, bank, args.batch_size, device, p) for p in precisions}  # also warm-ups
    one_at_a_time(model, fmt, make_split(8, seed=1), device)
    contenders = {"one clip at a time (fp32)": lambda: one_at_a_time(model, fmt, bank, device)}
    for p in precisions:
        contenders[f"batched {p} (B={args.batch_size})"] = (
            lambda p=p: encode_clips(model, fmt, bank, batch_size=args.batch_size, device=device, precision=p))
    times: dict[str, list[float]] = {name: [] for name in contenders}
    cpu_times: dict[str, list[float]] = {name: [] for name in contenders}
    results = {}
    for round_ in range(args.rounds):
        names = list(contenders) if round_ % 2 == 0 else list(contenders)[::-1]  # none always first
        for name in names:
            seconds, cpu, results[name] = timed(contenders[name])
            times[name].append(seconds)
            cpu_times[name].append(cpu)

    reference_name = next(iter(contenders))
    reference = results[reference_name]
    one = statistics.median(times[reference_name])
    one_cpu = statistics.median(cpu_times[reference_name])
    # the run report's routine, in the dtype each contender's products run in
    ceilings = {p: matmul_ceiling(device, PRECISION_DTYPES[p], budget_s=2.0)["flop_per_s"]
                for p in ("fp32", *precisions)}
    print(f"encoder arithmetic: {flops[precisions[0]] / 1e9:.1f} GFLOP for the split "
          f"({flops[precisions[0]] / len(bank.ids) / 1e9:.3f} per clip); dense matmul on this device: "
          + ", ".join(f"{p} {c / 1e9:.0f} GFLOP/s" for p, c in ceilings.items()))
    for name, seconds in times.items():
        seconds = statistics.median(seconds)
        precision = "bf16" if "bf16" in name else "fp32"
        rate = flops.get(precision, flops[precisions[0]]) / seconds
        print(f"{name + ':':28s} {len(bank.ids) / seconds:8.1f} clips/s ({seconds:.2f} s, {rate / 1e9:.0f} GFLOP/s, "
              f"{rate / ceilings[precision]:.0%} of the {precision} matmul ceiling; "
              f"{statistics.median(cpu_times[name]):.2f} CPU s)")
    reference_error = None
    for p in precisions:
        name = f"batched {p} (B={args.batch_size})"
        batched, encoded = statistics.median(times[name]), results[name]
        same_clips = sum(np.array_equal(encoded.clip_tokens(i), ids) for i, ids in enumerate(reference))
        same_ids = sum(int((np.asarray(encoded.clip_tokens(i)) == ids).sum()) for i, ids in enumerate(reference))
        total_ids = sum(ids.size for ids in reference)
        ceiling_speedup = ceilings[p] * one / flops[p]
        batched_cpu = statistics.median(cpu_times[name])
        print(f"{p} speed-up over one clip at a time in fp32: {one / batched:.2f}x wall, {one_cpu / batched_cpu:.2f}x "
              f"CPU (at most ~{ceiling_speedup:.1f}x "
              f"at the {p} matmul rate); clips whose ids differ from one-at-a-time: "
              f"{len(bank.ids) - same_clips} / {len(bank.ids)}; identical ids {same_ids / total_ids:.4%}")
        if p == "bf16":
            reference_error = reference_error or reconstruction_error(model, fmt, bank, _Listed(reference), device)
            error = reconstruction_error(model, fmt, bank, encoded, device)
            print(f"bf16 reconstruction error (mean |decoded - input|, fp32 decoder): {error:.5f} vs {reference_error:.5f} "
                  f"from the fp32 ids ({error - reference_error:+.2e}, {error / reference_error - 1:+.2e} relative)")


class _Listed:
    """One-at-a-time ids in the shape ``reconstruction_error`` reads (``clip_tokens(i)``)."""

    def __init__(self, ids: list[np.ndarray]):
        self.ids = ids

    def clip_tokens(self, i: int) -> np.ndarray:
        return self.ids[i]


if __name__ == "__main__":
    main()
