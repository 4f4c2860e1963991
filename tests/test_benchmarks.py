"""The benchmark scripts still run, and the batched-encoding one still finds the ids equal."""

import os
import re
import subprocess
import sys

import pytest
import torch

from helpers import REPO

ENCODE = [sys.executable, str(REPO / "benchmarks" / "encode_batched.py")]
LAPS = [sys.executable, str(REPO / "benchmarks" / "laps_step.py")]
BF16_STEP = [sys.executable, str(REPO / "benchmarks" / "bf16_step.py")]
# the folder holding the LAPS re-implementation's package amplify_motion_tokenizer/, when at hand
LAPS_REFERENCE = os.environ.get("MOTIONHUB_LAPS_REFERENCE")


def test_encode_benchmark_reports_rates_and_equal_ids():
    result = subprocess.run(ENCODE + ["--clips", "24", "--rounds", "1", "--width", "32", "--depth", "1",
                                      "--batch-size", "4"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "clips whose ids differ from one-at-a-time: 0 / 24" in result.stdout
    rates = re.findall(r"([\d.]+) clips/s \([\d.]+ s, (\d+) GFLOP/s, (\d+)% of the fp32 matmul ceiling; [\d.]+ CPU s\)",
                       result.stdout)
    assert len(rates) == 2 and all(float(clips) > 0 for clips, _, _ in rates)
    flops = re.search(r"encoder arithmetic: ([\d.]+) GFLOP", result.stdout)
    assert flops and float(flops.group(1)) > 0
    # bf16 in the same run: its rate against the bf16 ceiling, how many ids agree, the reconstruction gap
    assert re.search(r"batched bf16 \(B=4\): +[\d.]+ clips/s \([\d.]+ s, \d+ GFLOP/s, \d+% of the bf16 matmul ceiling",
                     result.stdout)
    same = re.search(r"bf16 speed-up over one clip at a time in fp32: [\d.]+x wall, [\d.]+x CPU .* identical ids ([\d.]+)%",
                     result.stdout)
    assert same and 90 <= float(same.group(1)) <= 100
    assert re.search(r"bf16 reconstruction error .*: [\d.]+ vs [\d.]+ from the fp32 ids", result.stdout)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where there is no GPU")
def test_encode_benchmark_without_gpu_says_so():
    result = subprocess.run(ENCODE + ["--device", "cuda"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "torch finds no CUDA GPU here" in result.stderr


def test_laps_benchmark_describes_itself():
    result = subprocess.run(LAPS + ["--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--reference" in result.stdout and "--points" in result.stdout


@pytest.mark.skipif(not LAPS_REFERENCE, reason="set MOTIONHUB_LAPS_REFERENCE to the folder holding the LAPS "
                                               "re-implementation's amplify_motion_tokenizer/")
def test_laps_benchmark_matches_the_reference_and_times_both():
    result = subprocess.run(LAPS + ["--reference", LAPS_REFERENCE, "--points", "16", "--batch", "2", "--reps", "1",
                                    "--warmup", "0"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "parity: OK (logits within 1e-5, indices equal)" in result.stdout
    losses = re.search(r"focal loss ([\d.]+) \(reference\) vs ([\d.]+) \(motionhub\)", result.stdout)
    assert losses and abs(float(losses.group(1)) - float(losses.group(2))) < 1e-5
    assert re.search(r"ratio +[\d.]+x +[\d.]+x +[\d.]+x", result.stdout)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="runs on the CPU")
def test_bf16_step_benchmark_quick_prints_each_dtype_against_its_ceiling():
    result = subprocess.run(BF16_STEP + ["--quick", "--recipe", "t2m_gpt", "amplify", "--threads", "1"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("bf16 step speed-up") == 2  # the conv recipe and AMPLIFY on point tracks
    for dtype in ("fp32", "bf16"):
        ceiling = re.search(rf"  {dtype}: ([\d.]+) GFLOP/s: ", result.stdout)
        assert ceiling and float(ceiling.group(1)) > 0
        share = re.search(rf"  {dtype} +[\d.]+ s \[[\d.]+, [\d.]+\] +([\d.]+) GFLOP/step +[\d.]+ GFLOP/s +"
                          rf"[\d.]+% of the {dtype} matmul ceiling", result.stdout)
        assert share and float(share.group(1)) > 0
    assert re.search(r"bf16 step speed-up: [\d.]+x over motionhub fp32", result.stdout)
    assert "precision: bf16 autocast" in result.stdout
    assert re.search(r"targets \(CPU s\): fp32 at >= 85 % of its ceiling: \d+%, (not )?met; "
                     r"bf16 at >= 75 % of its ceiling: \d+%, (not )?met", result.stdout)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="runs on the CPU")
def test_kernel_layouts_benchmark_checks_each_variant_in_fp32_and_prints_its_ceiling_share():
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "kernel_layouts.py"), "--width", "32",
                             "--batch", "2", "--rounds", "1"], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": str(REPO / "plugins")})
    assert result.returncode == 0, result.stderr
    gaps = dict(re.findall(r"  (\w+) +fp32 output vs the plugin's: max \|difference\| (\S+)", result.stdout))
    assert set(gaps) == {"conv1d", "conv2d_nhwc", "gemm", "sdpa", "written_out"}
    assert all(float(gap) <= 1e-5 for gap in gaps.values())
    for dtype in ("fp32", "bf16"):
        shares = re.findall(rf"(conv|transformer) +\w+ +{dtype}: [\d.]+ s +[\d.]+ GFLOP/s +[\d.]+% of the {dtype} "
                            rf"matmul ceiling", result.stdout)
        assert len(shares) == 5
