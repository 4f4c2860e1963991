"""Thin wrappers around vector-quantize-pytorch's VectorQuantize, ResidualVQ and LFQ.

Each normalises the library's return value to ``QuantizerOutput`` (scalar ``aux_loss``, int64
indices) and exposes the options that matter most for codebook usage. Defaults are the library's.
"""

from __future__ import annotations

import math
from typing import Annotated, Optional

import torch
import vector_quantize_pytorch as vqp

from motionhub.api import Bounds, Quantizer, QuantizerOutput, full_precision_forward


class _Codebooks(Quantizer):
    """Shared by the wrappers whose library module returns ``(quantized, indices, losses)``.

    Subclasses store the library module as ``self.codebooks``. The forward runs in fp32 under
    autocast too: the library turns autocast off for CUDA only, so on the CPU its distances,
    projections and EMA codebook sums would otherwise be bf16 products.
    """

    codebooks: torch.nn.Module

    @property
    def codebook_size(self) -> int:
        return self.codebooks.codebook_size

    @full_precision_forward("quantizer")
    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        quantized, indices, losses = self.codebooks(z)
        return QuantizerOutput(quantized, indices.long(), losses.sum())

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, N) or (B, N, Q) -> (B, N, C)."""
        return self.codebooks.get_output_from_indices(indices)


DECAY = Bounds(low=0, high=1)
WEIGHT = Bounds(low=0)


def _check_codebook_size(codebook_size: int) -> None:
    if codebook_size < 2:
        raise ValueError(f"codebook_size must be at least 2, got {codebook_size}: one code carries no information "
                             f"(every token would be the same); use e.g. 512")


class VQ(_Codebooks):
    """Vector quantizer from vector-quantize-pytorch: EMA codebook, optional k-means init and dead-code expiry.

    dim:                     latent width C.
    codebook_size:           number of codes K.
    decay:                   EMA decay of the codebook.
    commitment_weight:       weight of the commitment loss in ``aux_loss``.
    kmeans_init:             initialise the codebook with k-means on the first batch.
    threshold_ema_dead_code: replace codes whose EMA cluster size falls below this (0 = never).
    use_cosine_sim:          l2-normalised codes and latents, cosine-similarity lookup.
    codebook_dim:            look up codes in a projected space of this width (None = C).
    rotation_trick:          gradient estimator through the lookup; None = the library's default (on).
    forward: (B, N, C) -> quantized (B, N, C), indices (B, N).
    """

    def __init__(
        self,
        dim: Annotated[int, Bounds(low=1)] = 512,
        codebook_size: Annotated[int, Bounds(low=2)] = 512,
        decay: Annotated[float, DECAY] = 0.8,
        commitment_weight: Annotated[float, WEIGHT] = 1.0,
        kmeans_init: bool = False,
        threshold_ema_dead_code: Annotated[float, Bounds(low=0)] = 0.0,
        use_cosine_sim: bool = False,
        codebook_dim: Annotated[Optional[int], Bounds(low=1)] = None,
        rotation_trick: Optional[bool] = None,
    ):
        super().__init__()
        _check_codebook_size(codebook_size)
        self.dim = dim
        self.codebooks = vqp.VectorQuantize(
            dim=dim, codebook_size=codebook_size, decay=decay, commitment_weight=commitment_weight,
            kmeans_init=kmeans_init, threshold_ema_dead_code=threshold_ema_dead_code,
            use_cosine_sim=use_cosine_sim, codebook_dim=codebook_dim, rotation_trick=rotation_trick,
        )


class RVQ(_Codebooks):
    """Residual vector quantizer from vector-quantize-pytorch: Q codebooks, each quantising the previous residual.

    dim:                     latent width C.
    num_quantizers:          Q, the number of residual levels.
    codebook_size:           codes per level.
    quantize_dropout:        train with a random number of levels so fewer can be decoded.
    shared_codebook:         one codebook for every level.
    decay:                   EMA decay of each level's codebook.
    commitment_weight:       weight of each level's commitment loss in ``aux_loss``.
    kmeans_init:             initialise each level's codebook with k-means on the first batch.
    threshold_ema_dead_code: replace codes whose EMA cluster size falls below this (0 = never), per level.
    use_cosine_sim:          l2-normalised codes and residuals, cosine-similarity lookup.
    codebook_dim:            look up codes in a projected space of this width (None = C).
    rotation_trick:          gradient estimator through the lookup; None = the library's default (on).

    ``aux_loss`` sums the levels' commitment losses.
    forward: (B, N, C) -> quantized (B, N, C), indices (B, N, Q).
    ``indices_to_codes(indices, levels=k)`` decodes from the first k levels alone (``num_levels`` = Q).
    """

    def __init__(
        self,
        dim: Annotated[int, Bounds(low=1)] = 512,
        num_quantizers: Annotated[int, Bounds(low=1)] = 8,
        codebook_size: Annotated[int, Bounds(low=2)] = 1024,
        quantize_dropout: bool = False,
        shared_codebook: bool = False,
        decay: Annotated[float, DECAY] = 0.8,
        commitment_weight: Annotated[float, WEIGHT] = 1.0,
        kmeans_init: bool = False,
        threshold_ema_dead_code: Annotated[float, Bounds(low=0)] = 0.0,
        use_cosine_sim: bool = False,
        codebook_dim: Annotated[Optional[int], Bounds(low=1)] = None,
        rotation_trick: Optional[bool] = None,
    ):
        super().__init__()
        _check_codebook_size(codebook_size)
        self.dim = dim
        self.codebooks = vqp.ResidualVQ(
            dim=dim, num_quantizers=num_quantizers, codebook_size=codebook_size,
            quantize_dropout=quantize_dropout, shared_codebook=shared_codebook, decay=decay,
            commitment_weight=commitment_weight, kmeans_init=kmeans_init,
            threshold_ema_dead_code=threshold_ema_dead_code, use_cosine_sim=use_cosine_sim,
            codebook_dim=codebook_dim, rotation_trick=rotation_trick,
        )

    @property
    def num_levels(self) -> int:
        return self.codebooks.num_quantizers

    def indices_to_codes(self, indices: torch.Tensor, levels: Optional[int] = None) -> torch.Tensor:
        """(B, N, Q) -> (B, N, C); ``levels=k`` sums the codes of the first k levels only (the library
        leaves out the codes of levels whose index is -1, as it does for levels dropped in training)."""
        if levels is not None:
            if not 1 <= levels <= self.num_levels:
                raise ValueError(f"levels must be between 1 and the {self.num_levels} residual levels, got {levels}")
            indices = indices.clone()
            indices[..., levels:] = -1
        return self.codebooks.get_output_from_indices(indices)


class LFQ(_Codebooks):
    """Lookup-free quantization (MAGVIT-v2) from vector-quantize-pytorch: the code is the signs of log2(K) dims.

    dim:                    latent width C (None = log2(codebook_size), no projection).
    codebook_size:          K, a power of two.
    entropy_loss_weight:    weight of the entropy (usage) loss in ``aux_loss``.
    commitment_loss_weight: weight of the commitment loss in ``aux_loss``.
    diversity_gamma:        weight of the codebook-entropy term inside the entropy loss.
    forward: (B, N, C) -> quantized (B, N, C), indices (B, N).
    """

    def __init__(
        self,
        dim: Annotated[Optional[int], Bounds(low=1)] = None,
        codebook_size: Annotated[int, Bounds(low=2, hint="a power of two")] = 65536,
        entropy_loss_weight: Annotated[float, WEIGHT] = 0.1,
        commitment_loss_weight: Annotated[float, WEIGHT] = 0.0,
        diversity_gamma: Annotated[float, WEIGHT] = 1.0,
    ):
        super().__init__()
        if codebook_size < 2 or codebook_size & (codebook_size - 1):
            suggestion = 2 ** math.ceil(math.log2(max(codebook_size, 2)))
            raise ValueError(f"LFQ codebook_size must be a power of two >= 2, "
                             f"got {codebook_size} (try {suggestion})")
        self.codebooks = vqp.LFQ(
            dim=dim, codebook_size=codebook_size, entropy_loss_weight=entropy_loss_weight,
            commitment_loss_weight=commitment_loss_weight, diversity_gamma=diversity_gamma,
        )
        self.dim = self.codebooks.dim

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, N) -> (B, N, C)."""
        return self.codebooks.indices_to_codes(indices)
