"""The one output type every quantizer plugin returns, and the base class they share.

vector-quantize-pytorch returns 2-tuples (FSQ) or 3-tuples (VQ, RVQ, LFQ); motionhub
quantizers normalise that to ``QuantizerOutput`` so the tokenizer, losses and metrics
never care which quantizer a recipe picked.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import nn


class QuantizerOutput(NamedTuple):
    """What a quantizer returns.

    quantized:     (B, N, C) latents after quantisation (straight-through gradients).
    indices:       (B, N) or (B, N, Q) integer code ids (Q codebooks / residual levels).
    aux_loss:      scalar auxiliary loss (commitment, entropy, ...); 0 where the method has none.
    pre_quantized: (B, N, D) what is rounded or looked up, in the quantizer's own space (after any
                   input projection C -> D), with gradients; None where a quantizer does not say.
                   Losses on the code distribution read it (``outputs["pre_quantized"]``).
    """

    quantized: torch.Tensor
    indices: torch.Tensor
    aux_loss: torch.Tensor
    pre_quantized: Optional[torch.Tensor] = None


class Quantizer(nn.Module):
    """Base class for quantizer plugins.

    Subclasses take ``dim`` (the latent width C; the recipe may leave it to the encoder)
    and implement ``forward(z: (B, N, C)) -> QuantizerOutput``, ``codebook_size`` (the
    real number of codes, e.g. FSQ levels [8, 8, 6, 5] -> 1920) and
    ``indices_to_codes(indices) -> (B, N, C)``.
    """

    dim: int

    @property
    def codebook_size(self) -> int:
        raise NotImplementedError

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def codebook_state(self) -> dict[str, torch.Tensor]:
        """Training state of the codebook that is not a parameter (EMA sums, counts, init flags).

        Buffers registered with ``persistent=True`` are saved with the model already; this hook
        is for anything else a subclass must checkpoint and keep identical across processes.
        """
        return {}
