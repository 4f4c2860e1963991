"""Code statistics of one batch, and the LAPS re-implementation's histogram-entropy term.

The LAPS re-implementation subtracts lambda * H_norm from its loss, where H_norm is the
entropy of the histogram of one batch's FSQ indices over ln K. A histogram of integer
indices has no gradient, so that term shifts the reported total and never the update;
``code_histogram_entropy`` reproduces it as such. ``codebook_entropy``
(``motionhub_losses``) is the differentiable way to spread codes.
"""

from __future__ import annotations

import math
from typing import Annotated, Optional

import torch

from motionhub.api import Bounds, Loss, MotionFormat, MotionhubError, code_histogram, histogram_entropy


def code_entropy(indices: torch.Tensor) -> torch.Tensor:
    """Entropy in nats, -sum over used codes of p ln p, of the codes in ``indices``: float32 scalar, 0 when empty."""
    return histogram_entropy(code_histogram(indices), torch.float32)


def batch_code_figures(indices: torch.Tensor, codebook_size: Optional[int] = None) -> dict[str, torch.Tensor]:
    """One batch's ``unique_codes``, ``entropy`` (nats) and ``normalised_perplexity``.

    The perplexity is AMPLIFY's 2^H2 (H2 the entropy in bits, i.e. exp of the nats) divided
    by min(K, number of codes in the batch), the most distinct codes the batch could show;
    without ``codebook_size`` K it is divided by the number of codes.
    """
    codes = indices.detach().reshape(-1)
    counts = code_histogram(codes)
    entropy = histogram_entropy(counts, torch.float32)
    ceiling = codes.numel() if codebook_size is None else min(int(codebook_size), codes.numel())
    return {
        "unique_codes": (counts > 0).sum().float(),
        "entropy": entropy,
        "normalised_perplexity": entropy.exp() / max(ceiling, 1),
    }


class CodeHistogramEntropy(Loss):
    """Minus the normalised entropy of the batch's code histogram; a constant: no gradient, no effect on training.

    Value: -H / ln(max(2, K)) with H = -sum over used codes of p ln p (nats), p the share of
    each code among all of the batch's ``outputs["indices"]`` (every token of every sample,
    flattened) and K the quantizer's ``codebook_size`` (read from ``outputs["quantizer"]``; the LAPS
    re-implementation uses the product of its FSQ levels: 1024 for [8, 8, 4, 4], 2048 for [8, 8, 8, 4]),
    unless the recipe gives K.

    As in the reference it is computed from integer indices, so it carries no gradient: with
    weight lambda it lowers the reported total by lambda * H_norm but never changes an
    update. The reference's ``total = CE - lambda H_norm`` with lambda =
    0.05 min(1, (epoch + 1) / 10) is this term with weight 0.05 and a ``schedule`` ramping to
    it over the first ten epochs' steps. (The reference misreads a batch of exactly 4 samples
    as FSQ digits; here every batch is flattened alike.) For a loss that does spread the
    codes, use ``codebook_entropy``.
    """

    def __init__(self, codebook_size: Annotated[Optional[int], Bounds(low=1)] = None):
        """codebook_size: K (>= 1), the entropy is divided by ln K (at least ln 2); default: the quantizer's size."""
        if codebook_size is not None and codebook_size < 1:
            raise ValueError(f"codebook_size must be at least 1; got {codebook_size}")
        self.codebook_size = None if codebook_size is None else int(codebook_size)

    def __call__(self, batch: dict, outputs: dict, format: Optional[MotionFormat] = None) -> torch.Tensor:
        size = self.codebook_size
        if size is None:
            if "quantizer" not in outputs:
                raise MotionhubError("code_histogram_entropy normalises by the quantizer's codebook_size, read from "
                                     "outputs['quantizer'], which these outputs lack; give codebook_size")
            size = outputs["quantizer"].codebook_size
        return -code_entropy(outputs["indices"]) / math.log(max(2, size))
