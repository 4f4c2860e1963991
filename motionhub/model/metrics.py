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

    ``outputs`` is the tokenizer's (``recon``, ``indices``, ``quantizer``, ...; see
    ``motionhub.model.tokenizer``) plus, in evaluation, ``decode(codes, motion)``: other quantized
    latents (B, N, C) through the model's decoder to normalised features (B, T, *F), e.g. the
    codes of fewer residual levels (``motionhub.train.evaluation.decoding``).

    A figure's name ends in its unit where it has one (``mpjpe_mm``; see ``figure_unit``), so
    tables can show the unit and figures in other units never share a name.
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


# Name endings of figures and the units they stand for, longest first: "accel_error_mm_f2" is in mm/frame².
UNITS = {"_mm_f2": "mm/frame²", "_mm_s2": "mm/s²", "_mm_f3": "mm/frame³", "_mm_s3": "mm/s³",
         "_ratio": "fraction", "_mm": "mm"}


def figure_unit(name: str) -> str:
    """The unit a figure's name ends in (after any ``@...`` qualifier, as in ``mpjpe_mm@k2``), "" if none."""
    base = name.split("@", 1)[0]
    return next((unit for ending, unit in UNITS.items() if base.endswith(ending)), "")
