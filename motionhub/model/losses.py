"""Loss plugin contract and ``LossSet``: weights, every-N-steps, weight schedules and
down-sampling in time."""

from __future__ import annotations

import bisect
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from motionhub.data.formats import MotionFormat
from motionhub.errors import MotionhubError
from motionhub.model.precision import full_precision, to_float32


class Loss:
    """Base class for loss plugins.

    ``__call__(batch, outputs, format)`` returns a scalar tensor. ``batch["motion"]`` is the
    normalised input (B, T, *F) and ``batch.get("mask")`` an optional (B, T) bool mask of
    real (not padded) frames; ``outputs`` is the tokenizer's dict (``recon``, ``indices``,
    ``aux_loss``, ..., and ``quantizer``: what a loss needs of the quantizer comes through its
    contract in ``motionhub.model.quantizer``). Constructors take recipe keyword arguments only; ``weight``,
    ``every``, ``every_scale``, ``schedule``, ``schedule_mode`` and ``downsample`` are handled by
    the framework (a loss with ``downsample: k`` is handed every k-th frame, see ``downsample_time``).

    A loss may also define ``figures() -> dict[str, Tensor]``: scalars of its last call worth
    logging beside it (e.g. the share of elements a mask kept). They are logged and reported
    as ``<term>_<key>`` and never enter the total.
    """

    def __call__(self, batch: dict, outputs: dict, format: MotionFormat) -> torch.Tensor:
        raise NotImplementedError


def downsample_time(batch: dict, outputs: dict, k: int) -> tuple[dict, dict]:
    """``batch`` and ``outputs`` with every ``k``-th frame (0, k, 2k, ...) of the input's time axis.

    The rule: with T = ``batch["motion"].shape[1]``, every tensor of either dict with at least
    two dimensions whose second one is T is sliced ``[:, ::k]`` (the motion, the mask,
    ``recon``; ``latents`` too when the encoder keeps every frame); ``batch["lengths"]`` becomes
    the number of real frames kept, ceil(length / k); everything else passes unchanged (token
    indices at another rate, the scalar ``aux_loss``, the quantizer, per-step outputs of
    T - 1 steps). Slices are views: gradients flow back to the frames kept.
    """
    if k == 1:
        return batch, outputs
    frames = batch["motion"].shape[1]

    def thin(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.dim() >= 2 and value.shape[1] == frames:
            return value[:, ::k]
        return value

    thinned = {key: thin(value) for key, value in batch.items()}
    if isinstance(batch.get("lengths"), torch.Tensor):
        thinned["lengths"] = torch.div(batch["lengths"] + (k - 1), k, rounding_mode="floor")
    return thinned, {key: thin(value) for key, value in outputs.items()}


@dataclasses.dataclass
class LossTerm:
    name: str  # unique label in logs: the loss name, suffixed when a recipe uses it twice
    loss: Loss
    weight: float = 1.0
    every: int = 1
    schedule: list[list[float]] | None = None
    every_scale: bool = True  # on the steps it runs, the weight is multiplied by ``every``
    schedule_mode: str = "linear"  # "linear": interpolated between points; "step": held until the next point
    downsample: int = 1  # computed on every k-th frame in training
    path: str = ""  # where the recipe declares it (losses[i]), for messages

    def weight_at(self, step: int) -> float:
        """The weight at ``step``: ``weight``, or the schedule's. Before its first point a schedule
        gives the first point's weight and after its last point the last one's."""
        if not self.schedule:
            return self.weight
        steps, weights = zip(*self.schedule)
        if self.schedule_mode == "step":
            return float(weights[max(bisect.bisect_right(steps, step) - 1, 0)])
        return float(np.interp(step, steps, weights))

    def factor_at(self, step: int) -> float:
        """What the term's value is multiplied by in the training total at ``step``: 0 on the steps
        it is skipped, else its weight, times ``every`` when ``every_scale``."""
        weight = self.weight_at(step)
        if weight == 0 or step % self.every:
            return 0.0
        return weight * (self.every if self.every_scale else 1)

    @property
    def logs_weight(self) -> bool:
        """Whether the weight changes from step to step, and is logged as ``<term>_weight``."""
        return bool(self.schedule) or self.every > 1


def _clock() -> float:
    return time.perf_counter()


class LossSet:
    """All loss terms of a recipe. ``__call__`` returns the weighted total and each term.

    A term is skipped on steps that are not a multiple of its ``every`` (by default its weight
    is then scaled by ``every`` so its average contribution is unchanged; ``every_scale: false``
    keeps the weight as it is) and when its weight is 0. A term with ``downsample: k`` is
    computed in training on every k-th frame (``downsample_time``). The multiplier each term
    with a schedule or an ``every`` had (0 when skipped) is returned as ``<term>_weight``.

    Seconds spent in each term accumulate in ``seconds`` so an expensive loss shows in the
    report; ``clock`` reads the time (the trainer gives one that waits for the GPU first, so
    each term is charged for its own kernels). ``without_gradient`` names the terms whose
    training value carried no gradient: they change the reported total but never the update,
    and the report says so.

    Every term runs in fp32 (``full_precision``): autocast off, and the batch's and the
    outputs' bf16 / fp16 tensors handed to it in float32, so each value is a float32 tensor
    whatever the run's precision (a run in fp32 computes exactly as without it).
    """

    full_precision_part = "losses"

    def __init__(self, terms: list[LossTerm], clock: Callable[[], float] = _clock):
        self.terms = terms
        self.seconds = {term.name: 0.0 for term in terms}
        self.without_gradient: set[str] = set()
        self.clock = clock

    def __call__(self, batch: dict, outputs: dict, fmt: MotionFormat, step: int, training: bool = True,
                 probe=None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted total and each term's value. Evaluation (``training=False``) computes
        every term at its current weight, on every frame, unscaled by ``every``, and is not timed.
        ``probe`` (``motionhub.train.timing.StepProbe``, on profiled steps) is told each term's
        forward seconds and watches its backward."""
        total = outputs["aux_loss"].new_zeros(()) if "aux_loss" in outputs else torch.zeros(())
        values = {}
        if probe is not None:
            probe.model_outputs(outputs)
        for term in self.terms:
            weight = term.weight_at(step)
            if training and term.logs_weight:
                values[f"{term.name}_weight"] = torch.tensor(term.factor_at(step), dtype=torch.float32)
            if training and (weight == 0 or step % term.every):
                continue
            start = self.clock() if training else 0.0
            value = self._value(term, batch, outputs, fmt, training)
            if training:
                seconds = self.clock() - start
                self.seconds[term.name] += seconds
                if probe is not None:
                    probe.loss_forward(term.name, seconds, value)
            if training and torch.is_grad_enabled():
                if value.requires_grad:
                    self.without_gradient.discard(term.name)
                else:
                    self.without_gradient.add(term.name)
            values[term.name] = value.detach().float()  # summed over steps for the log: never in half precision
            figures = getattr(term.loss, "figures", None)
            if figures is not None:
                values.update({f"{term.name}_{key}": figure.detach().float() for key, figure in figures().items()})
            total = total + weight * (term.every if training and term.every_scale else 1) * value
        return total, values

    @staticmethod
    def _value(term: LossTerm, batch: dict, outputs: dict, fmt: MotionFormat, training: bool) -> torch.Tensor:
        device = batch["motion"].device.type if isinstance(batch.get("motion"), torch.Tensor) else "cpu"
        with full_precision(LossSet.full_precision_part, device):
            return LossSet._term_value(term, to_float32(batch), to_float32(outputs), fmt, training)

    @staticmethod
    def _term_value(term: LossTerm, batch: dict, outputs: dict, fmt: MotionFormat, training: bool) -> torch.Tensor:
        if not training or term.downsample == 1:
            return term.loss(batch, outputs, fmt)
        thinned_batch, thinned_outputs = downsample_time(batch, outputs, term.downsample)
        try:
            return term.loss(thinned_batch, thinned_outputs, fmt)
        except (RuntimeError, ValueError, IndexError) as exc:
            frames = batch["motion"].shape[1]
            kept = {key: tuple(value.shape) for key, value in {**batch, **outputs}.items()
                    if isinstance(value, torch.Tensor) and value.dim() >= 2}
            where = f"{term.path} " if term.path else ""
            raise MotionhubError(
                f"{where}loss '{term.name}' with downsample: {term.downsample} failed: {exc}. downsample keeps every "
                f"{term.downsample}-th frame of the tensors whose second axis has the input's {frames} frames and "
                f"leaves the others as they are; full-rate shapes: "
                f"{', '.join(f'{key} {shape}' for key, shape in kept.items())}. A loss that relates tensors at "
                f"different rates cannot take downsample: remove it, or use every: N to compute the loss less often"
            ) from exc
