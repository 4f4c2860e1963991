"""Track metrics summed over whole splits: AMPLIFY's trajectory metrics (``tracks``) and the
LAPS re-implementation's class accuracy and code figures (``track_classes``).

``tracks``:

Points are decoded from the relative-displacement logits (argmax, integrated from the true
first frame) and compared with the ground truth in normalised [-1, 1] coordinates, as
AMPLIFY's ``get_traj_metrics`` does: MSE and L1 over coordinates; cross-track L2 (each
predicted point to the nearest ground-truth point of the same track at any time); pixel
accuracy (coordinates within half a pixel); delta-AUC (mean over k = 1..10 of coordinates
within k pixels); and F1 / accuracy of "this velocity component is non-zero".
AMPLIFY averages these per batch; here they are exact over the split.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional

import torch

from motionhub.api import Bounds, Metric, MotionFormat, MotionhubError

from .codes import batch_code_figures
from .tracks import STATIC_METRICS, decode_points, displacement_labels, logits_grid, moving_points, velocity_radius

PIXEL_TOLERANCES = range(1, 11)  # delta-AUC thresholds, pixels
IMAGE_SIZE = Bounds(low=1, length=2, hint="[height, width] in pixels")
GRID = Bounds(low=1, length=2, hint="[rows, cols] of displacement classes")


class TrackMetrics(Metric):
    """AMPLIFY's track metrics: MSE, L1, cross-track L2, pixel accuracy, delta-AUC, non-zero F1.

    Points are decoded the same way whichever label rule the data uses (``track_labels``):
    a class is an integer-pixel displacement under both.

    image_size: [height, width] pixels the tracks are decoded and measured in; None: the data format's.
    grid:       [rows, cols] of the decoder's displacement classes, as the decoder's grid (15 x 15 by default).
    """

    higher_is_better = frozenset({"pixel_accuracy", "delta_auc", "nonzero_f1", "nonzero_accuracy"})

    def __init__(self, image_size: Annotated[Optional[list[int]], IMAGE_SIZE] = None,
                 grid: Annotated[list[int], GRID] = [15, 15]):
        self.image_size, self.grid = image_size, tuple(grid)

    @classmethod
    def applies_to(cls, fmt: MotionFormat) -> bool:
        return fmt.name == "point_tracks"

    def update(self, batch, outputs, fmt: MotionFormat):
        size = self.image_size or fmt.image_size
        if size is None:
            raise MotionhubError("track metrics need the frame size: the data's files differ in size, so set "
                             "image_size: [height, width] on the metric")
        gt = batch["motion"].float()  # (B, T, V, N, 2)
        pred = decode_points(outputs["logits"].float(), gt[:, :1], size, self.grid)
        diff = (pred - gt).abs()
        pixel = 2.0 / size[0]  # AMPLIFY measures pixels along the first image axis
        # (B, T, V, N) distance of each predicted point to the closest true point of its track
        nearest = torch.cdist(pred.permute(0, 2, 3, 1, 4).flatten(0, 2),
                              gt.permute(0, 2, 3, 1, 4).flatten(0, 2)).amin(-1)
        moving_pred = (pred[:, 1:] - pred[:, :-1]) != 0
        moving_gt = (gt[:, 1:] - gt[:, :-1]) != 0
        sums = {
            "coords": torch.tensor(float(diff.numel())),
            "squared": diff.square().sum(), "absolute": diff.sum(),
            "points": torch.tensor(float(nearest.numel())), "cross_track": nearest.sum(),
            "within_half_pixel": (diff < 0.5 * pixel).sum().float(),
            "within_pixels": sum((diff < k * pixel).sum().float() for k in PIXEL_TOLERANCES),
            "velocity_components": torch.tensor(float(moving_gt.numel())),
            "tp": (moving_pred & moving_gt).sum().float(), "tn": (~moving_pred & ~moving_gt).sum().float(),
            "fp": (moving_pred & ~moving_gt).sum().float(), "fn": (~moving_pred & moving_gt).sum().float(),
        }
        return sums

    def compute(self, sums):
        coords, points = max(sums["coords"], 1.0), max(sums["points"], 1.0)
        tp, tn, fp, fn = sums["tp"], sums["tn"], sums["fp"], sums["fn"]
        return {
            "track_mse": sums["squared"] / coords,
            "track_l1": sums["absolute"] / coords,
            "cross_track_l2": sums["cross_track"] / points,
            "pixel_accuracy": sums["within_half_pixel"] / coords,
            "delta_auc": sums["within_pixels"] / (coords * len(PIXEL_TOLERANCES)),
            "nonzero_f1": tp / max(tp + 0.5 * (fp + fn), 1.0),
            "nonzero_accuracy": (tp + tn) / max(sums["velocity_components"], 1.0),
        }


class TrackClassMetrics(Metric):
    """Displacement-class accuracy on all and on moving points, and codes per batch (LAPS re-implementation's figures).

    Accuracy is that of the argmax of ``outputs["logits"]`` against the labels of the data's
    rule (``fmt.track_labels``), over steps between two real frames, exact over the split:

    * ``class_accuracy``: over every point.
    * ``moving_class_accuracy``: over the points the static-point mask keeps
      (``motionhub_amplify.tracks.moving_points``; by default the reference's d01 settings
      p95 / 0.10 / 16), the reference's ``acc``.
    * ``dynamic_point_ratio``: the share of elements that mask keeps (the reference's
      ``dynamic_point_ratio``).

    The reference logs its code figures per batch, so these are means over batches of each
    batch's figure (``outputs["indices"]``, all tokens), not figures of the split:
    ``unique_codes_per_batch``, ``code_entropy_nats_per_batch`` and
    ``normalised_perplexity_per_batch`` (AMPLIFY's 2^H2 / min(K, codes in the batch), K =
    ``codebook_size``; without it, divided by the codes in the batch). The split's own code
    usage is in the ``codebook_*`` figures every evaluation reports.

    image_size:       [height, width] pixels the labels count in when the batch has none; None: the format's.
    grid:             [rows, cols] of the logits' displacement classes; None: the square grid their count implies.
    static_threshold: speed score, in (W - 1) / 2 px/step, a point needs to count as moving (reference d01: 0.10).
    static_metric:    a point's speed over its steps for that mask: p95 (0.95 quantile), mean or max.
    static_min_keep:  the fewest points (>= 0) per sample and view counted as moving: the fastest ones.
    codebook_size:    K of the normalised perplexity; the framework passes the quantizer's number of codes.
    """

    higher_is_better = frozenset({"class_accuracy", "moving_class_accuracy", "unique_codes_per_batch",
                                  "code_entropy_nats_per_batch", "normalised_perplexity_per_batch"})

    def __init__(
        self,
        image_size: Annotated[Optional[list[int]], IMAGE_SIZE] = None,
        grid: Annotated[Optional[list[int]], GRID] = None,
        static_threshold: Annotated[float, Bounds(low=0)] = 0.10,
        static_metric: Literal["p95", "mean", "max"] = "p95",
        static_min_keep: Annotated[int, Bounds(low=0)] = 16,
        codebook_size: Annotated[Optional[int], Bounds(low=1)] = None,
    ):
        """``image_size``: [height, width] pixels, None = the batch's or the format's; ``grid``:
        (rows, cols) of the logits, None = the square they imply; ``static_*``: the mask of
        ``moving_class_accuracy`` (see the ``relative_ce`` loss); ``codebook_size``: K of the
        normalised perplexity."""
        if static_metric not in STATIC_METRICS:
            raise ValueError(f"static_metric must be one of {', '.join(STATIC_METRICS)}; got {static_metric!r}")
        self.image_size = None if image_size is None else [int(s) for s in image_size]
        self.grid = None if grid is None else (int(grid[0]), int(grid[1]))
        self.static_threshold, self.static_metric = float(static_threshold), static_metric
        self.static_min_keep = int(static_min_keep)
        self.codebook_size = codebook_size

    @classmethod
    def applies_to(cls, fmt: MotionFormat) -> bool:
        return fmt.name == "point_tracks"

    def update(self, batch, outputs, fmt: MotionFormat):
        size = batch.get("image_size", self.image_size)
        if size is None:
            size = fmt.image_size
        if size is None:
            raise MotionhubError("track class metrics need the frame size: the data's files differ in size, so set "
                                 "image_size: [height, width] on the metric")
        motion, logits = batch["motion"].float(), outputs["logits"]
        grid = logits_grid(logits.shape[-1], self.grid)
        correct = logits.argmax(dim=-1) == displacement_labels(motion, size, grid, fmt.track_labels)  # (B, T-1, V, N)
        mask = batch.get("mask")
        steps = None if mask is None else mask[:, 1:] & mask[:, :-1]
        counted = torch.ones_like(correct) if steps is None else steps[:, :, None, None].expand_as(correct)
        moving = moving_points(motion, size, velocity_radius(grid), self.static_threshold, self.static_metric,
                               self.static_min_keep, steps)[:, None] & counted
        codes = batch_code_figures(outputs["indices"], self.codebook_size)
        return {
            "elements": counted.sum().float(), "correct": (correct & counted).sum().float(),
            "moving": moving.sum().float(), "moving_correct": (correct & moving).sum().float(),
            "batches": torch.tensor(1.0), "unique_codes": codes["unique_codes"],
            "code_entropy": codes["entropy"], "normalised_perplexity": codes["normalised_perplexity"],
        }

    def compute(self, sums):
        elements, moving, batches = max(sums["elements"], 1.0), max(sums["moving"], 1.0), max(sums["batches"], 1.0)
        return {
            "class_accuracy": sums["correct"] / elements,
            "moving_class_accuracy": sums["moving_correct"] / moving,
            "dynamic_point_ratio": sums["moving"] / elements,
            "unique_codes_per_batch": sums["unique_codes"] / batches,
            "code_entropy_nats_per_batch": sums["code_entropy"] / batches,
            "normalised_perplexity_per_batch": sums["normalised_perplexity"] / batches,
        }
