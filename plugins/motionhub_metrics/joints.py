"""Joint position errors of reconstructions: MPJPE (root-aligned and global) and PA-MPJPE.

Every figure here is a mean over the joints of the format's skeleton and over the valid frames
(``batch["mask"]``; every frame where there is no mask) of whole clips: evaluation batches
(``motionhub.data.windows.EvalBatches``) hold each clip whole, from its first frame, cropped
only to a multiple of the encoder's down-sampling. Positions come from the format's
``to_joints`` (de-normalised features to joint positions) and are reported in millimetres
through the format's ``mm_per_unit`` (1000 for data in metres, 1 for KIT-ML's millimetres).
"""

from __future__ import annotations

import torch

from motionhub.api import Metric, MotionFormat


def joint_positions(batch: dict, outputs: dict, fmt: MotionFormat
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ground-truth and reconstructed joint positions (B, T, J, 3) in the data's units, float32,
    and the (B, T) bool mask of valid frames (all true where the batch has no mask)."""
    target = fmt.to_joints(batch["motion"].float(), normalised=True)
    recon = fmt.to_joints(outputs["recon"].float(), normalised=True)
    mask = batch.get("mask")
    mask = torch.ones(target.shape[:2], dtype=torch.bool, device=target.device) if mask is None else mask.bool()
    return target, recon, mask


def masked_sum(per_frame: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Sum of ``per_frame`` over the ``valid`` entries only: what padding holds never counts."""
    return torch.where(valid, per_frame, torch.zeros_like(per_frame)).sum()


class JointMetric(Metric):
    """A metric on joint positions: it applies to every format that can recover them."""

    @classmethod
    def applies_to(cls, fmt: MotionFormat) -> bool:
        return fmt.has_joints


class MPJPE(JointMetric):
    """Mean per-joint position error in millimetres, root-aligned and global.

    ``mpjpe_mm``: root-aligned. In every frame the root joint (joint 0, the pelvis of SMPL
    skeletons) is subtracted from every joint of the reconstruction and of the ground truth,
    then the Euclidean distance between the two is taken per joint; the figure is the mean over
    joints and valid frames. The root joint itself contributes 0 (its distance is always zero)
    and still counts in the mean over joints.

    ``global_mpjpe_mm``: the same mean without alignment, so the error of the root's trajectory
    (position in the world) counts too.

    Both in millimetres: positions in the data's units times the format's ``mm_per_unit``.
    """

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


def procrustes_align(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``source`` (..., J, 3) moved onto ``target`` (..., J, 3) by the similarity transform that
    best aligns them: ``s R x + t`` with a uniform scale s >= 0, a proper rotation R (det +1, never
    a reflection) and a translation t minimising the sum over joints of squared distances to
    ``target``, one transform per leading index (per frame).

    The closed form: with x, y the joints minus their centroids and M = sum_j x_j y_j^T = U S V^T
    (singular value decomposition), R = V D U^T and s = trace(S D) / sum_j |x_j|^2, where
    D = diag(1, 1, sign det(V U^T)). Without D the best orthogonal map could be a reflection
    (det -1); D flips the direction of the smallest singular value instead, which gives the best
    proper rotation. t puts the centroids together. Computed in float64; returns ``source``'s dtype.
    A source whose joints all coincide gets s = 0 (every joint lands on the target's centroid).
    """
    x, y = source.double(), target.double()
    x_mean, y_mean = x.mean(-2, keepdim=True), y.mean(-2, keepdim=True)
    x, y = x - x_mean, y - y_mean
    u, singular, vh = torch.linalg.svd(x.transpose(-1, -2) @ y)
    v = vh.transpose(-1, -2)
    sign = torch.sign(torch.linalg.det(u) * torch.linalg.det(v))
    d = torch.ones_like(singular)
    d[..., -1] = torch.where(sign < 0, -1.0, 1.0)
    rotation = v @ (d[..., :, None] * u.transpose(-1, -2))  # V D U^T
    scale = (singular * d).sum(-1) / x.square().sum((-1, -2)).clamp_min(torch.finfo(torch.float64).tiny)
    aligned = scale[..., None, None] * (x @ rotation.transpose(-1, -2)) + y_mean
    return aligned.to(source.dtype)


class PAMPJPE(JointMetric):
    """Procrustes-aligned mean per-joint position error (PA-MPJPE) in millimetres.

    ``pa_mpjpe_mm``: in every frame the reconstructed joints are aligned to the ground-truth joints
    by the similarity transform (uniform scale, proper rotation, translation) that minimises their
    summed squared distances (``procrustes_align``: the closed-form SVD solution, reflections
    excluded); the figure is the Euclidean distance per joint after that alignment, averaged over
    joints and valid frames, in millimetres (``mm_per_unit``). It measures the pose alone: the
    error of position, facing and size within each frame is aligned away. Frames whose positions
    are not finite give NaN.
    """

    def update(self, batch, outputs, fmt: MotionFormat):
        target, recon, mask = joint_positions(batch, outputs, fmt)
        finite = recon.isfinite().all(-1).all(-1) & target.isfinite().all(-1).all(-1)  # (B, T)
        keep = finite[..., None, None]
        aligned = procrustes_align(torch.where(keep, recon, 0.0), torch.where(keep, target, 0.0))
        per_frame = (aligned - target).norm(dim=-1).mean(-1) * fmt.mm_per_unit
        per_frame = torch.where(finite, per_frame, float("nan"))
        return {"error_sum": masked_sum(per_frame, mask), "frames": mask.sum().float()}

    def compute(self, sums):
        return {"pa_mpjpe_mm": sums["error_sum"] / max(sums["frames"], 1.0)}
