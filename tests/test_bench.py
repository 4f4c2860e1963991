"""``motionhub bench``: per-window encode latency files and figures, and clear errors."""

import json

import numpy as np
import pytest
import torch
from helpers import TINY_RECIPE

from motionhub.cli import main
from motionhub.data.dataset import Clip
from motionhub.use.bench import latency_summary, stream_windows, time_windows
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

    latency = summary["latency_ms"]
    assert 0 < latency["min"] <= latency["p50"] <= latency["p95"] <= latency["max"]
    assert latency["mean"] == pytest.approx(np.mean([r["latency_ms"] for r in rows]))
    assert summary["windows_per_s"] == pytest.approx(1000 / latency["mean"])
    assert summary["frames_per_s"] == pytest.approx(4 * summary["windows_per_s"])
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
    latencies = time_windows(loaded.model, loaded.format, windows, warmup=1, device=torch.device("cpu"),
                             precision=precision)
    assert len(latencies) == 3 and (latencies > 0).all()
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
    summary = latency_summary(np.arange(1.0, 101.0), stride=10, fps=20.0)
    assert summary["latency_ms"]["p50"] == pytest.approx(50.5) and summary["latency_ms"]["max"] == 100.0
    assert summary["windows_per_s"] == pytest.approx(1000 / 50.5)
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
