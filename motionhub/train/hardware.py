"""The machine a run trains on: what it is, how fast it multiplies, how much memory is in use.

``matmul_ceiling`` measures the dense matrix-product rate of one device in one dtype on the
current thread count: the practical ceiling the run report holds a run's achieved FLOP/s
against (the benchmarks hold theirs against the same routine). ``machine`` says where a run
is (CPU model and the flags that decide low-precision speed, GPUs, threads, versions);
``memory_now`` and ``memory_peak`` read the memory figure logged with each metrics row and the
peak the report holds.
"""

from __future__ import annotations

import math
import os
import platform
import resource
import socket
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from motionhub import __version__

# The dtype a precision setting multiplies in: under bf16 / fp16 autocast, matrix products take
# their inputs in that dtype.
PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# CPU flags that decide how fast matrix products run in low precision: AMX tiles, AVX-512
# BF16 / FP16 dot products; AVX-512 and AVX2 with FMA for float32.
MATMUL_FLAGS = ("amx_tile", "amx_bf16", "amx_fp16", "amx_int8", "avx512_bf16", "avx512_fp16", "avx512f", "avx2",
                "fma")
# Square sizes tried in turn, each while the time budget allows (a slow dtype stops early).
SIZES = (512, 1024, 2048, 4096, 8192)
MIN_MEASURE_S = 0.005  # products timed together where one is shorter (GPU kernels take microseconds)


# ---------------------------------------------------------------------------- the ceiling
def matmul_ceiling(device: torch.device | str = "cpu", dtype: torch.dtype | str = torch.float32, *,
                   budget_s: float = 0.5, repeats: int = 3, sizes: tuple[int, ...] = SIZES,
                   cpu_clock: bool = False) -> dict[str, Any]:
    """The best FLOP/s of square ``(n x n) @ (n x n)`` products on ``device`` in ``dtype``.

    Sizes grow through ``sizes`` while the next one (guessed from the last at n³) fits in
    ``budget_s``; each size is warmed up once, then timed ``repeats`` times (best kept). On a GPU
    the device is synchronised around every timing, and products shorter than a few
    milliseconds are timed several in a row. The run's own thread count and TF32 setting
    apply, so the ceiling is the one its training steps meet. The global RNG is left alone.

    ``cpu_clock`` (CPU only) times the products in the process's CPU seconds instead of wall
    seconds: on one thread, the time they really ran, which other jobs on a shared machine do
    not stretch; the ceiling for rates measured the same way.
    """
    device = torch.device(device)
    dtype = PRECISION_DTYPES[dtype] if isinstance(dtype, str) else dtype
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    if cpu_clock and device.type != "cpu":
        raise ValueError(f"cpu_clock times CPU work; products on {device.type} run elsewhere")
    clock = time.process_time if cpu_clock else time.perf_counter
    generator = torch.Generator(device=device).manual_seed(0)
    measured: list[dict[str, float]] = []
    started = None  # the budget's clock starts after the first warm-up (library start-up is not charged)
    with torch.no_grad(), torch.autocast(device.type, enabled=False):
        for size in sizes:
            if measured:
                last = measured[-1]
                guess = last["seconds"] * (size / last["size"]) ** 3
                if time.perf_counter() - started + guess * (repeats + 2) > budget_s:
                    break
            a, b = (torch.rand(size, size, generator=generator, device=device).to(dtype) for _ in range(2))
            out = torch.empty(size, size, device=device, dtype=dtype)

            def product(inner: int = 1) -> float:
                sync()
                start = clock()
                for _ in range(inner):
                    torch.mm(a, b, out=out)
                sync()
                return (clock() - start) / inner

            product()  # warm-up: kernels chosen, memory touched
            started = started if started is not None else time.perf_counter()
            times = [product()]
            inner = max(1, min(1000, math.ceil(MIN_MEASURE_S / max(times[0], 1e-9))))
            for _ in range(repeats):
                if len(times) > 1 and time.perf_counter() - started > budget_s:
                    break
                times.append(product(inner))
            best = min(times)
            measured.append({"size": size, "seconds": best, "flop_per_s": 2 * size**3 / best})
            del a, b, out
    top = max(measured, key=lambda m: m["flop_per_s"])
    record = {"flop_per_s": top["flop_per_s"], "device": device.type, "dtype": str(dtype).removeprefix("torch."),
              "threads": torch.get_num_threads(), "size": top["size"], "repeats": repeats,
              "sizes": {str(m["size"]): m["flop_per_s"] for m in measured}, "clock": "cpu" if cpu_clock else "wall",
              "seconds": time.perf_counter() - started}
    if device.type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(device)
        if dtype == torch.float32:
            record["tf32"] = bool(torch.backends.cuda.matmul.allow_tf32)
    else:
        record["cpu"] = cpu_model()
        record["cpu_flags"] = cpu_flags()
    return record


def describe_ceiling(ceiling: dict[str, Any]) -> str:
    """``"73.0 GFLOP/s: float32, cpu (AMD EPYC), 2 threads, 1024², best of 3; flags avx512_bf16 avx2"``."""
    where = f"{ceiling['device']} ({ceiling['gpu'] if 'gpu' in ceiling else ceiling.get('cpu', '?')})"
    text = (f"{si(ceiling['flop_per_s'])}FLOP/s: {ceiling['dtype']}, {where}, {ceiling['threads']} threads, "
            f"{ceiling['size']}² products, best of {ceiling['repeats']}")
    if "tf32" in ceiling:
        text += f", TF32 {'on' if ceiling['tf32'] else 'off'}"
    if "cpu_flags" in ceiling:
        text += f"; CPU flags {' '.join(ceiling['cpu_flags']) or 'none of ' + '/'.join(MATMUL_FLAGS[:5])}"
    return text


# ---------------------------------------------------------------------------- the machine
def _cpuinfo() -> dict[str, str]:
    """The first processor's entries in /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    entries: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if entries:
                break
            continue
        key, _, value = line.partition(":")
        entries.setdefault(key.strip(), value.strip())
    return entries


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo, else what the platform says)."""
    info = _cpuinfo()
    return info.get("model name") or info.get("Processor") or platform.processor() or platform.machine() or "unknown"


def cpu_flags() -> list[str]:
    """Which of ``MATMUL_FLAGS`` this CPU has (empty where the flags cannot be read)."""
    flags = set(_cpuinfo().get("flags", "").split())
    return [flag for flag in MATMUL_FLAGS if flag in flags]


def machine(device: torch.device | str, processes: int = 1) -> dict[str, Any]:
    """Where a run is: processor or GPUs, how many, threads, and the versions that decide speed."""
    device = torch.device(device)
    out: dict[str, Any] = {"device": device.type, "cpu": cpu_model(), "cpu_flags": cpu_flags(),
                           "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                           else os.cpu_count(),
                           "threads": torch.get_num_threads(), "processes": processes}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
        out["gpus"] = torch.cuda.device_count()
    out.update({"python": platform.python_version(), "torch": torch.__version__, "motionhub": __version__,
                "libraries": _versions("accelerate", "numpy", "vector_quantize_pytorch"),
                "platform": platform.platform(), "hostname": socket.gethostname()})
    return out


def _versions(*names: str) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            pass
    return out


# ---------------------------------------------------------------------------- memory
def memory_kind(device: torch.device | str) -> dict[str, str]:
    """What ``memory_now`` (``now``) and ``memory_peak`` (``peak``) measure on ``device``."""
    if torch.device(device).type == "cuda":
        return {"now": "CUDA memory allocated by tensors (torch.cuda.memory_allocated)",
                "peak": "CUDA peak allocated by tensors (torch.cuda.max_memory_allocated)"}
    return {"now": "resident memory of the whole process (RSS)",
            "peak": "peak resident memory of the whole process (getrusage ru_maxrss: Python, libraries and data "
                    "included)"}


# The keys of the memory figures each metrics row carries (``memory_row``): no loss term, and like
# samples_per_s a measurement of this process that differs between two runs of one recipe.
MEMORY_KEYS = ("memory_mib", "memory_peak_mib")
# Every key of a metrics row that measures the process rather than the training: two runs of one
# recipe log the same losses and learning rates, and other values of these.
MEASURED_KEYS = ("samples_per_s", *MEMORY_KEYS)


def memory_row(device: torch.device | str) -> dict[str, float]:
    """The memory figures logged with each metrics row: in use now and the peak so far (MiB)."""
    return dict(zip(MEMORY_KEYS, (memory_now(device), memory_peak(device))))


def memory_now(device: torch.device | str) -> float:
    """MiB in use now: tensors allocated on a GPU, the process's resident memory on a CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):  # no /proc: the peak is the best figure at hand
        return peak_rss_mib()


def memory_peak(device: torch.device | str) -> float:
    """MiB at the peak so far: GPU tensors (max allocated), or the process's peak resident memory
    (the kernel updates that peak now and then: it is never reported below the memory in use)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return max(peak_rss_mib(), memory_now(device))


def peak_rss_mib() -> float:
    """The process's peak resident memory (getrusage reports KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def si(value: float) -> str:
    """``1.23 G`` (with the space, so ``si(x) + "FLOP/s"`` reads well); no prefix below 1000."""
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f} "
