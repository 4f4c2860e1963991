"""Streaming encode latency (``motionhub bench --streaming``): the stream pushed chunk by chunk
through a ``StreamingEncoder``, beside the sliding-window mode that re-encodes a whole window
for every chunk.

The stream is the one the sliding-window mode reads (``StreamWindows``). Each chunk is the
``stride`` frames that arrive between two windows, so both modes have the same budget per step
(``stride / fps`` unless given). Joined streams are pushed back to back as one stream (restarted
only where the encoder's context is full, see ``StreamingEncoder.max_frames``); per-clip
streams restart at each clip. A chunk's clock covers normalising it, the encoder's streaming
step and the quantizer, on frames already on the device, with ``torch.cuda.synchronize()``
around it on a GPU; ``warmup`` untimed chunks run on a stream of their own first.

First token: a stream's first id needs ``downsample`` frames, so it comes with chunk
ceil(downsample / stride); its latency is the wait for those frames plus that chunk's compute.
The sliding window's first id comes after a whole window and its encode.

Work saved: FLOPs of one chunk's push (averaged over up to ``FLOP_CHUNKS`` chunks, by torch's
FLOP counter: matrix products and convolutions, the attention score products of neither mode
included) against one window's encode, and the two modes' mean latencies in the same run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from motionhub.errors import DataError
from motionhub.use.bench import (PRECISIONS, StreamWindows, Timings, budget_summary, clock, latency_summary,
                                 slack_ms, window_status)
from motionhub.use.streaming import StreamingEncoder

FLOP_CHUNKS = 64  # chunks the FLOP counter averages over


@dataclasses.dataclass
class Chunks:
    """The stream cut into chunks of ``stride`` frames.

    starts: (n,) first stream frame of each chunk.
    restart: (n,) bool, True where the streaming encoder starts a new stream (a clip's first chunk
             per clip, or where the encoder's context is full).
    """

    windows: StreamWindows
    starts: np.ndarray
    restart: np.ndarray

    @property
    def stride(self) -> int:
        return self.windows.stride

    def __len__(self) -> int:
        return len(self.starts)

    def rows(self) -> list[dict[str, Any]]:
        """Per chunk: index, clip of its first frame, first frame within that clip and in the stream, restart."""
        bank = self.windows.stream
        clip = np.searchsorted(bank.offsets, self.starts, side="right") - 1
        return [{"chunk": k, "clip_id": bank.ids[c], "start_frame": int(s - bank.offsets[c]), "stream_frame": int(s),
                 "restart": bool(r)} for k, (c, s, r) in enumerate(zip(clip, self.starts, self.restart))]


def stream_chunks(windows: StreamWindows, max_frames: int | None) -> Chunks:
    """Chunks of ``windows.stride`` frames over the frames the windows cover (joined), or over each clip (per
    clip; a clip's last partial chunk left out); a restart wherever a stream would pass ``max_frames``."""
    stride = windows.stride
    if max_frames is not None and stride > max_frames:
        raise DataError(f"a chunk of {stride} frames (--stride) is longer than the {max_frames} frames the encoder "
                        f"holds (encoder.max_len); lower --stride")
    if windows.per_clip:
        offsets = windows.stream.offsets
        starts = [np.arange(a, b - stride + 1, stride) for a, b in zip(offsets[:-1], offsets[1:])]
        first = np.concatenate([np.arange(len(s)) == 0 for s in starts])
        starts = np.concatenate(starts).astype(np.int64)
    else:
        covered = int(windows.starts[-1]) + windows.window
        starts = np.arange(0, covered - stride + 1, stride, dtype=np.int64)
        first = np.arange(len(starts)) == 0
    if not len(starts):
        where = "a clip" if windows.per_clip else "the stream"
        raise DataError(f"{where} has no whole chunk of {stride} frames (--stride) to stream; lower --stride")
    restart = first.copy()
    if max_frames is not None:
        per_stream = max_frames // stride  # chunks one stream holds
        run = 0
        for k in range(len(starts)):
            run = 1 if first[k] or run == per_stream else run + 1
            restart[k] = run == 1
    return Chunks(windows, starts, restart)


@dataclasses.dataclass
class ChunkTimings:
    """latencies_ms: (n,) milliseconds per chunk push; tokens: (n,) ids each push returned.
    wall_s: seconds of the timed loop (warm-up excluded)."""

    latencies_ms: np.ndarray
    tokens: np.ndarray
    wall_s: float


def time_chunks(stream: StreamingEncoder, chunks: Chunks, *, warmup: int, precision: str = "fp32",
                progress: Callable[[int], None] | None = None) -> ChunkTimings:
    """Each chunk's push latency through ``stream`` (reset at every restart); ``warmup`` untimed pushes first."""
    device = stream.device
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    frames = torch.from_numpy(chunks.windows.stream.frames)
    dtype = PRECISIONS[precision]
    with torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext():
        stream.reset()
        for k in range(warmup):
            if stream.max_frames is not None and stream.frames_seen + chunks.stride > stream.max_frames:
                stream.reset()
            stream.push(_chunk(frames, chunks, k % len(chunks), device))
        latencies = np.empty(len(chunks), dtype=np.float64)
        tokens = np.empty(len(chunks), dtype=np.int64)
        synchronize()
        wall_start = clock()
        for k in range(len(chunks)):
            x = _chunk(frames, chunks, k, device)
            if chunks.restart[k]:
                stream.reset()
            synchronize()
            start = clock()
            ids = stream.push(x)
            synchronize()
            latencies[k] = (clock() - start) * 1e3
            tokens[k] = ids.shape[0]
            if progress is not None:
                progress(k + 1)
        wall_s = clock() - wall_start
    return ChunkTimings(latencies, tokens, wall_s)


def _chunk(frames: torch.Tensor, chunks: Chunks, k: int, device: torch.device) -> torch.Tensor:
    start = int(chunks.starts[k])
    return frames[start:start + chunks.stride].to(device, torch.float32)


def first_tokens(timings: ChunkTimings, chunks: Chunks, *, fps: float) -> dict[str, Any]:
    """First id of each stream: frames waited for it, that wait in ms, the compute of the chunk that brings
    it, and their sum (means over the ``streams`` started)."""
    starts = np.flatnonzero(chunks.restart)
    waits, computes = [], []
    for a, b in zip(starts, [*starts[1:], len(chunks)]):
        emitted = np.flatnonzero(timings.tokens[a:b])
        if len(emitted):
            waits.append((emitted[0] + 1) * chunks.stride)
            computes.append(timings.latencies_ms[a + emitted[0]])
    if not waits:
        return {"streams": len(starts), "frames": None, "wait_ms": None, "compute_ms": None, "total_ms": None}
    frames, compute = float(np.mean(waits)), float(np.mean(computes))
    return {"streams": len(starts), "frames": frames, "wait_ms": 1e3 * frames / fps, "compute_ms": compute,
            "total_ms": 1e3 * frames / fps + compute}


def window_first_token(window: int, latency_ms: float, *, fps: float) -> dict[str, Any]:
    """The sliding window's first id: after ``window`` frames and one window's encode (its mean latency)."""
    return {"frames": float(window), "wait_ms": 1e3 * window / fps, "compute_ms": latency_ms,
            "total_ms": 1e3 * window / fps + latency_ms}


def chunk_flops(stream: StreamingEncoder, chunks: Chunks) -> float:
    """Mean FLOPs of one push over the first ``FLOP_CHUNKS`` chunks (a fresh stream, restarts as timed)."""
    frames = torch.from_numpy(chunks.windows.stream.frames)
    count = min(len(chunks), FLOP_CHUNKS)
    stream.reset()
    with FlopCounterMode(display=False) as counter:
        for k in range(count):
            if chunks.restart[k]:
                stream.reset()
            stream.push(_chunk(frames, chunks, k, stream.device))
    stream.reset()
    return counter.get_total_flops() / count


def window_flops(stream: StreamingEncoder, window: int) -> int:
    """FLOPs of encoding one window of ``window`` frames offline (encoder and quantizer)."""
    x = torch.zeros(1, window, *stream.format.feature_shape, device=stream.device)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        stream.model.encode(x)
    return counter.get_total_flops()


def work_saved(*, window_flops: float, chunk_flops: float, window_ms: float, chunk_ms: float) -> dict[str, Any]:
    """What the state cache saves: FLOPs and mean latency per step, sliding window over streaming."""
    return {"window_flops": float(window_flops), "chunk_flops": float(chunk_flops),
            "flops_ratio": window_flops / chunk_flops if chunk_flops else math.inf,
            "window_mean_ms": window_ms, "chunk_mean_ms": chunk_ms,
            "time_ratio": window_ms / chunk_ms if chunk_ms else math.inf}


def streaming_report(stream: StreamingEncoder, chunks: Chunks, timings: ChunkTimings, window_timings: Timings, *,
                     window: int, budget_ms: float, budget_source: str, fps: float
                     ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-chunk rows (``chunks.jsonl``) and the summary's ``streaming`` section, beside the sliding window's
    ``window_timings`` over the same stream."""
    latencies = timings.latencies_ms
    slack = slack_ms(latencies, budget_ms)
    rows = [{**row, "tokens": int(tokens), "latency_ms": float(ms), "slack_ms": float(s), "status": window_status(s)}
            for row, tokens, ms, s in zip(chunks.rows(), timings.tokens, latencies, slack)]
    window_mean = float(window_timings.latencies_ms.mean())
    per_chunk = {**latency_summary(Timings(latencies, timings.wall_s), stride=chunks.stride, fps=fps),
                 **budget_summary(latencies, budget_ms=budget_ms, source=budget_source, unit="chunks")}
    summary = {
        "encoder": type(stream.model.encoder).__name__, "chunk": chunks.stride, "chunks": len(chunks),
        "streams": int(chunks.restart.sum()), "max_frames": stream.max_frames, "tokens": int(timings.tokens.sum()),
        **{key.replace("windows", "chunks"): value for key, value in per_chunk.items()},
        "first_token": first_tokens(timings, chunks, fps=fps),
        "window_first_token": window_first_token(window, window_mean, fps=fps),
        "work_saved": work_saved(window_flops=window_flops(stream, window), chunk_flops=chunk_flops(stream, chunks),
                                 window_ms=window_mean, chunk_ms=float(latencies.mean())),
    }
    return rows, summary
