"""Finite scalar quantization (Mentzer et al. 2023) on ``vector_quantize_pytorch.FSQ``."""

from __future__ import annotations

import math
from typing import Annotated, Optional

import torch
import vector_quantize_pytorch as vqp

from motionhub.api import Bounds, Quantizer, QuantizerOutput, full_precision_forward

# the levels MotionMillion picks for a requested codebook size (the product is the real size)
LEVELS_FOR_SIZE: dict[int, list[int]] = {
    256: [8, 6, 5],
    512: [8, 8, 8],
    1024: [8, 5, 5, 5],
    2048: [8, 8, 6, 5],
    4096: [7, 5, 5, 5, 5],
    16384: [8, 8, 8, 6, 5],
    65536: [8, 8, 8, 5, 5, 5],
}


def fsq_levels(levels: Optional[list[int]], codebook_size: Optional[int]) -> list[int]:
    """The FSQ levels from exactly one of explicit ``levels`` or a nominal ``codebook_size``."""
    if (levels is None) == (codebook_size is None):
        raise ValueError("FSQ needs exactly one of 'levels' (e.g. [8, 5, 5, 5]) or 'codebook_size' "
                         f"(one of {sorted(LEVELS_FOR_SIZE)})")
    if codebook_size is not None:
        if codebook_size not in LEVELS_FOR_SIZE:
            raise ValueError(f"FSQ has no levels for codebook_size {codebook_size}; supported sizes: "
                             f"{', '.join(map(str, sorted(LEVELS_FOR_SIZE)))}, or give 'levels' explicitly")
        return list(LEVELS_FOR_SIZE[codebook_size])
    if not levels or any(level < 3 for level in levels):
        raise ValueError(f"FSQ levels must be a non-empty list of integers >= 3, got {levels}")
    return list(levels)


class FSQ(Quantizer):
    """Finite scalar quantization: round each of len(levels) projected dims to a fixed grid, no codebook to learn.

    dim:           latent width C; a Linear C -> len(levels) (and back) is added when they differ.
    levels:        grid size per dimension, e.g. [8, 5, 5, 5] (1000 codes).
    codebook_size: nominal size mapped to MotionMillion's levels (2048 -> [8, 8, 6, 5], 1920 codes).

    Exactly one of ``levels`` / ``codebook_size``. The forward (projections and rounding) runs in
    fp32, under autocast too; ``aux_loss`` is 0.
    forward: (B, N, C) -> quantized (B, N, C), indices (B, N), pre_quantized (B, N, len(levels)).
    ``levels`` (a tuple) and ``to_grid`` are the scalar-quantizer part of the quantizer contract.
    """

    def __init__(
        self,
        dim: Annotated[Optional[int], Bounds(low=1)] = None,
        levels: Annotated[Optional[list[int]], Bounds(low=3)] = None,
        codebook_size: Optional[int] = None,
    ):
        super().__init__()
        self._levels = tuple(fsq_levels(levels, codebook_size))
        self.fsq = vqp.FSQ(levels=list(self._levels), dim=dim)
        self.dim = self.fsq.dim

    @property
    def levels(self) -> tuple[int, ...]:
        """Grid values per dimension, e.g. (8, 8, 6, 5)."""
        return self._levels

    @property
    def codebook_size(self) -> int:
        return math.prod(self._levels)

    @full_precision_forward("quantizer")  # the library keeps its rounding in fp32 on CUDA only, not its projection
    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        quantized, indices = self.fsq(z)
        # the library projects inside its forward; a (B, N, C) x (C, G) product again is cheap
        return QuantizerOutput(quantized, indices.long(), z.new_zeros(()), pre_quantized=self.fsq.project_in(z))

    def to_grid(self, pre_quantized: torch.Tensor) -> torch.Tensor:
        """(..., G) -> (..., G), G = len(levels): the value FSQ rounds, in grid steps.

        The library's bound (tanh with eps 1e-3, half-step offset for even levels) before its
        rounding: rounding it and adding ``level // 2`` gives FSQ's level index per dimension.
        """
        levels = torch.tensor(self._levels, dtype=pre_quantized.dtype, device=pre_quantized.device)
        half = (levels - 1) * (1 + 1e-3) / 2
        offset = (1 - levels % 2) / 2
        return torch.tanh(pre_quantized + torch.atanh(offset / half)) * half - offset

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, N) -> (B, N, C)."""
        return self.fsq.indices_to_codes(indices)

    def reference_key_map(self) -> dict[str, str]:
        """``{own state_dict key: reference key}`` relative to MotionMillion's ``vqvae.quantizer``
        (``project_in.weight``, ...)."""
        return {key: key.removeprefix("fsq.") for key in self.state_dict()}
