"""Seconds spent in each phase of training, so an expensive loss or slow data shows at once;
and the profile of single steps: forward and backward seconds of each loss and of the
encoder, quantizer and decoder."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch


class Clock:
    """Seconds on this process's clock, waiting first for the device's queued work when given
    ``sync`` (``torch.cuda.synchronize`` on a GPU, where kernels run asynchronously: without it
    an expensive kernel is charged to whatever happens to wait for it later). On a CPU work is
    done when the call returns and no wait is needed."""

    def __init__(self, sync: Callable[[], Any] | None = None):
        self.sync = sync

    @classmethod
    def for_device(cls, device: torch.device | str) -> Clock:
        cuda = torch.device(device).type == "cuda" and torch.cuda.is_available()
        return cls(torch.cuda.synchronize if cuda else None)

    def __call__(self) -> float:
        if self.sync is not None:
            self.sync()
        return time.perf_counter()


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


# ---------------------------------------------------------------------------- step profiles
PARTS = ("encoder", "quantizer", "decoder")
OTHER = "other"  # forward: the tokenizer's own glue between its parts; backward: before the first mark
WHOLE = "tokenizer"  # the whole model, when its parts are not timed apart (a compiled model)


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    """The tensors in a part's output: a tensor, a dict, a list/tuple or a dataclass of them."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            yield from _tensors(getattr(value, name))


class StepProbe:
    """The measurements of one profiled step (over all its micro-batches).

    Forward: the trainer times the whole model (``forward_pass``), hooks before and after the
    encoder, quantizer and decoder read the clock, and ``LossSet`` reports each term's seconds.

    Backward: the step runs its one ordinary backward; hooks on the tensors each part and each
    loss term produced read the clock when autograd reaches them, that is when that part's (or
    term's) backward begins. Autograd runs the nodes of one backward in the reverse of the order
    they were made in, so the terms' graphs come first, each whole, then the decoder's, the
    quantizer's and the encoder's: the time from one mark to the next belongs to the part the
    first one opened (``other``: the few nodes before the first mark, which add the terms up).
    The encoder's share also holds the wait, with several processes, for the last gradients to
    be averaged. The hooks return nothing, so the gradients are exactly those of an unprofiled
    step; on a GPU every mark waits for the device first (``Clock``), so each segment is charged
    for its own kernels.
    """

    def __init__(self, clock: Clock):
        self.clock = clock
        self.forward: dict[str, float] = {}
        self.backward: dict[str, float] = {}
        self._open: dict[str, list[float]] = {}  # part -> start times of calls in progress
        self._marks: list[tuple[float, str]] | None = None  # (time, part) during a backward
        self._handles: list[Any] = []
        self.discarded = False  # a skipped step: its figures are not kept

    # -- forward
    def attach(self, model: torch.nn.Module) -> None:
        """Hooks on the tokenizer's encoder, quantizer and decoder, until ``close``."""
        for name in PARTS:
            module = getattr(model, name, None)
            if isinstance(module, torch.nn.Module):
                self._handles.append(module.register_forward_pre_hook(self._before(name)))
                self._handles.append(module.register_forward_hook(self._after(name)))

    def _before(self, name: str):
        def hook(module, args):
            self._open.setdefault(name, []).append(self.clock())
        return hook

    def _after(self, name: str):
        def hook(module, args, output):
            seconds = self.clock() - self._open[name].pop()
            self.forward[name] = self.forward.get(name, 0.0) + seconds
            if torch.is_grad_enabled():
                for tensor in _tensors(output):
                    self.watch(name, tensor)
        return hook

    @contextlib.contextmanager
    def forward_pass(self) -> Iterator[None]:
        """Around the call of the whole model."""
        start = self.clock()
        try:
            yield
        finally:
            self.forward[WHOLE] = self.forward.get(WHOLE, 0.0) + self.clock() - start

    def model_outputs(self, outputs: dict) -> None:
        """The model's outputs, before the losses read them: without hooks on the parts, the model's
        backward begins where autograd reaches them."""
        if not self._handles:
            for tensor in _tensors({k: v for k, v in outputs.items() if isinstance(v, torch.Tensor)}):
                self.watch(WHOLE, tensor)

    def loss_forward(self, name: str, seconds: float, value: torch.Tensor) -> None:
        """A loss term took ``seconds`` to compute ``value``; its backward is watched."""
        label = f"loss: {name}"
        self.forward[label] = self.forward.get(label, 0.0) + seconds
        self.watch(label, value)

    # -- backward
    def watch(self, label: str, tensor: torch.Tensor) -> None:
        """Mark ``label``'s backward as begun when autograd reaches ``tensor``."""
        if tensor.requires_grad and tensor.grad_fn is not None:
            tensor.register_hook(lambda grad: self._mark(label))

    def _mark(self, label: str) -> None:
        if self._marks is not None:
            self._marks.append((self.clock(), label))

    @contextlib.contextmanager
    def measuring_backward(self) -> Iterator[None]:
        """Around the step's backward call: its seconds, split at the marks."""
        self._marks = [(self.clock(), OTHER)]
        try:
            yield
        finally:
            end = self.clock()
            marks, self._marks = self._marks, None
            for (start, label), (stop, _) in zip(marks, [*marks[1:], (end, "")]):
                self.backward[label] = self.backward.get(label, 0.0) + stop - start

    def discard(self) -> None:
        self.discarded = True

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def parts(self) -> dict[str, dict[str, float]]:
        """``{part: {"forward": s, "backward": s}}``; the model's forward outside its three parts
        is ``other``'s (all of it is ``tokenizer``'s when the parts were not timed)."""
        forward = dict(self.forward)
        whole = forward.pop(WHOLE, None)
        if whole is not None and any(part in forward for part in PARTS):
            forward[OTHER] = max(whole - sum(forward.get(part, 0.0) for part in PARTS), 0.0)
        elif whole is not None:
            forward[WHOLE] = whole
        names = [*forward, *(name for name in self.backward if name not in forward)]
        return {name: {"forward": forward.get(name, 0.0), "backward": self.backward.get(name, 0.0)}
                for name in names}


class StepProfiler:
    """Profiles every ``every``-th step (``train.profile_every``; 0: never): steps 1, every + 1,
    2 * every + 1, ... (step 0 pays one-off costs: allocation, kernel selection), each step
    with ``every: 1``. Sums the probes' seconds per part; ``summary`` is the report's.

    ``model`` is the plain tokenizer whose parts get hooks; None (a compiled model, whose parts
    are fused) times the model as a whole, ``tokenizer``.
    """

    def __init__(self, every: int, clock: Clock, model: torch.nn.Module | None = None):
        self.every, self.clock, self.model = every, clock, model
        self.steps = 0
        self.seconds: dict[str, dict[str, float]] = {}  # part -> {"forward": s, "backward": s}, summed

    def due(self, step: int) -> bool:
        return self.every > 0 and step % self.every == min(1, self.every - 1)

    @contextlib.contextmanager
    def step(self, step: int) -> Iterator[StepProbe | None]:
        """A probe when ``step`` is profiled (else None); its figures are added unless it was
        ``discard``-ed (a skipped step)."""
        if not self.due(step):
            yield None
            return
        probe = StepProbe(self.clock)
        if self.model is not None:
            probe.attach(self.model)
        try:
            yield probe
        finally:
            probe.close()
        if not probe.discarded:
            self.add(probe.parts())

    def add(self, parts: dict[str, dict[str, float]]) -> None:
        self.steps += 1
        for name, columns in parts.items():
            mine = self.seconds.setdefault(name, {"forward": 0.0, "backward": 0.0})
            for column, seconds in columns.items():
                mine[column] += seconds

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps, so a resumed run's profile covers the whole run."""
        return {"steps": self.steps, "seconds": {name: dict(columns) for name, columns in self.seconds.items()}}

    def load(self, state: dict[str, Any] | None) -> None:
        if state:
            self.steps = int(state.get("steps", 0))
            self.seconds = {name: dict(columns) for name, columns in state.get("seconds", {}).items()}

    def summary(self) -> dict[str, Any] | None:
        """Mean seconds per profiled step of each part and loss term, forward and backward, with
        its share of the profiled steps' forward + backward; costliest first. None before any."""
        if not self.steps:
            return None
        total = sum(c["forward"] + c["backward"] for c in self.seconds.values()) or 1.0
        ordered = sorted(self.seconds.items(), key=lambda item: -(item[1]["forward"] + item[1]["backward"]))
        parts = {name: {"forward_s": c["forward"] / self.steps, "backward_s": c["backward"] / self.steps,
                        "fraction": (c["forward"] + c["backward"]) / total} for name, c in ordered}
        return {"every": self.every, "steps": self.steps, "parts": parts,
                "forward_s": sum(p["forward_s"] for p in parts.values()),
                "backward_s": sum(p["backward_s"] for p in parts.values())}
