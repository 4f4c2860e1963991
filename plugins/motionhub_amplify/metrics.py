"""AMPLIFY's trajectory metrics, summed over whole splits.

Points are decoded from the relative-displacement logits (argmax, integrated from the true
first frame) and compared with the ground truth in normalised [-1, 1] coordinates, as
AMPLIFY's ``get_traj_metrics`` does: MSE and L1 over coordinates; cross-track L2 (each
predicted point to the nearest ground-truth point of the same track at any time); pixel
accuracy (coordinates within half a pixel); delta-AUC (mean over k = 1..10 of coordinates
within k pixels); and F1 / accuracy of "this velocity component is non-zero".
AMPLIFY averages these per batch; here they are exact over the split.
"""

from __future__ import annotations

from typing import Optional

import torch

from motionhub.errors import MotionhubError
from motionhub.formats import MotionFormat
from motionhub.metrics import Metric

from .tracks import decode_points

PIXEL_TOLERANCES = range(1, 11)  # delta-AUC thresholds, pixels


class TrackMetrics(Metric):
    """AMPLIFY's track metrics: MSE, L1, cross-track L2, pixel accuracy, delta-AUC, non-zero F1."""

    higher_is_better = frozenset({"pixel_accuracy", "delta_auc", "nonzero_f1", "nonzero_accuracy"})

    def __init__(self, image_size: Optional[list[int]] = None, grid: list[int] = [15, 15]):
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
