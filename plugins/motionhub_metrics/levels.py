"""Reconstruction figures of a residual quantizer decoded from its first k levels, for every k."""

from __future__ import annotations

from typing import Literal, Optional

from motionhub.api import MotionFormat, MotionhubError
from motionhub_metrics.feet import FootSkating
from motionhub_metrics.joints import JointMetric, MPJPE, PAMPJPE
from motionhub_metrics.smoothness import AccelerationError, Jitter

FIGURES = {"mpjpe": MPJPE, "pa_mpjpe": PAMPJPE, "accel_error": AccelerationError,
           "jitter": lambda: Jitter(reference=False), "foot_skating": lambda: FootSkating(reference=False)}
Figure = Literal["mpjpe", "pa_mpjpe", "accel_error", "jitter", "foot_skating"]


class ResidualLevels(JointMetric):
    """The reconstruction figures of a residual quantizer (RVQ) decoded from its first k levels, k = 1 .. Q.

    figures: metrics scored per level count, with their default arguments; None = all that apply to the data.

    For every k, the clip's tokens keep only their first k levels: the quantizer's
    ``indices_to_codes(indices, levels=k)`` sums those levels' codes (the finer levels count as
    dropped), and the model's decoder turns the sum into a reconstruction (``outputs["decode"]``,
    which evaluation provides, in the evaluation's precision). That reconstruction is scored
    exactly as the full one is by the named metric, on the same valid frames, and each of its
    figures is reported with ``@k<k>`` appended: ``mpjpe_mm@k1``, ``mpjpe_mm@k2``, ...
    ``@k<Q>`` decodes every level, so it equals the full model's figure. Jitter and foot skating
    leave out their ground-truth reference here (it does not depend on k).

    A quantizer with one level (``num_levels`` 1: FSQ, VQ, LFQ) gives no figures, so the metric
    is harmless among the defaults; with Q levels it costs Q more decoder passes per batch.
    """

    def __init__(self, figures: Optional[list[Figure]] = None):
        unknown = sorted(set(figures or ()) - set(FIGURES))
        if unknown:
            raise MotionhubError(f"residual_levels figures: unknown {', '.join(unknown)}; "
                                 f"choose from {', '.join(FIGURES)}")
        self.figures = figures
        self.metrics = {name: make() for name, make in FIGURES.items() if figures is None or name in figures}

    def update(self, batch, outputs, fmt: MotionFormat):
        quantizer = outputs.get("quantizer")
        levels = getattr(quantizer, "num_levels", 1)
        if levels < 2:
            return {}
        decode = outputs.get("decode")
        if decode is None:
            raise MotionhubError("residual_levels decodes the first levels of each token through "
                                 "outputs['decode'], which these outputs lack; it runs within evaluation "
                                 "(motionhub.train.evaluation), which provides it")
        metrics = {name: metric for name, metric in self.metrics.items()
                   if self.figures is not None or metric.applies_to(fmt)}
        sums = {}
        for k in range(1, levels + 1):
            recon = decode(quantizer.indices_to_codes(outputs["indices"], levels=k), batch["motion"])
            for name, metric in metrics.items():
                for key, value in metric.update(batch, {**outputs, "recon": recon}, fmt).items():
                    sums[f"{name}/{key}@k{k}"] = value
        return sums

    def compute(self, sums):
        figures: dict[str, dict[int, float]] = {}  # figure -> {k: value}, to list each figure's levels together
        for name, metric in self.metrics.items():
            counts = sorted({int(key.rsplit("@k", 1)[1]) for key in sums if key.startswith(f"{name}/")})
            for k in counts:
                tail = f"@k{k}"
                part = {key[len(name) + 1:-len(tail)]: value for key, value in sums.items()
                        if key.startswith(f"{name}/") and key.endswith(tail)}
                for figure, value in metric.compute(part).items():
                    figures.setdefault(figure, {})[k] = value
        return {f"{figure}@k{k}": value for figure, by_level in figures.items() for k, value in by_level.items()}
