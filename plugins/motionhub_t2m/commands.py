"""``motionhub t2m-eval RUN_DIR --evaluator-dir DIR``: the text-to-motion table of a trained run;
``motionhub t2m-export-evaluator RUN_DIR --out DIR``: an evaluator trained here, as a folder it reads."""

from __future__ import annotations

import argparse
from pathlib import Path

from motionhub.api import Command


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
        from motionhub.api import load_run, run_and_write

        from .table import T2MProtocol

        protocol = T2MProtocol(str(args.evaluator_dir) if args.evaluator_dir else None, split=args.split,
                               repeats=args.repeats, seed=args.seed, batch_size=args.batch_size)
        loaded = load_run(args.run_dir, args.checkpoint, args.overrides)
        run_and_write(protocol, "t2m", loaded, args.device,
                      args.out or loaded.run.path / f"t2m_eval_{args.split}.json")
        return 0


class T2MExportEvaluator(Command):
    """An evaluator trained with configs/t2m_evaluator/ as an evaluator folder."""

    help = "write a self-trained text-to-motion evaluator (a matching run) as an evaluator folder for t2m-eval"
    description = """
    Reads RUN_DIR, a run of the text-motion matching stage (decoder t2m_matching, see
    configs/t2m_evaluator/), and writes DIR: finest.tar with the movement, motion and text
    encoders under the published keys, the statistics the run normalised its data with as
    mean.npy/std.npy, copies of its word vectors, and evaluator.json (architecture, run, step,
    checkpoint sha256, data). t2m-eval --evaluator-dir DIR, motionhub eval --protocol t2m --set
    evaluator_dir=DIR and a recipe's eval.protocols then use it; every table and JSON they write
    says that its figures are NOT comparable with published ones.
    """

    def add_arguments(self, parser) -> None:
        parser.add_argument("run_dir", type=Path, help="the matching stage's run directory")
        parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="the evaluator folder to write")
        parser.add_argument("--checkpoint", default="best",
                            help="checkpoint name in RUN_DIR/checkpoints/: best (default: the lowest val loss, as "
                                 "the reference's finest; falls back to last), last or step_N")

    def run(self, args) -> int:
        from .export import export_evaluator

        manifest = export_evaluator(args.run_dir, args.out, args.checkpoint)
        print(f"self-trained evaluator ({manifest['features']} features, step {manifest['step']}) written to {args.out}")
        print("its figures are not comparable with those of the published evaluators")
        return 0
