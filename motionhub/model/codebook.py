"""Codebook usage statistics from code histograms (``torch.bincount``; no dense one-hot, fine for 64k codes)."""

from __future__ import annotations

import torch


def code_histogram(indices: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """How often each code occurs in ``indices`` (any shape): (codebook_size,) int64.

    Sum histograms over batches (and processes) to judge usage on a whole split.
    """
    flat = indices.reshape(-1).long()
    if flat.numel() and (flat.min() < 0 or flat.max() >= codebook_size):
        raise ValueError(f"indices must lie in [0, {codebook_size}), got values in "
                         f"[{flat.min().item()}, {flat.max().item()}]")
    return torch.bincount(flat, minlength=codebook_size)


def usage_from_histogram(counts: torch.Tensor) -> dict[str, float]:
    """``used`` / ``dead`` code counts, ``perplexity`` exp(H) and ``normalised_perplexity`` (perplexity / size).

    An empty histogram gives perplexity 0.
    """
    size, total = counts.numel(), counts.sum()
    used = int((counts > 0).sum())
    if total == 0:
        return {"used": 0, "dead": size, "perplexity": 0.0, "normalised_perplexity": 0.0}
    p = counts[counts > 0].double() / total
    perplexity = float(torch.exp(-(p * p.log()).sum()))
    return {"used": used, "dead": size - used, "perplexity": perplexity, "normalised_perplexity": perplexity / size}


def codebook_usage(indices: torch.Tensor, codebook_size: int) -> dict[str, float]:
    """Usage statistics of the codes in ``indices`` (any shape) for a codebook of ``codebook_size`` codes."""
    return usage_from_histogram(code_histogram(indices, codebook_size))
