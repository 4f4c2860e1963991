"""A differentiable codebook-usage (entropy) regulariser for FSQ, in the MAGVIT-v2 / LFQ form.

Hard code histograms have no gradient. Here every token gets a *soft* code distribution from its
latent, and the loss is

    per_sample_entropy - diversity_weight * batch_entropy

Minimising the first term makes each token confident (its latent sits near one code); maximising
the second makes the batch as a whole spread over many codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import torch

from motionhub.api import Bounds, Loss, MotionFormat, MotionhubError

_EPS = 1e-12


def level_log_probs(bounded: torch.Tensor, levels: Sequence[int], temperature: float) -> list[torch.Tensor]:
    """Per-dimension soft assignments to the level grid: (M, G) -> G tensors (M, L_g) of log-probabilities.

    ``bounded`` is in grid steps (a quantizer's ``to_grid``). log p_g(k) =
    log_softmax_k(-(bounded_g - (k - L_g // 2))^2 / temperature), so ``temperature`` is in
    squared grid steps.
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

    temperature:      of the soft assignment, in squared grid steps; lower is closer to hard rounding.
    diversity_weight: weight of the batch-entropy (usage) term.

    It regularises the quantizer the tokenizer ran, which it reads from the outputs through the
    quantizer contract (``motionhub.model.quantizer``): ``outputs["quantizer"]`` must have a grid of
    ``levels`` (a scalar quantizer such as ``fsq``), and ``outputs["pre_quantized"]`` (B, N, G),
    G = len(levels), is its input in its own code space. Each value goes through the quantizer's
    ``to_grid``; dimension g is softly assigned to its L_g grid values with
    softmax(-distance^2 / temperature), and a token's code distribution is the product over g.
    Both entropies are in nats and use only real tokens when the batch has a ``mask``; see
    ``entropy_terms`` for exactly what the batch term measures. Quantizers with a learned codebook
    are not supported (LFQ has this regulariser built in, ``entropy_loss_weight``).
    """

    def __init__(self, temperature: Annotated[float, Bounds(low=0, low_open=True)] = 0.5,
                 diversity_weight: Annotated[float, Bounds(low=0)] = 1.0):
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature, self.diversity_weight = temperature, diversity_weight

    def __call__(self, batch, outputs, format: MotionFormat) -> torch.Tensor:
        quantizer = outputs.get("quantizer")
        if quantizer is None:
            raise MotionhubError(
                f"codebook_entropy reads the quantizer from outputs['quantizer'], which the tokenizer's outputs "
                f"lack (they have {', '.join(sorted(outputs))})"
            )
        levels = quantizer.levels
        if levels is None:
            raise MotionhubError(
                f"codebook_entropy regularises a quantizer with a grid of levels (fsq), but the recipe's quantizer "
                f"{type(quantizer).__name__} has none: use it with the fsq quantizer, or the quantizer's own usage "
                f"loss (lfq: entropy_loss_weight)"
            )
        latents = outputs.get("pre_quantized")
        if latents is None or latents.shape[-1] != len(levels):
            found = "none" if latents is None else f"{latents.shape[-1]} channels"
            raise MotionhubError(
                f"codebook_entropy reads the quantizer's input outputs['pre_quantized'], which should have "
                f"{len(levels)} channels for levels {list(levels)}, but has {found}"
            )
        b, n, g = latents.shape
        weights = _token_weights(batch.get("mask"), b, n).to(latents.device)
        bounded = quantizer.to_grid(latents.float().reshape(b * n, g))
        per_sample, batch_entropy = entropy_terms(level_log_probs(bounded, levels, self.temperature), weights)
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
