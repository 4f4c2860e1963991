"""Joint position error of reconstructions, on whole clips at their true length."""

from __future__ import annotations

import torch

from motionhub.api import Metric, MotionFormat


class MPJPE(Metric):
    """Mean per-joint position error in millimetres after pelvis alignment (and without it)."""

    @classmethod
    def applies_to(cls, fmt: MotionFormat) -> bool:
        return fmt.has_joints

    def update(self, batch, outputs, fmt: MotionFormat):
        target = fmt.to_joints(batch["motion"].float(), normalised=True)  # (B, T, J, 3)
        recon = fmt.to_joints(outputs["recon"].float(), normalised=True)
        aligned = (recon - recon[..., :1, :]) - (target - target[..., :1, :])
        per_frame = aligned.norm(dim=-1).mean(-1) * fmt.mm_per_unit  # (B, T)
        global_frame = (recon - target).norm(dim=-1).mean(-1) * fmt.mm_per_unit
        mask = batch.get("mask")
        mask = torch.ones_like(per_frame) if mask is None else mask.to(per_frame.dtype)
        return {"aligned_sum": (per_frame * mask).sum(), "global_sum": (global_frame * mask).sum(),
                "frames": mask.sum()}

    def compute(self, sums):
        frames = max(sums["frames"], 1.0)
        return {"mpjpe_mm": sums["aligned_sum"] / frames, "global_mpjpe_mm": sums["global_sum"] / frames}
