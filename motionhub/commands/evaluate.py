"""``motionhub eval RUN_DIR``: losses, metrics and codebook usage of a trained run on a split,
and with ``--per-clip`` the same figures for every clip, worst first."""

from __future__ import annotations

import json
import math
from pathlib import Path

from motionhub.commands import Command, add_run_arguments, positive_int

PRECISIONS = ("run", "fp32", "bf16", "fp16")
CLIP_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}


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
    """

    def add_arguments(self, parser) -> None:
        add_run_arguments(parser)
        parser.add_argument("--split", default="val", choices=("train", "val", "test"),
                            help="split to evaluate (default: val)")
        parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when there is a GPU, else cpu")
        parser.add_argument("--precision", default="run", choices=PRECISIONS,
                            help="autocast precision of the forward passes: run (default: the run's "
                                 "train.precision, as its own evaluations), fp32, bf16 or fp16")
        parser.add_argument("--per-clip", action="store_true",
                            help="also write each clip's figures, worst first, and print the worst")
        parser.add_argument("--out", type=Path, metavar="FILE",
                            help="with --per-clip: the file for them, .csv or .jsonl "
                                 "(default: RUN_DIR/eval_<split>_clips.csv)")
        parser.add_argument("--sort", metavar="FIGURE",
                            help="with --per-clip: the figure that ranks clips (default: the recipe's "
                                 "eval.best where clips have it, else loss)")
        parser.add_argument("--worst", type=positive_int, default=10, metavar="N",
                            help="with --per-clip: how many of the worst clips to print (default: 10)")

    def run(self, args) -> int:
        from rich.console import Console
        from rich.table import Table

        from motionhub.errors import MotionhubError
        from motionhub.use.trained_run import load_run

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
                table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
        Console().print(table)
        if clips is not None:
            Console().print(worst_table(clips, args.worst, result["per_clip"]["sorted_by"], higher))
            print(out_clips)
        print(out)
        return 0


def evaluate_run(loaded, split: str, device: str | None = None, console=None, *, clips=None,
                 eval_config=None, precision: str = "run", per_clip: list[dict] | None = None) -> dict:
    """What ``motionhub eval`` reports for a loaded run on ``split``.

    ``clips`` (a packed store or clip bank) evaluates on those clips instead of the run's own
    split, e.g. another run's, in a format equal to this run's; ``eval_config`` then sets the
    batch size and length bounds (default: the run's ``eval`` section).

    ``precision`` is the autocast precision of the forward passes: ``run`` (the run's
    ``train.precision``, under which training evaluated), ``fp32``, ``bf16`` or ``fp16``. The
    result's ``precision`` is the one the passes ran in: fp16 autocast does not apply on the
    CPU, where fp16 runs, training included, compute in fp32. ``per_clip``, a list, receives
    each clip's figures (``motionhub.train.evaluation.clip_rows``).
    """
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from rich.console import Console

    from motionhub.data.windows import EvalBatches
    from motionhub.model.build import build_losses, build_metrics
    from motionhub.train.evaluation import evaluate_split
    from motionhub.use.encoding import clip_progress, resolve_device

    console = console or Console(stderr=True)
    device = resolve_device(device)
    requested = run_precision(loaded, precision)
    ev = eval_config or loaded.recipe.eval
    source = clips if clips is not None else loaded.split(split, console)
    batches = EvalBatches(source, loaded.format, unit=loaded.model.downsample,
                          batch_size=ev.batch_size, min_length=ev.min_length, max_length=ev.max_length)
    threads = torch.get_num_threads()
    if device.type == "cpu" and loaded.recipe.train.threads:  # CPU kernels' sums depend on the thread count
        torch.set_num_threads(loaded.recipe.train.threads)
    accelerator = Accelerator(cpu=device.type == "cpu", mixed_precision="no" if requested == "fp32" else requested)
    try:
        used = autocast_precision(accelerator)
        if used != requested:
            console.print(f"[yellow]note:[/] {requested} autocast does not apply on {accelerator.device.type}: "
                          f"evaluating in {used}, as training there does")
        with clip_progress(console, f"eval {split} ({used})", len(batches.clips)) as progress:
            model = loaded.model.to(accelerator.device)
            result, _ = evaluate_split(model, _counted(batches, progress), loaded.format, build_losses(loaded.recipe),
                                       build_metrics(loaded.recipe, loaded.format, model.quantizer.codebook_size),
                                       accelerator, loaded.step, per_clip=per_clip)
    finally:
        AcceleratorState._reset_state()  # Accelerate's settings are process-wide
        torch.set_num_threads(threads)
    return {"split": split, "step": loaded.step, "precision": used, "clips": len(batches.clips),
            "skipped": batches.skipped, "codebook_size": loaded.model.quantizer.codebook_size, **result}


def run_precision(loaded, precision: str) -> str:
    """``precision``, with ``run`` read as the run's ``train.precision``."""
    if precision not in PRECISIONS:
        from motionhub.errors import MotionhubError
        raise MotionhubError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return loaded.recipe.train.precision if precision == "run" else precision


def autocast_precision(accelerator) -> str:
    """The precision ``accelerator.autocast()`` computes in on its device: fp32, bf16 or fp16."""
    import torch

    kind = accelerator.device.type
    with accelerator.autocast():
        if not torch.is_autocast_enabled(kind):
            return "fp32"
        dtype = torch.get_autocast_dtype(kind)
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")


def sort_figure(rows: list[dict], key: str | None, loaded) -> tuple[str, bool]:
    """The per-clip figure that ranks clips and whether more of it is better.

    Default: the recipe's ``eval.best`` where clips have it, else ``loss``.
    """
    from motionhub.errors import MotionhubError
    from motionhub.model.build import build_metrics
    from motionhub.errors import did_you_mean

    figures = [k for k, v in rows[0].items() if isinstance(v, (int, float)) and k not in ("frames",)] if rows else []
    if key is None:
        key = loaded.recipe.eval.best if loaded.recipe.eval.best in figures else "loss"
    elif key not in figures:
        raise MotionhubError(f"--sort {key}: clips have no figure '{key}'{did_you_mean(key, figures) or '.'} "
                             f"Their figures: {', '.join(figures)}")
    metrics = build_metrics(loaded.recipe, loaded.format, loaded.model.quantizer.codebook_size)
    higher = key == "codebook_used" or any(key in metric.higher_is_better for metric in metrics.values())
    return key, higher


def worst_first(rows: list[dict], key: str, higher_is_better: bool) -> list[dict]:
    """``rows`` ordered from the worst ``key`` to the best; a NaN counts as worst, ties keep clip id order."""
    def badness(row: dict) -> tuple:
        value = float(row[key])
        if math.isnan(value):
            return (0, 0.0, row["id"])
        return (1, value if higher_is_better else -value, row["id"])
    return sorted(rows, key=badness)


def write_clips(rows: list[dict], path: Path) -> None:
    """Per-clip rows as CSV (one column per figure) or JSON lines, by ``path``'s suffix."""
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    if CLIP_FORMATS.get(path.suffix.lower(), "csv") == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        return
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)


def worst_table(rows: list[dict], count: int, key: str, higher_is_better: bool):
    """A table of the ``count`` worst clips by ``key``, that figure first."""
    from rich.table import Table

    shown = rows[:count]
    columns = [key] + [k for k in dict.fromkeys(k for row in shown for k in row) if k not in ("id", "frames", key)]
    order = "lowest" if higher_is_better else "highest"
    table = Table(title=f"worst {len(shown)} of {len(rows)} clips by {key} ({order} first)")
    table.add_column("clip", no_wrap=True, min_width=max((len(row["id"]) for row in shown), default=4))
    table.add_column("frames", justify="right")
    for column in columns:
        table.add_column(column, justify="right")
    for row in shown:
        table.add_row(row["id"], str(row["frames"]), *(_cell(row.get(column)) for column in columns))
    return table


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _counted(batches, progress):
    """The batches, reporting the clips handed out so far to ``progress``."""
    done = 0
    for batch in batches:
        yield batch
        done += len(batch["ids"])
        progress(done)
