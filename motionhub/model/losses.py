"""Loss plugin contract and ``LossSet``: weights, every-N-steps and weight schedules."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from motionhub.data.formats import MotionFormat


class Loss:
    """Base class for loss plugins.

    ``__call__(batch, outputs, format)`` returns a scalar tensor. ``batch["motion"]`` is the
    normalised input (B, T, *F) and ``batch.get("mask")`` an optional (B, T) bool mask of
    real (not padded) frames; ``outputs`` is the tokenizer's dict (``recon``, ``indices``,
    ``aux_loss``, ..., and ``quantizer``: what a loss needs of the quantizer comes through its
    contract in ``motionhub.model.quantizer``). Constructors take recipe keyword arguments only; ``weight``,
    ``every`` and ``schedule`` are handled by the framework.

    A loss may also define ``figures() -> dict[str, Tensor]``: scalars of its last call worth
    logging beside it (e.g. the share of elements a mask kept). They are logged and reported
    as ``<term>_<key>`` and never enter the total.
    """

    def __call__(self, batch: dict, outputs: dict, format: MotionFormat) -> torch.Tensor:
        raise NotImplementedError


@dataclasses.dataclass
class LossTerm:
    name: str  # unique label in logs: the loss name, suffixed when a recipe uses it twice
    loss: Loss
    weight: float = 1.0
    every: int = 1
    schedule: list[list[float]] | None = None

    def weight_at(self, step: int) -> float:
        if not self.schedule:
            return self.weight
        steps, weights = zip(*self.schedule)
        return float(np.interp(step, steps, weights))


class LossSet:
    """All loss terms of a recipe. ``__call__`` returns the weighted total and each term.

    A term is skipped on steps that are not a multiple of its ``every`` (its weight is scaled
    by ``every`` so its average contribution is unchanged) and when its weight is 0. Seconds
    spent in each term accumulate in ``seconds`` so an expensive loss shows in the report.
    ``without_gradient`` names the terms whose training value carried no gradient: they change
    the reported total but never the update, and the report says so.
    """

    def __init__(self, terms: list[LossTerm]):
        self.terms = terms
        self.seconds = {term.name: 0.0 for term in terms}
        self.without_gradient: set[str] = set()

    def __call__(self, batch: dict, outputs: dict, fmt: MotionFormat, step: int, training: bool = True
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted total and each term's value. Evaluation (``training=False``) computes
        every term at its current weight, unscaled by ``every``, and is not timed."""
        total = outputs["aux_loss"].new_zeros(()) if "aux_loss" in outputs else torch.zeros(())
        values = {}
        for term in self.terms:
            weight = term.weight_at(step)
            if training and (weight == 0 or step % term.every):
                continue
            start = time.perf_counter()
            value = term.loss(batch, outputs, fmt)
            if training:
                self.seconds[term.name] += time.perf_counter() - start
            if training and torch.is_grad_enabled():
                if value.requires_grad:
                    self.without_gradient.discard(term.name)
                else:
                    self.without_gradient.add(term.name)
            values[term.name] = value.detach().float()  # summed over steps for the log: never in half precision
            figures = getattr(term.loss, "figures", None)
            if figures is not None:
                values.update({f"{term.name}_{key}": figure.detach().float() for key, figure in figures().items()})
            total = total + weight * (term.every if training else 1) * value
        return total, values
