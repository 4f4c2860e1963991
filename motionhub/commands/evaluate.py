"""``motionhub eval RUN_DIR``: losses, metrics and codebook usage of a trained run on a split,
with ``--per-clip`` the same figures for every clip, worst first, and with ``--protocol NAME``
a plugin's standard table instead (``motionhub list protocols``)."""

from __future__ import annotations

import json
from pathlib import Path

from motionhub.commands import Command, add_run_arguments, positive_int
from motionhub.use.evaluate import (
    CLIP_FORMATS, PRECISIONS, evaluate_run, sort_figure, worst_first, worst_table, write_clips,
)


class Evaluate(Command):
    """Losses, metrics and codebook usage of a trained run on one split."""

    help = "evaluate a trained run on a split (losses, MPJPE, codebook usage), whole or clip by clip"
    description = """
    Evaluates a checkpoint of RUN_DIR on a split as training evaluates its val split: whole
    clips within the recipe's eval length bounds, cropped to a multiple of the model's
    down-sampling, in the recipe's eval batches, under the precision the run trained in
    (train.precision), so the final model (--checkpoint last) gives on val the figures the
    run reported. The figures go to RUN_DIR/eval_<split>.json.

    --per-clip also writes every clip's figures (its loss terms and total, each metric such
    as MPJPE, the codes it uses), worst first, to RUN_DIR/eval_<split>_clips.csv or --out
    (.csv or .jsonl), and prints the worst ones. They come from the same forward passes as
    the split's figures: the frame-weighted mean of the clips' MPJPE, or of a loss term that
    averages over frames, is the split's.

    --protocol NAME runs a standard evaluation a plugin offers (motionhub list protocols), e.g.
    the text-to-motion table, with the settings the run's recipe gives it under eval.protocols
    and those of --split, --repeats, --seed and --set key=value on top. It prints the table and
    writes it, with every repetition, to RUN_DIR/eval_<split>_<NAME>.json (or --out).
    """

    def add_arguments(self, parser) -> None:
        add_run_arguments(parser)
        parser.add_argument("--split", choices=("train", "val", "test"),
                            help="split to evaluate (default: val; with --protocol, the protocol's own, e.g. test)")
        parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when there is a GPU, else cpu")
        parser.add_argument("--precision", default="run", choices=PRECISIONS,
                            help="autocast precision of the forward passes: run (default: the run's "
                                 "train.precision, as its own evaluations), fp32, bf16 or fp16")
        parser.add_argument("--per-clip", action="store_true",
                            help="also write each clip's figures, worst first, and print the worst")
        parser.add_argument("--out", type=Path, metavar="FILE",
                            help="with --per-clip: the file for them, .csv or .jsonl "
                                 "(default: RUN_DIR/eval_<split>_clips.csv); with --protocol: its JSON "
                                 "(default: RUN_DIR/eval_<split>_<NAME>.json)")
        parser.add_argument("--sort", metavar="FIGURE",
                            help="with --per-clip: the figure that ranks clips (default: the recipe's "
                                 "eval.best where clips have it, else loss)")
        parser.add_argument("--worst", type=positive_int, default=10, metavar="N",
                            help="with --per-clip: how many of the worst clips to print (default: 10)")
        parser.add_argument("--protocol", metavar="NAME",
                            help="a plugin's standard evaluation instead, e.g. t2m (see 'motionhub list protocols')")
        parser.add_argument("--repeats", type=positive_int, metavar="N",
                            help="with --protocol: repetitions (default: the protocol's, e.g. 20)")
        parser.add_argument("--seed", type=int, help="with --protocol: seed of its draws (default: the protocol's)")
        parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                            help="with --protocol: one of its settings, e.g. --set evaluator_dir=/data/t2m "
                                 "(repeatable; 'motionhub list protocols NAME' lists them)")

    def run(self, args) -> int:
        from rich.console import Console
        from rich.table import Table

        from motionhub.errors import MotionhubError
        from motionhub.model.metrics import figure_unit
        from motionhub.use.trained_run import load_run

        if args.protocol is not None:
            return run_protocol(args)
        given = [flag for flag, value in (("--repeats", args.repeats), ("--seed", args.seed),
                                          ("--set", args.settings or None)) if value is not None]
        if given:
            raise MotionhubError(f"{' and '.join(given)} only apply to a protocol: add --protocol NAME "
                                 f"(see 'motionhub list protocols')")
        args.split = args.split or "val"
        if not args.per_clip:
            given = [flag for flag, value in (("--out", args.out), ("--sort", args.sort)) if value is not None]
            if given:
                raise MotionhubError(f"{' and '.join(given)} only apply to per-clip results: add --per-clip")
        out_clips = args.out
        if args.per_clip and out_clips is not None and out_clips.suffix.lower() not in CLIP_FORMATS:
            raise MotionhubError(f"--out {out_clips}: per-clip results are written as CSV or JSON lines; "
                                 f"name a file ending in {', '.join(CLIP_FORMATS)}")

        console = Console(stderr=True)
        loaded = load_run(args.run_dir, args.checkpoint, args.overrides)
        clips: list[dict] | None = [] if args.per_clip else None
        result = evaluate_run(loaded, args.split, args.device, console, precision=args.precision, per_clip=clips)
        out = loaded.run.path / f"eval_{args.split}.json"
        if clips is not None:
            key, higher = sort_figure(clips, args.sort, loaded)
            clips = worst_first(clips, key, higher)
            out_clips = out_clips or loaded.run.path / f"eval_{args.split}_clips.csv"
            write_clips(clips, out_clips)
            result["per_clip"] = {"path": str(out_clips), "sorted_by": key, "higher_is_better": higher}
        out.write_text(json.dumps(result, indent=2) + "\n")

        title = f"{loaded.run.path} · {args.split} · step {loaded.step} · {result['precision']}"
        table = Table(title=title, show_header=False)
        for key, value in result.items():
            if key != "per_clip":
                table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value), figure_unit(key))
        Console().print(table)
        if clips is not None:
            Console().print(worst_table(clips, args.worst, result["per_clip"]["sorted_by"], higher))
            print(out_clips)
        print(out)
        return 0


def run_protocol(args) -> int:
    """``--protocol NAME``: the protocol built from the recipe's settings and the command line's,
    run on the checkpoint, its table printed and written with every repetition."""
    from motionhub.errors import MotionhubError
    from motionhub.use.protocols import build_protocol, parse_settings, recipe_settings, run_and_write
    from motionhub.use.trained_run import load_run

    if args.per_clip or args.sort is not None:
        raise MotionhubError("--per-clip and --sort apply to the plain evaluation, not to --protocol")
    settings = parse_settings(args.settings)
    for key, value in (("split", args.split), ("repeats", args.repeats), ("seed", args.seed)):
        if value is not None:
            settings[key] = value
    build_protocol(args.protocol, settings)  # a typo or a bad setting fails before the run is loaded
    loaded = load_run(args.run_dir, args.checkpoint, args.overrides)
    protocol = build_protocol(args.protocol, {**recipe_settings(loaded.recipe, args.protocol), **settings})
    run_and_write(protocol, args.protocol, loaded, args.device,
                  args.out or loaded.run.path / f"eval_{protocol.split}_{args.protocol}.json")
    return 0
