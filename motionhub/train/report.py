"""The efficiency report written at the end of every run: ``report.json`` + ``report.md``.

Everything a researcher used to collect by hand: parameters per component, FLOPs per
sample and per batch, time per step / epoch, throughput, how close the run came to the
machine's dense matmul rate, memory of the weights, gradients and optimizer state beside the
measured peak, where the run was (machine, versions, plugins, tracker), checkpoint size,
codebook use on train and val, losses, evaluation metrics, where the time went, and the figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from motionhub.model.metrics import figure_unit
from motionhub.train.hardware import describe_ceiling, machine, memory_kind, memory_peak, peak_rss_mib, si

# Figures a run directory may hold, in the order report.md shows them (drawn by motionhub.train.figures).
REPORT_FIGURES = ("loss_curves.png", "codebook_usage.png", "codebook_splits.png", "time_breakdown.png",
                  "memory.png")


def parameter_counts(model) -> dict[str, Any]:
    """Trainable parameters per component, the trainable, non-trainable and total counts, and the
    trainable share of the total."""
    def trainable(module) -> int:
        return sum(p.numel() for p in module.parameters() if p.requires_grad)

    counts: dict[str, Any] = {name: trainable(getattr(model, name)) for name in ("encoder", "quantizer", "decoder")}
    counts["trainable"] = trainable(model)
    counts["total"] = sum(p.numel() for p in model.parameters())
    counts["non_trainable"] = counts["total"] - counts["trainable"]
    counts["trainable_share"] = counts["trainable"] / counts["total"] if counts["total"] else 0.0
    return counts


def count_flops(model, inputs: torch.Tensor, loss_fn) -> dict[str, int]:
    """Forward and backward FLOPs of one pass of ``inputs`` through ``model``, by torch's FLOP counter.

    ``loss_fn(outputs)`` returns the scalar to back-propagate (its own arithmetic, a few sums, is
    not counted: the counter counts matrix products and convolutions). The model runs in eval
    mode and its gradients are discarded, so training state (EMA codebooks) is left untouched;
    pass a copy of a model that data parallelism wraps.
    """
    was_training = model.training
    model.eval()
    try:
        # Both passes run with gradients on: the counter's module tracking does not accept
        # views of parameters made under no_grad, which some models build (learned queries).
        with FlopCounterMode(display=False) as forward:
            outputs = model(inputs)
        with FlopCounterMode(display=False) as backward:
            loss = loss_fn(outputs)
            if loss.requires_grad:  # else no weight is trained through the outputs (they feed a loss that embeds)
                loss.backward()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return {"forward": int(forward.get_total_flops()), "backward": int(backward.get_total_flops()),
            "train": int(forward.get_total_flops() + backward.get_total_flops())}


def flops_record(counted: dict[str, int], windows: int, grad_accum: int = 1) -> dict[str, Any]:
    """The report's ``flops``: ``counted`` on one training batch of ``windows`` windows, per sample,
    per batch and per optimizer step of one process (``grad_accum`` batches)."""
    return {"forward": counted["forward"] // max(windows, 1), "train": counted["train"] // max(windows, 1),
            "batch_windows": windows, "batch_forward": counted["forward"], "batch_train": counted["train"],
            "step_train": counted["train"] * grad_accum,
            "method": f"torch.utils.flop_counter.FlopCounterMode, over one forward and backward of the model on "
                      f"the run's first training batch ({windows} windows): matrix products and convolutions (the "
                      f"loss terms' own arithmetic is not counted)"}


def speed_record(flops: dict[str, Any], step_s: float, steps: int, train_s: float, processes: int,
                 ceiling: dict[str, Any]) -> dict[str, Any]:
    """Achieved FLOP/s against the dense matmul ``ceiling`` of one device.

    ``step``: one process's training FLOPs per optimizer step over the median step time; ``run``:
    every process's training FLOPs over all ``steps`` divided by the wall time inside training
    steps, against ``processes`` ceilings.
    """
    step_rate = flops["step_train"] / step_s if step_s else 0.0
    run_flops = flops["step_train"] * steps * processes
    run_rate = run_flops / train_s if train_s else 0.0
    peak = ceiling["flop_per_s"]
    return {"ceiling": ceiling, "processes": processes,
            "step_flop_per_s": step_rate, "step_fraction": step_rate / peak if peak else 0.0,
            "run_flops": run_flops, "run_train_s": train_s,
            "run_flop_per_s": run_rate, "run_fraction": run_rate / (peak * processes) if peak else 0.0}


def tensor_bytes(model, optimizer=None) -> dict[str, int]:
    """Bytes of the model's parameters, of the gradients its trainable parameters take (their
    size and dtype), of the optimizer's state (every tensor it holds: AdamW keeps two moments
    per parameter, and a step count) and of the model's buffers (EMA codebooks, statistics)."""
    parameters = list(model.parameters())
    out = {"parameters": sum(p.numel() * p.element_size() for p in parameters),
           "gradients": sum(p.numel() * p.element_size() for p in parameters if p.requires_grad),
           "optimizer": 0 if optimizer is None else sum(t.numel() * t.element_size()
                                                        for state in optimizer.state.values()
                                                        for t in state.values() if torch.is_tensor(t)),
           "buffers": sum(b.numel() * b.element_size() for b in model.buffers())}
    out["total"] = sum(out.values())
    return out


def memory_record(model, optimizer, device: torch.device | str) -> dict[str, Any]:
    """The report's ``memory``: the tensors' bytes (``tensor_bytes``) beside the measured peak."""
    device = torch.device(device)
    out: dict[str, Any] = {"cpu_peak_rss_mib": peak_rss_mib()}
    if device.type == "cuda":
        out["gpu_peak_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        out["gpu_peak_reserved_mib"] = torch.cuda.max_memory_reserved(device) / 2**20
    kind = memory_kind(device)
    out.update({"peak_mib": memory_peak(device), "peak_kind": kind["peak"], "logged_kind": kind["now"],
                "optimizer": type(optimizer).__name__ if optimizer is not None else None,
                "tensors": tensor_bytes(model, optimizer)})
    if optimizer is not None and hasattr(optimizer, "optimizer"):  # Accelerate's wrapper: name the one inside
        out["optimizer"] = type(optimizer.optimizer).__name__
    return out


def peak_memory() -> dict[str, float]:
    """Peak resident memory of this process and, on a GPU, peak allocated / reserved (MiB)."""
    out = {"cpu_peak_rss_mib": peak_rss_mib()}
    if torch.cuda.is_available():
        out["gpu_peak_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
        out["gpu_peak_reserved_mib"] = torch.cuda.max_memory_reserved() / 2**20
    return out


def plugins_used(recipe) -> dict[str, dict[str, Any]]:
    """The plugins that provided the recipe's components: ``{plugin: {"origin", "components"}}``;
    ``origin`` is ``built-in (motionhub 0.1.0)``, ``motionhub-x 0.3.1`` or ``registered in-process``."""
    from motionhub import __version__
    from motionhub.plugins.manager import plugin_infos

    infos = {info.name: info for info in plugin_infos()}
    specs = [("data", recipe.data), ("encoder", recipe.encoder), ("quantizer", recipe.quantizer),
             ("decoder", recipe.decoder), *[("loss", spec) for spec in recipe.losses],
             *[("metric", spec) for spec in recipe.metrics or ()]]
    out: dict[str, dict[str, Any]] = {}
    for kind, spec in specs:
        provider = spec.component.provider
        info = infos.get(provider)
        origin = ("registered in-process" if info is None else
                  f"built-in (motionhub {__version__})" if info.builtin else info.origin)
        entry = out.setdefault(provider, {"origin": origin, "components": []})
        name = f"{kind} {spec.component.name}"
        if name not in entry["components"]:
            entry["components"].append(name)
    return out


def tracker_records(trackers) -> list[dict[str, Any]]:
    """Each started tracker's name and, where it has them, its run id, address and log folder."""
    out = []
    for tracker in trackers or ():
        record: dict[str, Any] = {"name": getattr(tracker, "name", type(tracker).__name__)}
        run = getattr(tracker, "run", None)
        for key, value in (("run_id", getattr(run, "id", None)), ("url", getattr(run, "url", None)),
                           ("log_dir", getattr(tracker, "logging_dir", None))):
            if isinstance(value, (str, int)) and value != "":
                record[key] = str(value)
        out.append(record)
    return out


def environment_record(recipe, device: torch.device | str, processes: int, started: str | None = None,
                       trackers=None) -> dict[str, Any]:
    """Where the run was: ``hardware.machine`` with the start time, the plugins used and the trackers."""
    return {**machine(device, processes), "started": started, "plugins": plugins_used(recipe),
            "trackers": tracker_records(trackers)}


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
        ("Parameters", [("total", f"{p['total']:,}"), ("trainable", _trainable(p)),
                        *([("non-trainable", f"{p['non_trainable']:,}")] if "non_trainable" in p else []),
                        *[(name, f"{p[name]:,} ({p[name] / max(p['trainable'], 1):.1%})")
                          for name in ("encoder", "quantizer", "decoder")]]),
        ("Compute", _compute_rows(report["flops"], t)),
        ("Time", [("total", _duration(t["total_s"])), ("steps", f"{t['steps']:,}"),
                  ("time / step", f"{t['step_s']:.4f} s"), *_epoch_rows(t, report.get("epoch")),
                  ("samples / s", f"{t['samples_per_s']:.1f}"), ("steps / s", f"{t['steps_per_s']:.2f}")]),
        ("Memory", _memory_rows(m) + [("checkpoint", f"{report['checkpoint']['size_mib']:.1f} MiB")]),
    ]
    if report.get("speed"):  # older reports hold FLOPs alone
        sections.insert(2, ("Speed against the hardware", _speed_rows(report["speed"], report["flops"], t)))
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
    if report.get("environment"):
        sections.append(("Where it ran", _environment_rows(report["environment"])))
    return sections


def _trainable(p: dict[str, Any]) -> str:
    share = p.get("trainable_share")
    return f"{p['trainable']:,}" + (f" ({share:.1%} of the total)" if share is not None else "")


def _compute_rows(flops: dict[str, Any], t: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [("forward FLOPs / sample", _si(flops["forward"])), ("training FLOPs / sample", _si(flops["train"]))]
    if "batch_train" in flops:
        rows += [(f"training FLOPs / batch ({flops['batch_windows']:,} windows)", _si(flops["batch_train"])),
                 ("counted by", flops["method"])]
    return rows + [("training FLOPs, whole run", _si(flops["train"] * t["samples"]))]


def _speed_rows(speed: dict[str, Any], flops: dict[str, Any], t: dict[str, Any]) -> list[tuple[str, str]]:
    """The ceiling, and the achieved rate per median step and over the whole run as a share of it."""
    ceiling = speed["ceiling"]
    processes = speed.get("processes", 1)
    against = "the ceiling" if processes <= 1 else f"{processes} x the ceiling ({processes} processes)"
    return [("dense matmul ceiling", describe_ceiling(ceiling) + " (measured in this run)"),
            ("achieved, median step", f"{si(speed['step_flop_per_s'])}FLOP/s = {speed['step_fraction']:.2%} of the "
                                      f"ceiling ({si(flops['step_train'])}FLOP per step / {t['step_s']:.4g} s)"),
            ("achieved, whole run", f"{si(speed['run_flop_per_s'])}FLOP/s = {speed['run_fraction']:.2%} of {against} "
                                    f"({si(speed['run_flops'])}FLOP in {_seconds(speed['run_train_s'])} of "
                                    f"training steps)")]


PEAK_LABELS = {"cpu_peak_rss_mib": "process peak RSS (host)", "gpu_peak_allocated_mib": "CUDA peak allocated",
               "gpu_peak_reserved_mib": "CUDA peak reserved (caching allocator)"}


def _memory_rows(m: dict[str, Any]) -> list[tuple[str, str]]:
    """What the parameters, gradients and optimizer state take, beside the measured peak."""
    if "peak_mib" not in m:  # older reports: the peaks alone
        return [(k.replace("_mib", "").replace("_", " "), f"{v:,.0f} MiB") for k, v in m.items()
                if isinstance(v, (int, float))]
    tensors, optimizer = m["tensors"], m.get("optimizer") or "optimizer"
    moments = ": two moments per parameter, and a step count" if "adam" in optimizer.lower() else ""
    rows = [("parameters", _bytes(tensors["parameters"])),
            ("gradients", f"{_bytes(tensors['gradients'])} (the size of the trainable parameters)"),
            ("optimizer state", f"{_bytes(tensors['optimizer'])} ({optimizer}{moments})"),
            ("buffers", _bytes(tensors["buffers"])),
            ("weights, gradients, optimizer, buffers", _bytes(tensors["total"])),
            ("measured peak", f"{m['peak_mib']:,.0f} MiB: {m['peak_kind']}")]
    if m["peak_kind"].startswith("CUDA"):  # the host's peak and the allocator's reserve beside the tensors'
        rows += [(label, f"{m[key]:,.0f} MiB") for key, label in PEAK_LABELS.items()
                 if key in m and key != "gpu_peak_allocated_mib"]
    return rows


def _environment_rows(env: dict[str, Any]) -> list[tuple[str, str]]:
    """Machine, threads, versions, plugins, start, host and tracker."""
    cpu = f"{env['cpu']} ({env['cpus']} CPUs available)"
    flags = f"; matmul flags {' '.join(env['cpu_flags'])}" if env.get("cpu_flags") else ""
    where = (f"{env['gpus']} x {env['gpu']} (GPUs visible); host CPU {cpu}" if env.get("gpu")
             else f"CPU: {cpu}{flags}")
    libraries = "".join(f", {name} {version}" for name, version in env.get("libraries", {}).items())
    rows = [("device", where),
            ("threads", f"{env['threads']} torch threads x {env['processes']} process"
                        f"{'es' * (env['processes'] != 1)}"),
            ("versions", f"Python {env['python']}, torch {env['torch']}, motionhub {env['motionhub']}{libraries}"),
            ("plugins", "; ".join(f"{name} {p['origin']}: {', '.join(p['components'])}"
                                  for name, p in env.get("plugins", {}).items()) or "—"),
            ("started", env.get("started") or "—")]
    if env.get("hostname"):
        rows.append(("host", f"{env['hostname']} ({env.get('platform', '?')})"))
    trackers = env.get("trackers") or []
    rows.append(("tracker", "; ".join(_tracker(t) for t in trackers) if trackers else "none configured"))
    return rows


def _tracker(record: dict[str, Any]) -> str:
    details = [f"run {record['run_id']}" if "run_id" in record else None, record.get("url"),
               f"logs in {record['log_dir']}" if "log_dir" in record else None]
    return record["name"] + "".join(f", {d}" for d in details if d)


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
    labels = {k: f"{k} ({figure_unit(k)})" if figure_unit(k) else k for k in names}  # e.g. "mpjpe_mm (mm)"
    if not train:
        rows = [(labels[k], _figure(val[k])) for k in names]
        return ("Evaluation (val)", rows[:1] + mean_row + rows[1:] if "loss" in val else rows + mean_row)
    clips = (report.get("data") or {}).get("train_eval_clips")
    columns = ("", "val", f"train ({clips:,} clips)" if clips else "train")
    rows = [(labels[k], _figure(val.get(k)), _figure(train.get(k))) for k in names]
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
             f"{report['run']['processes']} process(es) · precision "
             f"{report['run'].get('precision_parts') or report['run']['precision']}", ""]
    for title, rows, *columns in _rows(report):  # a section may name its columns: (title, rows, columns)
        header = columns[0] if columns else ("", "")
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |",
                  *["| " + " | ".join(row) + " |" for row in rows], ""]
    lines += protocol_sections(report)
    figures, skipped = report_figures(report), (report.get("figures") or {}).get("skipped")
    if figures or skipped:
        lines += ["## Figures", "", *([skipped, ""] if skipped else []),
                  *[f"![{name}]({name})" for name in figures], *([""] if figures else [])]
    return "\n".join(lines)


def protocol_sections(report: dict[str, Any]) -> list[str]:
    """Markdown of each evaluation protocol the recipe named (``eval.protocols``): its table as the
    protocol renders it (units, split, repetitions, statistics), or why it could not run."""
    lines = []
    for entry in report.get("protocols") or ():
        lines += [f"## Protocol {entry['name']}", ""]
        if entry.get("error"):
            lines += [f"Not evaluated: {entry['error']}", ""]
        else:
            lines += ["```", entry["text"], "```", "", f"Every repetition: `{entry['path']}`", ""]
    return lines


def report_figures(report: dict[str, Any]) -> list[str]:
    """The figure files of the run that are there: those drawn with the report (in the order drawn),
    then any of ``REPORT_FIGURES`` (older reports do not list theirs)."""
    directory = Path(report["run"]["directory"])
    drawn = list((report.get("figures") or {}).get("drawn", ()))
    names = [*drawn, *(name for name in REPORT_FIGURES if name not in drawn)]
    return [name for name in names if (directory / name).is_file()]


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
    for entry in report.get("protocols") or ():
        text = f"not evaluated: {entry['error']}" if entry.get("error") else entry["text"]
        console.print(f"[bold]protocol {entry['name']}[/]\n{escape(text)}")


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
