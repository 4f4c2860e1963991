"""The benchmark scripts still run, and the batched-encoding one still finds the ids equal."""

import re
import subprocess
import sys

import pytest
import torch

from helpers import REPO

ENCODE = [sys.executable, str(REPO / "benchmarks" / "encode_batched.py")]


def test_encode_benchmark_reports_rates_and_equal_ids():
    result = subprocess.run(ENCODE + ["--clips", "24", "--rounds", "1", "--width", "32", "--depth", "1",
                                      "--batch-size", "4"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "clips whose ids differ from one-at-a-time: 0 / 24" in result.stdout
    rates = re.findall(r"([\d.]+) clips/s \([\d.]+ s, (\d+) GFLOP/s\)", result.stdout)
    assert len(rates) == 2 and all(float(clips) > 0 for clips, _ in rates)
    flops = re.search(r"encoder arithmetic: ([\d.]+) GFLOP", result.stdout)
    assert flops and float(flops.group(1)) > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where there is no GPU")
def test_encode_benchmark_without_gpu_says_so():
    result = subprocess.run(ENCODE + ["--device", "cuda"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "torch finds no CUDA GPU here" in result.stderr
