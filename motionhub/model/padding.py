"""Clips of different lengths in one batch through a convolutional encoder, exactly.

A zero-padded ``nn.Conv1d`` reads zeros past a clip's last frame. Pad the shorter clips of a
batch on the right to the longest one's length and make every ``nn.Conv1d`` of the encoder read
zeros past each clip's own end (its input zeroed there, at that layer's time resolution), and
each clip's outputs equal those of encoding it alone: the appended frames stand exactly where
the conv's own padding would be. This holds for an encoder whose only mixing over time is
``nn.Conv1d`` (everything else acts frame by frame); such an encoder says so with
``pads_exactly = True`` (the ``Encoder`` contract). It fails for attention, recurrence or a
norm that pools over time, which therefore keep to batches of one length.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


def pads_exactly(encoder: nn.Module) -> bool:
    """Whether ``encoder`` declares that right padding zeroed before every ``nn.Conv1d`` leaves
    each clip's outputs as if it were encoded alone (``Encoder.pads_exactly``)."""
    return bool(getattr(encoder, "pads_exactly", False))


@contextlib.contextmanager
def zeros_past_ends(encoder: nn.Module, lengths: torch.Tensor, total: int) -> Iterator[None]:
    """Inside the block, every ``nn.Conv1d`` of ``encoder`` reads zeros past each clip's end.

    lengths: (B,) frames of each clip in the padded input (B, total, *F). Every length and
             ``total`` must be multiples of the encoder's down-sampling, so that a layer working
             at ``T_in`` frames sees clip b end at exactly ``lengths[b] * T_in / total``.
    """
    lengths = lengths.to(torch.int64)

    def zero_tail(conv: nn.Module, args: tuple) -> tuple:
        x, rest = args[0], args[1:]  # (B, C, T_in)
        frames = x.shape[-1]
        ends = (lengths.to(x.device) * frames) // total
        inside = torch.arange(frames, device=x.device)[None, :] < ends[:, None]  # (B, T_in)
        return (torch.where(inside[:, None, :], x, torch.zeros((), dtype=x.dtype, device=x.device)), *rest)

    handles = [module.register_forward_pre_hook(zero_tail)
               for module in encoder.modules() if isinstance(module, nn.Conv1d)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
