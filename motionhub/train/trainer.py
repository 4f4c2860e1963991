"""The training loop: from recipe to run directory in named phases.

``train`` runs them in order: ``start_accelerator``, ``find_resume_point`` (when resuming),
``set_up``, ``restore`` (when resuming), ``announce``, ``run_steps`` (``train_step``,
``record_step``, ``log_interval``, ``evaluate``, ``save``) and ``finish``. What set-up builds
is a ``Session``; what the loop carries from step to step, and a checkpoint keeps, is a
``LoopState`` (``motionhub.train.state``). The recipe is never written to: numbers derived
from it and the model travel in ``DerivedSettings``.

Accelerate owns devices, mixed precision and data parallelism. The learning rate is set by
hand every optimizer step (linear warm-up, then step decay or cosine) so the schedule is
the same whatever the number of processes. Batches depend only on (seed, rank, step), so
a resumed run draws exactly the batches an uninterrupted one would have.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib.util
import logging
import math
import random
import statistics
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import InitProcessGroupKwargs, broadcast_object_list, gather_object
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from motionhub import __version__
from motionhub.data.batches import TrainingData, data_record, prepare_data
from motionhub.data.dataset import Dataset
from motionhub.errors import DataError, MotionhubError, RecipeError, did_you_mean
from motionhub.model.build import (build_dataset, build_losses, build_metrics, build_tokenizer, check_shapes,
                                   instantiate)
from motionhub.model.codebook import usage_from_histogram
from motionhub.model.losses import LossSet
from motionhub.model.metrics import Metric
from motionhub.model.protocols import Protocol, ProtocolRun
from motionhub.model.precision import describe_precision
from motionhub.model.tokenizer import Tokenizer
from motionhub.plugins.manager import versions
from motionhub.recipes import Recipe, TrainConfig
from motionhub.recipes.validate import milestones_problem
from motionhub.train.checkpoint import check_model_fits, remove_debris, resume_state, save_checkpoint
from motionhub.train.evaluation import code_histogram_over, evaluate_split
from motionhub.train.hardware import matmul_ceiling, memory_row
from motionhub.train.report import (count_flops, environment_record, flops_record, memory_record, parameter_counts,
                                    print_report, speed_record, write_report)
from motionhub.train.rundir import RunDir
from motionhub.train.state import CheckpointState, DerivedSettings, LogWindow, LoopState, steps_for_epochs
from motionhub.train.timing import Clock, PhaseTimer, StepProbe, StepProfiler
from motionhub.train.figures import draw_report_figures

logger = logging.getLogger("motionhub.train")


RECENT_STEPS = 2000  # step times kept for the median in the report
# How long a process waits in a collective. The others wait for the main process while it
# packs a large data set on first use (motionhub pack does it beforehand); NCCL's default,
# 10 minutes, would end the job mid-pack.
COLLECTIVE_TIMEOUT = timedelta(hours=2)


class TrainingError(MotionhubError):
    """Training cannot go on (a non-finite loss, ...); the last good checkpoint is intact."""


def learning_rate(step: int, cfg: TrainConfig, iters: int | None = None) -> float:
    """lr at optimizer step ``step`` (0-based): warm-up as T2M-GPT, then decay at milestones.

    Milestones count steps after warm-up, as the references' MultiStepLR does; with
    ``schedule: cosine`` the lr instead follows a half cosine to 0 over ``iters``, the steps
    after warm-up (default ``train.iters``; a run given in epochs passes the number they make).
    """
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / (cfg.warmup_iters + 1)
    after = step - cfg.warmup_iters
    if cfg.schedule == "cosine":
        length = iters if iters is not None else cfg.iters
        if length is None:
            raise ValueError("a run given in train.epochs has its steps after warm-up worked out from the data: "
                             "pass them as iters")
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(after / max(length, 1), 1.0)))
    return cfg.lr * cfg.gamma ** sum(after >= m for m in cfg.milestones)


TRACKER_MODULES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}


def check_trackers(trackers: list[str]) -> None:
    """Fail before training starts when a tracker the recipe asks for is not installed."""
    for name in trackers:
        if not any(importlib.util.find_spec(module) for module in TRACKER_MODULES[name]):
            raise MotionhubError(f"train.trackers asks for {name}, which is not installed here: "
                                 f"pip install {name}, or remove it from train.trackers")


# Devices with a fused AdamW kernel (torch.optim.AdamW(fused=True)).
FUSED_ADAMW_DEVICES = ("cpu", "cuda")


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, step: int = 0,
                   iters: int | None = None) -> torch.optim.Optimizer:
    """AdamW with the recipe's betas and weight decay, at the learning rate of ``step``. The fused
    kernel (one pass over each tensor) where torch has one for the parameters' device: on a CPU it
    takes a fifth of the time of the multi-tensor one, which is a tenth of a bf16 step."""
    fused = all(p.device.type in FUSED_ADAMW_DEVICES for p in model.parameters())
    return torch.optim.AdamW(model.parameters(), lr=learning_rate(step, cfg, iters), betas=tuple(cfg.betas),
                             weight_decay=cfg.weight_decay, fused=fused or None)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        # this process's GPU only: a resume may see fewer GPUs than were visible here
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is None or not torch.cuda.is_available():
        return
    if isinstance(cuda, list):  # older checkpoints: one state per visible GPU
        index = torch.cuda.current_device()
        if index >= len(cuda):
            return
        cuda = cuda[index]
    torch.cuda.set_rng_state(cuda)


def train(recipe: Recipe, console: Console | None = None, resume: bool = False) -> Path:
    """Train what ``recipe`` names; returns the run directory."""
    created: list[RunDir] = []  # the run directory this call claimed, if any
    try:
        return _train(recipe, console or Console(stderr=True), resume, created)
    except BaseException:
        for run in created:  # a start that failed leaves no empty run directory behind
            run.discard_if_unused()
        raise
    finally:
        # Accelerate keeps its settings process-wide; forget them so another run in this
        # process (a notebook, a test) may choose another precision.
        AcceleratorState._reset_state()


def _train(recipe: Recipe, console: Console, resume: bool, created: list[RunDir]) -> Path:
    """The phases in the order they run."""
    started = datetime.now().astimezone().isoformat(timespec="seconds")
    accelerator = start_accelerator(recipe)
    point = find_resume_point(recipe, console, accelerator) if resume else None
    session = set_up(recipe, console, accelerator, point, created)
    session.started = started
    loop = restore(session, point) if point is not None else LoopState()
    announce(session, loop)
    run_steps(session, loop)
    return finish(session, loop)


# ---------------------------------------------------------------------------- set-up
@dataclasses.dataclass
class ResumePoint:
    """The run being continued and the checkpoint it continues from."""

    run: RunDir
    checkpoint: CheckpointState
    path: Path  # last.pt, or the newest readable checkpoint where last.pt is damaged


@dataclasses.dataclass
class Session:
    """What set-up builds, once per run. The model, optimizer and timer inside change as training
    goes on; everything the loop itself carries from step to step is in ``LoopState``."""

    recipe: Recipe  # as loaded: nothing is written back into it
    console: Console
    accelerator: Accelerator
    run: RunDir
    dataset: Dataset
    data: TrainingData
    model: torch.nn.Module  # as Accelerate prepared it (data-parallel wrapper, compiled): trains
    unwrapped: Tokenizer  # the same weights as a plain module: checkpoints and reports use its keys
    optimizer: torch.optim.Optimizer
    losses: LossSet
    metrics: dict[str, Metric]
    timer: PhaseTimer
    derived: DerivedSettings
    resumed_from: Path | None = None
    protocols: list[Protocol] = dataclasses.field(default_factory=list)  # eval.protocols, run at the end
    profiler: StepProfiler = dataclasses.field(default_factory=lambda: StepProfiler(0, Clock()))
    started: str | None = None  # when this process began: ISO 8601 with the time zone

    @property
    def cfg(self) -> TrainConfig:
        return self.recipe.train

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process


def start_accelerator(recipe: Recipe) -> Accelerator:
    """Check the trackers, set the thread count, start Accelerate and seed every RNG."""
    cfg = recipe.train
    check_trackers(cfg.trackers)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    # cpu=True where there is no GPU: Accelerate then runs several CPU processes (torchrun,
    # accelerate launch) as one data-parallel job over gloo instead of independent runs.
    accelerator = Accelerator(mixed_precision="no" if cfg.precision == "fp32" else cfg.precision,
                              log_with=cfg.trackers or None, cpu=not torch.cuda.is_available(),
                              kwargs_handlers=[InitProcessGroupKwargs(timeout=COLLECTIVE_TIMEOUT)])
    seed_everything(recipe.run.seed)  # identical initial weights on every process
    return accelerator


def find_resume_point(recipe: Recipe, console: Console, accelerator: Accelerator) -> ResumePoint:
    """The run directory to continue and the checkpoint to continue from (a damaged last.pt falls
    back to the newest readable one); partial files a killed process left are removed first."""
    main = accelerator.is_main_process
    run = RunDir.resume(recipe.run.out)
    run = RunDir(Path(broadcast_object_list([str(run.path)])[0]))
    if main:
        for path in remove_debris(run.last.parent):
            console.print(f"[yellow]removed[/] {path.name}, a partial checkpoint left by a killed process")
    say = (lambda text: console.print(f"[yellow]warning:[/] {text}")) if main else None
    checkpoint, path = resume_state(run.last.parent, say, accelerator.process_index, accelerator.num_processes)
    return ResumePoint(run, checkpoint, path)


def set_up(recipe: Recipe, console: Console, accelerator: Accelerator, point: ResumePoint | None,
           created: list[RunDir]) -> Session:
    """Data, model, losses, metrics and optimizer, checked before a run directory is claimed."""
    cfg = recipe.train
    dataset = build_dataset(recipe)
    data = prepare_data(recipe, dataset, accelerator, console)
    model = build_tokenizer(recipe, data.format)
    check_shapes(model, data.example_window(), recipe)
    _check_val_split(data, model.downsample, recipe)
    losses = build_losses(recipe)
    metrics = build_metrics(recipe, data.format, model.quantizer.codebook_size)
    protocols = [instantiate(spec) for spec in recipe.protocols]  # settings that cannot work fail now
    derived = derive_settings(recipe, data, accelerator.num_processes, model.downsample,
                              any(recipe.eval.best in metric.higher_is_better for metric in metrics.values()))
    optimizer = make_optimizer(model, cfg, iters=derived.iters)
    run = point.run if point is not None else claim_run_dir(recipe, accelerator, created)
    if point is not None:  # weights go in before compiling and wrapping, under their plain keys
        check_model_fits(point.checkpoint.model, model, point.path)
        model.load_state_dict(point.checkpoint.model)
    trained = torch.compile(model) if cfg.compile else model
    trained, optimizer = accelerator.prepare(trained, optimizer)
    # Each loss term, and each part on profiled steps, is timed after waiting for the device.
    losses.clock = clock = Clock.for_device(accelerator.device)
    profiler = StepProfiler(cfg.profile_every, clock, None if cfg.compile else model)
    return Session(recipe=recipe, console=console, accelerator=accelerator, run=run, dataset=dataset, data=data,
                   model=trained, unwrapped=accelerator.unwrap_model(trained, keep_torch_compile=False),
                   optimizer=optimizer, losses=losses, metrics=metrics,
                   timer=PhaseTimer(synchronize=accelerator.device.type == "cuda"), derived=derived,
                   resumed_from=point.path if point is not None else None, profiler=profiler, protocols=protocols)


def derive_settings(recipe: Recipe, data: TrainingData, processes: int, unit: int,
                    best_higher_is_better: bool) -> DerivedSettings:
    """The run's length in steps (from train.iters, or from train.epochs and the sampler's epoch)
    and the other numbers the loop needs; a run in epochs too short for its warm-up or its
    milestones is a recipe error."""
    cfg = recipe.train
    total = (cfg.warmup_iters + cfg.iters if cfg.epochs is None
             else steps_for_epochs(cfg.epochs, data.batches_per_epoch, cfg.grad_accum))
    derived = DerivedSettings(total_steps=total, samples_per_step=cfg.batch_size * cfg.grad_accum * processes,
                              unit=unit, best_higher_is_better=best_higher_is_better,
                              iters=total - cfg.warmup_iters if total > cfg.warmup_iters else None,
                              batches_per_epoch=data.batches_per_epoch, grad_accum=cfg.grad_accum)
    if cfg.epochs is not None:
        length = (f"train.epochs={cfg.epochs:g} long: {total:,} steps at {derived.steps_per_epoch:g} steps per "
                  f"epoch")
        if derived.iters is None:
            raise RecipeError(recipe.source, [("train.warmup_iters", (
                f"{cfg.warmup_iters:,} warm-up steps leave nothing of the run: it is {length}. Raise train.epochs "
                f"above {cfg.warmup_iters / derived.steps_per_epoch:g} or shorten the warm-up"))])
        if problem := milestones_problem(cfg, derived.iters, f"{length}, {derived.iters:,} after warm-up",
                                         "raise train.epochs"):
            raise RecipeError(recipe.source, [("train.milestones", problem)])
    return derived


def _check_val_split(data: TrainingData, unit: int, recipe: Recipe) -> None:
    """Settings used only at the end (the val clips' length bounds) are checked now."""
    try:
        data.val_batches(unit)
    except DataError as exc:
        bounds = ", ".join(f"eval.{key}={getattr(recipe.eval, key)}" for key in ("min_length", "max_length")
                           if getattr(recipe.eval, key) is not None)
        raise DataError(f"val split{f' ({bounds})' if bounds else ''}: {exc}") from None


def claim_run_dir(recipe: Recipe, accelerator: Accelerator, created: list[RunDir]) -> RunDir:
    """A new run directory, claimed by the main process; every process agrees on it."""
    run = RunDir.create(recipe.run.out, accelerator.is_main_process)
    run = RunDir(Path(broadcast_object_list([str(run.path)])[0]))
    if accelerator.is_main_process:
        created.append(run)
    return run


# ---------------------------------------------------------------------------- resume
def restore(session: Session, point: ResumePoint) -> LoopState:
    """Optimizer, scaler, RNG and loop state from the checkpoint (the weights went in at set-up);
    metrics rows written after it are dropped, as they will be written again."""
    checkpoint, accelerator = point.checkpoint, session.accelerator
    session.optimizer.load_state_dict(checkpoint.optimizer)
    if accelerator.scaler is not None and checkpoint.scaler:
        accelerator.scaler.load_state_dict(checkpoint.scaler)
    loop = checkpoint.loop
    # Last, after everything set-up built: building the model draws from the RNGs.
    set_rng_state(checkpoint.rng_for(accelerator.process_index))
    session.losses.seconds.update(loop.loss_seconds)
    session.timer.seconds.update(loop.seconds)
    session.profiler.load(loop.profile)
    if session.main:
        session.run.truncate_metrics(after_step=loop.step)
    return loop


def announce(session: Session, loop: LoopState) -> None:
    """recipe.yaml and the derived numbers up front; trackers started."""
    recipe = session.recipe
    if session.main:
        (session.run.path / "recipe.yaml").write_text(recipe.to_yaml())
        _print_plan(session, loop)
    if session.cfg.trackers:
        session.accelerator.project_configuration.set_directories(str(session.run.path))
        session.accelerator.init_trackers(recipe.run.name, config=_flat(recipe.tree))


# ---------------------------------------------------------------------------- the loop
def run_steps(session: Session, loop: LoopState) -> None:
    """Optimizer steps from ``loop.step`` to the end, logging, evaluating and checkpointing when due."""
    cfg, total = session.cfg, session.derived.total_steps
    progress = Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=session.console, disable=not session.main)
    # The log interval's clock runs from here: set-up is not counted in samples/s.
    loop.window.start = time.perf_counter()
    with progress:
        task = progress.add_task("train", total=total, completed=loop.step, status="")
        for step in range(loop.step, total):
            started = time.perf_counter()
            # Set by hand every step, so the schedule does not depend on the number of processes.
            lr = learning_rate(step, cfg, session.derived.iters)
            for group in session.optimizer.param_groups:
                group["lr"] = lr
            outcome = train_step(session, step)
            record_step(loop, outcome, time.perf_counter() - started)
            done = loop.step

            # A row every log_every steps, and one for the last step whatever the interval.
            if done % cfg.log_every == 0 or done == total:
                log_interval(session, loop, lr, progress, task)
            progress.update(task, completed=done)

            if done == total:
                break  # the last step is evaluated and saved by finish(), with the report
            if cfg.eval_every and done % cfg.eval_every == 0:
                figures = evaluate(session, done).figures
                save(session, loop, best=_improved(figures, session.recipe.eval.best, loop,
                                                   session.derived.best_higher_is_better))
            elif cfg.checkpoint_every and done % cfg.checkpoint_every == 0:
                save(session, loop, best=False)


@dataclasses.dataclass
class StepOutcome:
    loss: torch.Tensor  # the last micro-batch's weighted total
    terms: dict[str, torch.Tensor]  # and each loss term
    skipped: bool  # the loss was not finite: no optimizer step (train.on_nonfinite=skip)


def train_step(session: Session, step: int) -> StepOutcome:
    """One optimizer step over ``train.grad_accum`` micro-batches (batches follow from the step),
    profiled when ``train.profile_every`` says so."""
    with session.profiler.step(step) as probe:
        outcome = _train_step(session, step, probe)
        if probe is not None and outcome.skipped:
            probe.discard()
    return outcome


def _train_step(session: Session, step: int, probe: StepProbe | None) -> StepOutcome:
    cfg, accelerator, timer, model = session.cfg, session.accelerator, session.timer, session.model
    measure_forward = probe.forward_pass if probe else contextlib.nullcontext
    measure_backward = probe.measuring_backward if probe else contextlib.nullcontext
    skipped = False
    for micro in range(cfg.grad_accum):
        with timer.phase("data"):
            batch = session.data.train_batch(step * cfg.grad_accum + micro, accelerator.device)
        # Gradients are averaged across processes only on the last micro-batch.
        sync = accelerator.no_sync(model) if micro < cfg.grad_accum - 1 else contextlib.nullcontext()
        with sync:
            with timer.phase("forward"), accelerator.autocast(), measure_forward():
                outputs = model(batch["motion"])
            with accelerator.autocast():
                loss, terms = session.losses(batch, outputs, session.data.format, step, probe=probe)
            # This reads the loss on the host: one device sync per step, the price of
            # stopping at the first NaN instead of training on garbage.
            if not all_finite(loss, accelerator):
                if cfg.on_nonfinite == "stop":
                    raise TrainingError(_nonfinite_message(step, loss, terms, session.run))
                skipped = True
                break
            if micro == 0:
                # Zeroed here rather than after the step: the gradient memory is then
                # reused by this backward instead of being freed and faulted in again.
                with timer.phase("optimizer"):
                    session.optimizer.zero_grad(set_to_none=True)
            with timer.phase("backward"), measure_backward():
                if loss.requires_grad:
                    accelerator.backward(loss / cfg.grad_accum)
                else:  # every term is off this step (every, a schedule at 0): the gradient of a constant, 0
                    for parameter in model.parameters():
                        if parameter.requires_grad and parameter.grad is None:
                            parameter.grad = torch.zeros_like(parameter)
    with timer.phase("optimizer"):
        if not skipped:
            if cfg.grad_clip:
                accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            session.optimizer.step()
    return StepOutcome(loss, terms, skipped)


def record_step(loop: LoopState, outcome: StepOutcome, seconds: float) -> None:
    """Count the step; its losses join the open log interval unless it was skipped."""
    loop.step += 1
    if outcome.skipped:
        loop.nonfinite_skipped += 1
    else:
        loop.window.add({"loss": outcome.loss.detach(), **outcome.terms})
    loop.train_seconds += seconds
    loop.recent_step_times = loop.recent_step_times[-(RECENT_STEPS - 1):] + [seconds]


# ---------------------------------------------------------------------------- logging
def log_interval(session: Session, loop: LoopState, lr: float, progress: Progress, task: TaskID) -> None:
    """One metrics row: the log interval's means, reduced across processes; a new interval begins."""
    accelerator = session.accelerator
    with session.timer.phase("logging"):
        row = _log_row(loop.step, lr, loop.window, session.derived.samples_per_step, accelerator)
        losses = {k: v for k, v in row.items() if k not in ("step", "lr", "samples_per_s")}
        for name, value in losses.items():
            loop.loss_sums[name] = loop.loss_sums.get(name, 0.0) + value
        loop.logged_steps += 1
        loop.final_losses = losses
        row.update(memory_row(accelerator.device))  # after the losses were taken: memory is no loss
        if session.main:
            session.run.log(row)
            progress.update(task, status=_status(row, loop.nonfinite_skipped))
        if session.cfg.trackers:
            accelerator.log({f"train/{k}": v for k, v in row.items() if k != "step"}, step=loop.step)
    loop.window = LogWindow()


# ---------------------------------------------------------------------------- evaluation
@dataclasses.dataclass
class Evaluation:
    figures: dict[str, float]  # empty when there is no val split
    histogram: torch.Tensor  # per-code counts behind the codebook figures
    clips: int | None = None  # the clips evaluated, where counted (the train subset's)
    train: Evaluation | None = None  # at the end: the same figures on the train subset (eval.train_clips)


def evaluate(session: Session, step: int) -> Evaluation:
    """The val split's figures at ``step``: logged, printed and sent to the trackers."""
    with session.timer.phase("evaluation"):
        figures, histogram = evaluate_split(session.model, session.data.val_batches(session.derived.unit),
                                            session.data.format, session.losses, session.metrics,
                                            session.accelerator, step)
    if session.main and figures:
        session.run.log({"step": step, "split": "val", **figures})
        session.console.print(f"[cyan]val[/] step {step}: " + "  ".join(
            f"{k} {v:.4g}" for k, v in figures.items() if not k.startswith("codebook_")))
    if session.cfg.trackers and figures:
        session.accelerator.log({f"val/{k}": v for k, v in figures.items()}, step=step)
    return Evaluation(figures, histogram)


def evaluate_train(session: Session, step: int) -> Evaluation | None:
    """The val figures on the train subset (``eval.train_clips`` clips), printed; None when it is empty."""
    clips = len(session.data.train_subset(session.derived.unit))
    if not clips:
        return None
    with session.timer.phase("evaluation"):
        figures, histogram = evaluate_split(session.model, session.data.train_subset_batches(session.derived.unit),
                                            session.data.format, session.losses, session.metrics,
                                            session.accelerator, step)
    if session.main and figures:
        session.console.print(f"[cyan]train[/] step {step} ({clips:,} clips): " + "  ".join(
            f"{k} {v:.4g}" for k, v in figures.items() if not k.startswith("codebook_")))
    return Evaluation(figures, histogram, clips=clips)


# ---------------------------------------------------------------------------- checkpointing
def save(session: Session, loop: LoopState, best: bool) -> None:
    """Checkpoint everything needed to continue exactly: ``last.pt``, with ``best.pt`` when ``best``
    and ``step_N.pt`` every ``train.checkpoint_every`` steps. Every process takes part."""
    accelerator, timer = session.accelerator, session.timer
    # Each process's RNG and open log interval are its own: all of them are kept.
    own = {"rng": rng_state(), "window": loop.window.to_dict()}
    everyone = gather_object([own]) if accelerator.num_processes > 1 else [own]
    loop.seconds, loop.loss_seconds = dict(timer.seconds), dict(session.losses.seconds)
    loop.profile = session.profiler.state()
    if not session.main:
        return
    with timer.phase("checkpoint"):
        fmt = session.data.format
        scaler = accelerator.scaler
        checkpoint = CheckpointState(
            model=session.unwrapped.state_dict(), optimizer=session.optimizer.state_dict(),
            scaler=scaler.state_dict() if scaler is not None else None, loop=loop,
            rng=[part["rng"] for part in everyone], log_windows=[part["window"] for part in everyone],
            recipe=session.recipe.tree, versions=versions(), stats={"mean": fmt.mean, "std": fmt.std})
        # last.pt goes last: a process killed before it resumes from the previous last.pt and
        # writes this step's step_N.pt / best.pt again, so none is ever skipped.
        run, every = session.run, session.cfg.checkpoint_every
        numbered = [run.numbered(loop.step)] if every and loop.step % every == 0 else []
        save_checkpoint(checkpoint, *numbered, *([run.best] if best else []), run.last)


# ---------------------------------------------------------------------------- finishing
def finish(session: Session, loop: LoopState) -> Path:
    """Final evaluation and checkpoint, codebook usage, and the report."""
    recipe, accelerator = session.recipe, session.accelerator
    final = evaluate(session, loop.step)
    improved = _improved(final.figures, recipe.eval.best, loop, session.derived.best_higher_is_better)
    if session.main and (warning := _collapse_warning(loop, recipe.eval.best)):
        session.console.print(f"[yellow]warning:[/] {warning}")
    final.train = evaluate_train(session, loop.step)
    codebook, train_histogram = codebook_usage(session, final)
    save(session, loop, best=improved)
    in_sync = replicas_identical(session.unwrapped, accelerator)
    accelerator.wait_for_everyone()
    if session.main:
        write_run_report(session, loop, final, codebook, train_histogram, in_sync)
    # No process tears its process group down while another still reports through its own.
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return session.run.path


def codebook_usage(session: Session, final: Evaluation) -> tuple[dict, torch.Tensor | None]:
    """Codes used on train and on val; the train histogram.

    Train is the whole split when eval.train_codebook, else the train subset evaluated at the
    end (``final.train``); ``clips`` says how many clips each covers. Each split's entry holds
    the real number of codes (``size``) and, where the recipe names another, the nominal one
    (``nominal_size``: FSQ's ``codebook_size: 2048`` is levels [8, 8, 6, 5], 1920 codes).
    """
    codebook, histogram = {}, None
    sizes = codebook_sizes(session.recipe, session.unwrapped.quantizer.codebook_size)
    if session.recipe.eval.train_codebook:
        with session.timer.phase("evaluation"):
            histogram = code_histogram_over(session.model, session.data.train_eval_batches(session.derived.unit),
                                            session.accelerator)
        clips = int((session.data.train.lengths >= session.derived.unit).sum())
        codebook["train"] = {**sizes, "clips": clips, **usage_from_histogram(histogram.cpu())}
    elif final.train is not None:
        histogram = final.train.histogram
        codebook["train"] = {**sizes, "clips": final.train.clips, **usage_from_histogram(histogram.cpu())}
    if final.figures:
        codebook["val"] = {**sizes, **{k.removeprefix("codebook_"): v for k, v in final.figures.items()
                                       if k.startswith("codebook_")}}
    return codebook, histogram


def codebook_sizes(recipe: Recipe, real: int) -> dict[str, int]:
    """``{"size": real}``, with ``nominal_size`` when the recipe's quantizer asks for another
    ``codebook_size`` than the model has (FSQ's sizes are products of levels)."""
    nominal = recipe.quantizer.kwargs.get("codebook_size")
    if isinstance(nominal, int) and not isinstance(nominal, bool) and nominal != real:
        return {"size": real, "nominal_size": nominal}
    return {"size": real}


def write_run_report(session: Session, loop: LoopState, final: Evaluation, codebook: dict,
                     train_histogram: torch.Tensor | None, in_sync: bool) -> None:
    """report.json, report.md with its figures, codebook_counts.json; the report printed."""
    run, console = session.run, session.console
    report = _report(session, loop, final.figures, codebook, final.train)
    report["run"]["replicas_identical"] = in_sync
    report["data"].update(data_record(session.recipe, session.dataset, session.data))
    report["protocols"] = protocol_results(session, loop)
    val_histogram = final.histogram if final.figures else None  # the per-code counts behind codebook["val"]
    run.write_code_counts({split: counts.cpu().tolist() for split, counts in
                           (("train", train_histogram), ("val", val_histogram)) if counts is not None})
    report["figures"] = draw_report_figures(run.path, report, train_histogram)  # first: report.md shows them
    write_report(run.path, report)
    print_report(report, console)
    if report["figures"].get("skipped"):  # said once, here and in report.md
        console.print(f"[yellow]note:[/] {escape(report['figures']['skipped'])}")
    console.print(f"[green]done[/] {loop.step} steps. Run directory: [bold]{run.path}[/]")


def protocol_results(session: Session, loop: LoopState) -> list[dict]:
    """Each ``eval.protocols`` entry run on the final weights (just saved as last.pt): its settings,
    its table as text, and where its JSON with every repetition went (RUN_DIR/eval_<split>_<name>.json).
    A protocol that cannot run leaves its error in the report: the run itself is saved."""
    import json

    model, out = session.unwrapped, []
    was_training = model.training
    run = ProtocolRun(path=session.run.path, checkpoint=session.run.last, step=loop.step, recipe=session.recipe,
                      dataset=session.dataset, format=session.data.format, model=model.eval())
    for spec, protocol in zip(session.recipe.protocols, session.protocols):
        entry = {"name": spec.name, "settings": dict(spec.kwargs)}
        try:
            with session.timer.phase("evaluation"):
                result = protocol.evaluate(run)
        except MotionhubError as exc:
            session.console.print(f"[yellow]warning:[/] protocol {spec.name} did not run: {escape(str(exc))}")
            out.append({**entry, "error": str(exc)})
            continue
        path = session.run.path / f"eval_{result.get('split', 'test')}_{spec.name}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        out.append({**entry, "text": protocol.render(result), "path": str(path),
                    "split": result.get("split"), "repeats": result.get("repeats")})
    model.train(was_training)
    return out


def all_finite(loss: torch.Tensor, accelerator) -> bool:
    """Whether the loss is finite on every process.

    Every process must take the same branch: one that skipped its backward alone would
    leave the others waiting in the gradient all-reduce for ever.
    """
    finite = torch.isfinite(loss.detach()).reshape(1)
    if accelerator.num_processes > 1:
        finite = accelerator.gather(finite)
    return bool(finite.all())


# Per-process statistics that data parallelism does not keep equal (each process's BatchNorm
# sees its own batches; the saved model keeps the main process's).
LOCAL_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def replica_checksum(model) -> torch.Tensor:
    """(n,) float64 sums of the floating-point weights and buffers that every process must share."""
    return torch.stack([t.detach().double().sum() for name, t in model.state_dict().items()
                        if t.is_floating_point() and not name.endswith(LOCAL_BUFFERS)])


def replicas_identical(model, accelerator) -> bool:
    """Whether every process holds the same weights and buffers (codebooks included)."""
    if accelerator.num_processes == 1:
        return True
    gathered = accelerator.gather(replica_checksum(model).to(accelerator.device)[None]).cpu()
    return bool((gathered == gathered[0]).all())


def _log_row(step: int, lr: float, window: LogWindow, samples_per_step: int, accelerator) -> dict:
    """Means over the log interval, reduced across processes (one sync).

    Every process skips the same steps (``all_finite``), so all hold the same names, or none
    when the whole interval was skipped; either way each takes part in the one reduction.
    """
    names = sorted(window.sums)
    device = accelerator.device
    # A sum carried over a resume is a float: it joins the others on the device, in float32 as they are.
    values = (torch.stack([torch.as_tensor(window.sums[n], dtype=torch.float32, device=device) for n in names])
              / torch.tensor([window.count(n) for n in names], dtype=torch.float32, device=device)
              if names else torch.zeros(0))
    values = accelerator.reduce(values.to(accelerator.device), "mean").tolist()
    elapsed = window.elapsed()
    return {"step": step, "lr": lr, **dict(zip(names, values)),
            "samples_per_s": window.steps * samples_per_step / elapsed if elapsed > 0 else 0.0}


def _status(row: dict, skipped: int) -> str:
    text = f"loss {row.get('loss', float('nan')):.4f}  lr {row['lr']:.2e}  {row['samples_per_s']:.0f} samples/s"
    return text + (f"  [yellow]{skipped} non-finite steps skipped" if skipped else "")


def _improved(result: dict[str, float], key: str, loop: LoopState, higher_is_better: bool) -> bool:
    """Whether ``result`` beats the best so far by ``key``; records it and the figures that show collapse."""
    if key not in result:
        if result and not loop.best_missing_warned:
            loop.best_missing_warned = True
            figures = ", ".join(sorted(k for k in result if not k.startswith("codebook_")))
            logger.warning(f"eval.best: evaluation gives no figure '{key}'{did_you_mean(key, list(result)) or '.'} "
                           f"No best.pt is kept. Figures of this run: {figures}")
        return False
    value = result[key]
    if loop.best is None or (value > loop.best if higher_is_better else value < loop.best):
        loop.best = value
        loop.best_step = result.get("step", loop.step)
        loop.best_collapse = _collapse(result)
        return True
    return False


def _collapse(result: dict[str, float]) -> str | None:
    """Why evaluation ``result`` shows a collapsed model (one code, one predicted class), or None."""
    signs = []
    # one code used of several (a quantizer with a single code, such as an identity, cannot collapse)
    if result.get("codebook_used") == 1 and result.get("codebook_dead", 0) > 0:
        signs.append("uses a single code")
    if result.get("predicted_classes") == 1:
        signs.append("predicts a single class everywhere")
    return " and ".join(signs) or None


def _collapse_warning(loop: LoopState, best: str) -> str | None:
    """The warning to print when checkpoints/best.pt holds a collapsed model."""
    if not loop.best_collapse:
        return None
    return (f"checkpoints/best.pt (step {loop.best_step if loop.best_step is not None else '?'}, {best} "
            f"{loop.best:.4g}) {loop.best_collapse}: the model had collapsed when it was selected. Train longer or "
            f"add a codebook-usage loss; if the model recovers but best.pt stays here, select by a figure that a "
            f"collapsed model cannot win (eval.best: loss, an accuracy or F1).")


def _nonfinite_message(step: int, loss: torch.Tensor, terms: dict, run: RunDir) -> str:
    if torch.isfinite(loss):  # this process's loss is fine: another one's is not
        values = "on another process"
    else:
        bad = [f"{name}={value.item():.4g}" for name, value in terms.items() if not torch.isfinite(value)]
        values = ", ".join(bad) or ", ".join(f"{n}={v.item():.4g}" for n, v in terms.items())
    kept = f"The last good checkpoint is {run.last}." if run.last.exists() else "No checkpoint was written yet."
    return (f"non-finite loss at step {step}: {values}. {kept} Lower train.lr, set train.grad_clip, check the data "
            f"for NaN/Inf, or set train.on_nonfinite=skip to skip such steps.")


def _report(session: Session, loop: LoopState, last_eval: dict[str, float], codebook: dict,
            train_eval: Evaluation | None = None) -> dict:
    recipe, data, model, accelerator = session.recipe, session.data, session.unwrapped, session.accelerator
    samples_per_step, derived = session.derived.samples_per_step, session.derived
    # Read before counting FLOPs: that pass over a copy of the model allocates memory of its own.
    memory = memory_record(model, session.optimizer, accelerator.device)
    batch = data.train_batch(0, accelerator.device)["motion"]  # the run's first training batch

    def scalar(out):
        return sum(v.float().mean() for k, v in out.items() if k in ("recon", "logits")) + out["aux_loss"].mean()

    # A copy: the parameters of the trained model carry data parallelism's gradient hooks, and a
    # backward through them on this process alone could start an all-reduce no other joins.
    flops = flops_record(count_flops(copy.deepcopy(model), batch, scalar), len(batch), recipe.train.grad_accum)
    steps = loop.step
    step_s = statistics.median(loop.recent_step_times) if loop.recent_step_times else 0.0
    seconds = dict(session.timer.seconds)
    for name, value in session.losses.seconds.items():
        seconds[f"loss: {name}"] = value
    total_s = loop.train_seconds + seconds.get("evaluation", 0.0) + seconds.get("checkpoint", 0.0)
    breakdown = PhaseTimer(seconds=seconds).breakdown()
    logged = max(loop.logged_steps, 1)
    run = session.run
    epochs = derived.epochs_at(steps)
    return {
        "run": {"name": recipe.run.name, "recipe": recipe.source, "directory": str(run.path),
                "device": str(accelerator.device), "processes": accelerator.num_processes,
                "precision": recipe.train.precision, "motionhub": __version__,
                "precision_parts": describe_precision(recipe.train.precision, model, session.losses)},
        "parameters": parameter_counts(model),
        "flops": flops,
        "speed": speed_record(flops, step_s, steps, loop.train_seconds, accelerator.num_processes,
                              matmul_ceiling(accelerator.device, recipe.train.precision)),
        "time": {"total_s": total_s, "steps": steps, "step_s": step_s,
                 # measured: the training clock (seconds inside steps, over resumes) per epoch done
                 "epoch_s": loop.train_seconds / epochs if epochs else 0.0, "epochs": epochs,
                 "train_s": loop.train_seconds,
                 "samples": steps * samples_per_step,
                 "samples_per_s": samples_per_step / step_s if step_s else 0.0,
                 "steps_per_s": 1 / step_s if step_s else 0.0,
                 "nonfinite_skipped": loop.nonfinite_skipped},
        "memory": memory,
        "checkpoint": {"path": str(run.last), "size_mib": run.last.stat().st_size / 2**20},
        "codebook": codebook,
        "losses": {"final": loop.final_losses or {},
                   "mean": {k: v / logged for k, v in loop.loss_sums.items()},
                   "without_gradient": sorted(session.losses.without_gradient)},
        "eval": last_eval,
        "eval_train": train_eval.figures if train_eval is not None else {},
        "eval_history": val_history(run),
        "epoch": epoch_record(session),
        "best": {"figure": recipe.eval.best, "value": loop.best, "step": loop.best_step,
                 "collapse_warning": _collapse_warning(loop, recipe.eval.best)},
        "data": {"train_clips": data.train_clips, "dropped_short": data.dropped,
                 "train_eval_clips": train_eval.clips if train_eval is not None else 0,
                 "samples": {"windows": steps * samples_per_step, "steps": steps,
                             "batch_size": recipe.train.batch_size, "grad_accum": recipe.train.grad_accum,
                             "processes": accelerator.num_processes}},
        "breakdown": breakdown,
        "profile": session.profiler.summary(),
        "environment": environment_record(recipe, accelerator.device, accelerator.num_processes, session.started,
                                          accelerator.trackers),
    }


def val_history(run: RunDir) -> dict:
    """Every val evaluation logged in metrics.jsonl (the final one included): how many, at which
    steps, and their mean loss."""
    losses = [(row["step"], row["loss"]) for row in run.rows()
              if row.get("split") == "val" and isinstance(row.get("loss"), (int, float))]
    return {"evaluations": len(losses), "steps": [step for step, _ in losses],
            "mean_loss": statistics.fmean(loss for _, loss in losses) if losses else None}


def epoch_record(session: Session) -> dict:
    """What an epoch is in this run: the sampler's pass over the usable train clips."""
    derived, data, cfg = session.derived, session.data, session.cfg
    return {"steps": derived.steps_per_epoch, "batches": derived.batches_per_epoch,
            "windows": derived.batches_per_epoch * cfg.batch_size * session.accelerator.num_processes,
            "usable_clips": data.usable_train_clips, "weighting": session.recipe.data.weighting,
            "shards": data.sampler.shards, "requested": cfg.epochs}


def _nominal_text(recipe: Recipe, real: int) -> str:
    """The printout's note of the recipe's codebook_size where the model has another number of codes."""
    nominal = codebook_sizes(recipe, real).get("nominal_size")
    return f" (nominal {nominal}, the recipe's codebook_size)" if nominal else ""


def _epoch_text(session: Session) -> str:
    """What an epoch is and how many the run trains, for the printout."""
    derived, cfg, epoch = session.derived, session.cfg, epoch_record(session)
    usable, left = epoch["usable_clips"], epoch["usable_clips"] - epoch["windows"]
    if epoch["weighting"] == "uniform":
        how = f"one from each of the {usable:,} usable train clips, in a fresh order"
        how += f" ({left:,} left to the next order)" if left > 0 else ""
    else:
        how = f"drawn by clip length, as many as the {usable:,} usable train clips"
    steps = f"{derived.steps_per_epoch:g} step{'s' * (derived.steps_per_epoch != 1)}"
    size = (f"an epoch is {epoch['batches']:,} batch{'es' * (epoch['batches'] != 1)} of {cfg.batch_size} windows x "
            f"{session.accelerator.num_processes} process(es) = {epoch['windows']:,} windows, {how}; {steps}"
            + (f" of {cfg.grad_accum} micro-batches" if cfg.grad_accum > 1 else ""))
    if cfg.epochs is not None:
        return f"{size}; train.epochs={cfg.epochs:g}: {derived.total_steps:,} steps"
    return f"{size}; the {derived.total_steps:,} steps make {derived.epochs_at(derived.total_steps):.3g} epochs"


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out


def _print_plan(session: Session, loop: LoopState) -> None:
    """Derived numbers up front, so a wrong setting is visible before minutes are spent."""
    recipe, data, model, accelerator, console = (session.recipe, session.data, session.unwrapped,
                                                 session.accelerator, session.console)
    cfg = recipe.train
    window, down = recipe.data.window, session.derived.unit
    counts, size = parameter_counts(model), model.quantizer.codebook_size
    console.print(f"[bold]motionhub {__version__}[/]  run [bold]{recipe.run.name}[/] -> {session.run.path}")
    console.print(f"data      {escape(data.description)}: {data.train_clips:,} train clips, "
                  f"{data.train_frames:,} frames; {escape(data.dropped_summary())}")  # clip ids may hold [..]
    if data.sampler.shards > 1:
        own, (first, stop) = data.sampler.own_shards, data.sampler.frame_range
        console.print(f"shards    {data.sampler.shards} of the usable train clips, "
                      f"{session.derived.batches_per_epoch * cfg.batch_size * accelerator.num_processes // data.sampler.shards:,} "
                      f"windows each per epoch; process {accelerator.process_index} reads shards {own.start}-{own.stop - 1} "
                      f"(frames {first:,}-{stop - 1:,})")
    console.print(f"model     encoder {counts['encoder']:,} + quantizer {counts['quantizer']:,} + decoder "
                  f"{counts['decoder']:,} = {counts['trainable']:,} trainable parameters")
    console.print(f"tokens    {math.ceil(window / down)} per window (down-sampling x{down}), "
                  f"codebook {size:,} codes{_nominal_text(recipe, size)}")
    console.print(f"training  {session.derived.total_steps:,} steps ({cfg.warmup_iters:,} warm-up) x "
                  f"{cfg.batch_size} windows{f' x {cfg.grad_accum} micro-batches' if cfg.grad_accum > 1 else ''} x "
                  f"{accelerator.num_processes} process(es) on {accelerator.device}")
    console.print(f"precision {describe_precision(cfg.precision, model, session.losses)}")
    console.print(f"epochs    {_epoch_text(session)}")
    if loop.step:
        console.print(f"[yellow]resuming[/] at step {loop.step:,} from "
                      f"{session.resumed_from or session.run.path / 'checkpoints' / 'last.pt'}")
