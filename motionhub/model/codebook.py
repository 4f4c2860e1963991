"""Code histograms and the codebook figures computed from them.

:func:`code_histogram` is the one way motionhub counts codes (``torch.bincount``; no dense
one-hot, fine for 64k codes): evaluation over a split, the per-batch figures of a metric or
loss, and a quantizer's own per-code statistics all start from it.
"""

from __future__ import annotations

from typing import Optional

import torch


def code_histogram(indices: torch.Tensor, codebook_size: Optional[int] = None) -> torch.Tensor:
    """How often each code occurs in ``indices`` (any shape, flattened): int64 counts.

    With ``codebook_size`` K the histogram has K entries and an index outside [0, K) is a
    ``ValueError``; without it, it has (largest index + 1) entries. Sum histograms over
    batches (and processes) to judge usage on a whole split. No gradient flows through it.
    """
    flat = indices.detach().reshape(-1).long()
    try:
        counts = torch.bincount(flat, minlength=codebook_size or 0)
    except RuntimeError:
        if flat.numel() and flat.min() < 0:
            _out_of_range(flat, codebook_size)
        raise
    if codebook_size is not None and counts.numel() > codebook_size:
        _out_of_range(flat, codebook_size)
    return counts


def _out_of_range(flat: torch.Tensor, codebook_size: Optional[int]) -> None:
    allowed = "[0, ...)" if codebook_size is None else f"[0, {codebook_size})"
    raise ValueError(f"indices must lie in {allowed}, got values in [{flat.min().item()}, {flat.max().item()}]")


def histogram_entropy(counts: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Entropy in nats, -sum over used codes of p ln p, of a histogram ``counts`` (K,), in ``dtype``.

    0 when nothing was counted.
    """
    counts = counts.to(dtype)
    if counts.numel() == 0:
        return counts.new_zeros(())
    p = counts[counts > 0] / counts.sum()
    return -(p * p.log()).sum()


def usage_from_histogram(counts: torch.Tensor) -> dict[str, float]:
    """``used`` / ``dead`` code counts, ``perplexity`` exp(H) and ``normalised_perplexity`` (perplexity / size).

    An empty histogram gives perplexity 0.
    """
    size, total = counts.numel(), counts.sum()
    used = int((counts > 0).sum())
    if total == 0:
        return {"used": 0, "dead": size, "perplexity": 0.0, "normalised_perplexity": 0.0}
    perplexity = float(torch.exp(histogram_entropy(counts)))
    return {"used": used, "dead": size - used, "perplexity": perplexity, "normalised_perplexity": perplexity / size}


def codebook_usage(indices: torch.Tensor, codebook_size: int) -> dict[str, float]:
    """Usage statistics of the codes in ``indices`` (any shape) for a codebook of ``codebook_size`` codes."""
    return usage_from_histogram(code_histogram(indices, codebook_size))
