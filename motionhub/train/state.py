"""The training loop's state, typed: what a checkpoint holds and what the loop carries from step to step.

A checkpoint on disk is a plain dict (tensors and plain data, read with weights-only loading);
the trainer works with ``CheckpointState`` and ``LoopState``, and ``to_dict`` / ``from_dict``
turn one into the other. Reading accepts every checkpoint written so far: keys a checkpoint
lacks take their defaults, and keys this version does not know (an imported run's
``imported`` record, say) are kept and written again unchanged.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import torch

# The keys of checkpoint["state"] that LoopState reads; any other key is kept in ``extra``.
LOOP_KEYS = ("step", "best", "nonfinite_skipped", "seconds", "loss_seconds", "loss_sums", "logged_steps",
             "train_seconds", "recent_step_times", "final_losses", "best_step", "best_collapse",
             "best_missing_warned", "log_windows", "profile")
# The top-level keys of a checkpoint that CheckpointState reads.
CHECKPOINT_KEYS = ("model", "optimizer", "scaler", "state", "rng", "recipe", "versions", "stats")


@dataclasses.dataclass(frozen=True)
class DerivedSettings:
    """Numbers that follow from the recipe and the model built from it, worked out once at set-up.

    The recipe stays as it was loaded; whatever the loop needs beyond it travels here.
    """

    total_steps: int  # warm-up + iters: optimizer steps in the whole run
    samples_per_step: int  # windows per optimizer step: batch x micro-batches x processes
    unit: int  # the model's temporal down-sampling: evaluation crops each clip to a multiple of it
    best_higher_is_better: bool  # the direction of eval.best, from the metric that reports it
    # Steps after warm-up: train.iters, or what train.epochs leaves after warm-up (None for a run
    # given in epochs that is no longer than its warm-up, which set-up refuses).
    iters: int | None = None
    # An epoch is the sampler's: ``batches_per_epoch`` batches on each process (as many windows as
    # there are usable train clips, less the remainder of a last, partial batch), i.e.
    # batches_per_epoch / grad_accum optimizer steps.
    batches_per_epoch: int = 1
    grad_accum: int = 1

    @property
    def steps_per_epoch(self) -> float:
        return self.batches_per_epoch / self.grad_accum

    def epochs_at(self, step: int) -> float:
        """Epochs done after ``step`` optimizer steps (fractional)."""
        return step * self.grad_accum / self.batches_per_epoch


def steps_for_epochs(epochs: float, batches_per_epoch: int, grad_accum: int) -> int:
    """Optimizer steps that complete ``epochs`` epochs of ``batches_per_epoch`` sampler batches,
    ``grad_accum`` of them per step: ceil(epochs x batches_per_epoch / grad_accum), at least 1.

    Worked out on the decimal the recipe gives (0.1 epochs is 1/10, not the float just above it),
    so a whole number of steps is never rounded up to the next.
    """
    exact = Fraction(repr(float(epochs))) * batches_per_epoch / grad_accum
    return max(1, math.ceil(exact))


@dataclasses.dataclass
class LogWindow:
    """Running sums over the steps since the last metrics row, on this process.

    The logged loss is the mean over a whole log interval; a checkpoint taken inside one keeps
    these sums, so a resumed run logs the same mean as a run never interrupted.
    """

    sums: dict[str, Any] = dataclasses.field(default_factory=dict)  # name -> sum (a 0-d tensor or a float)
    # name -> steps that gave it: a loss with ``every: N`` or a schedule at 0 skips steps, and its
    # mean is over the steps it ran, not over the whole interval
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    steps: int = 0  # steps added (skipped non-finite steps are not)
    seconds: float = 0.0  # wall-clock seconds of the interval spent before ``start`` (carried over a resume)
    # perf_counter() when its clock (re)started: a reading of this process's clock, not part of the state
    start: float = dataclasses.field(default_factory=time.perf_counter, compare=False, repr=False)

    def add(self, values: Mapping[str, torch.Tensor]) -> None:
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0) + value
            self.counts[name] = self.counts.get(name, 0) + 1
        self.steps += 1

    def count(self, name: str) -> int:
        """The steps of this interval that gave ``name`` (its mean divides by them)."""
        return self.counts.get(name, self.steps) or 1

    def elapsed(self) -> float:
        return self.seconds + time.perf_counter() - self.start

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers: a float32 sum becomes a Python float exactly, and adding the next step's
        float32 value to that float gives the same bits as adding it to the tensor."""
        return {"steps": self.steps, "seconds": self.elapsed(), "counts": dict(self.counts),
                "sums": {name: float(value) for name, value in self.sums.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogWindow:
        steps = int(data.get("steps", 0))
        sums = dict(data.get("sums", {}))
        # a window saved before per-figure counts were kept: every figure came from every step
        counts = {name: int(count) for name, count in data.get("counts", {name: steps for name in sums}).items()}
        return cls(sums=sums, counts=counts, steps=steps, seconds=float(data.get("seconds", 0.0)))


@dataclasses.dataclass
class LoopState:
    """What the loop carries from step to step and a checkpoint keeps as ``checkpoint["state"]``.

    Equal on every process except ``window`` (each process sums its own batches) and the wall-clock
    figures (the main process's are saved).
    """

    step: int = 0  # optimizer steps done; batches and learning rate follow from it
    best: float | None = None  # the best value of eval.best so far
    best_step: int | None = None  # the step best.pt was written at
    best_collapse: str | None = None  # why the model in best.pt had collapsed (one code...), if it had
    best_missing_warned: bool = False  # eval.best names a figure evaluation does not give (warned once)
    nonfinite_skipped: int = 0  # steps skipped for a non-finite loss (train.on_nonfinite=skip)
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)  # per phase, as of the last checkpoint
    loss_seconds: dict[str, float] = dataclasses.field(default_factory=dict)  # per loss term, likewise
    loss_sums: dict[str, float] = dataclasses.field(default_factory=dict)  # sum of every logged row's values
    logged_steps: int = 0  # metrics rows written: loss_sums / logged_steps is the report's mean
    train_seconds: float = 0.0  # wall-clock seconds inside training steps
    recent_step_times: list[float] = dataclasses.field(default_factory=list)  # for the report's median
    final_losses: dict[str, float] | None = None  # the last metrics row's losses
    profile: dict[str, Any] | None = None  # profiled steps' seconds per part (``StepProfiler.state``)
    window: LogWindow = dataclasses.field(default_factory=LogWindow)  # this process's open log interval
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # keys of another version, kept as read

    def to_dict(self, log_windows: list[dict] | None = None) -> dict[str, Any]:
        """``checkpoint["state"]``; ``log_windows``: every process's ``LogWindow.to_dict()``, in rank order."""
        out: dict[str, Any] = {"step": self.step, "best": self.best, "nonfinite_skipped": self.nonfinite_skipped,
                               "seconds": self.seconds, "loss_seconds": self.loss_seconds,
                               "loss_sums": self.loss_sums, "logged_steps": self.logged_steps,
                               "train_seconds": self.train_seconds, "recent_step_times": self.recent_step_times}
        # Written only once they hold something, as they always were.
        if self.final_losses is not None:
            out["final_losses"] = self.final_losses
        if self.best_step is not None:
            out["best_step"], out["best_collapse"] = self.best_step, self.best_collapse
        if self.best_missing_warned:
            out["best_missing_warned"] = True
        if self.profile and self.profile.get("steps"):
            out["profile"] = self.profile
        if log_windows is not None:
            out["log_windows"] = log_windows
        return {**out, **{k: v for k, v in self.extra.items() if k not in out}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], process_index: int = 0, num_processes: int = 1) -> LoopState:
        """The state a checkpoint holds. A checkpoint without open log intervals (written before they
        were kept, or imported) starts an empty one; so does a resume on another number of processes,
        whose batches differ anyway."""
        windows = data.get("log_windows")
        window = (LogWindow.from_dict(windows[process_index])
                  if isinstance(windows, list) and len(windows) == num_processes else LogWindow())
        return cls(step=data.get("step", 0), best=data.get("best"), best_step=data.get("best_step"),
                   best_collapse=data.get("best_collapse"),
                   best_missing_warned=bool(data.get("best_missing_warned", False)),
                   nonfinite_skipped=data.get("nonfinite_skipped", 0),
                   seconds=dict(data.get("seconds", {})), loss_seconds=dict(data.get("loss_seconds", {})),
                   loss_sums=dict(data.get("loss_sums", {})), logged_steps=data.get("logged_steps", 0),
                   train_seconds=data.get("train_seconds", 0.0),
                   recent_step_times=list(data.get("recent_step_times", [])),
                   final_losses=data.get("final_losses"), profile=data.get("profile"), window=window,
                   extra={k: v for k, v in data.items() if k not in LOOP_KEYS})


@dataclasses.dataclass
class CheckpointState:
    """Everything needed to continue a run exactly, as held in ``checkpoints/*.pt``.

    There is no scheduler state (the learning rate follows from the step) and no sampler
    position (batches follow from seed, rank and step); codebook state (EMA sums, counts, init
    flags) is part of the model's state dict.
    """

    model: dict[str, torch.Tensor]  # state dict of the unwrapped model (plain keys)
    optimizer: dict[str, Any]
    loop: LoopState
    rng: list[dict[str, Any]]  # python / numpy / torch (/ cuda) RNG states, one per process in rank order
    recipe: dict[str, Any]  # the recipe tree the run was trained with
    versions: dict[str, str]  # motionhub's and each plugin's version
    stats: dict[str, Any]  # the normalisation statistics: {"mean": array, "std": array}
    scaler: dict[str, Any] | None = None  # the fp16 gradient scaler's state, when there is one
    log_windows: list[dict[str, Any]] | None = None  # every process's open log interval, in rank order
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # top-level keys of another version

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint as written: the same keys, in the same order, as always."""
        out = {"model": self.model, "optimizer": self.optimizer, "scaler": self.scaler,
               "state": self.loop.to_dict(self.log_windows), "rng": self.rng, "recipe": self.recipe,
               "versions": self.versions, "stats": self.stats}
        return {**out, **{k: v for k, v in self.extra.items() if k not in out}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], process_index: int = 0, num_processes: int = 1) -> CheckpointState:
        """A checkpoint as read (``load_checkpoint``); ``process_index`` picks this process's log interval."""
        state = data.get("state") or {}
        windows = state.get("log_windows")
        return cls(model=data["model"], optimizer=data.get("optimizer") or {}, scaler=data.get("scaler"),
                   loop=LoopState.from_dict(state, process_index, num_processes), rng=list(data.get("rng") or []),
                   recipe=data.get("recipe") or {}, versions=data.get("versions") or {},
                   stats=data.get("stats") or {}, log_windows=list(windows) if isinstance(windows, list) else None,
                   extra={k: v for k, v in data.items() if k not in CHECKPOINT_KEYS})

    def rng_for(self, process_index: int) -> dict[str, Any]:
        """This process's RNG state; a resume on more processes than were saved reuses the last one."""
        return self.rng[min(process_index, len(self.rng) - 1)]
