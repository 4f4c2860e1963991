"""Residual vector quantization over EMA-reset codebooks, the quantizer of MoMask's residual VQ-VAE.

Q levels, each an ``EMAResetVQ`` (T2M-GPT's codebook: EMA sums and counts, dead-code reset).
Level 0 quantises the latents, level i what levels 0..i-1 left over:

    r_0 = z;   q_i = level_i(r_i);   r_{i+1} = r_i - sg(q_i);   quantized = q_0 + ... + q_{Q-1}

At inference every level runs (the codes of all Q levels add up) and picks its nearest code. In
training, with probability ``quantize_dropout_prob`` only the first k levels run, k uniform in
1..Q, so that the first levels learn to reconstruct on their own (the indices of the levels left
out are -1); and with ``sample_temperature`` T > 0 a level samples its code instead of taking the
nearest: argmax_k(-||x - c_k||^2 / T + g_k), g_k Gumbel noise (MoMask trains with T = 0.5).
"""

from __future__ import annotations

from typing import Annotated, Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from motionhub.api import Bounds, Quantizer, QuantizerOutput, full_precision_forward

from .ema_reset import EMAResetVQ, _distributed

DROPPED = -1  # the index of a level left out by quantize dropout
TINY = 1e-20  # keeps the Gumbel noise's logarithms finite


class SampledEMAResetVQ(EMAResetVQ):
    """An ``EMAResetVQ`` that, in training with ``temperature`` > 0, samples each code from the
    softmax of -distance / temperature (Gumbel-max) instead of taking the nearest. The EMA update
    then gathers each latent into the code it drew. (B, N, C) -> quantized (B, N, C), indices (B, N)."""

    def __init__(self, dim: int, codebook_size: int, decay: float, temperature: float):
        super().__init__(dim, codebook_size, decay)
        self.temperature = temperature

    def _nearest(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.temperature <= 0:
            return super()._nearest(x)
        distance = self._distances(x)
        uniform = torch.rand_like(distance).clamp_min(TINY)
        gumbel = -torch.log((-torch.log(uniform)).clamp_min(TINY))
        return (-distance / self.temperature + gumbel).argmax(1)


class ResidualEMAResetVQ(Quantizer):
    """Residual VQ of Q EMA-reset codebooks (MoMask's RVQ): each level quantises the previous levels' residual.

    dim:                   latent width C (every level's codes are C wide; there is no projection).
    num_quantizers:        Q, the number of residual levels.
    codebook_size:         K, codes per level.
    decay:                 EMA decay of each level's sums and counts.
    quantize_dropout_prob: in training, the probability that a step runs only the first k levels
                           (k uniform in 1..Q).
    sample_temperature:    in training, sample each code from softmax(-distance / T) (MoMask: 0.5);
                           0 takes the nearest code, as inference always does.

    ``aux_loss`` is the mean of the levels' commitment losses (of the levels that ran).
    forward: (B, N, C) -> quantized (B, N, C), indices (B, N, Q), coarsest level first.
    ``indices_to_codes(indices, levels=k)`` decodes from the first k levels alone (``num_levels`` = Q).
    """

    def __init__(self, dim: Annotated[int, Bounds(low=1)] = 512, num_quantizers: Annotated[int, Bounds(low=1)] = 6,
                 codebook_size: Annotated[int, Bounds(low=2)] = 512,
                 decay: Annotated[float, Bounds(low=0, high=1, high_open=True)] = 0.99,
                 quantize_dropout_prob: Annotated[float, Bounds(low=0, high=1)] = 0.2,
                 sample_temperature: Annotated[float, Bounds(low=0)] = 0.5):
        super().__init__()
        if num_quantizers < 1:
            raise ValueError(f"num_quantizers must be at least 1, got {num_quantizers}")
        if not 0.0 <= quantize_dropout_prob <= 1.0:
            raise ValueError(f"quantize_dropout_prob must lie in [0, 1], got {quantize_dropout_prob}")
        if sample_temperature < 0:
            raise ValueError(f"sample_temperature must be at least 0, got {sample_temperature}")
        self.dim, self.quantize_dropout_prob = dim, quantize_dropout_prob
        self.layers = nn.ModuleList(SampledEMAResetVQ(dim, codebook_size, decay, sample_temperature)
                                    for _ in range(num_quantizers))

    @property
    def codebook_size(self) -> int:
        return self.layers[0].codebook_size

    @property
    def num_levels(self) -> int:
        return len(self.layers)

    def reference_key_map(self) -> dict[str, str]:
        """MoMask keeps each level's codebook as ``layers.{i}.codebook``; the EMA statistics live outside it."""
        return {f"layers.{i}.codebook": f"layers.{i}.codebook" for i in range(self.num_levels)}

    def reference_derived_state(self, read: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each level's EMA state, rebuilt from its codebook as ``EMAResetVQ`` rebuilds T2M-GPT's."""
        derived = {}
        for i, layer in enumerate(self.layers):
            own = layer.reference_derived_state({"codebook": read[f"layers.{i}.codebook"]})
            derived |= {f"layers.{i}.{key}": value for key, value in own.items()}
        return derived

    @full_precision_forward("quantizer")
    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        kept = self._levels_this_step(z.device)
        residual, quantized = z, torch.zeros_like(z)
        indices, losses = [], []
        for i, layer in enumerate(self.layers):
            if i >= kept:
                indices.append(torch.full(z.shape[:-1], DROPPED, dtype=torch.long, device=z.device))
                continue
            out = layer(residual)
            residual = residual - out.quantized.detach()
            quantized = quantized + out.quantized
            indices.append(out.indices)
            losses.append(out.aux_loss)
        return QuantizerOutput(quantized, torch.stack(indices, dim=-1), torch.stack(losses).mean())

    def indices_to_codes(self, indices: torch.Tensor, levels: Optional[int] = None) -> torch.Tensor:
        """(B, N, Q) -> (B, N, C): the sum of the codes of the first ``levels`` levels (all by default);
        a level whose index is -1 (left out in training) adds nothing."""
        levels = self.num_levels if levels is None else levels
        if not 1 <= levels <= self.num_levels:
            raise ValueError(f"levels must be between 1 and the {self.num_levels} residual levels, got {levels}")
        codes = torch.zeros(*indices.shape[:-1], self.dim, device=indices.device, dtype=self.layers[0].codebook.dtype)
        for i in range(levels):
            index = indices[..., i]
            used = (index != DROPPED).unsqueeze(-1)
            codes = codes + F.embedding(index.clamp_min(0), self.layers[i].codebook) * used
        return codes

    def _levels_this_step(self, device: torch.device) -> int:
        """How many levels run: all at inference; in training, 1..Q uniformly with probability
        ``quantize_dropout_prob``. Drawn on rank 0 and shared, so every process updates the same levels."""
        count = self.num_levels
        if not self.training or self.quantize_dropout_prob == 0 or count == 1:
            return count
        if torch.rand(()).item() < self.quantize_dropout_prob:
            count = int(torch.randint(1, self.num_levels + 1, ()).item())
        if _distributed():
            shared = torch.tensor([count], device=device)
            dist.broadcast(shared, src=0)
            count = int(shared.item())
        return count
