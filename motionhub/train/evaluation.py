"""Evaluation over whole splits: losses, metric plugins and codebook usage, across processes."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from accelerate.utils import gather_object

from motionhub.model.codebook import code_histogram, usage_from_histogram
from motionhub.data.formats import MotionFormat
from motionhub.model.losses import LossSet
from motionhub.model.metrics import Metric


def token_mask(batch: dict, indices: torch.Tensor, downsample: int) -> torch.Tensor:
    """(B, T') bool: tokens that cover at least one real frame of each clip."""
    lengths = batch.get("lengths")
    steps = torch.arange(indices.shape[1], device=indices.device)
    if lengths is None:
        return torch.ones(indices.shape[:2], dtype=torch.bool, device=indices.device)
    valid = (lengths.to(indices.device) + downsample - 1) // downsample
    return steps[None, :] < valid[:, None]


def evaluate(model, batches: Iterable[dict], fmt: MotionFormat, losses: LossSet, metrics: dict[str, Metric],
             accelerator, step: int) -> dict[str, float]:
    """Loss terms, metrics and codebook usage of ``model`` over every batch (see ``evaluate_split``)."""
    return evaluate_split(model, batches, fmt, losses, metrics, accelerator, step)[0]


@torch.no_grad()
def evaluate_split(model, batches: Iterable[dict], fmt: MotionFormat, losses: LossSet, metrics: dict[str, Metric],
                   accelerator, step: int, per_clip: list[dict] | None = None
                   ) -> tuple[dict[str, float], torch.Tensor]:
    """Loss terms, metrics and codebook usage of ``model`` over every batch, and the code
    histogram (codebook_size,) behind the usage figures.

    Loss terms are averaged over batches weighted by their real frames; metrics get exact
    sums; the code histogram covers every real token. All three are summed across processes.

    ``per_clip``, a list, receives one row per clip of every process (see ``clip_rows``),
    computed from the same forward passes as the split's figures. Every process must pass
    one or none.
    """
    # The bare model: a DDP wrapper would synchronise buffers on every forward, which
    # deadlocks when processes evaluate different numbers of batches.
    model = accelerator.unwrap_model(model, keep_torch_compile=False)
    codebook_size = model.quantizer.codebook_size
    device = accelerator.device
    histogram = torch.zeros(codebook_size, dtype=torch.long, device=device)
    sums: dict[str, torch.Tensor] = {}
    classes: torch.Tensor | None = None  # how often each class is predicted, for decoders that classify

    def add(key: str, value) -> None:
        value = torch.as_tensor(value, dtype=torch.float64, device=device)
        sums[key] = sums.get(key, 0) + value

    was_training = model.training
    model.eval()
    decode = decoding(model, accelerator)
    for batch in batches:
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        with accelerator.autocast():
            outputs = model(batch["motion"])
        outputs["decode"] = decode
        frames = batch["mask"].sum() if batch.get("mask") is not None else batch["motion"].shape[0] * batch["motion"].shape[1]
        total, terms = losses(batch, outputs, fmt, step, training=False)
        add("frames", frames)
        add("loss", total.float() * frames)
        for name, value in terms.items():
            add(f"loss/{name}", value.float() * frames)
        for name, metric in metrics.items():
            for key, value in metric.update(batch, outputs, fmt).items():
                add(f"{name}/{key}", value)
        if "logits" in outputs:
            predicted = code_histogram(outputs["logits"].argmax(-1), outputs["logits"].shape[-1])
            classes = predicted if classes is None else classes + predicted
        indices = outputs["indices"]
        keep = token_mask(batch, indices, model.downsample)
        histogram += code_histogram(indices[keep], codebook_size)
        if per_clip is not None:
            per_clip.extend(clip_rows(batch, outputs, fmt, losses, metrics, step, model.downsample, codebook_size))
    model.train(was_training)
    if per_clip is not None:
        per_clip[:] = gather_object(per_clip) if accelerator.num_processes > 1 else per_clip

    # Every process takes part in both collectives, even one that had no batch; the sums
    # travel as objects because their keys depend on which losses and metrics ran.
    histogram = accelerator.reduce(histogram, "sum")
    totals: dict[str, float] = {}
    predicted_classes: set[int] = set()
    mine = {k: float(v) for k, v in sums.items()}
    seen = [] if classes is None else classes.nonzero().flatten().tolist()
    for part, part_seen in gather_object([(mine, seen)]):
        for key, value in part.items():
            totals[key] = totals.get(key, 0.0) + value
        predicted_classes.update(part_seen)
    if not totals:
        return {}, histogram
    frames = max(totals.pop("frames"), 1.0)
    result = {"loss": totals.pop("loss") / frames}
    result.update({k.removeprefix("loss/"): v / frames for k, v in totals.items() if k.startswith("loss/")})
    for name, metric in metrics.items():
        prefix = f"{name}/"
        result.update(metric.compute({k[len(prefix):]: v for k, v in totals.items() if k.startswith(prefix)}))
    if classes is not None or predicted_classes:
        result["predicted_classes"] = len(predicted_classes)  # 1 means the decoder has collapsed
    usage = usage_from_histogram(histogram.cpu())
    result.update({f"codebook_{k}": v for k, v in usage.items()})
    return result, histogram


def decoding(model, accelerator):
    """``outputs["decode"]`` of evaluation: ``decode(codes, motion)`` turns quantized latents
    (B, N, C), e.g. ``quantizer.indices_to_codes(indices, levels=k)``, into the model's
    reconstruction (B, T, *F) of ``motion`` as normalised features, through its decoder, in the
    evaluation's precision. Metrics that score other codes than the quantizer's own call it."""
    def decode(codes: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        with accelerator.autocast():
            decoded = model.decoder(codes)
            return model.reconstruction(decoded if isinstance(decoded, dict) else {"recon": decoded}, motion)
    return decode


def clip_rows(batch: dict, outputs: dict, fmt: MotionFormat, losses: LossSet, metrics: dict[str, Metric],
              step: int, downsample: int, codebook_size: int) -> list[dict]:
    """One row per clip of an evaluated batch: ``id``, ``frames`` (real frames), ``loss`` and
    each loss term, every metric figure, and ``codebook_used`` (distinct codes of its real tokens).

    Each clip is its slice of the batch and of the model's outputs (entry i of every tensor
    whose first dimension is the batch's), so its figures come from exactly the numbers the
    split's figures do: per-frame loss terms and summed metrics are consistent with the
    split's (the frame-weighted mean of a clip figure such as MPJPE is the split's figure).
    A value the model gives only per batch, such as the quantizer's scalar ``aux_loss``, is
    the batch's for each of its clips.
    """
    size = batch["motion"].shape[0]
    rows = []
    for i in range(size):
        one, out = _clip_of(batch, i, size), _clip_of(outputs, i, size)
        total, terms = losses(one, out, fmt, step, training=False)
        mask = one.get("mask")
        frames = int(mask.sum()) if mask is not None else one["motion"].shape[1]
        row = {"id": one["ids"][0] if "ids" in one else str(i), "frames": frames, "loss": float(total)}
        row.update({name: float(value) for name, value in terms.items()})
        for metric in metrics.values():
            row.update(metric.compute({k: float(v) for k, v in metric.update(one, out, fmt).items()}))
        indices = out["indices"]
        used = code_histogram(indices[token_mask(one, indices, downsample)], codebook_size)
        row["codebook_used"] = int((used > 0).sum())
        rows.append(row)
    return rows


def _clip_of(values: dict, i: int, size: int) -> dict:
    """Entry ``i`` of every tensor (kept as a batch of one) and list whose first dimension is ``size``."""
    def pick(value):
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == size:
            return value[i:i + 1]
        if isinstance(value, list) and len(value) == size:
            return value[i:i + 1]
        return value
    return {key: pick(value) for key, value in values.items()}


@torch.no_grad()
def code_histogram_over(model, batches: Iterable[dict], accelerator) -> torch.Tensor:
    """Histogram of the codes of every real token in ``batches`` (encoder + quantizer only)."""
    model = accelerator.unwrap_model(model, keep_torch_compile=False)
    histogram = torch.zeros(model.quantizer.codebook_size, dtype=torch.long, device=accelerator.device)
    was_training = model.training
    model.eval()
    for batch in batches:
        motion = batch["motion"].to(accelerator.device)
        with accelerator.autocast():
            indices = model.quantizer(model.encoder(motion)).indices
        keep = token_mask(batch, indices, model.downsample)
        histogram += code_histogram(indices[keep], histogram.numel())
    model.train(was_training)
    return accelerator.reduce(histogram, "sum")
