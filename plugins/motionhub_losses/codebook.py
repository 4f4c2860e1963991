"""A differentiable codebook-usage (entropy) regulariser for FSQ, in the MAGVIT-v2 / LFQ form.

Hard code histograms have no gradient. Here every token gets a *soft* code distribution from its
latent, and the loss is

    per_sample_entropy - diversity_weight * batch_entropy

Minimising the first term makes each token confident (its latent sits near one code); maximising
the second makes the batch as a whole spread over many codes.
"""

from __future__ import annotations

from typing import Optional

import torch

from motionhub.errors import MotionhubError
from motionhub.data.formats import MotionFormat
from motionhub.model.losses import Loss
from motionhub_quantizers.fsq import fsq_levels

_EPS = 1e-12


def fsq_bound(z: torch.Tensor, levels: list[int]) -> torch.Tensor:
    """The value FSQ rounds, in grid steps: (..., G) -> (..., G), G = len(levels).

    The same bound as ``vector_quantize_pytorch.FSQ`` (tanh with eps 1e-3, half-step offset for even
    levels): rounding it and adding ``level // 2`` gives FSQ's level index per dimension.
    """
    levels_t = torch.tensor(levels, dtype=z.dtype, device=z.device)
    half = (levels_t - 1) * (1 + 1e-3) / 2
    offset = (1 - levels_t % 2) / 2
    return torch.tanh(z + torch.atanh(offset / half)) * half - offset


def level_log_probs(bounded: torch.Tensor, levels: list[int], temperature: float) -> list[torch.Tensor]:
    """Per-dimension soft assignments to the level grid: (M, G) -> G tensors (M, L_g) of log-probabilities.

    log p_g(k) = log_softmax_k(-(bounded_g - (k - L_g // 2))^2 / temperature), so ``temperature``
    is in squared grid steps.
    """
    out = []
    for g, level in enumerate(levels):
        grid = torch.arange(level, dtype=bounded.dtype, device=bounded.device) - level // 2
        logits = -(bounded[:, g, None] - grid).square() / temperature
        out.append(logits.log_softmax(-1))
    return out


def entropy_terms(log_probs: list[torch.Tensor], weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean per-token entropy and batch entropy (nats) of factorised code distributions.

    log_probs: G tensors (M, L_g), token m's code distribution being the product over g.
    weights:   (M,) token weights summing to 1 (zero for padding).

    The per-token entropy of a product distribution is exactly the sum of its factors' entropies.
    The batch term is the sum over g of the entropy of the weighted mean of factor g: an upper
    bound on the entropy of the mean code distribution, equal when the dimensions vary independently
    across the batch. It costs O(M * sum(L_g)) instead of O(M * prod(L_g)).
    """
    per_sample, batch = weights.new_zeros(()), weights.new_zeros(())
    for log_p in log_probs:
        p = log_p.exp()
        per_sample = per_sample - (weights[:, None] * p * log_p).sum()
        mean = (weights[:, None] * p).sum(0)
        batch = batch - (mean * mean.clamp_min(_EPS).log()).sum()
    return per_sample, batch


class CodebookEntropyLoss(Loss):
    """Differentiable codebook-usage regulariser for FSQ: per-token entropy - diversity_weight * batch entropy.

    levels:           the FSQ quantizer's levels, e.g. [8, 8, 6, 5]; or
    codebook_size:    its nominal size (2048 -> [8, 8, 6, 5]), exactly as the ``fsq`` quantizer takes it.
    temperature:      of the soft assignment, in squared grid steps; lower is closer to hard rounding.
    diversity_weight: weight of the batch-entropy (usage) term.

    It reads FSQ's input (B, N, G), G = len(levels): ``outputs["pre_quantized"]``, which the ``fsq``
    quantizer gives after its projection when the latent width differs from G, else
    ``outputs["latents"]``. Each value goes through FSQ's own bound; dimension g is softly
    assigned to its L_g grid values with softmax(-distance^2 / temperature), and a token's
    code distribution is the product over g.
    Both entropies are in nats and use only real tokens when the batch has a ``mask``; see
    ``entropy_terms`` for exactly what the batch term measures. Other quantizers are not supported:
    a loss sees the tokenizer's outputs only, not a VQ codebook (LFQ has this regulariser built in,
    ``entropy_loss_weight``).
    """

    def __init__(
        self,
        levels: Optional[list[int]] = None,
        codebook_size: Optional[int] = None,
        temperature: float = 0.5,
        diversity_weight: float = 1.0,
    ):
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.levels = fsq_levels(levels, codebook_size)
        self.temperature, self.diversity_weight = temperature, diversity_weight

    def __call__(self, batch, outputs, format: MotionFormat) -> torch.Tensor:
        key = "pre_quantized" if "pre_quantized" in outputs else "latents"
        latents = outputs[key]
        b, n, g = latents.shape
        if g != len(self.levels):
            raise MotionhubError(
                f"codebook_entropy reads the FSQ quantizer's input, which has {len(self.levels)} dimensions for "
                f"levels {self.levels}, but outputs['{key}'] has {g} channels: give the loss the levels of the "
                f"recipe's fsq quantizer (the quantizer section must be fsq)"
            )
        weights = _token_weights(batch.get("mask"), b, n).to(latents.device)
        bounded = fsq_bound(latents.float().reshape(b * n, g), self.levels)
        per_sample, batch_entropy = entropy_terms(level_log_probs(bounded, self.levels, self.temperature), weights)
        return per_sample - self.diversity_weight * batch_entropy


def _token_weights(mask: torch.Tensor | None, b: int, n: int) -> torch.Tensor:
    """(B * N,) weights summing to 1 over tokens that cover at least one real frame of the (B, T) mask."""
    if mask is None:
        return torch.full((b * n,), 1.0 / (b * n))
    # token k covers frames [floor(k T / n), ceil((k + 1) T / n)): T need not be a multiple of n
    # (a track encoder gives T - 1 velocity tokens for T frames)
    frames = mask.shape[1]
    k = torch.arange(n + 1, device=mask.device)
    starts = (k[:-1] * frames) // n
    ends = torch.maximum(-((-k[1:] * frames) // n), starts + 1).clamp(max=frames)
    counts = torch.nn.functional.pad(mask.long().cumsum(1), (1, 0))  # (B, T + 1) real frames before each
    real = ((counts[:, ends] - counts[:, starts]) > 0).reshape(-1).float()
    return real / real.sum().clamp_min(1.0)
