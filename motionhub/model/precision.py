"""Full precision inside mixed-precision autocast, and what a run computed in which precision.

Under ``train.precision: bf16`` (or fp16) the forward pass runs inside ``torch.autocast``:
matrix products and convolutions take the low-precision path. Some parts must not: a
quantizer's nearest-code distances and its rounding decide discrete indices (a bf16 product
flips some of them), and the loss values are summed over steps and compared across runs.
Those parts run inside ``full_precision(part)``: autocast off, floating inputs cast to float32.

vector-quantize-pytorch turns autocast off only for CUDA (``autocast('cuda', enabled=False)``),
so on the CPU its FSQ projection, VQ distances and EMA sums would run in bf16; the quantizer
wrappers use ``full_precision_forward`` for that reason.

A part declares itself: ``full_precision_forward(part)`` marks the method it wraps, a class may
set ``full_precision_part``; ``describe_precision`` reads those marks, so the plan and the report
say what the code does. ``full_precision`` also records each part that ran while autocast was
on (``ran_in_full_precision``), which tests compare with the declarations.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import torch

_ran: set[str] = set()  # parts that ran inside full_precision while autocast was on, in this process


@contextlib.contextmanager
def full_precision(part: str, device_type: str = "cpu") -> Iterator[None]:
    """Autocast off for ``device_type`` inside the block; ``part`` (e.g. "quantizer") is recorded
    when autocast was on, so it really ran in float32 where it would not have."""
    if torch.is_autocast_enabled(device_type):
        _ran.add(part)
    with torch.autocast(device_type, enabled=False):
        yield


def to_float32(value: Any) -> Any:
    """``value`` with each floating tensor below float32 (bf16, fp16) cast to float32, through
    dicts, lists and tuples; other values (float32 and float64 tensors included) as they are."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() and value.element_size() < 4 else value
    if isinstance(value, dict):
        return {key: to_float32(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(to_float32(item) for item in value)
    return value


def full_precision_forward(part: str) -> Callable[[Callable], Callable]:
    """Decorator of a module's ``forward(self, x, ...)``: it runs inside ``full_precision(part)``
    with ``x`` in float32, and is marked (``full_precision_part``) for ``describe_precision``."""
    def wrap(forward: Callable) -> Callable:
        @functools.wraps(forward)
        def run(self, x: torch.Tensor, *args, **kwargs):
            with full_precision(part, x.device.type):
                return forward(self, to_float32(x), *args, **kwargs)
        run.full_precision_part = part
        return run
    return wrap


def declared_full_precision(component: Any) -> str | None:
    """The part ``component`` declares it computes in float32 under autocast (its class's
    ``full_precision_part``, or its forward's mark), None when it declares nothing."""
    part = getattr(type(component), "full_precision_part", None)
    if part is None:
        part = getattr(getattr(type(component), "forward", None), "full_precision_part", None)
    return part


def ran_in_full_precision() -> set[str]:
    """The parts that ran in float32 under autocast in this process so far."""
    return set(_ran)


def forget_full_precision_runs() -> None:
    """Start the record of ``ran_in_full_precision`` afresh."""
    _ran.clear()


def low_precision_layers(module: torch.nn.Module) -> list[str]:
    """The kinds of layer in ``module`` whose forward autocast puts in the low precision,
    in words ("matmuls", "convs", ...), in a fixed order."""
    kinds = {"matmuls": (torch.nn.Linear, torch.nn.Bilinear, torch.nn.MultiheadAttention),
             "convs": (torch.nn.modules.conv._ConvNd,), "recurrences": (torch.nn.RNNBase,)}
    found = [type(m) for m in module.modules()]
    return [word for word, types in kinds.items() if any(issubclass(t, types) for t in found)]


def describe_precision(precision: str, model: torch.nn.Module, losses: Any = None,
                       networks: tuple[str, ...] = ("encoder", "decoder")) -> str:
    """Which precision each part of ``model`` (a tokenizer: encoder, quantizer, decoder) and
    ``losses`` computes in under ``precision``, in one line, e.g. "bf16 autocast: encoder and
    decoder matmuls/convs in bf16; quantizer and losses in fp32". Read from the layers and the
    parts' declarations (``full_precision_forward``, ``full_precision_part``). ``networks``: the
    parts besides the quantizer that run (``("encoder",)`` for encoding alone)."""
    if precision == "fp32":
        return "fp32"
    low, full = [], []
    for name in networks:
        part = getattr(model, name, None)
        if part is None:
            continue
        if declared_full_precision(part):
            full.append(name)
        elif low_precision_layers(part):
            low.append((name, "/".join(low_precision_layers(part))))
    quantizer = getattr(model, "quantizer", None)
    low_quantizer = quantizer is not None and not declared_full_precision(quantizer)
    if quantizer is not None and not low_quantizer:
        full.append("quantizer")
    if losses is not None and declared_full_precision(losses):
        full.append("losses")
    clauses = []
    if low:
        kinds = {kind for _, kind in low}
        if len(kinds) == 1:
            clauses.append(f"{' and '.join(name for name, _ in low)} {kinds.pop()} in {precision}")
        else:
            clauses.append(", ".join(f"{name} {kind} in {precision}" for name, kind in low))
    if low_quantizer:
        clauses.append(f"quantizer under {precision} autocast")
    if full:
        clauses.append(f"{_join(full)} in fp32")
    return f"{precision} autocast" + (f": {'; '.join(clauses)}" if clauses else "")


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"
