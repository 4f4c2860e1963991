"""The figures of a run's report, drawn into the run directory beside report.md.

``loss_curves.png`` (train and val losses against the step), ``codebook_usage.png`` (codes ranked
by use), ``codebook_splits.png`` (the same on train and val side by side), ``time_breakdown.png``
(the report's time breakdown as bars) and ``memory.png`` (the memory logged with every metrics
row). matplotlib is optional (``pip install 'motionhub[render]'``), imported on first use: without
it nothing is drawn, and the report, report.md and the end of the run say so once, with the
command that brings the figures back. Figures are drawn on an Agg canvas of their own, never
through pyplot, so drawing needs no display and leaves an interactive session's backend alone.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from motionhub.errors import MotionhubError
from motionhub.model.codebook import usage_from_histogram
from motionhub.train.rundir import RunDir

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RENDER_EXTRA = "pip install 'motionhub[render]'"
DPI = 100
# keys of train rows in metrics.jsonl that are no loss term (throughput, and the memory figures)
NOT_LOSSES = ("step", "lr", "samples_per_s", "memory_mib", "memory_peak_mib")


def has_matplotlib() -> bool:
    """Whether the optional drawing dependency is installed."""
    return importlib.util.find_spec("matplotlib") is not None


def new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    drawing = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(drawing)  # an Agg canvas of its own: no pyplot, no display needed
    return drawing


def as_numpy(values: Any) -> np.ndarray:
    return values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)


def write_report_figures(run_dir: str | Path, histogram: Any = None, split: str = "train") -> list[Path]:
    """``loss_curves.png`` and ``codebook_usage.png`` in ``run_dir``; returns the files written.

    histogram: (codebook_size,) code counts over ``split`` (numpy or torch); without it the
    usage figure shows the codes used at each evaluation logged in ``metrics.jsonl``. A
    figure with nothing to show (no rows logged) is not written.
    """
    if not has_matplotlib():
        raise MotionhubError(f"drawing needs matplotlib, which is not installed: {RENDER_EXTRA}")
    run = RunDir(Path(run_dir))
    rows = run.rows()
    written = []
    loss_curves = run.path / "loss_curves.png"
    if _plot_loss_curves(rows, loss_curves):
        written.append(loss_curves)
    usage = run.path / "codebook_usage.png"
    if histogram is not None:
        _plot_code_counts(as_numpy(histogram).astype(np.int64), split, usage)
        written.append(usage)
    elif _plot_codes_used(rows, usage):
        written.append(usage)
    return written


def _plot_loss_curves(rows: list[dict], out: Path) -> bool:
    """Every train loss term against the step, val figures of the same terms as points."""
    train = [row for row in rows if "split" not in row]
    val = [row for row in rows if row.get("split") == "val"]
    terms = sorted({k for row in train for k in row if k not in NOT_LOSSES}, key=lambda k: (k != "loss", k))
    if not terms:
        return False
    figure = new_figure(7.0, 4.0)
    ax = figure.add_subplot()
    for index, term in enumerate(terms):
        colour = f"C{index % 10}"
        steps, values = series(train, term)
        ax.plot(steps, values, color=colour, label=term)
        steps, values = series(val, term)
        if steps:
            ax.plot(steps, values, "o", color=colour, markerfacecolor="white", label=f"val {term}")
    if all(v > 0 for term in terms for v in series(rows, term)[1]):
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="loss", title="losses (lines: train, circles: val)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    figure.tight_layout()
    figure.savefig(out)
    return True


def series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    pairs = [(row["step"], row[key]) for row in rows if isinstance(row.get(key), (int, float))]
    return [s for s, _ in pairs], [v for _, v in pairs]


def draw_ranked_codes(ax, histogram: np.ndarray, share: bool) -> dict:
    """Codes ranked by use on ``ax``: the used ones as a filled step curve of their counts (or, with
    ``share``, their share of all tokens), the dead ones shaded. Returns the usage figures."""
    usage = usage_from_histogram(torch.from_numpy(histogram))
    size, used = len(histogram), int(usage["used"])
    ranked = np.sort(histogram)[::-1][:used]
    if share:
        ranked = ranked / max(int(histogram.sum()), 1)
    if used:
        ax.fill_between(np.arange(used + 1), np.append(ranked, ranked[-1]), step="post", color="tab:blue",
                        alpha=0.8, label=f"used: {used:,} ({used / size:.1%})")
        ax.set_yscale("log")
    if used < size:
        ax.axvspan(used, size, color="tab:red", alpha=0.15, label=f"dead: {size - used:,}")
    ax.set(xlim=(0, size), xlabel="code rank (most used first)")
    ax.legend(fontsize="small")
    return usage


def _plot_code_counts(counts: np.ndarray, split: str, out: Path) -> None:
    """Codes sorted by how often they occur (used ones as a filled curve, dead ones shaded)."""
    figure = new_figure(7.0, 4.0)
    ax = figure.add_subplot()
    usage = draw_ranked_codes(ax, counts, share=False)
    ax.set(ylabel="occurrences",
           title=f"codebook usage on {split}: {len(counts):,} codes, perplexity {usage['perplexity']:.1f}")
    figure.tight_layout()
    figure.savefig(out)


def _plot_codes_used(rows: list[dict], out: Path) -> bool:
    """Codes used at each val evaluation against the step, with the codebook size for scale."""
    val = [row for row in rows if row.get("split") == "val" and "codebook_used" in row]
    if not val:
        return False
    steps, used = series(val, "codebook_used")
    size = val[-1]["codebook_used"] + val[-1].get("codebook_dead", 0)
    figure = new_figure(7.0, 4.0)
    ax = figure.add_subplot()
    ax.plot(steps, used, "o-", color="tab:blue", label="codes used (val)")
    ax.axhline(size, color="0.4", linestyle="--", label=f"codebook size {size:,}")
    ax.set(xlabel="step", ylabel="codes", ylim=(0, size * 1.05), title="codebook usage per evaluation")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(out)
    return True


SPLITS = ("train", "val")


def skipped_note(run_dir: str | Path) -> str:
    """Why no figure was drawn, and the two commands that draw them."""
    return (f"Figures skipped: matplotlib is not installed here (a plain `pip install motionhub` leaves it out). "
            f"`{RENDER_EXTRA}`, then `motionhub report {run_dir}` draws them.")


def draw_report_figures(run_dir: str | Path, report: Mapping[str, Any],
                        train_histogram: Any = None) -> dict[str, Any]:
    """Every report figure that has something to show; returns the report's ``figures`` entry:
    ``{"drawn": [file names]}``, or ``{"drawn": [], "skipped": why}`` without matplotlib.

    ``train_histogram``: the train split's per-code counts (numpy or torch), for
    ``codebook_usage.png``; by default the ``train`` entry of ``codebook_counts.json``.
    """
    run = RunDir(Path(run_dir))
    if not has_matplotlib():
        return {"drawn": [], "skipped": skipped_note(run.path)}
    counts = code_counts(run)
    if train_histogram is None and counts.get("train") is not None:
        train_histogram = np.asarray(counts["train"])
    written = [path.name for path in write_report_figures(run.path, train_histogram)]
    rows = run.rows()
    for name, drawn in (("codebook_splits.png", lambda out: plot_codebook_splits(counts, out)),
                        ("time_breakdown.png", lambda out: plot_time_breakdown(report.get("breakdown") or {}, out)),
                        ("memory.png", lambda out: plot_memory(rows, report.get("memory") or {}, out))):
        if drawn(run.path / name):
            written.append(name)
    return {"drawn": written}


def code_counts(run: RunDir) -> dict[str, list[int]]:
    """``codebook_counts.json``: per-code counts by split (empty where the run wrote none)."""
    try:
        counts = json.loads(run.code_counts.read_text())
    except (OSError, ValueError):
        return {}
    return counts if isinstance(counts, dict) else {}


# ---------------------------------------------------------------------------- the figures
def plot_codebook_splits(counts: Mapping[str, Any], out: Path) -> bool:
    """Codes ranked by use, one panel per split (train beside val, whichever the run counted), each
    code's share of the split's tokens on one vertical scale, so splits of any size compare: used
    codes filled, dead ones shaded, perplexity in the title. Nothing is drawn without counts."""
    splits = [(split, np.asarray(counts[split], dtype=np.int64)) for split in SPLITS
              if counts.get(split) is not None and len(counts[split])]
    if not splits:
        return False
    figure = new_figure(5.0 * len(splits) + 1.0, 4.0)
    axes = figure.subplots(1, len(splits), sharey=True, squeeze=False)[0]
    for ax, (split, histogram) in zip(axes, splits):
        usage = draw_ranked_codes(ax, histogram, share=True)
        ax.set(title=f"{split}: perplexity {usage['perplexity']:.1f} of {len(histogram):,} codes")
    axes[0].set_ylabel("share of the split's tokens")
    figure.suptitle("codebook use" + (" on train and val" if len(splits) == 2 else f" on {splits[0][0]}"))
    figure.tight_layout()
    figure.savefig(out)
    return True


def plot_time_breakdown(breakdown: Mapping[str, Mapping[str, float]], out: Path) -> bool:
    """The report's time breakdown as horizontal bars, largest on top, each labelled with its share."""
    parts = sorted(breakdown.items(), key=lambda item: -item[1]["seconds"])
    if not parts:
        return False
    names = [name for name, _ in parts]
    seconds = [part["seconds"] for _, part in parts]
    figure = new_figure(7.0, 1.2 + 0.32 * len(parts))
    ax = figure.add_subplot()
    positions = np.arange(len(parts))[::-1]
    ax.barh(positions, seconds, color=["tab:orange" if name.startswith("loss: ") else "tab:blue" for name in names])
    for y, (value, (_, part)) in zip(positions, zip(seconds, parts)):
        ax.text(value, y, f" {value:.3g} s ({part['fraction']:.1%})", va="center", fontsize="small")
    ax.set_yticks(positions, names)
    ax.set_xlim(0, max(seconds) * 1.35 or 1.0)
    ax.set(xlabel="seconds", title="where the time went (blue: phases, orange: loss terms)")
    figure.tight_layout()
    figure.savefig(out)
    return True


def plot_memory(rows: list[dict], memory: Mapping[str, Any], out: Path) -> bool:
    """Memory in use at each logged step and the peak so far; the run's weights, gradients,
    optimizer state and buffers as a level, where the report counts them."""
    train = [row for row in rows if "split" not in row]
    steps, now = series(train, "memory_mib")
    if not steps:
        return False
    figure = new_figure(7.0, 4.0)
    ax = figure.add_subplot()
    ax.plot(steps, now, "o-", color="tab:blue", markersize=3, label="in use at the logged step")
    peak_steps, peak = series(train, "memory_peak_mib")
    if peak_steps:
        ax.plot(peak_steps, peak, "--", color="tab:red", label="peak so far")
    tensors = (memory.get("tensors") or {}).get("total")
    if tensors:
        ax.axhline(tensors / 2**20, color="0.4", linestyle=":",
                   label=f"weights, gradients, optimizer state, buffers: {tensors / 2**20:,.1f} MiB")
    what = memory.get("logged_kind", "memory in use").split(" (")[0]
    ax.set(xlabel="step", ylabel="MiB", ylim=(0, max([*now, *peak]) * 1.1), title=f"memory over the run: {what}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(out)
    return True
