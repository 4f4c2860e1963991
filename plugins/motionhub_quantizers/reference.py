"""The first-party quantizers in other code bases' checkpoints: where their tensors sit, and what a
checkpoint leaves out.

Importers of reference tokenizers (T2M-GPT, MotionMillion, AMPLIFY, LAPS) place the quantizer
through ``quantizer_keys``: FSQ's input and output projections by FSQ's own
``reference_key_map()``, or an EMA codebook's ``codebook``.

T2M-GPT's EMA codebook is the only part of its quantizer in the checkpoint: the EMA sums and
counts live outside it. ``ema_statistics`` rebuilds them as the reference's own initialisation
sets them, ``code_sum = codebook`` and ``code_count = 1`` (so every code counts as used once, and
codes that the next training batches do not pick are reset, as right after the reference's
initialisation); ``initialised`` is set unless the codebook is all zeros, which means the
reference never trained it.
"""

from __future__ import annotations

import torch
from torch import nn

from motionhub.api import MotionhubError

EMA_BUFFERS = frozenset({"codebook", "code_sum", "code_count", "initialised"})


def quantizer_keys(quantizer: nn.Module, prefix: str) -> dict[str, str]:
    """``{model key: checkpoint key}`` of the quantizer, whose checkpoint tensors start with ``prefix``."""
    if hasattr(quantizer, "reference_key_map"):
        return {f"quantizer.{ours}": prefix + ref for ours, ref in quantizer.reference_key_map().items()}
    if has_ema_codebook(quantizer):
        return {"quantizer.codebook": f"{prefix}codebook"}
    raise MotionhubError(f"the recipe's quantizer ({type(quantizer).__name__}) has no counterpart in the reference; "
                         f"use quantizer: vq_ema_reset (T2M-GPT) or fsq (MotionMillion, AMPLIFY)")


def has_ema_codebook(quantizer: nn.Module) -> bool:
    return set(quantizer.state_dict()) == EMA_BUFFERS


def derived_keys(quantizer: nn.Module) -> set[str]:
    """The model keys ``ema_statistics`` fills (none unless the quantizer is an EMA codebook)."""
    return {f"quantizer.{name}" for name in EMA_BUFFERS - {"codebook"}} if has_ema_codebook(quantizer) else set()


def ema_statistics(codebook: torch.Tensor) -> dict[str, torch.Tensor]:
    """EMA state the reference keeps outside its checkpoint, as its initialisation sets it."""
    trained = bool(codebook.any())
    return {
        "quantizer.code_sum": codebook.clone() if trained else torch.zeros_like(codebook),
        "quantizer.code_count": torch.full(codebook.shape[:1], float(trained), dtype=codebook.dtype),
        "quantizer.initialised": torch.tensor(trained),
    }


class ReferenceQuantizer:
    """For importers (``StateDictImporter`` subclasses) of tokenizers whose quantizer is one of ours:
    the EMA statistics a checkpoint leaves out are derived from its codebook."""

    @classmethod
    def derived_keys(cls, model: nn.Module) -> set[str]:
        return derived_keys(model.quantizer)

    @classmethod
    def derive(cls, model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return ema_statistics(state["quantizer.codebook"]) if has_ema_codebook(model.quantizer) else {}
