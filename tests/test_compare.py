"""motionhub compare: recipe differences, report figures against the first run, evaluation data, figures."""

import importlib.util
import json
import shutil
from types import SimpleNamespace

import pytest
import torch
from helpers import TINY_RECIPE

from motionhub.cli import main
from motionhub.model.codebook import usage_from_histogram
from motionhub.errors import MotionhubError
from motionhub.recipes import recipe_from_tree
from motionhub.train.report import load_report, render_markdown
from motionhub.train.trainer import train
from motionhub.use import compare as compare_module
from motionhub.use.compare import compare, figures, flatten, format_mismatch, versus

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three tiny runs: a baseline, one with other FSQ levels, one on other data (another seed)."""
    root = tmp_path_factory.mktemp("compare")

    def run(name, **sections):
        tree = {**TINY_RECIPE, "run": {"name": name, "out": str(root / name), "seed": 0},
                "train": {**TINY_RECIPE["train"], "iters": 4}, **sections}
        return train(recipe_from_tree(tree, f"{name}.yaml"))

    return SimpleNamespace(root=root, base=run("base"),
                           levels=run("levels", quantizer={"name": "fsq", "levels": [8, 8, 5]}),
                           seed=run("seed", data={**TINY_RECIPE["data"], "seed": 1}))


@pytest.fixture
def no_drawing(monkeypatch):
    """Leave the figures out where they are not under test: drawing takes a second or two."""
    monkeypatch.setattr(compare_module, "has_matplotlib", lambda: False)


def copy_run(source, target):
    shutil.copytree(source, target)
    return target


def row(comparison, figure):
    return next(r for r in comparison["figures"] if r["figure"] == figure)


def test_training_records_its_data_and_per_code_counts(runs):
    report = load_report(runs.base)
    splits = report["data"]["splits"]
    assert report["data"]["dataset"] == "synthetic" and "seed 0" in report["data"]["description"]
    assert splits["train"]["clips"] == report["data"]["train_clips"] and len(splits["val"]["fingerprint"]) == 64
    assert load_report(runs.levels)["data"]["splits"] == splits  # same data, same fingerprints
    assert load_report(runs.seed)["data"]["splits"]["val"]["fingerprint"] != splits["val"]["fingerprint"]
    # the counts behind the report's usage figures
    counts = json.loads((runs.base / "codebook_counts.json").read_text())
    for split in ("train", "val"):
        usage = usage_from_histogram(torch.tensor(counts[split]))
        assert usage["used"] == report["codebook"][split]["used"]
        assert usage["perplexity"] == pytest.approx(report["codebook"][split]["perplexity"])
    assert "## Data" in render_markdown(report) and splits["val"]["fingerprint"][:12] in render_markdown(report)


def test_the_recipe_lines_that_differ_are_exactly_the_changed_ones(runs, tmp_path, no_drawing):
    comparison = compare([runs.base, runs.levels], tmp_path)
    assert [(d["path"], d["values"]) for d in comparison["recipe"]["differences"]] == \
        [("quantizer.levels", [[8, 5, 5], [8, 8, 5]])]
    assert {"run.name", "run.out"} <= set(comparison["recipe"]["ignored"])  # they differ, and are left out
    markdown = (tmp_path / "compare.md").read_text()
    assert "| `quantizer.levels` | `[8, 5, 5]` | `[8, 8, 5]` |" in markdown
    assert "Not compared (bookkeeping): `run.name`, `run.out`" in markdown
    assert flatten({"losses": [{"name": "recon"}], "quantizer": {"levels": [8, 5]}}) == \
        {"losses.0.name": "recon", "quantizer.levels": [8, 5]}


def test_figures_are_ratios_or_differences_to_the_first_run(runs, tmp_path, no_drawing):
    comparison = compare([runs.base, runs.levels], tmp_path)
    first, other = figures(load_report(runs.base)), figures(load_report(runs.levels))
    for figure in ("time.step_s", "codebook.train.used", "codebook.train.size", "losses.final.loss",
                   "eval.mpjpe_mm", "parameters.total", "flops.train", "checkpoint.size_mib"):
        assert row(comparison, figure)["values"] == [first[figure], other[figure]]
        assert row(comparison, figure)["vs_first"][1] == {"ratio": pytest.approx(other[figure] / first[figure])}
    assert row(comparison, "codebook.train.size")["vs_first"][1]["ratio"] == pytest.approx(320 / 200)
    for figure in ("codebook.val.normalised_perplexity", "breakdown.forward.fraction", "time.nonfinite_skipped"):
        assert row(comparison, figure)["vs_first"][1] == {"difference": pytest.approx(other[figure] - first[figure])}
    assert versus("loss", 0.5, -0.1) == {"difference": pytest.approx(-0.6)}  # sign change: no ratio
    assert versus("loss", 0.0, 0.2) == {"difference": 0.2}
    assert "| train.size | 200 | 320 | ×1.60 |" in (tmp_path / "compare.md").read_text()


def test_a_figure_only_one_report_has_shows_and_is_missing_in_the_other(runs, tmp_path, no_drawing):
    newer = copy_run(runs.base, tmp_path / "newer")
    report = load_report(newer)
    report["latency"] = {"encode_ms": 2.5}  # a figure reports gain later
    (newer / "report.json").write_text(json.dumps(report))
    comparison = compare([runs.base, newer], tmp_path / "out")
    assert row(comparison, "latency.encode_ms")["values"] == [None, 2.5]
    assert "| encode_ms | — | 2.5 | — |" in (tmp_path / "out" / "compare.md").read_text()
    assert comparison["recipe"]["differences"] == []


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed")
def test_curves_and_codebook_histograms_are_drawn(runs, tmp_path):
    comparison = compare([runs.base, runs.levels], tmp_path)
    pictures = ["curves_train.png", "curves_val.png", "codebook_usage.png"]
    assert comparison["files"] == ["compare.md", "compare.json", *pictures]
    for name in pictures:
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
        assert f"![{name}]({name})" in (tmp_path / "compare.md").read_text()


def test_without_matplotlib_figures_are_skipped_saying_how_to_get_them(runs, tmp_path, monkeypatch):
    monkeypatch.setattr(compare_module, "has_matplotlib", lambda: False)
    comparison = compare([runs.base, runs.levels], tmp_path)
    assert not list(tmp_path.glob("*.png"))
    assert any("pip install 'motionhub[render]'" in note for note in comparison["notes"])


def test_runs_evaluated_on_different_data_are_refused(runs, tmp_path, capsys):
    with pytest.raises(MotionhubError) as info:
        compare([runs.base, runs.levels, runs.seed], tmp_path / "out")
    message = str(info.value)
    assert "not evaluated on the same data" in message and "seed differs from base" in message
    assert "data.seed: — → 1" in message and "--evaluate val" in message
    assert not (tmp_path / "out").exists()
    assert main(["compare", str(runs.base), str(runs.seed), "--out", str(tmp_path / "out")]) == 2
    assert "--evaluate val" in capsys.readouterr().err


def test_evaluate_compares_every_run_on_the_first_runs_split(runs, tmp_path, no_drawing):
    comparison = compare([runs.base, runs.seed], tmp_path, evaluate="val", checkpoint="last")
    section = "evaluated on val of base's data"
    loss = row(comparison, f"{section}.loss")["values"]
    assert loss[0] == pytest.approx(load_report(runs.base)["eval"]["loss"], rel=1e-6)  # what training measured
    assert loss[1] != pytest.approx(load_report(runs.seed)["eval"]["loss"], rel=1e-6)  # not its own val data
    assert row(comparison, f"{section}.clips")["values"] == [1, 1]
    assert not any(r["figure"].startswith(("eval.", "codebook.val.")) for r in comparison["figures"])
    assert comparison["eval_data"]["evaluated"] == {"split": "val", "data_of": "base", "checkpoint": "last",
                                                    "clips": 1}
    assert "Evaluated here: each run's `last` checkpoint" in (tmp_path / "compare.md").read_text()


def test_formats_a_model_cannot_share_are_named():
    from motionhub.data import layouts

    assert format_mismatch(layouts.humanml3d_263(), layouts.humanml3d_263()) == ""
    assert "format humanml3d_263 vs kit_251" in format_mismatch(layouts.humanml3d_263(), layouts.kit_251())


def test_older_runs_without_data_fingerprints_or_code_counts(runs, tmp_path, no_drawing):
    older = copy_run(runs.base, tmp_path / "older")
    report = load_report(older)
    report["data"] = {"train_clips": report["data"]["train_clips"], "dropped_short": 0}
    (older / "report.json").write_text(json.dumps(report))
    (older / "codebook_counts.json").unlink()
    comparison = compare([older, runs.levels], tmp_path / "out")
    assert comparison["eval_data"]["same"] and not comparison["eval_data"]["recorded"]
    assert any("no data fingerprint" in note for note in comparison["notes"])
    assert row(comparison, "eval.loss")["values"][0] == report["eval"]["loss"]


def test_bad_inputs_end_in_one_message(runs, tmp_path, no_drawing):
    def error(*paths, out=tmp_path / "out"):
        with pytest.raises(MotionhubError) as info:
            compare(list(paths), out)
        return str(info.value)

    assert "at least two run directories, got 1" in error(runs.base)
    assert "given twice" in error(runs.base, runs.base.parent / ".." / runs.base.parent.name / "base")
    (tmp_path / "empty").mkdir()
    assert "not a run directory: it has no recipe.yaml and no report.json" in error(runs.base, tmp_path / "empty")
    assert "no such folder" in error(runs.base, tmp_path / "nowhere")
    unfinished = copy_run(runs.base, tmp_path / "unfinished")
    (unfinished / "report.json").unlink()
    message = error(runs.base, unfinished)
    assert "has no report.json: its training has not finished" in message and f"motionhub train {unfinished}" in message
    damaged = copy_run(runs.base, tmp_path / "damaged")
    (damaged / "report.json").write_text('{"time": ')
    assert f"cannot read {damaged / 'report.json'}" in error(runs.base, damaged)
    (tmp_path / "file").write_text("")
    assert "cannot write the comparison to" in error(runs.base, runs.levels, out=tmp_path / "file" / "out")


def test_damaged_metrics_lines_are_skipped_with_a_warning(runs, tmp_path, no_drawing):
    cut = copy_run(runs.base, tmp_path / "cut")
    lines = (cut / "metrics.jsonl").read_text().splitlines()
    (cut / "metrics.jsonl").write_text("\n".join([lines[0], '{"step": 4, "lo', *lines[1:], "[1, 2]"]) + "\n")
    comparison = compare([runs.base, cut], tmp_path / "out")
    assert comparison["warnings"] == [f"{cut / 'metrics.jsonl'}: skipped 2 damaged lines (2, {len(lines) + 2})"]


def test_cli_prints_the_tables_and_writes_the_files(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["compare", str(runs.base), str(runs.levels)]) == 0
    out = capsys.readouterr().out
    assert "quantizer.levels" in out and "×1.60" in out and out.rstrip().endswith("compare/compare.md")
    assert json.loads((tmp_path / "compare" / "compare.json").read_text())["runs"][0]["baseline"] is True
