"""The quantizer contract: the one output type every quantizer plugin returns, and what else it exposes.

vector-quantize-pytorch returns 2-tuples (FSQ) or 3-tuples (VQ, RVQ, LFQ); motionhub
quantizers normalise that to ``QuantizerOutput`` so the tokenizer, losses and metrics
never care which quantizer a recipe picked.

Every quantizer is a :class:`Quantizer` (an ``nn.Module``) and exposes, with B the batch,
N the tokens per clip, C the latent width, D the width of its own code space and Q its
number of codebooks (residual levels):

``dim: int``
    C, the width of the latents it takes and of the codes it returns.
``forward(z: (B, N, C)) -> QuantizerOutput``
    ``quantized`` (B, N, C), ``indices`` (B, N) or (B, N, Q) int64 in ``[0, codebook_size)``,
    scalar ``aux_loss`` and, where it has one, ``pre_quantized`` (B, N, D): what it rounds or
    looks up, in its own code space (after any input projection C -> D), with gradients.
``codebook_size: int``
    K, the real number of codes per codebook (FSQ levels (8, 8, 6, 5) -> 1920, not the
    nominal 2048).
``levels: tuple[int, ...] | None``
    For a scalar quantizer (FSQ), the number of grid values of each of its D = len(levels)
    code dimensions, so K = prod(levels); None for a quantizer with a learned codebook.
``to_grid(pre_quantized: (..., D)) -> (..., D)``
    Scalar quantizers only: where each value of ``pre_quantized`` falls on its dimension's
    grid, in grid steps, before rounding; ``round(to_grid(x)) + level // 2`` is the level
    index of each dimension. Differentiable, so a loss can softly assign values to the grid.
``indices_to_codes(indices: (B, N) or (B, N, Q)) -> (B, N, C)``
    The quantized latents of token ids (what the decoder reads when decoding tokens).
``num_levels: int``
    The number of residual levels whose codes add up to the quantized latents (Q of a residual
    quantizer, RVQ); 1 for a quantizer with a single level (the default). Where it is above 1,
    indices are (B, N, Q) with the coarsest level first, and ``indices_to_codes(indices, levels=k)``
    gives the latents of the first k levels alone (1 <= k <= Q): the sum of their codes, through
    any output projection, as if the finer levels had been dropped. ``levels=Q`` is the full
    ``indices_to_codes(indices)``. Metrics read it to report figures per number of levels.
``codebook_state() -> dict[str, Tensor]``
    Codebook training state that is not a parameter or persistent buffer (see below).

Optional, for importers of other code bases' checkpoints (``motionhub import``):

``reference_key_map() -> dict[str, str]``
    ``{own state_dict key: the reference's key}``, relative to where the reference keeps its
    quantizer; a quantizer without it cannot be filled from a foreign checkpoint.
``reference_derived_state(read: dict[str, Tensor]) -> dict[str, Tensor]``
    Own state that references leave out of their checkpoints (e.g. EMA sums and counts),
    rebuilt from the tensors read (own keys, as in ``reference_key_map``).

Losses and metrics reach the quantizer the tokenizer ran through its outputs:
``outputs["quantizer"]`` is this module and ``outputs["pre_quantized"]`` its code-space
input. They read what they need from this contract and never import a quantizer plugin.
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
    """Base class for quantizer plugins (the contract is in this module's docstring).

    Subclasses take ``dim`` (the latent width C; the recipe may leave it to the encoder)
    and implement ``forward(z: (B, N, C)) -> QuantizerOutput``, ``codebook_size`` (the
    real number of codes, e.g. FSQ levels [8, 8, 6, 5] -> 1920) and
    ``indices_to_codes(indices) -> (B, N, C)``. Scalar quantizers also give ``levels``
    and ``to_grid``.
    """

    dim: int

    @property
    def codebook_size(self) -> int:
        raise NotImplementedError

    @property
    def levels(self) -> Optional[tuple[int, ...]]:
        """Grid values per code dimension of a scalar quantizer, e.g. (8, 8, 6, 5); None here."""
        return None

    def to_grid(self, pre_quantized: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., D): each value's place on its dimension's grid, in grid steps, before rounding."""
        raise NotImplementedError(f"{type(self).__name__} has no grid of levels (levels is None): only scalar "
                                  f"quantizers such as fsq place values on a grid")

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def num_levels(self) -> int:
        """Residual levels whose codes add up (Q of an RVQ); 1 here. Above 1, ``indices_to_codes``
        also takes ``levels=k`` (the first k levels alone)."""
        return 1

    def reference_derived_state(self, read: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Own state a reference checkpoint leaves out, rebuilt from ``read`` (own keys); none here."""
        return {}

    def codebook_state(self) -> dict[str, torch.Tensor]:
        """Training state of the codebook that is not a parameter (EMA sums, counts, init flags).

        Buffers registered with ``persistent=True`` are saved with the model already; this hook
        is for anything else a subclass must checkpoint and keep identical across processes.
        """
        return {}
