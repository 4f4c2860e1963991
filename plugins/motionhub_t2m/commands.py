"""``motionhub t2m-eval RUN_DIR --evaluator-dir DIR``: the text-to-motion table of a trained run."""

from __future__ import annotations

import argparse
from pathlib import Path

from motionhub.api import Command

COLUMNS = (("top1", "Top-1 ↑"), ("top2", "Top-2 ↑"), ("top3", "Top-3 ↑"), ("fid", "FID ↓"),
           ("mm_dist", "MM-Dist ↓"), ("diversity", "Diversity →"))
UNITS = ("R-precision Top-k: share of captions whose own motion is among the k nearest of 32 (0-1); "
         "FID: squared distance in the evaluator's 512-d embedding space; MM-Dist and Diversity: "
         "Euclidean distance in that space (Diversity: closer to the real motion's is better)")


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


class T2MEval(Command):
    """The standard text-to-motion evaluation of a tokenizer's reconstructions."""

    help = "text-to-motion table (R-precision, FID, MM-Dist, Diversity) of a run's reconstructions"
    description = """
    Evaluates RUN_DIR's reconstructions of a HumanML3D or KIT-ML split with the published
    text-to-motion evaluator, as the papers report a tokenizer: R-precision top-1/2/3 over
    groups of 32 captions, FID between real and reconstructed motion embeddings, MM-Dist and
    Diversity, on the test split, 20 repetitions, mean and 95 % interval (1.96 std / sqrt(n)).

    The evaluator folder (--evaluator-dir or $MOTIONHUB_EVALUATOR_DIR) holds finest.tar, the
    evaluator's mean.npy/std.npy and the word vectors our_vab_data.npy, our_vab_words.pkl and
    our_vab_idx.pkl, in a flat folder or the reference repositories' checkpoints/ and glove/
    layout; nothing is downloaded. Every file's sha256 goes into the JSON.

    Motion is normalised with the evaluator's statistics before it is embedded, real and
    reconstructed alike; the tokenizer reads it normalised with the run's own statistics. The
    table, with every repetition, goes to RUN_DIR/t2m_eval_<split>.json (or --out).
    """

    def add_arguments(self, parser) -> None:
        parser.add_argument("run_dir", type=Path, help="a run directory trained on HumanML3D or KIT-ML")
        parser.add_argument("overrides", nargs="*", default=(), metavar="key=value",
                            help="recipe overrides, e.g. data.root=/elsewhere")
        parser.add_argument("--checkpoint", default="best",
                            help="checkpoint name in RUN_DIR/checkpoints/: best (default; falls back to last), "
                                 "last or step_N")
        parser.add_argument("--evaluator-dir", type=Path, metavar="DIR",
                            help="folder of the evaluator's files (default: $MOTIONHUB_EVALUATOR_DIR)")
        parser.add_argument("--split", default="test", choices=("train", "val", "test"),
                            help="split to evaluate (default: test, as the papers)")
        parser.add_argument("--repeats", type=positive, default=20, help="repetitions (default: 20, as the papers)")
        parser.add_argument("--seed", type=int, default=0, help="seed of the draws (order, captions, crops)")
        parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when there is a GPU, else cpu")
        parser.add_argument("--batch-size", type=positive, default=256,
                            help="clips per tokenizer and evaluator batch (default: 256; the figures do not "
                                 "depend on it)")
        parser.add_argument("--out", type=Path, metavar="FILE",
                            help="the JSON file (default: RUN_DIR/t2m_eval_<split>.json)")

    def run(self, args) -> int:
        import json

        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from motionhub.api import load_run

        from .evaluate import evaluate_t2m, evaluator_dataset
        from .files import load_evaluator_files

        console = Console(stderr=True)
        loaded = load_run(args.run_dir, args.checkpoint, args.overrides)
        files = load_evaluator_files(args.evaluator_dir, evaluator_dataset(loaded.format))
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task(f"t2m {args.split} repetitions", total=args.repeats)
            result = evaluate_t2m(loaded, split=args.split, repeats=args.repeats, seed=args.seed, device=args.device,
                                  batch_size=args.batch_size, checkpoint=args.checkpoint, files=files,
                                  on_repeat=lambda _: progress.advance(task))
        out = args.out or loaded.run.path / f"t2m_eval_{args.split}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(table(result))
        for line in summary_lines(result):
            print(line)
        print(out)
        return 0


def cell(entry: dict | None) -> str:
    """``0.511±.003``, the papers' style; ``-`` for a figure the row does not have."""
    if entry is None:
        return "-"
    ci = f"{entry['ci95']:.3f}"
    return f"{entry['mean']:.3f}±{ci[1:] if ci.startswith('0.') else ci}"


def table(result: dict) -> str:
    """The paper table as text: real motion, the reconstruction, and the published real figures where known."""
    rows = result["table"]
    lines = [("", *(label for _, label in COLUMNS)),
             ("Real motion", *(cell(rows["real"].get(key)) for key, _ in COLUMNS)),
             ("Reconstruction", *(cell(rows["reconstruction"].get(key)) for key, _ in COLUMNS))]
    published = result.get("published_real")
    if published:
        lines.append(("Real (published)", *(f"{published[key]:.3f}" if key in published else "-"
                                            for key, _ in COLUMNS)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    title = (f"text-to-motion evaluation: {result['dataset']} {result['split']} split, {result['repeats']} "
             f"repetitions (mean ± 1.96·σ/√{result['repeats']}), step {result['run']['step']}")
    body = ["  ".join([line[0].ljust(widths[0]), *(v.rjust(w) for v, w in zip(line[1:], widths[1:]))]).rstrip()
            for line in lines]
    return "\n".join([title, *body])


def summary_lines(result: dict) -> list[str]:
    items = result["items"]
    norm = result["normalisation"]
    skipped = ", ".join(f"{count} {reason}" for reason, count in items["skipped"].items()) or "none"
    lines = [
        f"units: {UNITS}",
        f"split: {result['split']} ({items['clips_in_split']} clips -> {items['items']} items: "
        f"{items['whole_clips']} whole clips, {items['sub_clips']} captioned sub-clips; skipped: {skipped}); "
        f"{items['pairs_per_repetition']} caption-motion pairs per repetition in groups of "
        f"{result['settings']['group']}; {result['repeats']} repetitions, seed {result['seed']}",
        f"normalisation: tokenizer input: {norm['tokenizer_input']}; evaluator input: {norm['evaluator_input']}; "
        f"reconstruction: {norm['reconstruction']}",
    ]
    for role, entry in result["files"].items():
        flag = f" ({'published file' if entry['published_sha256'] == 'same' else 'NOT the published file'})" \
            if "published_sha256" in entry else ""
        lines.append(f"{role}: {entry['path']} sha256 {entry['sha256']}{flag}")
    return lines
