"""Evaluate a trained run on a split: the figures ``motionhub eval`` reports (and ``compare
--evaluate`` puts side by side), in the precision the run trained in, whole or clip by clip."""

from __future__ import annotations

import json
import math
from pathlib import Path

PRECISIONS = ("run", "fp32", "bf16", "fp16")
CLIP_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}


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
