"""``motionhub bench``: per-window encode latency files and figures, the time budget and verdict,
streams of track samples, and clear errors."""

import json

import numpy as np
import pytest
import torch
from helpers import TINY_RECIPE, track_recipe

from motionhub.cli import main
from motionhub.data.dataset import Clip
from motionhub.errors import DataError
from motionhub.use import bench
from motionhub.use.bench import Timings, budget_summary, latency_summary, stream_windows, time_windows
from motionhub.recipes import recipe_from_tree
from motionhub.use.trained_run import load_run
from motionhub.train.trainer import train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny trained run (down-sampling 2, data.window 32) with 5 val clips of 31-45 frames."""
    out = tmp_path_factory.mktemp("bench") / "run"
    tree = {**TINY_RECIPE, "run": {"name": "bench", "out": str(out), "seed": 0},
            "data": {**TINY_RECIPE["data"], "clips": 20, "val_fraction": 0.25, "min_frames": 30, "max_frames": 44},
            "train": {**TINY_RECIPE["train"], "iters": 4}, "eval": {"train_codebook": False}}
    return train(recipe_from_tree(tree, "bench.yaml"))


@pytest.fixture(scope="module")
def val_clips(run_dir):
    return list(load_run(run_dir).dataset.clips("val"))


def read_results(out):
    rows = [json.loads(line) for line in (out / "windows.jsonl").read_text().splitlines()]
    return rows, json.loads((out / "summary.json").read_text())


def test_bench_times_every_window_of_the_stream_and_summarises(run_dir, val_clips, tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["bench", str(run_dir), "--window", "8", "--stride", "4", "--warmup", "2", "--threads", "1"]
    assert main([*args, "--out", str(out)]) == 0
    assert capsys.readouterr().out.rstrip().endswith(str(out))
    rows, summary = read_results(out)

    lengths = [len(c.motion) for c in val_clips]
    expected = (sum(lengths) - 8) // 4 + 1
    assert len(rows) == summary["windows"] == expected
    starts = np.concatenate([[0], np.cumsum(lengths)])
    for k, row in enumerate(rows):
        clip = np.searchsorted(starts, 4 * k, side="right") - 1
        assert (row["window"], row["stream_frame"]) == (k, 4 * k)
        assert (row["clip_id"], row["start_frame"]) == (val_clips[clip].id, 4 * k - starts[clip])
        assert row["latency_ms"] > 0
        assert row["slack_ms"] == pytest.approx(summary["budget_ms"] - row["latency_ms"])
        assert row["status"] == ("OK" if row["slack_ms"] >= 0 else "LAG")

    latency = summary["latency_ms"]
    assert 0 < latency["min"] <= latency["p50"] <= latency["p95"] <= latency["max"]
    assert latency["mean"] == pytest.approx(np.mean([r["latency_ms"] for r in rows]))
    assert summary["windows_per_s"] == pytest.approx(expected / summary["wall_s"])
    assert summary["wall_s"] * 1000 >= sum(r["latency_ms"] for r in rows)
    assert summary["encode_windows_per_s"] == pytest.approx(1000 / latency["mean"])
    assert summary["frames_per_s"] == pytest.approx(4 * summary["windows_per_s"])
    # a window every 4 frames at the data's fps; motion clips play back to back
    assert summary["budget_ms"] == pytest.approx(4000 / summary["fps"])
    assert summary["budget_source"] == f"stride 4 frames at {summary['fps']:g} fps"
    assert summary["stream"] == "joined" and "short_clips" not in summary
    late = [r["status"] == "LAG" for r in rows]
    assert summary["late_windows"] == sum(late) and summary["on_time_share"] == pytest.approx(1 - np.mean(late))
    assert summary["worst_slack_ms"] == pytest.approx(min(r["slack_ms"] for r in rows))
    assert summary["keeps_up"] == (not any(late)) and summary["verdict"].startswith(
        "keeps up" if summary["keeps_up"] else "LAGS")
    assert (summary["window"], summary["stride"], summary["warmup"], summary["split"]) == (8, 4, 2, "val")
    assert (summary["device"], summary["threads"], summary["step"]) == ("cpu", 1, 4)
    assert summary["memory"]["cpu_peak_rss_mib"] > 50 and "gpu_peak_allocated_mib" not in summary["memory"]
    params = summary["parameters"]
    assert params["total"] == params["encoder"] + params["quantizer"] + params["decoder"] > 0


def test_defaults_are_the_recipe_window_a_stride_of_one_window_and_run_dir_bench(run_dir, val_clips):
    assert main(["bench", str(run_dir), "--windows", "3", "--warmup", "0"]) == 0
    rows, summary = read_results(run_dir / "bench")
    assert (summary["window"], summary["stride"]) == (32, 32)
    assert len(rows) == min(3, (sum(len(c.motion) for c in val_clips) - 32) // 32 + 1) == 3


@pytest.mark.parametrize("precision, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_mixed_precision_encodes_under_autocast(run_dir, precision, dtype, tmp_path):
    loaded = load_run(run_dir)
    seen = []
    loaded.model.encoder.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    windows = stream_windows(loaded.dataset.clips("val"), window=8, stride=8, limit=3)
    timings = time_windows(loaded.model, loaded.format, windows, warmup=1, device=torch.device("cpu"),
                           precision=precision)
    assert len(timings.latencies_ms) == 3 and (timings.latencies_ms > 0).all()
    assert timings.wall_s * 1000 >= timings.latencies_ms.sum()
    assert seen == [dtype] * 4  # the warm-up encode too

    out = tmp_path / "bench"
    assert main(["bench", str(run_dir), "--windows", "2", "--window", "8", "--precision", precision,
                 "--out", str(out)]) == 0
    assert read_results(out)[1]["precision"] == precision


def test_the_recipes_bench_section_sets_the_stream_and_the_command_line_wins(run_dir, tmp_path):
    section = ["bench.window=8", "bench.stride=4", "bench.windows=3", "bench.warmup=1", "bench.precision=bf16"]
    assert main(["bench", str(run_dir), *section, "--out", str(tmp_path / "a")]) == 0
    rows, summary = read_results(tmp_path / "a")
    assert (summary["window"], summary["stride"], summary["warmup"], summary["precision"]) == (8, 4, 1, "bf16")
    assert [row["stream_frame"] for row in rows] == [0, 4, 8]

    assert main(["bench", str(run_dir), *section, "--stride", "2", "--precision", "fp32", "--split", "train",
                 "--out", str(tmp_path / "b")]) == 0
    rows, summary = read_results(tmp_path / "b")
    assert (summary["window"], summary["stride"], summary["precision"], summary["split"]) == (8, 2, "fp32", "train")
    assert [row["stream_frame"] for row in rows] == [0, 2, 4]


def test_the_stream_reads_only_the_clips_its_windows_need():
    read = []

    def clips():
        for i in range(10):
            read.append(i)
            yield Clip(f"c{i}", np.zeros((10, 3), dtype=np.float32))

    windows = stream_windows(clips(), window=6, stride=5, limit=3)  # frames 0-5, 5-10, 10-15
    assert windows.starts.tolist() == [0, 5, 10] and read == [0, 1]
    assert [(r["clip_id"], r["start_frame"]) for r in windows.rows()] == [("c0", 0), ("c0", 5), ("c1", 0)]


def test_summary_percentiles_and_throughput():
    summary = latency_summary(Timings(np.arange(1.0, 101.0), wall_s=8.0), stride=10, fps=20.0)
    assert summary["latency_ms"]["p50"] == pytest.approx(50.5) and summary["latency_ms"]["max"] == 100.0
    assert summary["windows_per_s"] == 100 / 8.0 and summary["wall_s"] == 8.0
    assert summary["encode_windows_per_s"] == pytest.approx(1000 / 50.5)
    assert summary["frames_per_s"] == 10 * 100 / 8.0
    assert summary["real_time_factor"] == pytest.approx(summary["frames_per_s"] / 20.0)


def test_bad_windows_devices_and_run_dirs_are_clear_errors(run_dir, tmp_path, capsys):
    assert main(["bench", str(run_dir), "--window", "7", "--out", str(tmp_path)]) == 2
    assert "a window of 7 frames (--window) is not a multiple of the model's down-sampling (2 frames); " \
           "use --window 6" in capsys.readouterr().err
    assert main(["bench", str(run_dir), "bench.window=9", "--out", str(tmp_path)]) == 2
    assert "a window of 9 frames (bench.window) is not a multiple of the model's down-sampling (2 frames); " \
           "set bench.window to 8 or use --window 8" in capsys.readouterr().err

    assert main(["bench", str(run_dir), "--window", "10000", "--out", str(tmp_path)]) == 2
    assert "fewer than one window of 10000; lower --window" in capsys.readouterr().err

    assert main(["bench", str(tmp_path / "nowhere")]) == 2
    assert "is not a run directory (no recipe.yaml)" in capsys.readouterr().err

    if not torch.cuda.is_available():
        assert main(["bench", str(run_dir), "--device", "cuda"]) == 2
        assert "--device cuda was asked for, but torch finds no CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "windows.jsonl").exists()


def test_the_budget_comes_from_the_recipe_and_the_command_line_wins(run_dir, tmp_path):
    assert main(["bench", str(run_dir), "--windows", "3", "--warmup", "0", "bench.budget_ms=2.5",
                 "--out", str(tmp_path / "a")]) == 0
    rows, summary = read_results(tmp_path / "a")
    assert (summary["budget_ms"], summary["budget_source"]) == (2.5, "bench.budget_ms")
    assert [r["slack_ms"] for r in rows] == pytest.approx([2.5 - r["latency_ms"] for r in rows])
    assert f"the 2.5 ms budget (bench.budget_ms)" in summary["verdict"]

    assert main(["bench", str(run_dir), "--windows", "3", "--warmup", "0", "bench.budget_ms=2.5",
                 "--budget-ms", "40", "--out", str(tmp_path / "b")]) == 0
    assert read_results(tmp_path / "b")[1]["budget_source"] == "--budget-ms"
    assert read_results(tmp_path / "b")[1]["budget_ms"] == 40.0


def test_a_budget_no_window_meets_lags_everywhere_and_fails_only_when_asked(run_dir, tmp_path, capsys):
    args = ["bench", str(run_dir), "--window", "8", "--windows", "5", "--warmup", "0", "--budget-ms", "1e-6"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    rows, summary = read_results(tmp_path / "a")
    assert [r["status"] for r in rows] == ["LAG"] * 5
    assert (summary["on_time_share"], summary["late_windows"], summary["longest_late_run"]) == (0.0, 5, 5)
    assert summary["keeps_up"] is False and summary["worst_slack_ms"] < 0
    assert summary["verdict"].startswith("LAGS: 100.0 % late, 5 of 5 windows over the 1e-06 ms budget (--budget-ms); ")
    printed = capsys.readouterr().out
    assert summary["verdict"] in printed and "0.0 % (0 of 5 windows)" in printed

    assert main([*args, "--fail-on-lag", "--out", str(tmp_path / "b")]) == 1
    assert read_results(tmp_path / "b")[1]["keeps_up"] is False  # the results are written all the same


def test_a_huge_budget_keeps_up_with_every_window(run_dir, tmp_path, capsys):
    args = ["bench", str(run_dir), "--window", "8", "--windows", "5", "--warmup", "0", "--budget-ms", "1e6"]
    assert main([*args, "--fail-on-lag", "--out", str(tmp_path)]) == 0
    rows, summary = read_results(tmp_path)
    assert [r["status"] for r in rows] == ["OK"] * 5
    assert (summary["on_time_share"], summary["late_windows"], summary["longest_late_run"]) == (1.0, 0, 0)
    assert summary["verdict"] == "keeps up: 100.0 % of 5 windows within the 1000000.0 ms budget (--budget-ms)"
    assert summary["verdict"] in capsys.readouterr().out


def test_windows_per_second_is_windows_over_the_measured_wall_time(run_dir, tmp_path, monkeypatch):
    ticks = iter(range(10_000))
    monkeypatch.setattr(bench, "clock", lambda: next(ticks) * 0.004)  # every reading 4 ms after the last
    assert main(["bench", str(run_dir), "--window", "8", "--stride", "8", "--windows", "6", "--warmup", "2",
                 "--out", str(tmp_path)]) == 0
    rows, summary = read_results(tmp_path)
    # the loop reads the clock once before, twice per window and once after: 14 readings, 13 steps
    assert [r["latency_ms"] for r in rows] == pytest.approx([4.0] * 6)
    assert summary["wall_s"] == pytest.approx(13 * 0.004)
    assert summary["windows_per_s"] == pytest.approx(6 / 0.052)  # not 1000 / 4 ms = 250
    assert summary["encode_windows_per_s"] == pytest.approx(250.0)
    assert summary["frames_per_s"] == pytest.approx(8 * 6 / 0.052)
    assert summary["budget_ms"] == pytest.approx(8000 / summary["fps"])
    assert [r["slack_ms"] for r in rows] == pytest.approx([summary["budget_ms"] - 4.0] * 6)


def test_on_time_share_worst_slack_and_the_longest_late_run():
    summary = budget_summary(np.array([1.0, 5.0, 6.0, 2.0, 4.0, 1.0, 7.0, 7.0, 7.0, 3.0]), budget_ms=3.0,
                             source="stride 1 frames at 20 fps")
    assert (summary["late_windows"], summary["on_time_share"]) == (6, pytest.approx(0.4))
    assert (summary["worst_slack_ms"], summary["longest_late_run"], summary["keeps_up"]) == (-4.0, 3, False)
    assert summary["verdict"] == ("LAGS: 60.0 % late, 6 of 10 windows over the 3.0 ms budget (stride 1 frames at "
                                  "20 fps); worst slack -4.0 ms, 3 late in a row at most")
    exact = budget_summary(np.array([3.0, 3.0]), budget_ms=3.0, source="--budget-ms")
    assert exact["keeps_up"] and exact["worst_slack_ms"] == 0.0  # a window that takes its whole budget is on time
    rare = budget_summary(np.r_[np.ones(9999), 9.0], budget_ms=3.0, source="--budget-ms")
    assert rare["verdict"].startswith("LAGS: <0.1 % late, 1 of 10,000 windows")  # never rounded to 0.0 %


def test_per_clip_windows_never_span_two_clips_and_read_only_the_clips_they_need():
    read = []

    def clips(lengths=(10, 5, 12, 9)):
        for i, length in enumerate(lengths):
            read.append(i)
            yield Clip(f"c{i}", np.arange(length * 3, dtype=np.float32).reshape(length, 3) + 100 * i)

    windows = stream_windows(clips(), window=6, stride=4, limit=None, per_clip=True)
    rows = windows.rows()
    assert [(r["clip_id"], r["start_frame"]) for r in rows] == [("c0", 0), ("c0", 4), ("c2", 0), ("c2", 4),
                                                                ("c3", 0)]
    assert windows.short_clips == 1 and windows.stream.ids == ["c0", "c2", "c3"]
    bank = windows.stream
    for row in rows:  # every window's frames are frames of its own clip
        c = bank.ids.index(row["clip_id"])
        assert row["start_frame"] + 6 <= bank.lengths[c]
        assert row["stream_frame"] == bank.offsets[c] + row["start_frame"]

    read.clear()
    assert len(stream_windows(clips(), window=6, stride=4, limit=3, per_clip=True)) == 3 and read == [0, 1, 2]
    with pytest.raises(DataError, match="no clip of the split has a window of 20 frames \\(the longest has 12\\)"):
        stream_windows(clips(), window=20, stride=4, limit=None, per_clip=True)


def test_track_samples_are_benched_one_window_inside_each_sample(tmp_path):
    tree = track_recipe(tmp_path, iters=1)
    run_dir = train(recipe_from_tree(tree, "tracks.yaml"))
    samples = {clip.id: clip.motion for clip in load_run(run_dir).dataset.clips("val")}
    assert len(samples) >= 2 and {len(m) for m in samples.values()} == {16}

    out = tmp_path / "bench"
    assert main(["bench", str(run_dir), "--stride", "4", "--warmup", "0", "--out", str(out)]) == 0
    rows, summary = read_results(out)
    assert summary["stream"] == "per_clip" and summary["short_clips"] == 0
    # a stride of 4 frames would start windows inside a 16-frame sample, reaching into the next one
    assert [(r["clip_id"], r["start_frame"]) for r in rows] == [(clip_id, 0) for clip_id in samples]
    assert [r["stream_frame"] for r in rows] == [16 * k for k in range(len(samples))]

    # joined on request: then windows do straddle two samples
    assert main(["bench", str(run_dir), "--stride", "4", "--warmup", "0", "--stream", "joined",
                 "--out", str(out)]) == 0
    rows, summary = read_results(out)
    assert summary["stream"] == "joined" and "short_clips" not in summary
    assert len(rows) == (16 * len(samples) - 16) // 4 + 1 and rows[1]["start_frame"] == 4


def test_bad_budgets_are_clear_errors(run_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["bench", str(run_dir), "--budget-ms", "0", "--out", str(tmp_path)])
    assert "--budget-ms: must be a number above 0, got 0" in capsys.readouterr().err
    assert main(["bench", str(run_dir), "bench.budget_ms=-3", "--out", str(tmp_path)]) == 2
    assert "bench.budget_ms: must be greater than 0, got -3" in capsys.readouterr().err
    assert not (tmp_path / "windows.jsonl").exists()
