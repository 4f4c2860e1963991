"""The training loop: one readable function from recipe to run directory.

Accelerate owns devices, mixed precision and data parallelism. The learning rate is set by
hand every optimizer step (linear warm-up, then MultiStepLR-style decay) so the schedule
is the same whatever the number of processes.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from . import __version__
from .build import build_dataset, build_losses, build_tokenizer
from .checkpoint import save_atomic
from .errors import DataError
from .recipe import Recipe, TrainConfig
from .windows import ClipBank, WindowSampler


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """lr at optimizer step ``step`` (0-based): warm-up as T2M-GPT, then decay at milestones.

    Milestones count steps after warm-up, as the references' MultiStepLR does.
    """
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / (cfg.warmup_iters + 1)
    passed = sum(step - cfg.warmup_iters >= m for m in cfg.milestones)
    return cfg.lr * cfg.gamma**passed


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def new_run_dir(out: str | Path) -> Path:
    """``out`` if it holds no earlier run, else ``out-2``, ``out-3``... (never overwrite a run)."""
    out = Path(out)
    candidate, n = out, 1
    while (candidate / "checkpoints").exists():
        n += 1
        candidate = out.with_name(f"{out.name}-{n}")
    candidate.mkdir(parents=True, exist_ok=True)
    return candidate


def train(recipe: Recipe, console: Console | None = None) -> Path:
    """Train what ``recipe`` names; returns the run directory."""
    console = console or Console(stderr=True)
    cfg = recipe.train
    accelerator = Accelerator(mixed_precision="no" if cfg.precision == "fp32" else cfg.precision)
    seed_everything(recipe.run.seed + accelerator.process_index)
    main = accelerator.is_main_process

    # ---- data: windows are gathered from one in-memory bank per split
    dataset = build_dataset(recipe)
    fmt = dataset.format
    bank = ClipBank.from_clips(dataset.clips("train"))
    sampler = WindowSampler(bank, fmt, recipe.data.window, cfg.batch_size,
                            seed=recipe.run.seed, rank=accelerator.process_index)
    val_sampler = _val_sampler(dataset, fmt, recipe, cfg.batch_size)

    # ---- model, losses, optimizer
    torch.manual_seed(recipe.run.seed)  # identical initial weights on every process
    model = build_tokenizer(recipe, fmt)
    losses = build_losses(recipe)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate(0, cfg),
                                  betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(model)
    total_steps = cfg.warmup_iters + cfg.iters

    run_dir = new_run_dir(recipe.run.out) if main else Path(recipe.run.out)
    if main:
        (run_dir / "recipe.yaml").write_text(recipe.to_yaml())
        _print_plan(console, recipe, dataset, bank, sampler, unwrapped, accelerator, total_steps, run_dir)

    # ---- the loop
    metrics = (run_dir / "metrics.jsonl").open("a") if main else None
    window_sums: dict[str, float] = {}
    window_count, window_start = 0, time.perf_counter()
    progress = Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=console, disable=not main)
    with progress:
        task = progress.add_task("train", total=total_steps, status="")
        for step in range(total_steps):
            lr = learning_rate(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr

            batch = {"motion": sampler.batch(step).to(accelerator.device)}
            with accelerator.autocast():
                outputs = model(batch["motion"])
                loss, terms = losses(batch, outputs, fmt, step)
            if not torch.isfinite(loss):
                raise DataError(f"non-finite loss at step {step}: "
                                + ", ".join(f"{k}={v.item():.4g}" for k, v in terms.items()))
            accelerator.backward(loss)
            if cfg.grad_clip:
                accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

            # sums stay on the device; .item() syncs, so only read them when logging
            for name, value in {"loss": loss.detach(), **terms}.items():
                window_sums[name] = window_sums.get(name, 0.0) + value
            window_count += 1
            done = step + 1
            if done % cfg.log_every == 0 or done == total_steps:
                elapsed = time.perf_counter() - window_start
                row = {"step": done, "lr": lr,
                       **{k: float(accelerator.reduce(v / window_count, "mean")) for k, v in window_sums.items()},
                       "samples_per_s": window_count * cfg.batch_size * accelerator.num_processes / elapsed}
                if main:
                    metrics.write(json.dumps(row) + "\n")
                    metrics.flush()
                    progress.update(task, status=f"loss {row['loss']:.4f}  lr {lr:.2e}  {row['samples_per_s']:.0f} samples/s")
                window_sums, window_count, window_start = {}, 0, time.perf_counter()
            progress.update(task, completed=done)

    # ---- evaluation and the final checkpoint
    model.eval()
    val_loss = _val_loss(model, losses, val_sampler, fmt, accelerator, total_steps) if val_sampler else None
    accelerator.wait_for_everyone()
    if main:
        if val_loss is not None:
            metrics.write(json.dumps({"step": total_steps, "split": "val", "loss": val_loss}) + "\n")
        metrics.close()
        save_atomic({
            "model": unwrapped.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": total_steps,
            "recipe": recipe.tree,
            "versions": _versions(),
        }, run_dir / "checkpoints" / "last.pt")
        summary = f"val loss {val_loss:.4f}" if val_loss is not None else "no val split"
        console.print(f"[green]done[/] {total_steps} steps, {summary}. Run directory: [bold]{run_dir}[/]")
    accelerator.end_training()
    return run_dir


def _val_sampler(dataset, fmt, recipe: Recipe, batch_size: int) -> WindowSampler | None:
    clips = list(dataset.clips("val"))
    if not clips:
        return None
    return WindowSampler(ClipBank.from_clips(clips), fmt, recipe.data.window, batch_size,
                         seed=recipe.run.seed + 1)


@torch.no_grad()
def _val_loss(model, losses, sampler: WindowSampler, fmt, accelerator, step: int, batches: int = 4) -> float:
    values = []
    for i in range(batches):
        batch = {"motion": sampler.batch(i).to(accelerator.device)}
        with accelerator.autocast():
            loss, _ = losses(batch, model(batch["motion"]), fmt, step)
        values.append(loss.float())
    return float(accelerator.reduce(torch.stack(values).mean(), "mean"))


def _versions() -> dict[str, str | None]:
    from .plugins import plugin_infos

    return {"motionhub": __version__, **{p.name: p.version for p in plugin_infos() if p.distribution}}


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _print_plan(console, recipe, dataset, bank, sampler, model, accelerator, total_steps, run_dir) -> None:
    """Derived numbers up front, so a wrong setting is visible before minutes are spent."""
    cfg = recipe.train
    window, down = recipe.data.window, model.downsample
    console.print(f"[bold]motionhub {__version__}[/]  run [bold]{recipe.run.name}[/] -> {run_dir}")
    console.print(f"data      {dataset.describe()}: {len(bank)} train clips, {bank.frames.shape[0]} frames; "
                  f"{sampler.dropped} shorter than the {window}-frame window dropped")
    console.print(f"model     encoder {count_parameters(model.encoder):,} + quantizer "
                  f"{count_parameters(model.quantizer):,} + decoder {count_parameters(model.decoder):,} "
                  f"= {count_parameters(model):,} trainable parameters")
    console.print(f"tokens    {math.ceil(window / down)} per window (down-sampling x{down}), "
                  f"codebook {model.quantizer.codebook_size:,} codes")
    console.print(f"training  {total_steps} steps ({cfg.warmup_iters} warm-up) x {cfg.batch_size} windows x "
                  f"{accelerator.num_processes} process(es) on {accelerator.device}, precision {cfg.precision}")
