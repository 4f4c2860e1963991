"""Online encode latency: the time a streaming user waits for the tokens of each window (``motionhub bench``).

The clips of a split are played back to back as one stream. A window of ``window`` frames
slides over it with ``stride`` frames between starts; each window is encoded alone
(batch size 1) under ``torch.inference_mode``, in float32 or under autocast to bf16 / fp16
(mixed precision, as a deployed model often runs). The clock covers the encoder and the
quantizer only: the window's frames are normalised and on the device before it starts, and
on a GPU ``torch.cuda.synchronize()`` runs before and after so the window is charged for
its own kernels. The first ``warmup`` encodes are not timed.
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
SUMMARY_FILE = "summary.json"


@dataclasses.dataclass
class StreamWindows:
    """Windows over clips played back to back.

    stream: the clips concatenated (``ClipBank``: frames (N_frames, *F), offsets, ids).
    starts: (n,) int64 first stream frame of each window.
    window, stride: frames per window and between window starts.
    """

    stream: ClipBank
    starts: np.ndarray
    window: int
    stride: int

    def __len__(self) -> int:
        return len(self.starts)

    def rows(self) -> list[dict[str, Any]]:
        """Per window: index, id of the clip its first frame is in, first frame within that clip and in the stream."""
        clip = np.searchsorted(self.stream.offsets, self.starts, side="right") - 1
        ids = self.stream.ids
        return [{"window": k, "clip_id": ids[c], "start_frame": int(s - self.stream.offsets[c]),
                 "stream_frame": int(s)} for k, (c, s) in enumerate(zip(clip, self.starts))]


def stream_windows(clips: Iterable[Clip], *, window: int, stride: int, limit: int | None) -> StreamWindows:
    """At most ``limit`` (None: all) windows over ``clips`` back to back; only the clips they need are read."""
    needed = None if limit is None else (limit - 1) * stride + window
    taken, frames = [], 0
    for clip in clips:
        taken.append(clip)
        frames += len(clip.motion)
        if needed is not None and frames >= needed:
            break
    if frames < window:
        raise DataError(f"the split has {frames} frames in all, fewer than one window of {window}; "
                        f"lower --window")
    starts = np.arange(0, frames - window + 1, stride, dtype=np.int64)[:limit]
    return StreamWindows(ClipBank.from_clips(taken), starts, window, stride)


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


@torch.inference_mode()
def time_windows(model: Tokenizer, fmt: MotionFormat, windows: StreamWindows, *, warmup: int,
                 device: torch.device, precision: str = "fp32",
                 progress: Callable[[int], None] | None = None) -> np.ndarray:
    """(n,) float64 milliseconds to encode each window alone; ``warmup`` untimed encodes first.

    ``model`` must already be on ``device`` and in eval mode; ``precision`` is a key of
    ``PRECISIONS`` (bf16 / fp16: autocast on ``device``).
    """
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    dtype = PRECISIONS[precision]
    with torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext():
        for k in range(warmup):
            model.encode(_window(windows, k % len(windows), fmt, device))
        latencies = np.empty(len(windows), dtype=np.float64)
        for k in range(len(windows)):
            x = _window(windows, k, fmt, device)
            synchronize()
            start = time.perf_counter()
            model.encode(x)
            synchronize()
            latencies[k] = (time.perf_counter() - start) * 1e3
            if progress is not None:
                progress(k + 1)
    return latencies


def _window(windows: StreamWindows, k: int, fmt: MotionFormat, device: torch.device) -> torch.Tensor:
    """(1, window, *F) normalised frames of window ``k``, on ``device``."""
    start = int(windows.starts[k])
    frames = torch.from_numpy(windows.stream.frames[start:start + windows.window]).float()
    return fmt.normalise(frames)[None].to(device)


def latency_summary(latencies_ms: np.ndarray, *, stride: int, fps: float) -> dict[str, Any]:
    """Distribution and throughput of per-window latencies (ms).

    latency_ms:       mean, p50, p95, max and min.
    windows_per_s:    windows encoded back to back per second (1000 / mean latency).
    frames_per_s:     stream frames covered per second (``stride`` new frames per window).
    real_time_factor: frames_per_s over the data's fps; above 1 the model keeps up with the stream.
    """
    windows_per_s = 1e3 / float(latencies_ms.mean())
    return {"latency_ms": {"mean": float(latencies_ms.mean()), "p50": float(np.percentile(latencies_ms, 50)),
                           "p95": float(np.percentile(latencies_ms, 95)), "max": float(latencies_ms.max()),
                           "min": float(latencies_ms.min())},
            "windows_per_s": windows_per_s, "frames_per_s": windows_per_s * stride,
            "real_time_factor": windows_per_s * stride / fps}


def write_results(out_dir: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> tuple[Path, Path]:
    """``windows.jsonl`` (one row per timed window) and ``summary.json`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    windows, summary_path = out_dir / WINDOWS_FILE, out_dir / SUMMARY_FILE
    windows.write_text("".join(json.dumps(row) + "\n" for row in rows))
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return windows, summary_path
