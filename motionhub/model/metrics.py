"""The metric plugin contract: metrics accumulate sums over a whole split, then compute.

A metric never averages per batch: ``update`` returns sums (tensors) that the evaluator
adds over batches and over processes, and ``compute`` turns the totals into figures.
That makes the figures independent of batch size and of the number of processes.
"""

from __future__ import annotations

import torch

from motionhub.data.formats import MotionFormat


class Metric:
    """Base class for metric plugins. Constructors take recipe keyword arguments only.

    Must provide:
      update(batch, outputs, fmt): sums over the batch's valid frames, ``{name: tensor}``; the
                    evaluator adds them over batches and processes (never a per-batch mean).
      compute(sums): figures from the totals, ``{"mpjpe_mm": ...}``.
    May provide: ``applies_to(fmt)`` (picked by default only where it is true), ``higher_is_better``.

    ``higher_is_better`` names the figures of ``compute`` for which more is better (accuracy,
    F1, ...); every other figure is an error, where less is better. ``eval.best`` reads it.
    """

    higher_is_better: frozenset[str] = frozenset()

    @classmethod
    def applies_to(cls, fmt: MotionFormat) -> bool:
        """Whether this metric means anything for data of ``fmt`` (used to pick defaults)."""
        return True

    def update(self, batch: dict, outputs: dict, fmt: MotionFormat) -> dict[str, torch.Tensor]:
        """Sums over this batch's valid frames: ``{"error_sum": ..., "frames": ...}``."""
        raise NotImplementedError

    def compute(self, sums: dict[str, float]) -> dict[str, float]:
        """Figures from the sums over the whole split: ``{"mpjpe_mm": ...}``."""
        raise NotImplementedError
