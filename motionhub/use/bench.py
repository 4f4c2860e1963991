"""Online encode latency: the time a streaming user waits for the tokens of each window, and
whether the model keeps up with the stream (``motionhub bench``).

The stream is the clips of a split. ``joined``: the clips play back to back as one stream and a
window of ``window`` frames slides over it with ``stride`` frames between starts, across the joins.
``per_clip``: windows are cut within each clip and never span two; clips shorter than a window
are left out. Point tracks stream per clip by default (each clip is an independent sample,
tracked from a fresh grid), everything else joined.

Each window is encoded alone (batch size 1) under ``torch.inference_mode``, in float32 or under
autocast to bf16 / fp16 (mixed precision, as a deployed model often runs). A window's clock covers
the encoder and the quantizer only: its frames are normalised and on the device before it starts,
and on a GPU ``torch.cuda.synchronize()`` runs before and after so the window is charged for its
own kernels. The first ``warmup`` encodes are not timed. The wall clock covers the whole timed
loop (input preparation included), so windows per second is windows over wall time.

A new window arrives every ``stride`` frames: its time budget is stride / fps unless one is
given. A window is on time (OK) when its latency is within the budget, late (LAG) otherwise;
slack is budget minus latency. The model keeps up when every window is on time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from motionhub.data.dataset import Clip
from motionhub.errors import DataError, MotionhubError
from motionhub.data.formats import MotionFormat
from motionhub.model.tokenizer import Tokenizer
from motionhub.data.windows import ClipBank

WINDOWS_FILE = "windows.jsonl"
CHUNKS_FILE = "chunks.jsonl"  # --streaming
SUMMARY_FILE = "summary.json"
STREAMS = ("joined", "per_clip")
clock = time.perf_counter  # seconds; every timing reads it (tests replace it to make timings exact)


@dataclasses.dataclass
class StreamWindows:
    """Windows over the clips of a stream.

    stream: the clips the windows use, concatenated (``ClipBank``: frames (N_frames, *F), offsets, ids).
    starts: (n,) int64 first stream frame of each window.
    window, stride: frames per window and between window starts.
    per_clip: whether windows were cut within each clip (never spanning two) or across the joins.
    short_clips: per_clip: clips passed over for being shorter than one window.
    """

    stream: ClipBank
    starts: np.ndarray
    window: int
    stride: int
    per_clip: bool = False
    short_clips: int = 0

    def __len__(self) -> int:
        return len(self.starts)

    def rows(self) -> list[dict[str, Any]]:
        """Per window: index, id of the clip its first frame is in, first frame within that clip and in the stream."""
        clip = np.searchsorted(self.stream.offsets, self.starts, side="right") - 1
        ids = self.stream.ids
        return [{"window": k, "clip_id": ids[c], "start_frame": int(s - self.stream.offsets[c]),
                 "stream_frame": int(s)} for k, (c, s) in enumerate(zip(clip, self.starts))]


def default_stream(fmt: MotionFormat) -> str:
    """``per_clip`` for point tracks (``layouts.point_tracks``: every clip an independent sample),
    ``joined`` for motion, whose clips can play back to back."""
    return "per_clip" if fmt.name == "point_tracks" else "joined"


def stream_windows(clips: Iterable[Clip], *, window: int, stride: int, limit: int | None,
                   per_clip: bool = False) -> StreamWindows:
    """At most ``limit`` (None: all) windows over ``clips``; only the clips they need are read.

    Joined (default): over the clips back to back. ``per_clip``: within each clip, starting at
    its first frame; clips shorter than ``window`` are passed over.
    """
    taken, frames, own_starts, count, short, longest = [], 0, [], 0, 0, 0
    needed = None if limit is None else (limit - 1) * stride + window
    for clip in clips:
        length = len(clip.motion)
        longest = max(longest, length)
        if per_clip:
            if length < window:
                short += 1
                continue
            starts = np.arange(0, length - window + 1, stride, dtype=np.int64)
            own_starts.append(frames + starts)
            count += len(starts)
        taken.append(clip)
        frames += length
        if limit is not None and (count >= limit if per_clip else frames >= needed):
            break
    if per_clip:
        if not count:
            raise DataError(f"no clip of the split has a window of {window} frames (the longest has "
                            f"{longest}); lower --window")
        starts = np.concatenate(own_starts)[:limit]
    else:
        if frames < window:
            raise DataError(f"the split has {frames} frames in all, fewer than one window of {window}; "
                            f"lower --window")
        starts = np.arange(0, frames - window + 1, stride, dtype=np.int64)[:limit]
    return StreamWindows(ClipBank.from_clips(taken), starts, window, stride, per_clip, short)


def check_window(window: int, unit: int, source: str = "--window") -> None:
    """``MotionhubError`` unless ``window`` is a positive multiple of the model's down-sampling ``unit``.

    ``source`` names where the window came from (an option or a recipe key), for the message.
    """
    if window < unit or window % unit:
        suggestion = max(unit, window // unit * unit)
        fix = f"use --window {suggestion}" if source == "--window" else \
            f"set {source} to {suggestion} or use --window {suggestion}"
        raise MotionhubError(f"a window of {window} frames ({source}) is not a multiple of the model's "
                             f"down-sampling ({unit} frames); {fix}")


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclasses.dataclass
class Timings:
    """latencies_ms: (n,) float64 milliseconds to encode each window alone.
    wall_s: seconds of the whole timed loop (warm-up excluded; input preparation included)."""

    latencies_ms: np.ndarray
    wall_s: float


@torch.inference_mode()
def time_windows(model: Tokenizer, fmt: MotionFormat, windows: StreamWindows, *, warmup: int,
                 device: torch.device, precision: str = "fp32",
                 progress: Callable[[int], None] | None = None) -> Timings:
    """Each window's encode latency and the loop's wall time; ``warmup`` untimed encodes first.

    ``model`` must already be on ``device`` and in eval mode; ``precision`` is a key of
    ``PRECISIONS`` (bf16 / fp16: autocast on ``device``).
    """
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    dtype = PRECISIONS[precision]
    with torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext():
        for k in range(warmup):
            model.encode(_window(windows, k % len(windows), fmt, device))
        latencies = np.empty(len(windows), dtype=np.float64)
        synchronize()
        wall_start = clock()
        for k in range(len(windows)):
            x = _window(windows, k, fmt, device)
            synchronize()
            start = clock()
            model.encode(x)
            synchronize()
            latencies[k] = (clock() - start) * 1e3
            if progress is not None:
                progress(k + 1)
        wall_s = clock() - wall_start
    return Timings(latencies, wall_s)


def _window(windows: StreamWindows, k: int, fmt: MotionFormat, device: torch.device) -> torch.Tensor:
    """(1, window, *F) normalised frames of window ``k``, on ``device``."""
    start = int(windows.starts[k])
    frames = torch.from_numpy(windows.stream.frames[start:start + windows.window]).float()
    return fmt.normalise(frames)[None].to(device)


def stride_budget_ms(stride: int, fps: float) -> float:
    """Milliseconds between window arrivals: a new window every ``stride`` frames at ``fps``."""
    return 1e3 * stride / fps


def latency_summary(timings: Timings, *, stride: int, fps: float) -> dict[str, Any]:
    """Distribution and throughput of per-window latencies (ms).

    latency_ms:           mean, p50, p95, max and min.
    wall_s:               seconds the timed loop took.
    windows_per_s:        windows encoded per second of wall time (windows / wall_s).
    encode_windows_per_s: 1000 / mean latency: the rate if encoding were all the loop did.
    frames_per_s:         stream frames covered per second of wall time (``stride`` new frames per window).
    real_time_factor:     frames_per_s over the data's fps; above 1 the stream is covered faster than it plays.
    """
    latencies_ms = timings.latencies_ms
    windows_per_s = len(latencies_ms) / timings.wall_s
    return {"latency_ms": {"mean": float(latencies_ms.mean()), "p50": float(np.percentile(latencies_ms, 50)),
                           "p95": float(np.percentile(latencies_ms, 95)), "max": float(latencies_ms.max()),
                           "min": float(latencies_ms.min())},
            "wall_s": float(timings.wall_s), "windows_per_s": windows_per_s,
            "encode_windows_per_s": 1e3 / float(latencies_ms.mean()),
            "frames_per_s": windows_per_s * stride, "real_time_factor": windows_per_s * stride / fps}


def slack_ms(latencies_ms: np.ndarray, budget_ms: float) -> np.ndarray:
    """(n,) budget minus latency: at least 0 for a window on time (OK), below 0 for a late one (LAG)."""
    return budget_ms - latencies_ms


def window_status(slack: float) -> str:
    return "OK" if slack >= 0 else "LAG"


def budget_summary(latencies_ms: np.ndarray, *, budget_ms: float, source: str, unit: str = "windows"
                   ) -> dict[str, Any]:
    """Whether the windows (or the streaming mode's chunks: ``unit``) kept within their budget.

    budget_ms, budget_source: the budget per window and where it came from (the stride and fps,
                      ``bench.budget_ms`` or ``--budget-ms``).
    on_time_share:    share of windows within the budget; late_windows: how many were not.
    worst_slack_ms:   the smallest budget minus latency (below 0: a late window).
    longest_late_run: most consecutive late windows.
    keeps_up:         every window on time; verdict: that in one line.
    """
    slack = slack_ms(latencies_ms, budget_ms)
    late = slack < 0
    edges = np.diff(np.concatenate([[0], late.astype(np.int8), [0]]))
    runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    summary = {"budget_ms": float(budget_ms), "budget_source": source,
               "on_time_share": float(1 - late.mean()), "late_windows": int(late.sum()),
               "worst_slack_ms": float(slack.min()), "longest_late_run": int(runs.max(initial=0)),
               "keeps_up": not late.any()}
    return {**summary, "verdict": verdict(summary, len(latencies_ms), unit)}


def verdict(summary: dict[str, Any], windows: int, unit: str = "windows") -> str:
    """One line: keeps up, or LAGS with how often, how badly and for how long."""
    budget = f"the {format_ms(summary['budget_ms'])} ms budget ({summary['budget_source']})"
    if summary["keeps_up"]:
        return f"keeps up: {format_share(summary['on_time_share'])} of {windows:,} {unit} within {budget}"
    late = summary["late_windows"]
    return (f"LAGS: {format_share(late / windows)} late, {late:,} of {windows:,} {unit} over {budget}; "
            f"worst slack {format_ms(summary['worst_slack_ms'])} ms, "
            f"{summary['longest_late_run']:,} late in a row at most")


def format_share(share: float) -> str:
    """A share in per cent with one decimal that never rounds to 0 or 100 when it is not."""
    percent = 100 * share
    if 0 < percent < 0.05:
        return "<0.1 %"
    if 99.95 <= percent < 100:
        return ">99.9 %"
    return f"{percent:.1f} %"


def format_ms(value: float) -> str:
    """Milliseconds with one decimal, or three significant digits below 1 ms."""
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.3g}"


def write_results(out_dir: Path, rows: list[dict[str, Any]], summary: dict[str, Any],
                  chunk_rows: list[dict[str, Any]] | None = None) -> tuple[Path, Path]:
    """``windows.jsonl`` (one row per timed window), ``chunks.jsonl`` (one per streamed chunk, with
    ``--streaming``) and ``summary.json`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    windows, summary_path = out_dir / WINDOWS_FILE, out_dir / SUMMARY_FILE
    windows.write_text("".join(json.dumps(row) + "\n" for row in rows))
    if chunk_rows is not None:
        (out_dir / CHUNKS_FILE).write_text("".join(json.dumps(row) + "\n" for row in chunk_rows))
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return windows, summary_path
