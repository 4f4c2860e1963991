"""The efficiency report written at the end of every run: ``report.json`` + ``report.md``.

Everything a researcher used to collect by hand: parameters per component, FLOPs per
sample, time per step / epoch, throughput, peak memory, checkpoint size, codebook use on
train and val, losses, evaluation metrics and where the time went.
"""

from __future__ import annotations

import json
import resource
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode


def parameter_counts(model) -> dict[str, int]:
    """Trainable parameters per component, the total, and the non-trainable ones."""
    def trainable(module) -> int:
        return sum(p.numel() for p in module.parameters() if p.requires_grad)

    counts = {name: trainable(getattr(model, name)) for name in ("encoder", "quantizer", "decoder")}
    counts["trainable"] = trainable(model)
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts


def flops_per_sample(model, sample: torch.Tensor, loss_fn) -> dict[str, int]:
    """Forward and training (forward + backward) FLOPs of one sample, by torch's FLOP counter.

    ``sample`` is (1, T, *F); ``loss_fn(outputs)`` returns the scalar to back-propagate.
    The model's training state (e.g. EMA codebooks) is left untouched: it runs in eval mode
    and the gradients are discarded.
    """
    was_training = model.training
    model.eval()
    try:
        # Both passes run with gradients on: the counter's module tracking does not accept
        # views of parameters made under no_grad, which some models build (learned queries).
        with FlopCounterMode(display=False) as forward:
            outputs = model(sample)
        with FlopCounterMode(display=False) as backward:
            loss_fn(outputs).backward()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return {"forward": int(forward.get_total_flops()),
            "train": int(forward.get_total_flops() + backward.get_total_flops())}


def peak_memory() -> dict[str, float]:
    """Peak resident memory of this process and, on a GPU, peak allocated / reserved (MiB)."""
    out = {"cpu_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if torch.cuda.is_available():
        out["gpu_peak_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
        out["gpu_peak_reserved_mib"] = torch.cuda.max_memory_reserved() / 2**20
    return out


def write_report(run_dir: Path, report: dict[str, Any]) -> None:
    (run_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (run_dir / "report.md").write_text(render_markdown(report))


def load_report(run_dir: Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / "report.json").read_text())


# ---------------------------------------------------------------------------- rendering
def _rows(report: dict[str, Any]) -> list[tuple]:
    """The report as (section, [(label, value)]) for both the Markdown and the terminal table; a
    section with two columns of figures is (section, [(label, value, value)], column names)."""
    p, t, m = report["parameters"], report["time"], report["memory"]
    sections = [
        ("Parameters", [("total", f"{p['total']:,}"), ("trainable", f"{p['trainable']:,}"),
                        *[(name, f"{p[name]:,} ({p[name] / max(p['trainable'], 1):.1%})")
                          for name in ("encoder", "quantizer", "decoder")]]),
        ("Compute", [("forward FLOPs / sample", _si(report["flops"]["forward"])),
                     ("training FLOPs / sample", _si(report["flops"]["train"])),
                     ("training FLOPs, whole run", _si(report["flops"]["train"] * t["samples"]))]),
        ("Time", [("total", _duration(t["total_s"])), ("steps", f"{t['steps']:,}"),
                  ("time / step", f"{t['step_s']:.4f} s"), *_epoch_rows(t, report.get("epoch")),
                  ("samples / s", f"{t['samples_per_s']:.1f}"), ("steps / s", f"{t['steps_per_s']:.2f}")]),
        ("Memory", [(k.replace("_mib", "").replace("_", " "), f"{v:,.0f} MiB") for k, v in m.items()]
         + [("checkpoint", f"{report['checkpoint']['size_mib']:.1f} MiB")]),
    ]
    data = report.get("data", {})
    if data.get("splits"):  # older reports do not say what they trained on
        sections.append(("Data", [("data set", data["description"])] + [
            (split, f"{s['clips']:,} clips, {s['frames']:,} frames (fingerprint {s['fingerprint'][:12]})"
                    + _storage(s))
            for split, s in data["splits"].items()] + _left_out(data) + _samples(data)))
    codebook = []
    for split, usage in report.get("codebook", {}).items():
        clips = f" ({usage['clips']:,} clips)" if usage.get("clips") else ""
        codebook.append((f"{split}{clips}: codes used", codes_used(usage)))
        codebook.append((f"{split}: dead codes", f"{usage['dead']:,}"))
        codebook.append((f"{split}: perplexity", f"{usage['perplexity']:.1f} (normalised {usage['normalised_perplexity']:.3f})"))
    if codebook:
        sections.append(("Codebook", codebook))
    losses = report.get("losses", {})
    if losses:
        inert = set(losses.get("without_gradient", ()))
        sections.append(("Losses", [(name, f"final {losses['final'].get(name, float('nan')):.4f}, mean {value:.4f}"
                                           + (" (no gradient: changes the total, never the update)"
                                              if name in inert else ""))
                                    for name, value in losses["mean"].items()]))
    if report.get("eval") or report.get("eval_train"):
        sections.append(_evaluation(report))
    best = report.get("best")
    if best and best.get("value") is not None:
        rows = [("selected by", f"{best['figure']} = {best['value']:.4g} at step {best['step']}")]
        if best.get("collapse_warning"):
            rows.append(("warning", best["collapse_warning"]))
        sections.append(("Best checkpoint", rows))
    sections.append(("Time breakdown", [(phase, f"{v['seconds']:.2f} s ({v['fraction']:.1%})")
                                        for phase, v in report["breakdown"].items()]))
    profile = report.get("profile")
    if profile:  # forward and backward of each part and loss, on the profiled steps
        steps = f"{profile['steps']:,} profiled step{'s' * (profile['steps'] != 1)}"
        sections.append((f"Time per part (mean of {steps})", [
            (part, f"forward {_ms(v['forward_s'])}, backward {_ms(v['backward_s'])} ({v['fraction']:.1%})")
            for part, v in profile["parts"].items()]))
    return sections


def codes_used(usage: dict[str, Any]) -> str:
    """``"1,864 used: 97.1% of the 1,920 real codes (nominal 2048: 91.0%)"``; a codebook whose size is
    the one the recipe asks for gives ``"30 used: 93.8% of the 32 codes"``."""
    used, size, nominal = usage["used"], usage["size"], usage.get("nominal_size")
    if nominal:
        return f"{used:,} used: {used / size:.1%} of the {size:,} real codes (nominal {nominal}: {used / nominal:.1%})"
    return f"{used:,} used: {used / size:.1%} of the {size:,} codes"


def _evaluation(report: dict[str, Any]) -> tuple:
    """Final figures on val and, beside them, on the train clips evaluated; the mean val loss over
    every evaluation under the final one."""
    val, train = report.get("eval") or {}, report.get("eval_train") or {}
    names = [k for k in [*val, *(k for k in train if k not in val)] if not k.startswith("codebook_")]
    history = report.get("eval_history") or {}
    mean = history.get("mean_loss")
    mean_row = [] if mean is None else [(f"loss: mean of {history['evaluations']:,} evaluation"
                                         f"{'s' * (history['evaluations'] != 1)}", _figure(mean))]
    if not train:
        rows = [(k, _figure(val[k])) for k in names]
        return ("Evaluation (val)", rows[:1] + mean_row + rows[1:] if "loss" in val else rows + mean_row)
    clips = (report.get("data") or {}).get("train_eval_clips")
    columns = ("", "val", f"train ({clips:,} clips)" if clips else "train")
    rows = [(k, _figure(val.get(k)), _figure(train.get(k))) for k in names]
    mean_row = [(label, value, "") for label, value in mean_row]
    return ("Evaluation", rows[:1] + mean_row + rows[1:] if "loss" in val else rows + mean_row, columns)


def _figure(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _epoch_rows(t: dict[str, Any], epoch: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Epochs done and the measured time per epoch (older reports: the time per epoch alone)."""
    if "epochs" not in t or not epoch:
        return [("time / epoch", _duration(t["epoch_s"]))]
    return [("epochs", f"{t['epochs']:.3g} ({epoch['steps']:g} steps, {epoch['windows']:,} windows per epoch)"),
            ("time / epoch", f"{_seconds(t['epoch_s'])} (measured: {_seconds(t['train_s'])} in training steps "
                             f"/ {t['epochs']:.3g} epochs)")]


def _storage(split: dict[str, Any]) -> str:
    """", 1.2 MiB on disk" for a packed split, ", in memory" for clips held in memory, "" for older reports."""
    if split.get("store") == "memory":
        return ", in memory"
    if split.get("bytes") is not None:
        return f", {_bytes(split['bytes'])} on disk"
    return ""


def _samples(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Windows the run trained on: steps x batch x micro-batches x processes."""
    samples = data.get("samples")
    if not samples:
        return []
    return [("samples processed", f"{samples['windows']:,} windows ({samples['steps']:,} steps x "
                                  f"{samples['batch_size']} windows x {samples['grad_accum']} micro-batch"
                                  f"{'es' * (samples['grad_accum'] != 1)} x {samples['processes']} process"
                                  f"{'es' * (samples['processes'] != 1)})")]


def _bytes(size: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size:,} bytes"


def _seconds(seconds: float) -> str:
    return f"{seconds:.3g} s" if seconds < 120 else _duration(seconds)


def _left_out(data: dict[str, Any]) -> list[tuple[str, str]]:
    """The row naming the train clips the sampler left out (older reports and runs that left none
    out have none); report.json lists every one."""
    clips = data.get("dropped_short_clips")
    if not clips:
        return []
    return [("left out", f"{data['dropped_summary']} (all {len(clips):,} in report.json)")]


def render_markdown(report: dict[str, Any]) -> str:
    lines = [f"# Training report: {report['run']['name']}", "",
             f"Recipe `{report['run']['recipe']}` · {report['run']['device']} · "
             f"{report['run']['processes']} process(es) · precision {report['run']['precision']}", ""]
    for title, rows, *columns in _rows(report):  # a section may name its columns: (title, rows, columns)
        header = columns[0] if columns else ("", "")
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |",
                  *["| " + " | ".join(row) + " |" for row in rows], ""]
    figures = [name for name in ("loss_curves.png", "codebook_usage.png")
               if (Path(report["run"]["directory"]) / name).is_file()]
    if figures:
        lines += ["## Figures", "", *[f"![{name}]({name})" for name in figures], ""]
    return "\n".join(lines)


def print_report(report: dict[str, Any], console: Console) -> None:
    table = Table(title=f"report: {report['run']['name']}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    for title, rows, *columns in _rows(report):
        table.add_section()
        if not columns:
            table.add_row(f"[underline]{title}", "")
            for label, value in rows:
                table.add_row(label, value)
            continue
        # figures side by side (val, train) in one cell, the first padded to line the second up
        width = max(len(value) for _, value, *_ in [columns[0], *rows])
        table.add_row(f"[underline]{title}", escape("  ".join([columns[0][1].ljust(width), *columns[0][2:]])))
        for label, value, *more in rows:
            table.add_row(label, escape("  ".join([value.ljust(width), *more]).rstrip()))
    console.print(table)


def _si(value: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.2f} h"
