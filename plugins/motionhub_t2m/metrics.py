"""The text-to-motion figures, defined as the reference evaluation defines them, computed in float64.

* R-precision top-k: within each group of 32 (caption, motion) pairs, each caption ranks the
  32 motions by Euclidean distance; a hit at k when its own motion is among the k nearest
  (ties go to the lower column, a stable sort). Hits over every caption, divided by their number.
* MM-Dist: the mean distance between each caption and its own motion.
* FID: the Fréchet distance between Gaussians fitted to two sets of motion embeddings (mean and
  unbiased covariance): |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr (S1 S2)^(1/2).
* Diversity: the mean distance between the members of S random pairs, each pair one draw from
  each of two independent draws of S embeddings without replacement (S = 300 where there are
  more than 300 embeddings).

R-precision and MM-Dist follow the metric contract (``motionhub.api.Metric``): ``retrieval_sums``
gives sums over a batch, ``retrieval_figures`` turns totals into figures. FID and Diversity need
every embedding at once.

Where the reference's arithmetic has numerical pitfalls, these compute the same definition
without them: distances as the norm of the difference (the expanded form the reference uses
can take the square root of a small negative number, giving NaN for near-identical
embeddings), and tr (S1 S2)^(1/2) from the eigenvalues of the symmetric S1^(1/2) S2 S1^(1/2),
which equals it for covariance matrices and needs no imaginary part dropped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

GROUP = 32  # captions per retrieval (the reference's batch size: 1 in 32)
TOP_K = 3
DIVERSITY_TIMES = 300


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``a`` (G, N, D) and ``b`` (G, M, D): (G, N, M)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = np.empty((*a.shape[:-1], b.shape[-2]))
    for g in range(len(a)):  # one group at a time: (N, M, D) differences stay small
        out[g] = np.sqrt(((a[g][:, None, :] - b[g][None, :, :]) ** 2).sum(-1))
    return out


def own_ranks(text: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """(G, n, D) captions and motions -> (G, n): where each caption's own motion comes in its sorted
    row of distances (0 = nearest), ties to the lower column."""
    d = distances(text, motion)
    own = np.diagonal(d, axis1=-2, axis2=-1)[..., None]
    columns = np.arange(d.shape[-1])
    before = (d < own) | ((d == own) & (columns[None, None, :] < columns[None, :, None]))
    return before.sum(-1)


def retrieval_sums(text: np.ndarray, motion: np.ndarray, group: int = GROUP) -> dict[str, float]:
    """Sums over (N, D) caption and motion embeddings, row i of each a pair, in consecutive groups of
    ``group`` (N a multiple of it): hits at top-1..3, the summed own-pair distances and N."""
    text, motion = np.asarray(text), np.asarray(motion)
    if text.shape != motion.shape or text.ndim != 2:
        raise ValueError(f"captions and motions must be two (N, D) arrays of one shape; got {text.shape} and "
                         f"{motion.shape}")
    n = len(text)
    if n % group:
        raise ValueError(f"{n} pairs do not make whole groups of {group}; drop the last {n % group}")
    ranks = own_ranks(text.reshape(-1, group, text.shape[1]), motion.reshape(-1, group, motion.shape[1]))
    sums = {f"top{k}": float((ranks < k).sum()) for k in range(1, TOP_K + 1)}
    own = np.linalg.norm(text.astype(np.float64) - motion.astype(np.float64), axis=1)
    return {**sums, "mm_dist": float(own.sum()), "count": float(n)}


def add_sums(parts: Iterable[Mapping[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for part in parts:
        for key, value in part.items():
            total[key] = total.get(key, 0.0) + value
    return total


def retrieval_figures(sums: Mapping[str, float]) -> dict[str, float]:
    """R-precision top-1..3 (shares) and MM-Dist from the totals of ``retrieval_sums``."""
    count = sums["count"]
    return {**{f"top{k}": sums[f"top{k}"] / count for k in range(1, TOP_K + 1)}, "mm_dist": sums["mm_dist"] / count}


def gaussian(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (rows are samples) of (N, D) embeddings."""
    x = np.asarray(embeddings, dtype=np.float64)
    return x.mean(0), np.cov(x, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """The Fréchet distance between N(mu1, cov1) and N(mu2, cov2)."""
    root = _psd_sqrt(np.asarray(cov1, dtype=np.float64))
    middle = root @ np.asarray(cov2, dtype=np.float64) @ root
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = np.asarray(mu1, dtype=np.float64) - np.asarray(mu2, dtype=np.float64)
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * cross)


def fid(a: np.ndarray, b: np.ndarray) -> float:
    """FID between two sets of (N, D) embeddings."""
    return frechet_distance(*gaussian(a), *gaussian(b))


def diversity_times(n: int) -> int:
    """Pairs drawn from ``n`` embeddings: 300 where n > 300, else 100 as the references do (all n
    where even 100 are more than there are)."""
    return DIVERSITY_TIMES if n > DIVERSITY_TIMES else min(100, n)


def diversity(embeddings: np.ndarray, rng: np.random.Generator, times: int | None = None) -> float:
    """Mean distance over ``times`` pairs drawn as the module docstring says."""
    x = np.asarray(embeddings, dtype=np.float64)
    times = diversity_times(len(x)) if times is None else times
    if times > len(x):
        raise ValueError(f"diversity draws {times} of {len(x)} embeddings without replacement")
    first = rng.choice(len(x), times, replace=False)
    second = rng.choice(len(x), times, replace=False)
    return float(np.linalg.norm(x[first] - x[second], axis=1).mean())


def interval(values: Iterable[float]) -> dict[str, float]:
    """Mean and 95 % interval half-width over repetitions: 1.96 * std / sqrt(n), std with ddof 0."""
    v = np.asarray(list(values), dtype=np.float64)
    return {"mean": float(v.mean()), "ci95": float(1.96 * v.std() / math.sqrt(len(v)))}
