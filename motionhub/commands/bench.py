"""``motionhub bench RUN_DIR``: encode latency per window as a streaming user sees it, and whether
the model keeps up with the stream."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

from motionhub.commands import Command, add_run_arguments, non_negative_int, positive_int

REDRAW_EVERY = 50
LAG_EXIT = 1  # --fail-on-lag: the exit code when a window is late


def positive_float(text: str) -> float:
    """argparse type: a number above 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text}")
    return value


class Bench(Command):
    """Encode latency per streaming window, as a streaming user sees it, against its time budget."""

    help = "streaming encode latency per window against its time budget: keeps up, or LAGS"
    description = (
        "Stream the clips of a split, cut windows from them and time the encoder + quantizer on each "
        "window alone (batch size 1, inference mode, the input already normalised on the device). Motion "
        "clips play back to back as one stream; point tracks, whose clips are independent samples, are cut "
        "within each clip (--stream).\n\n"
        "A new window arrives every stride frames, so each window has a budget of stride / fps (or "
        "--budget-ms). A window within its budget is OK, else LAG; the model keeps up when every window "
        "is OK. Windows per second are windows over the wall time of the timed loop.\n\n"
        "Writes windows.jsonl (one row per timed window: latency, slack, OK / LAG) and summary.json, "
        "prints the summary and a one-line verdict. Exits 0 either way, unless --fail-on-lag.\n\n"
        "--streaming (a causal encoder, encoder.causal: true): also push the same stream chunk by chunk, "
        "stride frames at a time, through the streaming encoder, which keeps its state between chunks "
        "instead of re-encoding a window; writes chunks.jsonl and the summary's streaming section: "
        "per-chunk and first-token latency against the same budget, and the FLOPs and time the state saves."
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
        parser.add_argument("--stream", choices=("joined", "per_clip"),
                            help="joined: clips back to back, windows across the joins; per_clip: windows "
                                 "within each clip (default: the recipe's bench.stream, else per_clip for "
                                 "point tracks and joined otherwise)")
        parser.add_argument("--budget-ms", type=positive_float, metavar="MS",
                            help="milliseconds each window may take (default: the recipe's bench.budget_ms, "
                                 "else stride / fps)")
        parser.add_argument("--streaming", action="store_true",
                            help="also stream chunk by chunk (stride frames each) through the causal encoder's "
                                 "state and compare it with the sliding window")
        parser.add_argument("--fail-on-lag", action="store_true",
                            help=f"exit with {LAG_EXIT} when a window is late (default: 0 with the verdict)")
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

        from motionhub.use.bench import (budget_summary, check_window, default_stream, latency_summary, slack_ms,
                                         stream_windows, stride_budget_ms, time_windows, window_status,
                                         write_results)
        from motionhub.train.report import parameter_counts, peak_memory
        from motionhub.use.trained_run import load_run
        from motionhub.use.encoding import resolve_device

        console = Console(stderr=True)
        device = resolve_device(args.device)
        if args.threads:
            torch.set_num_threads(args.threads)
        loaded = load_run(args.run_dir, args.checkpoint, args.overrides)
        model, fmt = loaded.model.to(device), loaded.format
        if args.streaming:  # refuses a non-causal encoder before any timing
            from motionhub.use.streaming import StreamingEncoder

            streaming = StreamingEncoder(model, fmt, device)
        # the command line wins over the recipe's bench section
        settings = dataclasses.replace(loaded.recipe.bench, **{
            field.name: value for field in dataclasses.fields(loaded.recipe.bench)
            if (value := getattr(args, field.name)) is not None})
        window = settings.window or loaded.recipe.data.window
        stride = settings.stride or window
        check_window(window, model.downsample, "--window" if args.window else
                     "bench.window" if settings.window else "data.window")
        stream = settings.stream or default_stream(fmt)
        budget_ms = settings.budget_ms or stride_budget_ms(stride, fmt.fps)
        budget_source = ("--budget-ms" if args.budget_ms else "bench.budget_ms" if settings.budget_ms else
                         f"stride {stride} frames at {fmt.fps:g} fps")
        windows = stream_windows(loaded.dataset.clips(settings.split), window=window, stride=stride,
                                 limit=settings.windows, per_clip=stream == "per_clip")
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

        with _window_progress(console, len(windows)) as progress:
            timings = time_windows(model, fmt, windows, warmup=settings.warmup, device=device,
                                   precision=settings.precision, progress=progress)
        latencies = timings.latencies_ms
        rows = [{**row, "latency_ms": float(ms), "slack_ms": float(slack), "status": window_status(slack)}
                for row, ms, slack in zip(windows.rows(), latencies, slack_ms(latencies, budget_ms))]
        memory = {k: v for k, v in peak_memory().items() if device.type == "cuda" or not k.startswith("gpu_")}
        summary = {
            "run_dir": str(loaded.run.path.resolve()), "checkpoint": args.checkpoint, "step": loaded.step,
            "split": settings.split, "device": _device_name(device), "threads": torch.get_num_threads(),
            "precision": settings.precision,
            "torch": torch.__version__, "window": window, "stride": stride, "warmup": settings.warmup,
            "stream": stream, "windows": len(windows), "stream_frames": int(windows.stream.offsets[-1]),
            **({"short_clips": windows.short_clips} if windows.per_clip else {}), "fps": float(fmt.fps),
            **latency_summary(timings, stride=stride, fps=fmt.fps),
            **budget_summary(latencies, budget_ms=budget_ms, source=budget_source),
            "memory": memory, "parameters": parameter_counts(model),
        }
        chunk_rows = None
        if args.streaming:
            from motionhub.use.streaming_bench import stream_chunks, streaming_report, time_chunks

            chunks = stream_chunks(windows, streaming.max_frames)
            with _window_progress(console, len(chunks), "chunks") as progress:
                chunk_timings = time_chunks(streaming, chunks, warmup=settings.warmup, precision=settings.precision,
                                            progress=progress)
            chunk_rows, summary["streaming"] = streaming_report(
                streaming, chunks, chunk_timings, timings, window=window, budget_ms=budget_ms,
                budget_source=budget_source, fps=fmt.fps)
        out = args.out or loaded.run.path / "bench"
        write_results(out, rows, summary, chunk_rows)
        _print_summary(summary)
        if args.streaming:
            _print_streaming(summary)
        print(out)
        keeps_up = summary["keeps_up"] and summary.get("streaming", {}).get("keeps_up", True)
        return LAG_EXIT if args.fail_on_lag and not keeps_up else 0


def _device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"


@contextlib.contextmanager
def _window_progress(console, total: int, unit: str = "windows") -> Iterator[Callable[[int], None]]:
    """A rich progress bar over the timed windows (or chunks: ``unit``); yields the ``progress`` callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # No refresh thread: the bar is redrawn between timings only, every REDRAW_EVERY windows.
    with Progress(TextColumn("[bold]bench"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                  TimeElapsedColumn(), console=console, auto_refresh=False, transient=True) as bar:
        task = bar.add_task("bench", total=total)
        yield lambda done: bar.update(task, completed=done, refresh=done % REDRAW_EVERY == 0)


def _print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from motionhub.use.bench import format_ms, format_share

    latency, params = summary["latency_ms"], summary["parameters"]
    table = Table(title=f"encode latency · {summary['run_dir']} · step {summary['step']}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    stream = "clips back to back" if summary["stream"] == "joined" else "within each clip"
    if summary.get("short_clips"):
        stream += f", {summary['short_clips']:,} clips shorter than a window left out"
    on_time = summary["windows"] - summary["late_windows"]
    rows = [
        ("device", f"{summary['device']}, {summary['threads']} threads, {summary['precision']}"),
        ("windows", f"{summary['windows']:,} timed ({summary['warmup']} warm-up) of {summary['window']} frames, "
                    f"stride {summary['stride']}, batch size 1, {stream}"),
        ("latency mean / p50", f"{latency['mean']:.3f} / {latency['p50']:.3f} ms"),
        ("latency p95 / max", f"{latency['p95']:.3f} / {latency['max']:.3f} ms"),
        ("budget", f"{format_ms(summary['budget_ms'])} ms per window ({summary['budget_source']})"),
        ("on time", f"{format_share(summary['on_time_share'])} ({on_time:,} of {summary['windows']:,} windows)"),
        ("worst slack", f"{format_ms(summary['worst_slack_ms'])} ms"),
        ("longest late run", f"{summary['longest_late_run']:,} windows"),
        ("wall time", f"{summary['wall_s']:.3f} s"),
        ("windows / s", f"{summary['windows_per_s']:,.1f} (windows / wall time; "
                        f"{summary['encode_windows_per_s']:,.1f} from the mean latency)"),
        ("frames / s", f"{summary['frames_per_s']:,.0f} ({summary['real_time_factor']:,.1f}x real time "
                       f"at {summary['fps']:g} fps)"),
        *[(key.removesuffix("_mib").replace("_", " "), f"{value:,.0f} MiB")
          for key, value in summary["memory"].items()],
        ("parameters", f"{params['encoder'] + params['quantizer']:,} encoder + quantizer "
                       f"({params['total']:,} in the model)"),
    ]
    for label, value in rows:
        table.add_row(label, escape(value))
    console = Console()
    console.print(table)
    console.print(escape(summary["verdict"]), style="bold green" if summary["keeps_up"] else "bold red",
                  soft_wrap=True)


def _print_streaming(summary: dict) -> None:
    """The streaming mode beside the sliding window: latency per step, first token, work per step."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from motionhub.use.bench import format_ms, format_share

    s, window = summary["streaming"], summary["latency_ms"]
    chunk, first, window_first, saved = s["latency_ms"], s["first_token"], s["window_first_token"], s["work_saved"]
    table = Table(title=f"streaming ({s['encoder']}, state kept between chunks) vs sliding window")
    for column in ("", "streaming", "sliding window"):
        table.add_column(column, style="bold" if not column else None)

    def first_token(f: dict) -> str:
        if f["frames"] is None:
            return "no token"
        return (f"{format_ms(f['total_ms'])} ms ({f['frames']:g} frames = {format_ms(f['wait_ms'])} ms "
                f"+ {format_ms(f['compute_ms'])} ms compute)")

    streams = f", {s['streams']:,} streams" if s["streams"] > 1 else ""
    rows = [
        ("encoded per step", f"{s['chunk']} new frames ({s['chunks']:,} chunks{streams})",
         f"{summary['window']} frames ({summary['windows']:,} windows)"),
        ("latency p50 / p95", f"{chunk['p50']:.3f} / {chunk['p95']:.3f} ms", f"{window['p50']:.3f} / {window['p95']:.3f} ms"),
        ("latency max", f"{chunk['max']:.3f} ms", f"{window['max']:.3f} ms"),
        ("on time", f"{format_share(s['on_time_share'])} of {format_ms(s['budget_ms'])} ms",
         f"{format_share(summary['on_time_share'])} of {format_ms(summary['budget_ms'])} ms"),
        ("first token", first_token(first), first_token(window_first)),
        ("FLOPs per step", f"{saved['chunk_flops']:,.0f}", f"{saved['window_flops']:,.0f}"),
        ("work saved", f"window / chunk: {saved['flops_ratio']:,.1f}x the FLOPs, {saved['time_ratio']:,.1f}x the time",
         ""),
    ]
    for label, *values in rows:
        table.add_row(label, *map(escape, values))
    console = Console()
    console.print(table)
    console.print(escape("streaming " + s["verdict"]), style="bold green" if s["keeps_up"] else "bold red",
                  soft_wrap=True)
