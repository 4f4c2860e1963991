"""Runs side by side: the recipe lines that differ, every report figure with its ratio to the
first run, loss and evaluation curves overlaid, and codebook usage per run.

The first run is the baseline. Figures come from walking each ``report.json``, so a figure
that reports gain later shows up here unchanged. Val figures are compared only when every
run was evaluated on the same data (the val split's fingerprint in the report's ``data``
block); otherwise ``evaluate`` re-evaluates each run on one split of the first run's data.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from motionhub.errors import MotionhubError
from motionhub.train.figures import NOT_LOSSES, RENDER_EXTRA, has_matplotlib
from motionhub.train.rundir import RunDir

log = logging.getLogger("motionhub.compare")

MISSING = "—"
# Recipe lines that name or place a run without changing what it learns.
BOOKKEEPING = ("run.name", "run.out", "data.cache_dir", "train.trackers")
# Data lines that shape the training windows only; the clips a run is evaluated on do not depend on them.
TRAINING_ONLY_DATA = ("data.window", "data.short", "data.weighting", "data.store", "data.cache_dir")
# Figures that are shares of a whole: a difference says more than a ratio of two shares.
FRACTION_WORDS = ("fraction", "normalised", "normalized", "percent", "ratio", "accuracy", "share")
# Report figures measured on the val split (the best checkpoint's figure is a val figure too).
VAL_FIGURES = ("eval.", "codebook.val.", "best.value")
NEAR_ZERO = 1e-12  # a first-run figure this small gives no meaningful ratio


@dataclasses.dataclass
class Run:
    """One run directory as the comparison reads it."""

    path: Path
    label: str  # column heading: the directory name, made unique
    report: dict[str, Any]
    recipe: dict[str, Any]  # the resolved recipe.yaml
    rows: list[dict[str, Any]]  # metrics.jsonl, damaged lines left out
    code_counts: dict[str, list[int]] | None  # codebook_counts.json; None for runs that predate it


# ---------------------------------------------------------------------------- the whole comparison
def compare(paths: Sequence[str | Path], out: str | Path, *, evaluate: str | None = None, checkpoint: str = "best",
            device: str | None = None, console: Console | None = None) -> dict[str, Any]:
    """Compare the runs in ``paths`` (the first is the baseline) and write ``compare.md``,
    ``compare.json`` and PNG figures into ``out``; returns what ``compare.json`` holds.

    ``evaluate`` (a split) evaluates each run's ``checkpoint`` on that split of the first run's
    data; without it, runs evaluated on different data are refused.
    """
    console = console or Console(stderr=True)
    notes: list[str] = []  # what a reader of the comparison should know
    warnings: list[str] = []  # damaged files, also logged as they are found
    runs = read_runs(paths, warnings)
    data = eval_data(runs, notes)
    if not data["same"] and evaluate is None:
        raise MotionhubError(different_data_message(runs, data["differences"], checkpoint))
    out = writable_folder(Path(out))  # before evaluating, which takes a while
    evaluated = None
    if evaluate is not None:
        evaluated = evaluate_on_first(runs, evaluate, checkpoint, device, console)
        data["evaluated"] = {"split": evaluate, "data_of": runs[0].label, "checkpoint": checkpoint,
                             "clips": next(iter(evaluated.values()))["clips"]}
    if not data["same"]:
        notes.append(f"the runs' own val figures ({', '.join(p.rstrip('.') for p in VAL_FIGURES)}), val curves and "
                     f"val codebook histograms are left out: they were measured on different data")

    pictures = write_figures(runs, out, include_val=data["same"], notes=notes)
    comparison = {
        "runs": [{"label": r.label, "path": str(r.path.resolve()), "name": (r.report.get("run") or {}).get("name"),
                  "baseline": i == 0} for i, r in enumerate(runs)],
        "recipe": {"differences": recipe_differences(runs), "ignored": list(BOOKKEEPING)},
        "eval_data": data,
        "figures": figure_rows(runs, evaluated, keep_val=data["same"]),
        "files": ["compare.md", "compare.json", *pictures],
        "warnings": warnings,
        "notes": notes,
    }
    (out / "compare.json").write_text(json.dumps(comparison, indent=2) + "\n")
    (out / "compare.md").write_text(render_markdown(comparison))
    return comparison


# ---------------------------------------------------------------------------- reading runs
def read_runs(paths: Sequence[str | Path], warnings: list[str]) -> list[Run]:
    """Every run of ``paths``, checked: at least two, none twice, each a finished run directory."""
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        given = f": {paths[0]}" if paths else ""
        raise MotionhubError(f"compare needs at least two run directories, got {len(paths)}{given}. Pass the "
                             f"baseline first, then the runs to compare with it: motionhub compare runs/a runs/b")
    seen: dict[Path, Path] = {}
    for path in paths:
        key = path.resolve()
        if key in seen:
            raise MotionhubError(f"{path} is given twice (as {seen[key]} and {path}); pass each run once")
        seen[key] = path
    labels = unique_labels(paths)
    return [read_run(path, label, warnings) for path, label in zip(paths, labels)]


def read_run(path: Path, label: str, warnings: list[str]) -> Run:
    check_run_dir(path)
    run = RunDir(path)
    return Run(path=path, label=label, report=read_json_file(path / "report.json", "report.json"),
               recipe=read_recipe(path / "recipe.yaml"), rows=read_metrics(run.metrics, warnings),
               code_counts=read_code_counts(run, warnings))


def check_run_dir(path: Path) -> None:
    """Raise MotionhubError naming what a run directory lacks."""
    if not path.is_dir():
        raise MotionhubError(f"{path} is not a run directory: {'it is a file' if path.exists() else 'no such folder'}. "
                             f"Pass the folders 'motionhub train' printed at the end (e.g. runs/demo)")
    missing = [name for name in ("recipe.yaml", "report.json") if not (path / name).is_file()]
    if not missing:
        return
    if "recipe.yaml" in missing:
        raise MotionhubError(f"{path} is not a run directory: it has no {' and no '.join(missing)}. "
                             f"Pass the folders 'motionhub train' printed at the end (e.g. runs/demo)")
    unfinished = (path / "checkpoints" / "last.pt").is_file()
    raise MotionhubError(f"{path} has no report.json: "
                         + ("its training has not finished. Finish it with 'motionhub train " f"{path}' (it resumes "
                            "from checkpoints/last.pt and writes the report at the end)" if unfinished else
                            "it holds no checkpoint either, so its training never got going")
                         + f"; 'motionhub report {path}' then prints the report of that one run")


def read_json_file(path: Path, what: str) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MotionhubError(f"cannot read {path}: {exc}. The {what} of a run is written at the end of training; "
                             f"'motionhub train {path.parent}' writes it again, or leave the run out") from None
    if not isinstance(value, dict):
        raise MotionhubError(f"{path} is damaged: expected a JSON object, got {type(value).__name__}. "
                             f"'motionhub train {path.parent}' writes it again, or leave the run out")
    return value


def read_recipe(path: Path) -> dict[str, Any]:
    try:
        tree = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise MotionhubError(f"cannot read {path}: {exc}") from None
    if not isinstance(tree, dict):
        raise MotionhubError(f"{path} is damaged: expected recipe sections (run, data, ...), got "
                             f"{type(tree).__name__}")
    return tree


def read_metrics(path: Path, warnings: list[str]) -> list[dict[str, Any]]:
    """Rows of ``metrics.jsonl``; damaged lines are skipped with a warning naming them."""
    if not path.is_file():
        warn(warnings, f"{path} is missing: no curves for that run")
        return []
    rows, damaged = [], []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict) and isinstance(row.get("step"), (int, float)):
            rows.append(row)
        else:
            damaged.append(number)
    if damaged:
        shown = ", ".join(map(str, damaged[:10])) + (", ..." if len(damaged) > 10 else "")
        warn(warnings, f"{path}: skipped {len(damaged)} damaged line{'s' if len(damaged) > 1 else ''} ({shown})")
    return rows


def read_code_counts(run: RunDir, warnings: list[str]) -> dict[str, list[int]] | None:
    """Per-code counts on train / val, or None for runs trained before they were recorded."""
    if not run.code_counts.is_file():
        return None
    try:
        counts = json.loads(run.code_counts.read_text())
        return {split: [int(c) for c in values] for split, values in counts.items()}
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        warn(warnings, f"cannot read {run.code_counts} ({exc}): its codebook histograms are left out")
        return None


def unique_labels(paths: Sequence[Path]) -> list[str]:
    """Directory names, with as many parent folders as it takes to tell them apart."""
    parts = [p.resolve().parts for p in paths]
    for depth in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]


def writable_folder(out: Path) -> Path:
    """``out``, created if needed; MotionhubError when nothing can be written there."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".compare-"):
            pass
    except OSError as exc:
        raise MotionhubError(f"cannot write the comparison to {out}: {exc.strerror or exc}. "
                             f"Pass a folder you can write to with --out") from None
    return out


def warn(warnings: list[str], message: str) -> None:
    log.warning(message)
    warnings.append(message)


# ---------------------------------------------------------------------------- recipe lines
def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted paths to values: ``losses.0.name``; a list of plain values (``quantizer.levels``) is one value."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, list) and any(isinstance(v, (dict, list)) for v in tree):
        items = enumerate(tree)
    else:
        return {prefix.rstrip("."): tree}
    out: dict[str, Any] = {}
    for key, value in items:
        out.update(flatten(value, f"{prefix}{key}."))
    return out


def recipe_differences(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Every recipe path (bookkeeping aside) whose value in some run differs from the first run's."""
    flat = [flatten(run.recipe) for run in runs]
    differences = []
    for path in ordered_union(flat):
        if path in BOOKKEEPING:
            continue
        values = [f.get(path, MISSING) for f in flat]
        if any(v != values[0] for v in values[1:]):
            differences.append({"path": path, "values": [None if v is MISSING else v for v in values],
                                "set": [v is not MISSING for v in values]})
    return differences


def ordered_union(dicts: Sequence[dict]) -> list[str]:
    """Keys of all ``dicts``, in the order they first appear (the first run's order first)."""
    return list(dict.fromkeys(key for d in dicts for key in d))


def recipe_value(value: Any, is_set: bool = True) -> str:
    if not is_set:
        return MISSING
    return value if isinstance(value, str) else json.dumps(value)


# ---------------------------------------------------------------------------- evaluation data
def eval_data(runs: Sequence[Run], notes: list[str]) -> dict[str, Any]:
    """Whether every run's val figures were measured on the same clips, and if not, how they differ."""
    evaluated = [run for run in runs if run.report.get("eval")]
    for run in runs:
        if run not in evaluated:
            notes.append(f"{run.label} has no val figures in its report")
    recorded = all(val_split(run) for run in evaluated)
    if not recorded:
        older = [run.label for run in evaluated if not val_split(run)]
        notes.append(f"{', '.join(older)} record{'s' if len(older) == 1 else ''} no data fingerprint (trained "
                     f"before reports recorded one): whether runs were evaluated on the same data is judged "
                     f"from the recipes' data sections, which cannot see data files that changed on disk")
    keys = [eval_key(run, recorded) for run in evaluated]
    differences = []
    for run, key in zip(evaluated[1:], keys[1:]):
        changed = [(name, keys[0].get(name), key.get(name)) for name in ordered_union([keys[0], key])
                   if keys[0].get(name) != key.get(name)]
        if changed:
            differences.append({"run": run.label, "baseline": evaluated[0].label,
                                "lines": [{"what": name, "baseline": a, "run": b} for name, a, b in changed],
                                "recipe": data_recipe_lines(evaluated[0], run)})
    val = val_split(runs[0]) or {}
    return {"same": not differences, "split": "val", "recorded": recorded,
            "fingerprint": val.get("fingerprint"), "clips": val.get("clips"),
            "description": (runs[0].report.get("data") or {}).get("description"),
            "differences": differences, "evaluated": None}


def val_split(run: Run) -> dict[str, Any] | None:
    return (((run.report.get("data") or {}).get("splits")) or {}).get("val")


def eval_key(run: Run, recorded: bool) -> dict[str, Any]:
    """What a run's val figures depend on: the val split's fingerprint (or, for runs that do not
    record it, the recipe's data section) and the eval length bounds that pick the clips."""
    ev = run.recipe.get("eval") or {}
    bounds = {"eval.min_length": ev.get("min_length"), "eval.max_length": ev.get("max_length")}
    if recorded:
        val = val_split(run)
        return {"val data fingerprint": val["fingerprint"], **bounds}
    data = {k: v for k, v in flatten({"data": run.recipe.get("data") or {}}).items() if k not in TRAINING_ONLY_DATA}
    return {**data, **bounds}


def data_recipe_lines(first: Run, run: Run) -> list[str]:
    """The recipe's data lines that differ between two runs, as ``path: a → b``."""
    a, b = (flatten({"data": r.recipe.get("data") or {}}) for r in (first, run))
    return [f"{path}: {recipe_value(a.get(path), path in a)} → {recipe_value(b.get(path), path in b)}"
            for path in ordered_union([a, b]) if path not in TRAINING_ONLY_DATA and a.get(path) != b.get(path)]


def different_data_message(runs: Sequence[Run], differences: list[dict], checkpoint: str) -> str:
    lines = ["the runs were not evaluated on the same data, so their val figures do not compare:"]
    for diff in differences:
        lines.append(f"  {diff['run']} differs from {diff['baseline']}: {difference_text(diff)}")
    lines.append(f"Pass --evaluate val to evaluate every run's {checkpoint} checkpoint on the val split of "
                 f"{runs[0].label}'s data (the first run), or compare runs trained on the same data.")
    return "\n".join(lines)


def difference_text(diff: dict[str, Any]) -> str:
    """``val data fingerprint 1a2b… → 3c4d… (recipe: data.seed: 0 → 1)``: what differs, and why if the recipe says."""
    what = "; ".join(f"{line['what']} {short(line['baseline'])} → {short(line['run'])}" for line in diff["lines"])
    if diff["recipe"]:
        return f"{what} (recipe: {', '.join(diff['recipe'])})"
    if any("fingerprint" in line["what"] for line in diff["lines"]):
        return f"{what} (the recipes' data sections agree: the data files or the data-set plugin changed in between)"
    return what


def short(value: Any) -> str:
    """A fingerprint cut to 12 characters, other values as in a recipe."""
    if isinstance(value, str) and len(value) == 64:
        return value[:12]
    return recipe_value(value)


def evaluate_on_first(runs: Sequence[Run], split: str, checkpoint: str, device: str | None,
                      console: Console) -> dict[str, dict[str, Any]]:
    """Each run's ``checkpoint`` evaluated as ``motionhub eval`` does, on ``split`` of the first run's data."""
    from motionhub.use.evaluate import evaluate_run
    from motionhub.use.trained_run import load_run

    loaded = [load_run(run.path, checkpoint) for run in runs]
    first = loaded[0]
    for run, other in zip(runs[1:], loaded[1:]):
        mismatch = format_mismatch(first.format, other.format)
        if mismatch:
            raise MotionhubError(f"cannot evaluate {run.label} on {runs[0].label}'s data: their data formats differ "
                                 f"({mismatch}), so one model cannot read the other's clips. Compare runs whose "
                                 f"data share one format, or compare without --evaluate on runs of one data set")
    clips = first.split(split, console)
    return {run.label: evaluate_run(one, split, device, console, clips=clips, eval_config=first.recipe.eval)
            for run, one in zip(runs, loaded)}


def format_mismatch(a, b) -> str:
    """How two MotionFormats differ in what a model reads (name, frame shape, rate, slices); empty if not."""
    def signature(fmt) -> dict[str, Any]:
        return {"format": fmt.name, "feature shape": tuple(fmt.feature_shape), "fps": fmt.fps,
                "slices": {name: (s.start, s.stop) for name, s in fmt.slices.items()}}

    first, other = signature(a), signature(b)
    return "; ".join(f"{key} {first[key]} vs {other[key]}" for key in first if first[key] != other[key])


# ---------------------------------------------------------------------------- figures
def figures(tree: Any, prefix: str = "") -> dict[str, float]:
    """Every number in a report, by dotted path (``time.step_s``, ``codebook.val.used``)."""
    if isinstance(tree, bool):
        return {}
    if isinstance(tree, (int, float)):
        return {prefix.rstrip("."): tree} if prefix else {}
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    out: dict[str, float] = {}
    for key, value in items:
        out.update(figures(value, f"{prefix}{key}."))
    return out


def versus(path: str, first: float | None, value: float | None) -> dict[str, float] | None:
    """``value`` next to the first run's: a ratio, or a difference for shares of a whole and where
    a ratio means nothing (a first value of 0 or below, or a sign change)."""
    if first is None or value is None or not (math.isfinite(first) and math.isfinite(value)):
        return None
    name = path.rsplit(".", 1)[-1].lower()
    if any(word in name for word in FRACTION_WORDS) or first < NEAR_ZERO or value < 0:
        return {"difference": value - first}
    return {"ratio": value / first}


def figure_rows(runs: Sequence[Run], evaluated: dict[str, dict] | None, keep_val: bool) -> list[dict[str, Any]]:
    """One row per figure: its section, each run's value (None where missing) and how it compares."""
    flat = [figures(run.report) for run in runs]
    if not keep_val:
        flat = [{k: v for k, v in f.items() if not k.startswith(VAL_FIGURES)} for f in flat]
    rows = [figure_row(path, [f.get(path) for f in flat]) for path in ordered_union(flat)]
    if evaluated:
        split = next(iter(evaluated.values()))["split"]
        section = f"evaluated on {split} of {runs[0].label}'s data"
        results = [figures(evaluated[run.label]) for run in runs]
        extra = [figure_row(f"{section}.{key}", [r.get(key) for r in results], section)
                 for key in ordered_union(results)]
        rows = insert_after_section(rows, extra, after=("eval", "losses"))
    return rows


def figure_row(path: str, values: list[float | None], section: str | None = None) -> dict[str, Any]:
    section = section or path.split(".", 1)[0]
    return {"section": section, "figure": path, "label": path[len(section) + 1:] or path, "values": values,
            "vs_first": [None] + [versus(path, values[0], v) for v in values[1:]]}


def insert_after_section(rows: list[dict], extra: list[dict], after: Sequence[str]) -> list[dict]:
    """``extra`` after the last row of the first section of ``after`` present, else at the end."""
    for section in after:
        positions = [i for i, row in enumerate(rows) if row["section"] == section]
        if positions:
            return rows[:positions[-1] + 1] + extra + rows[positions[-1] + 1:]
    return rows + extra


def format_value(value: float | None) -> str:
    if value is None:
        return MISSING
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1e5:
        return f"{value:,.0f}"
    return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.4g}"


def format_versus(comparison: dict[str, float] | None) -> str:
    if comparison is None:
        return MISSING
    if "ratio" in comparison:
        ratio = comparison["ratio"]
        return f"×{ratio:.2f}" if ratio < 100 else f"×{ratio:,.0f}"
    difference = comparison["difference"]
    if difference == 0:
        return "±0"
    return f"{int(difference):+,}" if float(difference).is_integer() else f"{difference:+.3g}"


# ---------------------------------------------------------------------------- pictures
def write_figures(runs: Sequence[Run], out: Path, include_val: bool, notes: list[str]) -> list[str]:
    """``curves_train.png``, ``curves_val.png`` and ``codebook_usage.png`` in ``out``; the names written."""
    if not has_matplotlib():
        notes.append(f"figures skipped: drawing needs matplotlib, the optional extra motionhub[render], which is "
                     f"not installed here. {RENDER_EXTRA} brings them back")
        return []
    written = []
    train = {run.label: [r for r in run.rows if "split" not in r] for run in runs}
    if plot_curves(train, out / "curves_train.png", "train", skip=NOT_LOSSES):
        written.append("curves_train.png")
    if include_val:
        val = {run.label: [r for r in run.rows if r.get("split") == "val"] for run in runs}
        if plot_curves(val, out / "curves_val.png", "val", skip=("step",)):
            written.append("curves_val.png")
    splits = ["train", "val"] if include_val else ["train"]
    counts = {run.label: run.code_counts for run in runs}
    if any(counts.values()):
        plot_code_counts(counts, splits, out / "codebook_usage.png")
        written.append("codebook_usage.png")
    else:  # runs trained before training recorded them
        notes.append("no run records per-code counts (codebook_counts.json): no codebook histograms")
    return written


def plot_curves(rows: dict[str, list[dict]], out: Path, split: str, skip: Sequence[str]) -> bool:
    """One panel per logged figure of ``split``, one line per run against the step."""
    from motionhub.train.figures import new_figure as _figure

    keys = ordered_union([{k: None for row in run_rows for k, v in row.items()
                           if k not in skip and k != "split" and isinstance(v, (int, float))}
                          for run_rows in rows.values()])
    keys.sort(key=lambda k: k != "loss")  # the total first
    if not keys:
        return False
    columns = min(3, len(keys))
    lines = math.ceil(len(keys) / columns)
    figure = _figure(4.2 * columns, 3.0 * lines + 0.4)
    for index, key in enumerate(keys):
        ax = figure.add_subplot(lines, columns, index + 1)
        for colour, (label, run_rows) in enumerate(rows.items()):
            points = [(row["step"], row[key]) for row in run_rows if isinstance(row.get(key), (int, float))]
            if points:
                ax.plot(*zip(*points), "o-" if len(points) < 20 else "-", markersize=3, color=f"C{colour % 10}",
                        label=label)
        ax.set(title=f"{split} {key}", xlabel="step")
        ax.grid(alpha=0.3)
    handles, labels = figure.axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper center", ncol=min(len(labels), 4), fontsize="small")
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.4 / (3.0 * lines + 0.4)))
    figure.savefig(out)
    return True


def plot_code_counts(counts: dict[str, dict[str, list[int]] | None], splits: Sequence[str], out: Path) -> None:
    """Per-code counts sorted by frequency: one row per split, one panel per run ("not recorded" where absent)."""
    import numpy as np

    from motionhub.train.figures import new_figure as _figure

    figure = _figure(3.6 * len(counts), 2.8 * len(splits))
    for row, split in enumerate(splits):
        for column, (label, run_counts) in enumerate(counts.items()):
            ax = figure.add_subplot(len(splits), len(counts), row * len(counts) + column + 1)
            values = np.asarray((run_counts or {}).get(split) or [], dtype=np.int64)
            if not len(values):
                ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes, color="0.4")
                ax.set(title=f"{label} · {split}", xticks=[], yticks=[])
                continue
            ranked = np.sort(values)[::-1]
            used = int((ranked > 0).sum())
            if used:
                ax.fill_between(np.arange(used + 1), np.append(ranked[:used], ranked[used - 1]), step="post",
                                color=f"C{column % 10}", alpha=0.8)
                if ranked[0] > 10 * ranked[used - 1]:  # a long tail; a log axis keeps the rare codes visible
                    ax.set_yscale("log")
            if used < len(values):
                ax.axvspan(used, len(values), color="tab:red", alpha=0.15)
            ax.set(xlim=(0, len(values)), title=f"{label} · {split}: {used:,} / {len(values):,} used",
                   xlabel="code rank" if row == len(splits) - 1 else None,
                   ylabel="occurrences" if column == 0 else None)
    figure.tight_layout()
    figure.savefig(out)


# ---------------------------------------------------------------------------- rendering
def render_markdown(comparison: dict[str, Any]) -> str:
    runs = comparison["runs"]
    labels = [run["label"] for run in runs]
    lines = [f"# Comparing {len(runs)} runs", "",
             f"The first run, `{labels[0]}`, is the baseline: the others' figures are given as a ratio to its "
             f"(×), or as a difference (±) for shares of a whole and where a ratio means nothing.", "",
             "| run | directory | name |", "| --- | --- | --- |",
             *[f"| {r['label']}{' (baseline)' if r['baseline'] else ''} | `{r['path']}` | {r['name']} |" for r in runs],
             ""]
    lines += ["## Recipe lines that differ", ""]
    differences = comparison["recipe"]["differences"]
    if differences:
        lines += [table_header(["recipe path", *labels])]
        lines += [f"| `{d['path']}` | " + " | ".join(f"`{recipe_value(v, s)}`" if s else MISSING
                                                      for v, s in zip(d["values"], d["set"])) + " |"
                  for d in differences]
        lines += ["", f"{MISSING}: not set in that run's recipe (the default applies)."]
    else:
        lines += ["None: the recipes agree on every line."]
    lines += ["", f"Not compared (bookkeeping): {', '.join(f'`{p}`' for p in comparison['recipe']['ignored'])}.", ""]
    lines += ["## Evaluation data", "", *eval_data_lines(comparison, labels), ""]
    lines += ["## Figures", ""]
    for section, rows in sections(comparison["figures"]):
        columns = ["figure", labels[0]]
        for label in labels[1:]:
            columns += [label, f"vs {labels[0]}"]
        lines += [f"### {section}", "", table_header(columns)]
        for row in rows:
            cells = [format_value(row["values"][0])]
            for value, vs in zip(row["values"][1:], row["vs_first"][1:]):
                cells += [format_value(value), format_versus(vs)]
            lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
        lines.append("")
    pictures = [name for name in comparison["files"] if name.endswith(".png")]
    if pictures:
        lines += ["## Curves and codebook usage", "", *[f"![{name}]({name})" for name in pictures], ""]
    if comparison["warnings"] or comparison["notes"]:
        lines += ["## Notes", "", *[f"- warning: {w}" for w in comparison["warnings"]],
                  *[f"- {note}" for note in comparison["notes"]], ""]
    return "\n".join(lines)


def eval_data_lines(comparison: dict[str, Any], labels: list[str]) -> list[str]:
    data = comparison["eval_data"]
    lines = []
    if data["same"]:
        how = (f"the val split of {data['description']}: {clips(data['clips'])}, fingerprint "
               f"`{data['fingerprint'][:12]}`" if data["recorded"] and data["fingerprint"]
               else "judged from the recipes' data sections")
        lines.append(f"Every run was evaluated on the same data ({how}): their val figures compare.")
    else:
        lines.append("The runs were evaluated on different data; their own val figures are left out:")
        lines.append("")
        lines += [f"- {diff['run']}: {difference_text(diff)}" for diff in data["differences"]]
    evaluated = data.get("evaluated")
    if evaluated:
        lines += ["", f"Evaluated here: each run's `{evaluated['checkpoint']}` checkpoint on the {evaluated['split']} "
                      f"split of {evaluated['data_of']}'s data ({clips(evaluated['clips'])}), as `motionhub eval` "
                      f"does: section *evaluated on {evaluated['split']} of {evaluated['data_of']}'s data*."]
    return lines


def clips(count: int) -> str:
    return f"{count:,} clip{'' if count == 1 else 's'}"


def sections(rows: list[dict]) -> list[tuple[str, list[dict]]]:
    """Rows grouped by section, sections in order of first appearance."""
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["section"], []).append(row)
    return list(grouped.items())


def table_header(columns: Sequence[str]) -> str:
    return "| " + " | ".join(columns) + " |\n|" + " --- |" * len(columns)


def print_summary(comparison: dict[str, Any], console: Console) -> None:
    """The recipe differences and the figures as terminal tables."""
    labels = [run["label"] for run in comparison["runs"]]
    recipe = Table(title=f"recipe lines that differ (baseline {labels[0]})")
    for column in ("recipe path", *labels):
        recipe.add_column(column)
    for d in comparison["recipe"]["differences"]:
        recipe.add_row(d["path"], *[recipe_value(v, s) for v, s in zip(d["values"], d["set"])])
    if not comparison["recipe"]["differences"]:
        recipe.add_row("(none)", *[""] * len(labels))
    recipe.caption = f"not compared: {', '.join(comparison['recipe']['ignored'])}"
    console.print(recipe)

    table = Table(title=f"figures (ratio × or difference ± to {labels[0]})")
    table.add_column("figure", style="bold")
    table.add_column(labels[0], justify="right")
    for label in labels[1:]:
        table.add_column(label, justify="right")
        table.add_column(f"vs {labels[0]}", justify="right")
    for section, rows in sections(comparison["figures"]):
        table.add_section()
        table.add_row(f"[underline]{section}", *[""] * (2 * len(labels) - 1))
        for row in rows:
            cells = [format_value(row["values"][0])]
            for value, vs in zip(row["values"][1:], row["vs_first"][1:]):
                cells += [format_value(value), format_versus(vs)]
            table.add_row(row["label"], *cells)
    console.print(table)
