"""``motionhub bench RUN_DIR``: encode latency per window as a streaming user sees it."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

from motionhub.commands import Command, add_run_arguments, non_negative_int, positive_int

REDRAW_EVERY = 50


class Bench(Command):
    """Encode latency per streaming window, as a streaming user sees it."""

    help = "encode latency per streaming window: mean / p50 / p95 / max, windows/s, memory"
    description = (
        "Play the clips of a split back to back, slide a window over them and time the encoder + "
        "quantizer on each window alone (batch size 1, inference mode, the input already normalised on "
        "the device). Writes windows.jsonl (one row per timed window) and summary.json, and prints the "
        "summary."
    )

    def add_arguments(self, parser) -> None:
        add_run_arguments(parser)
        parser.add_argument("--window", type=positive_int, metavar="W",
                            help="frames per window, a multiple of the model's down-sampling "
                                 "(default: the recipe's bench.window, else data.window)")
        parser.add_argument("--stride", type=positive_int, metavar="S",
                            help="frames between window starts (default: the recipe's bench.stride, else W)")
        parser.add_argument("--windows", type=positive_int, metavar="N",
                            help="time at most N windows from the start of the stream "
                                 "(default: the recipe's bench.windows, 1000)")
        parser.add_argument("--warmup", type=non_negative_int, metavar="K",
                            help="untimed encodes before timing (default: the recipe's bench.warmup, 10)")
        parser.add_argument("--split", choices=("train", "val", "test"),
                            help="clips to stream (default: the recipe's bench.split, val)")
        parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when there is a GPU, else cpu")
        parser.add_argument("--threads", type=positive_int, metavar="N",
                            help="torch CPU threads (default: torch's choice)")
        parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"),
                            help="fp32, or autocast to bf16 / fp16 as mixed-precision inference runs "
                                 "(default: the recipe's bench.precision, fp32)")
        parser.add_argument("--out", type=Path, metavar="DIR", help="folder for the results (default: RUN_DIR/bench)")

    def run(self, args: argparse.Namespace) -> int:
        import torch
        from rich.console import Console

        from motionhub.use.bench import check_window, latency_summary, stream_windows, time_windows, write_results
        from motionhub.train.report import parameter_counts, peak_memory
        from motionhub.use.trained_run import load_run
        from motionhub.use.encoding import resolve_device

        console = Console(stderr=True)
        device = resolve_device(args.device)
        if args.threads:
            torch.set_num_threads(args.threads)
        loaded = load_run(args.run_dir, args.checkpoint, args.overrides)
        model, fmt = loaded.model.to(device), loaded.format
        # the command line wins over the recipe's bench section
        settings = dataclasses.replace(loaded.recipe.bench, **{
            field.name: value for field in dataclasses.fields(loaded.recipe.bench)
            if (value := getattr(args, field.name)) is not None})
        window = settings.window or loaded.recipe.data.window
        stride = settings.stride or window
        check_window(window, model.downsample, "--window" if args.window else
                     "bench.window" if settings.window else "data.window")
        windows = stream_windows(loaded.dataset.clips(settings.split), window=window, stride=stride,
                                 limit=settings.windows)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

        with _window_progress(console, len(windows)) as progress:
            latencies = time_windows(model, fmt, windows, warmup=settings.warmup, device=device,
                                     precision=settings.precision, progress=progress)
        rows = [{**row, "latency_ms": float(ms)} for row, ms in zip(windows.rows(), latencies)]
        memory = {k: v for k, v in peak_memory().items() if device.type == "cuda" or not k.startswith("gpu_")}
        summary = {
            "run_dir": str(loaded.run.path.resolve()), "checkpoint": args.checkpoint, "step": loaded.step,
            "split": settings.split, "device": _device_name(device), "threads": torch.get_num_threads(),
            "precision": settings.precision,
            "torch": torch.__version__, "window": window, "stride": stride, "warmup": settings.warmup,
            "windows": len(windows), "stream_frames": int(windows.stream.offsets[-1]), "fps": float(fmt.fps),
            **latency_summary(latencies, stride=stride, fps=fmt.fps),
            "memory": memory, "parameters": parameter_counts(model),
        }
        out = args.out or loaded.run.path / "bench"
        write_results(out, rows, summary)
        _print_summary(summary)
        print(out)
        return 0


def _device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"


@contextlib.contextmanager
def _window_progress(console, total: int) -> Iterator[Callable[[int], None]]:
    """A rich progress bar over the timed windows; yields the ``progress`` callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # No refresh thread: the bar is redrawn between timings only, every REDRAW_EVERY windows.
    with Progress(TextColumn("[bold]bench"), BarColumn(), MofNCompleteColumn(), TextColumn("windows"),
                  TimeElapsedColumn(), console=console, auto_refresh=False, transient=True) as bar:
        task = bar.add_task("bench", total=total)
        yield lambda done: bar.update(task, completed=done, refresh=done % REDRAW_EVERY == 0)


def _print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    latency, params = summary["latency_ms"], summary["parameters"]
    table = Table(title=f"encode latency · {summary['run_dir']} · step {summary['step']}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    rows = [
        ("device", f"{summary['device']}, {summary['threads']} threads, {summary['precision']}"),
        ("windows", f"{summary['windows']:,} timed ({summary['warmup']} warm-up) of {summary['window']} frames, "
                    f"stride {summary['stride']}, batch size 1"),
        ("latency mean / p50", f"{latency['mean']:.3f} / {latency['p50']:.3f} ms"),
        ("latency p95 / max", f"{latency['p95']:.3f} / {latency['max']:.3f} ms"),
        ("windows / s", f"{summary['windows_per_s']:,.1f}"),
        ("frames / s", f"{summary['frames_per_s']:,.0f} ({summary['real_time_factor']:,.1f}x real time "
                       f"at {summary['fps']:g} fps)"),
        *[(key.removesuffix("_mib").replace("_", " "), f"{value:,.0f} MiB")
          for key, value in summary["memory"].items()],
        ("parameters", f"{params['encoder'] + params['quantizer']:,} encoder + quantizer "
                       f"({params['total']:,} in the model)"),
    ]
    for label, value in rows:
        table.add_row(label, value)
    Console().print(table)
