"""Which layout and kernels train the tokenizers fastest: the variants of one forward + backward, timed in one run.

    python benchmarks/kernel_layouts.py [--batch 32] [--rounds 4] [--threads 1] [--device cpu|cuda]
                                        [--compile] [--precision fp32 bf16]

Conv tokenizer (T2M-GPT's size: width 512, depth 3, down_t 2, 64-frame windows of 263 features,
the ``conv1d`` encoder and decoder at their initial weights, quantizer left out: it is the same
for every variant). The same parameters, computed four ways:

  conv1d      the plugin as it is: (B, C, T) tensors through ``nn.Conv1d`` (oneDNN on the CPU);
  conv2d_nhwc each conv as a 2-D conv of unit height on channels-last (B, 1, T, C) tensors;
  gemm        (B, T, C) tensors, each conv one matrix product over its taps gathered side by side
              (the weight (C_out, C_in, k) read as (C_out, C_in * k));
  compiled    ``torch.compile`` of the plugin (with ``--compile``; its first step, the compile, is
              printed apart).

Transformer tokenizer (configs/humanml3d/transformer_fsq.yaml's size) with its attention through
``scaled_dot_product_attention`` (the plugin as it is) and through written-out softmax attention.

Each variant's output is checked against the plugin's in fp32 first. Then, per precision (bf16:
under CPU / CUDA autocast), the variants alternate for R rounds; the figure kept is the fastest
round (the one least disturbed by other jobs), in wall seconds and, on the CPU, in the process's
CPU seconds (at one thread, the time the step really ran). Each is printed with its rate and share
of a dense matmul ceiling measured in the same run in the same dtype, timed the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from motionhub.data.formats import MotionFormat
from motionhub.train.hardware import PRECISION_DTYPES, matmul_ceiling
from motionhub_conv.conv1d import Conv1dDecoder, Conv1dEncoder
from motionhub_transformer.model import TransformerDecoder, TransformerEncoder

FEATURES, WINDOW = 263, 64


# ---- conv variants: the plugin's modules, computed another way
def gemm_conv(conv: torch.nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """``conv`` on (B, T, C_in) as one matrix product over its taps -> (B, T', C_out)."""
    weight, (k,), (d,), (s,), (p,) = conv.weight, conv.kernel_size, conv.dilation, conv.stride, conv.padding
    if k == 1:
        return F.linear(x, weight[:, :, 0], conv.bias)
    padded = F.pad(x, (0, 0, p, p))
    if s == 1:
        taps = torch.stack([padded[:, i * d:i * d + x.shape[1]] for i in range(k)], dim=-1)  # (B, T, C, k)
    else:
        taps = padded.unfold(1, k, s)  # (B, T', C, k)
    return F.linear(taps.flatten(2), weight.flatten(1), conv.bias)


def nhwc_conv(conv: torch.nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """``conv`` as a unit-height 2-D conv on channels-last (B, C, 1, T)."""
    return F.conv2d(x, conv.weight.unsqueeze(2), conv.bias, (1, conv.stride[0]), (0, conv.padding[0]),
                    (1, conv.dilation[0]))


def conv_network(encoder, decoder, x: torch.Tensor, conv, to_layout, from_layout, upsample) -> torch.Tensor:
    """Encoder then decoder (no quantizer) with every conv computed by ``conv`` in a layout."""
    def res(stack, h):
        for block in stack:
            h = h + conv(block.conv2, block.act(conv(block.conv1, block.act(h))))
        return h

    h = F.relu(conv(encoder.stem, to_layout(x)))
    for block in encoder.down:
        h = res(block.res, conv(block.conv, h))
    h = F.relu(conv(decoder.stem, conv(encoder.proj_out, h)))
    for block in decoder.up:
        h = conv(block.conv, upsample(res(block.res, h), decoder.stride_t))
    return from_layout(conv(decoder.proj_out, F.relu(conv(decoder.post_conv, h))))


def conv_variants(encoder, decoder, x: torch.Tensor) -> dict:
    gemm = lambda: conv_network(encoder, decoder, x, gemm_conv, lambda v: v, lambda v: v,  # noqa: E731
                                lambda h, s: h.repeat_interleave(s, dim=1))
    nhwc = lambda: conv_network(  # noqa: E731
        encoder, decoder, x, nhwc_conv, lambda v: v.transpose(1, 2)[:, :, None].contiguous(
            memory_format=torch.channels_last), lambda v: v[:, :, 0].transpose(1, 2),
        lambda h, s: F.interpolate(h, scale_factor=(1, s), mode="nearest"))
    return {"conv1d": lambda: decoder(encoder(x)), "conv2d_nhwc": nhwc, "gemm": gemm}


# ---- attention variants
def written_out_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    scores = q @ k.transpose(-1, -2) * (scale or q.shape[-1] ** -0.5)
    if is_causal:
        n = q.shape[-2]
        scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return F.dropout(scores.softmax(-1), dropout_p) @ v


@contextlib.contextmanager
def attention_as(function):
    original = F.scaled_dot_product_attention
    F.scaled_dot_product_attention = function
    try:
        yield
    finally:
        F.scaled_dot_product_attention = original


def transformer_variants(encoder, decoder, x: torch.Tensor) -> dict:
    def written_out():
        with attention_as(written_out_attention):
            return decoder(encoder(x))
    return {"sdpa": lambda: decoder(encoder(x)), "written_out": written_out}


# ---- timing
def step(network, parameters, low_precision: torch.dtype | None, device: torch.device) -> None:
    for p in parameters:
        p.grad = None
    with torch.autocast(device.type, dtype=low_precision or torch.float32, enabled=low_precision is not None):
        y = network()
    y.float().square().mean().backward()


def measure(name: str, variants: dict, modules, args, device: torch.device, ceilings: dict) -> None:
    """Check each variant against the first (the plugin) in fp32 eval mode, then time training steps."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    parameters = [p for module in modules for p in module.parameters()]
    for module in modules:
        module.eval()  # no dropout: the outputs must agree
    with torch.no_grad():
        reference = variants[next(iter(variants))]()
        for label, network in variants.items():
            gap = (network().float() - reference).abs().max().item()
            print(f"  {label:14} fp32 output vs the plugin's: max |difference| {gap:.1e}")
    for module in modules:
        module.train()
    with FlopCounterMode(display=False) as counter:
        step(variants[next(iter(variants))], parameters, None, device)
    flops = counter.get_total_flops()
    print(f"  {flops / 1e9:.1f} GFLOP per forward + backward")
    for precision in args.precision:
        dtype = None if precision == "fp32" else PRECISION_DTYPES[precision]
        best = {label: (float("inf"), float("inf")) for label in variants}
        for label, network in variants.items():
            started = time.perf_counter()
            step(network, parameters, dtype, device)  # warm-up (and the compile)
            if label == "compiled":
                print(f"  compiled: first {precision} step (compiling) {time.perf_counter() - started:.1f} s")
        for round_ in range(args.rounds):
            labels = list(variants) if round_ % 2 == 0 else list(variants)[::-1]
            for label in labels:
                sync()
                wall, cpu = time.perf_counter(), time.process_time()
                step(variants[label], parameters, dtype, device)
                sync()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                best[label] = (min(best[label][0], wall), min(best[label][1], cpu))
        ceiling = ceilings[precision]
        for label, (wall, cpu) in best.items():
            line = (f"  {name} {label:14} {precision}: {wall:.3f} s {flops / wall / 1e9:7.1f} GFLOP/s "
                    f"{flops / wall / ceiling:6.1%} of the {precision} matmul ceiling")
            if device.type == "cpu":
                rate = flops * torch.get_num_threads() / cpu
                line += f" | {cpu:.3f} CPU s {rate / 1e9:7.1f} GFLOP/s {rate / ceilings[precision + ' cpu']:6.1%}"
            print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--precision", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"])
    parser.add_argument("--compile", action="store_true", help="also torch.compile the conv plugin (slow to start)")
    parser.add_argument("--width", type=int, default=512, help="width of both tokenizers (smaller: a quick check)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.exit(2, "--device cuda: torch finds no CUDA GPU here\n")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    ceilings = {p: matmul_ceiling(device, PRECISION_DTYPES[p], budget_s=2.0, repeats=5)["flop_per_s"]
                for p in args.precision}
    if device.type == "cpu":  # the same products timed in CPU seconds, for the rates from CPU seconds
        ceilings.update({f"{p} cpu": matmul_ceiling(device, PRECISION_DTYPES[p], budget_s=2.0, repeats=5,
                                                    cpu_clock=True)["flop_per_s"] for p in args.precision})
    print(f"{device.type}, {torch.get_num_threads()} threads, batch {args.batch} x {WINDOW} frames x {FEATURES} "
          f"features; dense matmul ceilings " + ", ".join(f"{p} {c / 1e9:.0f} GFLOP/s" for p, c in ceilings.items())
          + " (cpu: timed in CPU seconds)")

    fmt = MotionFormat("humanml3d_263", (FEATURES,), fps=20.0)
    x = torch.randn(args.batch, WINDOW, FEATURES, generator=torch.Generator().manual_seed(0)).to(device)
    torch.manual_seed(0)
    encoder = Conv1dEncoder(fmt, width=args.width, output_emb_width=args.width).to(device)
    decoder = Conv1dDecoder(fmt, encoder=encoder).to(device)
    variants = conv_variants(encoder, decoder, x)
    if args.compile:
        compiled_encoder, compiled_decoder = torch.compile(encoder), torch.compile(decoder)
        variants["compiled"] = lambda: compiled_decoder(compiled_encoder(x))
    print("conv tokenizer (conv1d encoder and decoder):")
    measure("conv", variants, (encoder, decoder), args, device, ceilings)

    encoder = TransformerEncoder(fmt, width=args.width, depth=4, heads=8, down_t=2, output_emb_width=args.width,
                                 max_len=256).to(device)
    decoder = TransformerDecoder(fmt, encoder=encoder).to(device)
    print("transformer tokenizer (transformer encoder and decoder, dropout on):")
    measure("transformer", transformer_variants(encoder, decoder, x), (encoder, decoder), args, device, ceilings)


if __name__ == "__main__":
    main()
