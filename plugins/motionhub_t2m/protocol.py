"""The text-to-motion reconstruction protocol, batched: the same draws and figures as the
references' loop over batches of 32, with each network run on large batches.

Items (as the reference's evaluation data set makes them): every clip of the split with
40 <= frames < 200 (KIT-ML: 24) whose captions cover it whole (``#0.0#0.0``), and every
caption with its own start/end seconds as a sub-clip of its own (cut at ``int(seconds * 20)``
frames, the same length bounds). A clip outside the bounds is left out with its sub-clips.

One repetition draws, from a generator seeded by (seed, repetition):

* the order of the items, keeping whole groups of 32 (the reference's shuffled batches with
  the last incomplete one dropped);
* per item, one of its captions, uniformly;
* per item, a length: with probability 2/3 its frames rounded down to a multiple of 4, else 4
  frames fewer, and a uniform start for a crop of that length.

Each crop is reconstructed at its own length (the tokenizer normalises with the run's own
statistics; its output is de-normalised with them), and both crop and reconstruction are
normalised with the evaluator's statistics, zero-padded and embedded. Each caption is embedded
once for all repetitions, and so is each crop (an item has at most 12 crops, so over 20
repetitions most draws repeat one): embeddings and reconstructions do not depend on the draw
(the tokenizer runs in eval mode). The figures follow ``metrics``; the real motions'
R-precision, MM-Dist and Diversity come out of the same pass.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from . import metrics
from .modules import UNIT_LENGTH, T2MEvaluator, padded_length

MIN_LENGTH = {"t2m": 40, "kit": 24, "self": 40}  # "self": an evaluator trained here, HumanML3D's bound
MAX_LENGTH = 200  # exclusive
SUBCLIP_FPS = 20  # the reference cuts sub-clips at int(seconds * 20) for both data sets
FIGURES = ("top1", "top2", "top3", "fid", "mm_dist", "diversity")

Reconstructor = Callable[[np.ndarray], np.ndarray]  # (k, m, D) raw crops of one length -> (k, m, D) raw


@dataclasses.dataclass
class EvalItem:
    """One evaluation item: a whole clip or a captioned sub-clip, with its captions' rows in the caption table."""

    id: str
    motion: np.ndarray  # (L, D) raw features
    captions: list[int]


@dataclasses.dataclass
class EvalSet:
    """The items of a split and every caption they use (tagged tokens), each caption once."""

    items: list[EvalItem]
    captions: list[tuple[str, ...]]
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)

    @classmethod
    def build(cls, clips, caption_records: Callable[[str], Sequence[Any]], ds: str,
              words: Callable[[str], Sequence[str]] | None = None) -> EvalSet:
        """Items from ``clips`` (objects with ``id`` and ``motion``) and each clip's caption records
        (``tokens``, ``start``, ``end`` seconds), as the module docstring says; ``words`` tags a
        caption that has no tokens of its own (else such a caption is an error)."""
        low = MIN_LENGTH[ds]
        items, captions, index, skipped = [], [], {}, {}

        def caption_row(tokens: tuple[str, ...]) -> int:
            if tokens not in index:
                index[tokens] = len(captions)
                captions.append(tokens)
            return index[tokens]

        def skip(reason: str) -> None:
            skipped[reason] = skipped.get(reason, 0) + 1

        for clip in clips:
            motion = np.asarray(clip.motion, dtype=np.float32)
            if not low <= len(motion) < MAX_LENGTH:
                skip(f"clip outside {low}-{MAX_LENGTH - 1} frames")
                continue
            whole = []
            records = list(caption_records(clip.id))
            if not records:
                skip("clip without captions")
                continue
            for record in records:
                tokens = tuple(record.tokens) or (tuple(words(record.caption)) if words else ())
                if not tokens:
                    raise ValueError(
                        f"clip {clip.id}: caption '{record.caption}' has no word/POS tokens; the text-to-motion "
                        f"evaluator reads captions tagged as HumanML3D's texts/ are (caption#word/POS ...#start#end)")
                if record.start == 0 and record.end == 0:
                    whole.append(caption_row(tokens))
                    continue
                part = motion[int(record.start * SUBCLIP_FPS):int(record.end * SUBCLIP_FPS)]
                if not low <= len(part) < MAX_LENGTH:
                    skip(f"sub-clip outside {low}-{MAX_LENGTH - 1} frames")
                    continue
                items.append(EvalItem(f"{clip.id}@{record.start:g}-{record.end:g}", part, [caption_row(tokens)]))
            if whole:
                items.append(EvalItem(clip.id, motion, whole))
        return cls(items, captions, skipped)


@dataclasses.dataclass
class Draw:
    """One repetition's draws, rows in batch order (whole groups of 32)."""

    items: np.ndarray  # item index
    captions: np.ndarray  # caption-table row
    lengths: np.ndarray  # frames, a multiple of 4
    starts: np.ndarray


def draw(eval_set: EvalSet, rng: np.random.Generator, group: int = metrics.GROUP) -> Draw:
    n = len(eval_set.items)
    order = rng.permutation(n)[: n // group * group]
    frames = np.array([len(eval_set.items[i].motion) for i in order])
    counts = np.array([len(eval_set.items[i].captions) for i in order])
    picks = rng.integers(0, counts)
    captions = np.array([eval_set.items[i].captions[p] for i, p in zip(order, picks)], dtype=np.int64)
    double = rng.integers(0, 3, size=len(order)) == 2  # one time in three: one unit fewer
    lengths = (frames // UNIT_LENGTH - double) * UNIT_LENGTH
    starts = rng.integers(0, frames - lengths + 1)
    return Draw(order, captions, lengths, starts)


def crops(eval_set: EvalSet, d: Draw, rows: np.ndarray) -> np.ndarray:
    """(len(rows), m, D) raw crops of ``rows`` of draw ``d``, all of one length m."""
    m = int(d.lengths[rows[0]])
    return np.stack([eval_set.items[d.items[r]].motion[d.starts[r]:d.starts[r] + m] for r in rows])


def tokenizer_reconstructor(model, fmt, device: torch.device) -> Reconstructor:
    """Reconstructions by a motionhub tokenizer of raw crops of one length, as raw features.

    The crop is normalised with the run's own statistics (``fmt``), reconstructed, and the output
    de-normalised with them. A length the model's down-sampling does not divide is padded by
    repeating the last frame, and the output cut back.
    """
    unit = max(int(getattr(model, "downsample", 1)), 1)

    @torch.inference_mode()
    def reconstruct(raw: np.ndarray) -> np.ndarray:
        m = raw.shape[1]
        x = torch.from_numpy(np.ascontiguousarray(raw))
        if m % unit:
            x = torch.cat([x, x[:, -1:].expand(-1, unit - m % unit, *x.shape[2:])], dim=1)
        x = fmt.normalise(x).to(device)
        outputs = model(x)
        recon = model.reconstruction(outputs, x)[:, :m].float().cpu()
        return fmt.denormalise(recon).numpy()

    reconstruct.unit = unit  # type: ignore[attr-defined]
    return reconstruct


class Embedder:
    """Motion embeddings of raw crops and caption embeddings, on large batches.

    Motions are normalised with the evaluator's statistics, sorted by length so each batch holds
    similar lengths, zero-padded to what their longest needs (``padded_length``: equal to padding
    to 196), embedded and put back in input order.

    evaluator:  the three networks, with the published weights.
    mean:       the evaluator's feature means (not the run's).
    std:        the evaluator's feature standard deviations.
    device:     where the networks run.
    batch_size: motions or captions per forward pass; the embeddings do not depend on it.
    """

    def __init__(self, evaluator: T2MEvaluator, mean: np.ndarray, std: np.ndarray, device: torch.device,
                 batch_size: int = 256):
        self.evaluator = evaluator.to(device)
        self.mean, self.std = mean.astype(np.float32), std.astype(np.float32)
        self.device, self.batch_size = device, batch_size

    def normalise(self, raw: np.ndarray) -> np.ndarray:
        return (raw - self.mean) / self.std

    def motions(self, normalised: Sequence[np.ndarray]) -> np.ndarray:
        """Evaluator-normalised motions of any lengths (multiples of 4) -> (N, 512) in input order."""
        lengths = np.array([len(m) for m in normalised])
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(normalised), self.evaluator.motion_encoder.output_net[-1].out_features), np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            frames = padded_length(int(lengths[rows].max()))
            batch = np.zeros((len(rows), frames, normalised[rows[0]].shape[1]), dtype=np.float32)
            for j, r in enumerate(rows):
                batch[j, :lengths[r]] = normalised[r]
            emb = self.evaluator.motion_embeddings(torch.from_numpy(batch).to(self.device),
                                                   torch.from_numpy(lengths[rows]))
            out[rows] = emb.float().cpu().numpy()
        return out

    def captions(self, words: np.ndarray, pos: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """(N, 22, 300), (N, 22, 15), (N,) -> (N, 512) caption embeddings in input order."""
        out = []
        order = np.argsort(-lengths, kind="stable")
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            out.append(self.evaluator.text_embeddings(torch.from_numpy(words[rows]).to(self.device),
                                                      torch.from_numpy(pos[rows]).to(self.device),
                                                      torch.from_numpy(lengths[rows])).float().cpu().numpy())
        emb = np.concatenate(out) if out else np.empty((0, 512), np.float32)
        result = np.empty_like(emb)
        result[order] = emb
        return result


CropCache = dict  # (item, start, length) -> (real embedding, reconstruction embedding)


def repetition(eval_set: EvalSet, d: Draw, caption_embeddings: np.ndarray, embedder: Embedder,
               reconstruct: Reconstructor, rng: np.random.Generator, tokenizer_batch: int = 256,
               timings: dict[str, float] | None = None, cache: CropCache | None = None) -> dict[str, dict[str, float]]:
    """The figures of one repetition: ``real`` (top1-3, mm_dist, diversity) and ``reconstruction``
    (the same and fid).

    ``cache`` keeps the embeddings of every crop computed so far, by item, start and length: an
    item has at most 12 crops (4 starts of its whole units, 8 of one unit fewer), so over 20
    repetitions most draws repeat an earlier crop, whose embeddings (and reconstruction) are the same.
    """
    timings = timings if timings is not None else {}
    cache = cache if cache is not None else {}
    keys = list(zip(d.items.tolist(), d.starts.tolist(), d.lengths.tolist()))
    todo = np.array([r for r, key in enumerate(keys) if key not in cache], dtype=np.int64)
    real: list[np.ndarray] = []
    recon: list[np.ndarray] = []
    order: list[int] = []
    clock = time.perf_counter()
    for m in np.unique(d.lengths[todo]):
        rows_all = todo[d.lengths[todo] == m]
        for start in range(0, len(rows_all), tokenizer_batch):
            rows = rows_all[start:start + tokenizer_batch]
            raw = crops(eval_set, d, rows)
            out = reconstruct(raw)
            real += [embedder.normalise(x) for x in raw]
            recon += [embedder.normalise(x) for x in out]
            order += rows.tolist()
    timings["tokenizer"] = timings.get("tokenizer", 0.0) + time.perf_counter() - clock
    clock = time.perf_counter()
    if order:
        both = embedder.motions(real + recon)
        for j, r in enumerate(order):
            cache[keys[r]] = (both[j], both[len(order) + j])
    timings["evaluator"] = timings.get("evaluator", 0.0) + time.perf_counter() - clock
    timings["crops_embedded"] = timings.get("crops_embedded", 0) + len(order)
    em = np.stack([cache[key][0] for key in keys])
    em_pred = np.stack([cache[key][1] for key in keys])
    et = caption_embeddings[d.captions]
    return figures(et, em, em_pred, rng)


def figures(et: np.ndarray, em: np.ndarray, em_pred: np.ndarray, rng: np.random.Generator
            ) -> dict[str, dict[str, float]]:
    """One repetition's table from caption, real-motion and reconstruction embeddings in batch order."""
    real = metrics.retrieval_figures(metrics.retrieval_sums(et, em))
    pred = metrics.retrieval_figures(metrics.retrieval_sums(et, em_pred))
    real["diversity"] = metrics.diversity(em, rng)
    pred["diversity"] = metrics.diversity(em_pred, rng)
    pred["fid"] = metrics.fid(em, em_pred)
    return {"real": real, "reconstruction": pred}


def embed_captions(eval_set: EvalSet, word_embedder, embedder: Embedder) -> np.ndarray:
    return embedder.captions(*word_embedder.captions(eval_set.captions))


def run_protocol(eval_set: EvalSet, reconstruct: Reconstructor, embedder: Embedder, word_embedder, *,
                 repeats: int = 20, seed: int = 0, tokenizer_batch: int = 256,
                 on_repeat: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Every repetition's figures and their mean and 95 % interval."""
    if len(eval_set.items) < metrics.GROUP:
        raise ValueError(f"{len(eval_set.items)} evaluation items make no group of {metrics.GROUP}; the "
                         f"protocol retrieves each caption among {metrics.GROUP} motions")
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    caption_embeddings = embed_captions(eval_set, word_embedder, embedder)
    timings["captions"] = time.perf_counter() - clock
    runs, cache = [], {}
    for r in range(repeats):
        rng = np.random.default_rng([seed, r])
        d = draw(eval_set, rng)
        runs.append(repetition(eval_set, d, caption_embeddings, embedder, reconstruct,
                               np.random.default_rng([seed, r, 1]), tokenizer_batch, timings, cache))
        if on_repeat is not None:
            on_repeat(r)
    embedded = timings.pop("crops_embedded")
    return {"table": summarise(runs), "repetitions": runs, "pairs_per_repetition": len(d.items),
            "diversity_pairs": metrics.diversity_times(len(d.items)), "crops_embedded": int(embedded),
            "seconds": timings}


def summarise(runs: Sequence[dict[str, dict[str, float]]]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and 95 % interval of each figure over the repetitions, per row."""
    return {row: {name: metrics.interval(run[row][name] for run in runs)
                  for name in FIGURES if name in runs[0][row]}
            for row in runs[0]}

