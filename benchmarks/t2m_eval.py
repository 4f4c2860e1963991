"""The text-to-motion evaluation of a tokenizer: batched (``motionhub t2m-eval``) vs the references' loop.

    PYTHONPATH=.:plugins python benchmarks/t2m_eval.py [--clips N] [--repeats R] [--width W] [--depth D]
                                                       [--threads T] [--device cpu|cuda] [--batch-size B]
                                                       [--rounds K]

One process, one synthetic test split, one tokenizer, one evaluator, both at random weights (the
timings do not depend on the values). The split is N clips (default 4,384, HumanML3D's test
split) of 263 random features, 40-199 frames, each with three tagged captions of 5-15 words; the
tokenizer is a conv1d encoder with FSQ (T2M-GPT's encoder shape by default: width 512, depth 3,
x4 down-sampling) and its mirrored decoder; the evaluator is the text-to-motion evaluator's three
networks (21.7 M parameters). Both contenders run R repetitions on the same draws (order,
captions, crops: ``motionhub_t2m.protocol.draw`` seeded per repetition):

  reference  what T2M-GPT's ``evaluation_vqvae`` does, one batch of 32 at a time: each item's
             caption turned into word vectors and one-hots as the data set's ``__getitem__``
             does, the batch sorted by caption length (the collate), the real motions
             normalised and zero-padded to 196 frames, real embeddings (motions sorted by
             length, then the text encoder), each clip reconstructed alone at its length and
             written into a zero batch, and the reconstruction's embeddings (the text encoder
             again);
  motionhub  ``run_protocol``: each caption embedded once for all repetitions, each crop
             (item, start, length) reconstructed and embedded once (an item has at most 12, so
             later repetitions mostly reuse them), crops of one length reconstructed together,
             real and reconstructed motions embedded together in length-sorted batches of B
             padded only as far as their longest needs.

With ``--rounds K`` the contenders alternate for K rounds (neither always runs first) and the
times are medians. The script prints both wall times, their ratio, and the largest difference
between the two contenders' figures (the reference's rows come back in length order inside each
batch, which only changes which pairs Diversity draws; they are put back in batch order so the
figures can be compared one for one).
"""

from __future__ import annotations

import argparse
import statistics
import time
from types import SimpleNamespace

import numpy as np
import torch

from motionhub.data import layouts
from motionhub.model.build import build_tokenizer
from motionhub.recipes import recipe_from_tree
from motionhub_t2m import metrics
from motionhub_t2m.files import Vocabulary
from motionhub_t2m.modules import MAX_MOTION_LENGTH, T2MEvaluator
from motionhub_t2m.protocol import Embedder, EvalSet, crops, draw, figures, run_protocol, summarise, \
    tokenizer_reconstructor
from motionhub_t2m.words import WordEmbedder

FEATURES = 263
WORDS = ["a", "person", "walk", "forward", "left", "right", "turn", "slowly", "arm", "raise", "the", "and", "then",
         "jump", "sit", "chair", "hand", "wave", "quickly", "stand", "up", "down", "run", "circle", "in"]
TAGS = ["DET", "NOUN", "VERB", "ADV", "ADV", "ADJ", "VERB", "ADV", "NOUN", "VERB", "DET", "CCONJ", "ADV",
        "VERB", "VERB", "NOUN", "NOUN", "VERB", "ADV", "VERB", "ADP", "ADP", "VERB", "NOUN", "ADP"]


def make_split(clips: int, seed: int = 0) -> EvalSet:
    rng = np.random.default_rng(seed)
    items, records = [], {}
    for i in range(clips):
        n = int(rng.integers(40, 200))
        items.append(SimpleNamespace(id=f"{i:06d}", motion=rng.standard_normal((n, FEATURES), dtype=np.float32)))
        records[f"{i:06d}"] = [
            SimpleNamespace(caption="", tokens=tuple(f"{WORDS[w]}/{TAGS[w]}" for w in
                                                     rng.integers(0, len(WORDS), int(rng.integers(5, 16)))),
                            start=0.0, end=0.0)
            for _ in range(3)]
    return EvalSet.build(items, records.__getitem__, "t2m")


def make_tokenizer(width: int, depth: int, down_t: int, fmt):
    tree = {"run": {"name": "bench"}, "data": {"name": "synthetic"},
            "encoder": {"name": "conv1d", "width": width, "depth": depth, "down_t": down_t, "output_emb_width": width},
            "quantizer": {"name": "fsq", "levels": [8, 8, 8]}, "decoder": {"name": "conv1d"},
            "losses": [{"name": "recon"}]}
    torch.manual_seed(0)
    model = build_tokenizer(recipe_from_tree(tree, "bench.yaml"), fmt).eval()
    # at its initial weights the encoder's outputs are so small that FSQ gives every frame one code
    # and every clip of a length the same reconstruction; scaled up, codes vary as a trained model's do
    last = [layer for layer in model.encoder.modules() if isinstance(layer, torch.nn.Conv1d)][-1]
    with torch.no_grad():
        last.weight.mul_(10)
        last.bias.mul_(10)
    return model


@torch.inference_mode()
def reference_repetition(eval_set: EvalSet, d, evaluator: T2MEvaluator, embedder: Embedder,
                         words: WordEmbedder, reconstruct, rng, device) -> dict:
    """One repetition the references' way: a batch of 32 at a time through every network."""
    sums_real, sums_pred, em_all, pred_all, et_all = [], [], [], [], []
    for start in range(0, len(d.items), metrics.GROUP):
        rows = np.arange(start, start + metrics.GROUP)
        # the data set's __getitem__ per item, then the collate's sort by caption length
        caps = [words.caption(eval_set.captions[d.captions[r]]) for r in rows]
        by_caption = sorted(range(len(rows)), key=lambda j: -caps[j][2])  # stable, as Python's sort
        rows = rows[by_caption]
        caps = [caps[j] for j in by_caption]
        word_t = torch.from_numpy(np.stack([c[0] for c in caps])).to(device)
        pos_t = torch.from_numpy(np.stack([c[1] for c in caps])).to(device)
        cap_lens = torch.tensor([c[2] for c in caps])
        lengths = d.lengths[rows]
        real = np.zeros((len(rows), MAX_MOTION_LENGTH, FEATURES), np.float32)
        recon = np.zeros_like(real)
        for j, r in enumerate(rows):
            raw = crops(eval_set, d, np.array([r]))
            real[j, :lengths[j]] = embedder.normalise(raw[0])
            recon[j, :lengths[j]] = embedder.normalise(reconstruct(raw)[0])  # one clip at a time, at its length
        align = np.argsort(lengths)[::-1].copy()  # the wrapper's sort by motion length
        m_lens = torch.from_numpy(lengths[align])
        outs = []
        for motions in (real, recon):
            em = evaluator.motion_embeddings(torch.from_numpy(motions[align]).to(device), m_lens)
            et = evaluator.text_embeddings(word_t, pos_t, cap_lens)[torch.from_numpy(align).to(device)]
            outs.append((et.float().cpu().numpy(), em.float().cpu().numpy()))
        (et, em), (_, em_pred) = outs
        sums_real.append(metrics.retrieval_sums(et, em))
        sums_pred.append(metrics.retrieval_sums(et, em_pred))
        back = np.argsort(np.asarray(by_caption)[align])  # rows back in batch order
        em_all.append(em[back])
        pred_all.append(em_pred[back])
        et_all.append(et[back])
    em, em_pred = np.concatenate(em_all), np.concatenate(pred_all)
    result = figures(np.concatenate(et_all), em, em_pred, rng)
    for row, sums in (("real", sums_real), ("reconstruction", sums_pred)):  # the references' per-batch sums
        result[row].update(metrics.retrieval_figures(metrics.add_sums(sums)))
    return result


def reference_protocol(eval_set, evaluator, embedder, words, reconstruct, repeats, seed, device) -> dict:
    runs = []
    for r in range(repeats):
        d = draw(eval_set, np.random.default_rng([seed, r]))
        runs.append(reference_repetition(eval_set, d, evaluator, embedder, words, reconstruct,
                                         np.random.default_rng([seed, r, 1]), device))
    return {"table": summarise(runs), "repetitions": runs}


def largest_difference(a: dict, b: dict) -> tuple[float, str]:
    worst, where = 0.0, ""
    for i, (x, y) in enumerate(zip(a["repetitions"], b["repetitions"])):
        for row in x:
            for key, value in x[row].items():
                diff = abs(value - y[row][key])
                if diff > worst:
                    worst, where = diff, f"repetition {i} {row} {key}"
    return worst, where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=4384, help="test clips (default: 4,384, HumanML3D's test split)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--width", type=int, default=512, help="tokenizer width (T2M-GPT: 512)")
    parser.add_argument("--depth", type=int, default=3, help="residual blocks per stage (T2M-GPT: 3)")
    parser.add_argument("--down-t", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256, help="motionhub's tokenizer and evaluator batch")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--rounds", type=int, default=1, help="rounds, contenders alternating; times are medians")
    parser.add_argument("--skip-reference", action="store_true", help="time motionhub's way only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.exit(2, "torch finds no CUDA GPU here; run with --device cpu\n")

    eval_set = make_split(args.clips)
    fmt = layouts.humanml3d_263().with_stats(np.zeros(FEATURES), np.ones(FEATURES))
    model = make_tokenizer(args.width, args.depth, args.down_t, fmt).to(device)
    torch.manual_seed(0)
    evaluator = T2MEvaluator("t2m")
    vocab_words = ["sos", "eos", "unk", *WORDS]
    vocabulary = Vocabulary(np.random.default_rng(1).standard_normal((len(vocab_words), 300)).astype(np.float32),
                            vocab_words, {w: i for i, w in enumerate(vocab_words)})
    words = WordEmbedder(vocabulary)
    embedder = Embedder(evaluator, np.zeros(FEATURES), np.ones(FEATURES), device, args.batch_size)
    reconstruct = tokenizer_reconstructor(model, fmt, device)
    tokenizer_params = sum(p.numel() for p in model.parameters())
    print(f"split: {args.clips} clips -> {len(eval_set.items)} items, {len(eval_set.captions)} captions; "
          f"{len(eval_set.items) // 32 * 32} pairs per repetition; {args.repeats} repetitions")
    print(f"tokenizer: conv1d width {args.width}, depth {args.depth}, down_t {args.down_t}, FSQ "
          f"({tokenizer_params:,} parameters); evaluator 21,690,560 parameters; {args.device}, "
          f"{args.threads} threads")

    def synchronise():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def timed(contender: str):
        synchronise()
        clock = time.perf_counter()
        if contender == "motionhub":
            result = run_protocol(eval_set, reconstruct, embedder, words, repeats=args.repeats, seed=0,
                                  tokenizer_batch=args.batch_size)
        else:
            result = reference_protocol(eval_set, evaluator, embedder, words, reconstruct, args.repeats, 0, device)
        synchronise()
        return result, time.perf_counter() - clock

    contenders = ["motionhub"] if args.skip_reference else ["motionhub", "reference"]
    times: dict[str, list[float]] = {name: [] for name in contenders}
    results = {}
    for round_ in range(args.rounds):  # alternate which runs first
        for name in (contenders if round_ % 2 == 0 else contenders[::-1]):
            results[name], seconds = timed(name)
            times[name].append(seconds)
    ours, ours_s = results["motionhub"], statistics.median(times["motionhub"])
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in ours["seconds"].items())
    print(f"motionhub (batched, batch {args.batch_size}): {ours_s:.1f} s (last round: {parts}; "
          f"{ours['crops_embedded']} crops reconstructed and embedded for "
          f"{ours['pairs_per_repetition'] * args.repeats} draws)")
    if args.skip_reference:
        return
    theirs, theirs_s = results["reference"], statistics.median(times["reference"])
    print(f"reference (a batch of 32 at a time, each clip reconstructed alone): {theirs_s:.1f} s")
    rounds = f", median of {args.rounds} rounds" if args.rounds > 1 else ""
    print(f"ratio: {theirs_s / ours_s:.2f}x (reference / motionhub{rounds})")
    worst, where = largest_difference(ours, theirs)
    print(f"largest difference between the two contenders' figures: {worst:.2e} ({where or 'none'})")
    table = ours["table"]["reconstruction"]
    print("motionhub reconstruction row: " + ", ".join(f"{k} {v['mean']:.4f}±{v['ci95']:.4f}" for k, v in table.items()))


if __name__ == "__main__":
    main()
