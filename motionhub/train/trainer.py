"""The training loop: one readable function from recipe to run directory.

Accelerate owns devices, mixed precision and data parallelism. The learning rate is set by
hand every optimizer step (linear warm-up, then step decay or cosine) so the schedule is
the same whatever the number of processes. Batches depend only on (seed, rank, step), so
a resumed run draws exactly the batches an uninterrupted one would have.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import logging
import math
import random
import statistics
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import InitProcessGroupKwargs, broadcast_object_list, gather_object
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from motionhub import __version__
from motionhub.model.build import build_dataset, build_losses, build_metrics, build_tokenizer, check_shapes
from motionhub.train.checkpoint import check_model_fits, remove_debris, resume_checkpoint, save_checkpoint
from motionhub.model.codebook import usage_from_histogram
from motionhub.data.batches import TrainingData, data_record, prepare_data
from motionhub.errors import DataError, MotionhubError, did_you_mean
from motionhub.train.evaluation import code_histogram_over, evaluate_split
from motionhub.recipes.recipe import Recipe, TrainConfig
from motionhub.train.report import flops_per_sample, parameter_counts, peak_memory, print_report, write_report
from motionhub.plugins.manager import versions
from motionhub.use.render import has_matplotlib, write_report_figures
from motionhub.train.rundir import RunDir
from motionhub.train.timing import PhaseTimer

logger = logging.getLogger("motionhub.train")


RECENT_STEPS = 2000  # step times kept for the median in the report
# How long a process waits in a collective. The others wait for the main process while it
# packs a large data set on first use (motionhub pack does it beforehand); NCCL's default,
# 10 minutes, would end the job mid-pack.
COLLECTIVE_TIMEOUT = timedelta(hours=2)


class TrainingError(MotionhubError):
    """Training cannot go on (a non-finite loss, ...); the last good checkpoint is intact."""


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """lr at optimizer step ``step`` (0-based): warm-up as T2M-GPT, then decay at milestones.

    Milestones count steps after warm-up, as the references' MultiStepLR does; with
    ``schedule: cosine`` the lr instead follows a half cosine to 0 over ``iters``.
    """
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / (cfg.warmup_iters + 1)
    after = step - cfg.warmup_iters
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(after / max(cfg.iters, 1), 1.0)))
    return cfg.lr * cfg.gamma ** sum(after >= m for m in cfg.milestones)


TRACKER_MODULES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}


def check_trackers(trackers: list[str]) -> None:
    """Fail before training starts when a tracker the recipe asks for is not installed."""
    for name in trackers:
        if not any(importlib.util.find_spec(module) for module in TRACKER_MODULES[name]):
            raise MotionhubError(f"train.trackers asks for {name}, which is not installed here: "
                                 f"pip install {name}, or remove it from train.trackers")


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, step: int = 0) -> torch.optim.Optimizer:
    """AdamW with the recipe's betas and weight decay, at the learning rate of ``step``."""
    return torch.optim.AdamW(model.parameters(), lr=learning_rate(step, cfg), betas=tuple(cfg.betas),
                             weight_decay=cfg.weight_decay)


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
        return _train(recipe, console, resume, created)
    except BaseException:
        for run in created:  # a start that failed leaves no empty run directory behind
            run.discard_if_unused()
        raise
    finally:
        # Accelerate keeps its settings process-wide; forget them so another run in this
        # process (a notebook, a test) may choose another precision.
        AcceleratorState._reset_state()


def _train(recipe: Recipe, console: Console | None, resume: bool, created: list[RunDir] | None = None) -> Path:
    console = console or Console(stderr=True)
    cfg = recipe.train
    check_trackers(cfg.trackers)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    # cpu=True where there is no GPU: Accelerate then runs several CPU processes (torchrun,
    # accelerate launch) as one data-parallel job over gloo instead of independent runs.
    accelerator = Accelerator(mixed_precision="no" if cfg.precision == "fp32" else cfg.precision,
                              log_with=cfg.trackers or None, cpu=not torch.cuda.is_available(),
                              kwargs_handlers=[InitProcessGroupKwargs(timeout=COLLECTIVE_TIMEOUT)])
    main = accelerator.is_main_process
    seed_everything(recipe.run.seed)  # identical initial weights on every process

    # ---- run directory: the one being resumed (a new one is claimed once the model works)
    run = RunDir.resume(recipe.run.out) if resume else RunDir(Path(recipe.run.out))
    run = RunDir(Path(broadcast_object_list([str(run.path)])[0]))
    checkpoint = resumed_from = None
    if resume:
        if main:
            for path in remove_debris(run.last.parent):
                console.print(f"[yellow]removed[/] {path.name}, a partial checkpoint left by a killed process")
        checkpoint, resumed_from = resume_checkpoint(
            run.last.parent, (lambda text: console.print(f"[yellow]warning:[/] {text}")) if main else None)

    # ---- data, model, losses, metrics, optimizer
    dataset = build_dataset(recipe)
    data: TrainingData = prepare_data(recipe, dataset, accelerator, console)
    fmt = data.format
    model = build_tokenizer(recipe, fmt)
    check_shapes(model, data.example_window(), recipe)
    data.unit = model.downsample
    try:  # settings used only at the end (the val clips' length bounds) are checked now
        data.val_batches()
    except DataError as exc:
        bounds = ", ".join(f"eval.{key}={getattr(recipe.eval, key)}" for key in ("min_length", "max_length")
                           if getattr(recipe.eval, key) is not None)
        raise DataError(f"val split{f' ({bounds})' if bounds else ''}: {exc}") from None
    losses = build_losses(recipe)
    metrics = build_metrics(recipe, fmt, model.quantizer.codebook_size)
    best_higher = any(recipe.eval.best in metric.higher_is_better for metric in metrics.values())
    optimizer = make_optimizer(model, cfg)
    if not resume:  # a new run directory, claimed by the main process (every process agrees on it)
        run = RunDir.create(recipe.run.out, main)
        run = RunDir(Path(broadcast_object_list([str(run.path)])[0]))
        if main and created is not None:
            created.append(run)
    if checkpoint is not None:
        check_model_fits(checkpoint["model"], model, resumed_from)
        model.load_state_dict(checkpoint["model"])
    if cfg.compile:
        model = torch.compile(model)
    model, optimizer = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(model, keep_torch_compile=False)  # plain keys in checkpoints
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        if accelerator.scaler is not None and checkpoint.get("scaler"):
            accelerator.scaler.load_state_dict(checkpoint["scaler"])

    # ---- training state that a checkpoint carries (the sampler needs none: batches follow the step)
    state = {"step": 0, "best": None, "nonfinite_skipped": 0, "seconds": {}, "loss_seconds": {},
             "loss_sums": {}, "logged_steps": 0, "train_seconds": 0.0, "recent_step_times": []}
    if checkpoint is not None:
        state.update(checkpoint["state"])
        set_rng_state(checkpoint["rng"][min(accelerator.process_index, len(checkpoint["rng"]) - 1)])
        losses.seconds.update(state["loss_seconds"])
        if main:
            run.truncate_metrics(after_step=state["step"])
    timer = PhaseTimer(synchronize=accelerator.device.type == "cuda", seconds=state["seconds"])
    total_steps = cfg.warmup_iters + cfg.iters
    samples_per_step = cfg.batch_size * cfg.grad_accum * accelerator.num_processes

    if main:
        (run.path / "recipe.yaml").write_text(recipe.to_yaml())
        _print_plan(console, recipe, data, unwrapped, accelerator, total_steps, run.path, state["step"], resumed_from)
    if cfg.trackers:
        accelerator.project_configuration.set_directories(str(run.path))
        accelerator.init_trackers(recipe.run.name, config=_flat(recipe.tree))

    def save(kind: str) -> None:
        """Checkpoint everything needed to continue exactly: ``last`` (+ ``best`` / ``step_N``)."""
        rngs = gather_object([rng_state()]) if accelerator.num_processes > 1 else [rng_state()]
        state["seconds"], state["loss_seconds"] = dict(timer.seconds), dict(losses.seconds)
        if not main:
            return
        with timer.phase("checkpoint"):
            payload = {"model": unwrapped.state_dict(), "optimizer": optimizer.state_dict(),
                       "scaler": accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
                       "state": state, "rng": rngs, "recipe": recipe.tree, "versions": versions(),
                       "stats": {"mean": fmt.mean, "std": fmt.std}}
            # last.pt goes last: a process killed before it resumes from the previous last.pt and
            # writes this step's step_N.pt / best.pt again, so none is ever skipped.
            numbered = cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0
            save_checkpoint(payload, *([run.numbered(state["step"])] if numbered else []),
                            *([run.best] if kind == "best" else []), run.last)

    val_counts: dict[str, torch.Tensor] = {}  # the last evaluation's code histogram, kept for the report

    def run_eval(step: int) -> dict[str, float]:
        with timer.phase("evaluation"):
            result, val_counts["val"] = evaluate_split(model, data.val_batches(), fmt, losses, metrics, accelerator, step)
        if main and result:
            run.log({"step": step, "split": "val", **result})
            console.print(f"[cyan]val[/] step {step}: " + "  ".join(
                f"{k} {v:.4g}" for k, v in result.items() if not k.startswith("codebook_")))
        if cfg.trackers and result:
            accelerator.log({f"val/{k}": v for k, v in result.items()}, step=step)
        return result

    # ---- the loop
    window_sums: dict[str, torch.Tensor] = {}
    window_count, window_start = 0, time.perf_counter()
    progress = Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=console, disable=not main)
    with progress:
        task = progress.add_task("train", total=total_steps, completed=state["step"], status="")
        for step in range(state["step"], total_steps):
            step_start = time.perf_counter()
            lr = learning_rate(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr

            skip = False
            for micro in range(cfg.grad_accum):
                with timer.phase("data"):
                    batch = data.train_batch(step * cfg.grad_accum + micro, accelerator.device)
                # Gradients are averaged across processes only on the last micro-batch.
                sync = accelerator.no_sync(model) if micro < cfg.grad_accum - 1 else contextlib.nullcontext()
                with sync:
                    with timer.phase("forward"), accelerator.autocast():
                        outputs = model(batch["motion"])
                    with accelerator.autocast():
                        loss, terms = losses(batch, outputs, fmt, step)
                    # This reads the loss on the host: one device sync per step, the price of
                    # stopping at the first NaN instead of training on garbage.
                    if not all_finite(loss, accelerator):
                        if cfg.on_nonfinite == "stop":
                            raise TrainingError(_nonfinite_message(step, loss, terms, run))
                        skip = True
                        break
                    if micro == 0:
                        # Zeroed here rather than after the step: the gradient memory is then
                        # reused by this backward instead of being freed and faulted in again.
                        with timer.phase("optimizer"):
                            optimizer.zero_grad(set_to_none=True)
                    with timer.phase("backward"):
                        accelerator.backward(loss / cfg.grad_accum)
            with timer.phase("optimizer"):
                if skip:
                    state["nonfinite_skipped"] += 1
                else:
                    if cfg.grad_clip:
                        accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                    optimizer.step()

            done = state["step"] = step + 1
            if not skip:
                for name, value in {"loss": loss.detach(), **terms}.items():
                    window_sums[name] = window_sums.get(name, 0) + value
                window_count += 1
            elapsed = time.perf_counter() - step_start
            state["train_seconds"] += elapsed
            state["recent_step_times"] = state["recent_step_times"][-(RECENT_STEPS - 1):] + [elapsed]
            if done % cfg.log_every == 0 or done == total_steps:
                with timer.phase("logging"):
                    row = _log_row(done, lr, window_sums, window_count, window_start, samples_per_step, accelerator)
                    for name, value in row.items():
                        if name not in ("step", "lr", "samples_per_s"):
                            state["loss_sums"][name] = state["loss_sums"].get(name, 0.0) + value
                    state["logged_steps"] += 1
                    state["final_losses"] = {k: v for k, v in row.items() if k not in ("step", "lr", "samples_per_s")}
                    if main:
                        run.log(row)
                        progress.update(task, status=_status(row, state["nonfinite_skipped"]))
                    if cfg.trackers:
                        accelerator.log({f"train/{k}": v for k, v in row.items() if k != "step"}, step=done)
                window_sums, window_count, window_start = {}, 0, time.perf_counter()
            progress.update(task, completed=done)

            if done < total_steps and cfg.eval_every and done % cfg.eval_every == 0:
                last_eval = run_eval(done)
                improved = _improved(last_eval, recipe.eval.best, state, best_higher)
                save("best" if improved else "last")
            elif done < total_steps and cfg.checkpoint_every and done % cfg.checkpoint_every == 0:
                save("last")

    # ---- final evaluation, checkpoint and report
    last_eval = run_eval(state["step"])
    improved = _improved(last_eval, recipe.eval.best, state, best_higher)
    if main and (warning := _collapse_warning(state, recipe.eval.best)):
        console.print(f"[yellow]warning:[/] {warning}")
    codebook, histogram = {}, None
    if recipe.eval.train_codebook:
        with timer.phase("evaluation"):
            histogram = code_histogram_over(model, data.train_eval_batches(), accelerator)
        codebook["train"] = {"size": histogram.numel(), **usage_from_histogram(histogram.cpu())}
    if last_eval:
        codebook["val"] = {"size": unwrapped.quantizer.codebook_size,
                           **{k.removeprefix("codebook_"): v for k, v in last_eval.items() if k.startswith("codebook_")}}
    val_histogram = val_counts["val"] if last_eval else None  # the per-code counts behind codebook["val"]
    save("best" if improved else "last")
    in_sync = replicas_identical(unwrapped, accelerator)
    accelerator.wait_for_everyone()
    if main:
        report = _report(recipe, run, data, unwrapped, losses, timer, state, last_eval, codebook,
                         accelerator, samples_per_step)
        report["run"]["replicas_identical"] = in_sync
        report["data"].update(data_record(recipe, dataset, data))
        run.write_code_counts({split: counts.cpu().tolist() for split, counts in
                               (("train", histogram), ("val", val_histogram)) if counts is not None})
        if has_matplotlib():  # figures first, so report.md can show them
            write_report_figures(run.path, histogram)
        write_report(run.path, report)
        print_report(report, console)
        console.print(f"[green]done[/] {state['step']} steps. Run directory: [bold]{run.path}[/]")
    # No process tears its process group down while another still reports through its own.
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return run.path


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


def _log_row(step, lr, sums, count, start, samples_per_step, accelerator) -> dict:
    """Averages over the steps since the last row, reduced across processes (one sync).

    Every process skips the same steps (``all_finite``), so all hold the same names, or none
    when the whole window was skipped; either way each takes part in the one reduction.
    """
    names = sorted(sums)
    values = torch.stack([torch.as_tensor(sums[n], dtype=torch.float32) for n in names]) / max(count, 1) \
        if names else torch.zeros(0)
    values = accelerator.reduce(values.to(accelerator.device), "mean").tolist()
    elapsed = time.perf_counter() - start
    return {"step": step, "lr": lr, **dict(zip(names, values)),
            "samples_per_s": count * samples_per_step / elapsed if elapsed > 0 else 0.0}


def _status(row: dict, skipped: int) -> str:
    text = f"loss {row.get('loss', float('nan')):.4f}  lr {row['lr']:.2e}  {row['samples_per_s']:.0f} samples/s"
    return text + (f"  [yellow]{skipped} non-finite steps skipped" if skipped else "")


def _improved(result: dict[str, float], key: str, state: dict, higher_is_better: bool) -> bool:
    """Whether ``result`` beats the best so far by ``key``; records it and the figures that show collapse."""
    if key not in result:
        if result and not state.get("best_missing_warned"):
            state["best_missing_warned"] = True
            figures = ", ".join(sorted(k for k in result if not k.startswith("codebook_")))
            logger.warning(f"eval.best: evaluation gives no figure '{key}'{did_you_mean(key, list(result)) or '.'} "
                           f"No best.pt is kept. Figures of this run: {figures}")
        return False
    value = result[key]
    if state["best"] is None or (value > state["best"] if higher_is_better else value < state["best"]):
        state["best"] = value
        state["best_step"] = result.get("step", state["step"])
        state["best_collapse"] = _collapse(result)
        return True
    return False


def _collapse(result: dict[str, float]) -> str | None:
    """Why evaluation ``result`` shows a collapsed model (one code, one predicted class), or None."""
    signs = []
    if result.get("codebook_used") == 1:
        signs.append("uses a single code")
    if result.get("predicted_classes") == 1:
        signs.append("predicts a single class everywhere")
    return " and ".join(signs) or None


def _collapse_warning(state: dict, best: str) -> str | None:
    """The warning to print when checkpoints/best.pt holds a collapsed model."""
    if not state.get("best_collapse"):
        return None
    return (f"checkpoints/best.pt (step {state.get('best_step', '?')}, {best} {state['best']:.4g}) "
            f"{state['best_collapse']}: the model had collapsed when it was selected. Train longer or add a "
            f"codebook-usage loss; if the model recovers but best.pt stays here, select by a figure that a "
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


def _report(recipe, run, data, model, losses, timer, state, last_eval, codebook, accelerator, samples_per_step):
    sample = data.example_window().to(accelerator.device)

    def scalar(out):
        return sum(v.float().mean() for k, v in out.items() if k in ("recon", "logits")) + out["aux_loss"].mean()

    # A copy: the parameters of the trained model carry data parallelism's gradient hooks, and a
    # backward through them on this process alone could start an all-reduce no other joins.
    flops = flops_per_sample(copy.deepcopy(model), sample, scalar)
    steps = state["step"]
    step_s = statistics.median(state["recent_step_times"]) if state["recent_step_times"] else 0.0
    seconds = dict(timer.seconds)
    for name, value in losses.seconds.items():
        seconds[f"loss: {name}"] = value
    total_s = state["train_seconds"] + seconds.get("evaluation", 0.0) + seconds.get("checkpoint", 0.0)
    breakdown = PhaseTimer(seconds=seconds).breakdown()
    logged = max(state["logged_steps"], 1)
    return {
        "run": {"name": recipe.run.name, "recipe": recipe.source, "directory": str(run.path),
                "device": str(accelerator.device), "processes": accelerator.num_processes,
                "precision": recipe.train.precision, "motionhub": __version__},
        "parameters": parameter_counts(model),
        "flops": flops,
        "time": {"total_s": total_s, "steps": steps, "step_s": step_s,
                 "epoch_s": step_s * data.batches_per_epoch,
                 "samples": steps * samples_per_step,
                 "samples_per_s": samples_per_step / step_s if step_s else 0.0,
                 "steps_per_s": 1 / step_s if step_s else 0.0,
                 "nonfinite_skipped": state["nonfinite_skipped"]},
        "memory": peak_memory(),
        "checkpoint": {"path": str(run.last), "size_mib": run.last.stat().st_size / 2**20},
        "codebook": codebook,
        "losses": {"final": state.get("final_losses", {}),
                   "mean": {k: v / logged for k, v in state["loss_sums"].items()},
                   "without_gradient": sorted(losses.without_gradient)},
        "eval": last_eval,
        "best": {"figure": recipe.eval.best, "value": state["best"], "step": state.get("best_step"),
                 "collapse_warning": _collapse_warning(state, recipe.eval.best)},
        "data": {"train_clips": data.train_clips, "dropped_short": data.dropped},
        "breakdown": breakdown,
    }


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out


def _print_plan(console, recipe, data, model, accelerator, total_steps, run_dir, start_step, resumed_from=None) -> None:
    """Derived numbers up front, so a wrong setting is visible before minutes are spent."""
    cfg = recipe.train
    window, down = recipe.data.window, model.downsample
    counts = parameter_counts(model)
    console.print(f"[bold]motionhub {__version__}[/]  run [bold]{recipe.run.name}[/] -> {run_dir}")
    console.print(f"data      {data.description}: {data.train_clips:,} train clips, {data.train_frames:,} frames; "
                  f"{data.dropped:,} shorter than the {window}-frame window dropped")
    console.print(f"model     encoder {counts['encoder']:,} + quantizer {counts['quantizer']:,} + decoder "
                  f"{counts['decoder']:,} = {counts['trainable']:,} trainable parameters")
    console.print(f"tokens    {math.ceil(window / down)} per window (down-sampling x{down}), "
                  f"codebook {model.quantizer.codebook_size:,} codes")
    console.print(f"training  {total_steps:,} steps ({cfg.warmup_iters:,} warm-up) x {cfg.batch_size} windows"
                  f"{f' x {cfg.grad_accum} micro-batches' if cfg.grad_accum > 1 else ''} x "
                  f"{accelerator.num_processes} process(es) on {accelerator.device}, precision {cfg.precision}; "
                  f"{data.batches_per_epoch:,} steps per epoch")
    if start_step:
        console.print(f"[yellow]resuming[/] at step {start_step:,} from {resumed_from or run_dir / 'checkpoints' / 'last.pt'}")
