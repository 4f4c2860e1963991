"""Seconds spent in each phase of training, so an expensive loss or slow data shows at once."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import torch


class PhaseTimer:
    """Accumulates wall-clock seconds per named phase.

    On a GPU, work is asynchronous: ``synchronize=True`` waits for the device at phase
    boundaries so each phase is charged for its own kernels (a small cost per step).
    """

    def __init__(self, synchronize: bool = False, seconds: dict[str, float] | None = None):
        self.synchronize = synchronize and torch.cuda.is_available()
        self.seconds: dict[str, float] = dict(seconds or {})

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if self.synchronize:
            torch.cuda.synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.synchronize:
                torch.cuda.synchronize()
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def breakdown(self) -> dict[str, dict[str, float]]:
        """``{phase: {"seconds": s, "fraction": s / total}}``, largest first."""
        total = sum(self.seconds.values()) or 1.0
        ordered = sorted(self.seconds.items(), key=lambda item: -item[1])
        return {name: {"seconds": s, "fraction": s / total} for name, s in ordered}
