"""The losses the evaluator's two training stages use (see ``training``).

Movement autoencoder: ``recon`` (kind l1, every feature) plus, on the latents (B, T', C),
``t2m_sparsity`` = mean |z| and ``t2m_smooth`` = mean |z[:, 1:] - z[:, :-1]|, each weighted
0.001 in the reference.

Text-motion matching: ``t2m_contrastive``, the margin contrastive loss of Hadsell et al. on
Euclidean distances d between caption and motion embeddings: mean d^2 over the positive pairs
(each window with its own caption) plus mean max(margin - d, 0)^2 over negative pairs made by a
cyclic shift of the motions by s rows, s drawn uniformly from 1..B-1 with torch's generator (the
trainer seeds it and restores it on resume); evaluation, without gradients, shifts by B // 2. The
reference draws s from 0..B-2, where s = 0 makes the "negatives" the positives themselves; a
shift of at least 1 keeps every negative a real one.
"""

from __future__ import annotations

from typing import Annotated

import torch

from motionhub.api import Bounds, Loss, MotionFormat, MotionhubError


class LatentSparsity(Loss):
    """Mean absolute value of the latents (B, T', C): keeps the movement features small."""

    def __call__(self, batch, outputs, format: MotionFormat) -> torch.Tensor:
        return outputs["latents"].abs().mean()


class LatentSmoothness(Loss):
    """Mean absolute change of the latents (B, T', C) from one step to the next."""

    def __call__(self, batch, outputs, format: MotionFormat) -> torch.Tensor:
        latents = outputs["latents"]
        if latents.shape[1] < 2:
            return latents.new_zeros(())
        return (latents[:, 1:] - latents[:, :-1]).abs().mean()


class ContrastiveMatching(Loss):
    """Margin contrastive loss between caption and motion embeddings (the evaluator's training loss).

    margin: distance below which a mismatched caption and motion are pushed apart (the reference's negative_margin).
    """

    def __init__(self, margin: Annotated[float, Bounds(low=0, low_open=True)] = 10.0):
        self.margin = margin
        self._figures: dict[str, torch.Tensor] = {}

    def __call__(self, batch, outputs, format: MotionFormat) -> torch.Tensor:
        matching = outputs.get("matching")
        if matching is None:
            raise MotionhubError("t2m_contrastive needs the decoder t2m_matching, which embeds captions and motion")
        captions = batch.get("captions")
        if captions is None:
            raise MotionhubError("t2m_contrastive needs a caption per window: set data.captions: true")
        motion = batch["motion"]
        mask = batch.get("mask")
        frames = (mask.sum(1) if mask is not None
                  else torch.full((motion.shape[0],), motion.shape[1], dtype=torch.long))
        text, moving = matching.embed(outputs["movements"], frames, list(captions))
        size = len(text)
        # Evaluation (no gradients) uses a fixed shift: repeatable figures, and the random stream a
        # resumed run continues from is not consumed by evaluating.
        shift = (int(torch.randint(1, size, ())) if torch.is_grad_enabled() else size // 2) if size > 1 else 0
        positive = (text - moving).norm(dim=-1)
        negative = (text - moving.roll(shift, dims=0)).norm(dim=-1)
        loss_pos = positive.square().mean()
        loss_neg = (self.margin - negative).clamp_min(0).square().mean()
        with torch.no_grad():
            distances = torch.cdist(text.float(), moving.float())
            top1 = (distances.argmin(dim=1) == torch.arange(size, device=distances.device)).float().mean()
        self._figures = {"pos": loss_pos.detach(), "neg": loss_neg.detach(), "batch_top1": top1}
        return loss_pos + loss_neg

    def figures(self) -> dict[str, torch.Tensor]:
        """The positive and negative parts of the last call, and the share of its captions whose
        own motion was the nearest in their batch."""
        return self._figures
