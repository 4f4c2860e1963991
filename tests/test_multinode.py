"""Two machines, simulated on one: two torchrun nodes (one process each, gloo on the CPU) meeting on the
loopback address, training with a sharded store, as the README's multi-node commands launch it."""

import os
import shutil
import subprocess
import sys

import pytest
from helpers import TINY_RECIPE, run_cli, write_recipe

from motionhub.train.rundir import RunDir

pytestmark = pytest.mark.slow

RECIPE = {**TINY_RECIPE,
          "data": {**TINY_RECIPE["data"], "clips": 24, "shards": 2},
          "train": {**TINY_RECIPE["train"], "iters": 6, "log_every": 1, "threads": 1}}


def node(rank: int, recipe, out, port: int) -> subprocess.Popen:
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    return subprocess.Popen([torchrun, "--nnodes", "2", "--node_rank", str(rank), "--nproc_per_node", "1",
                             "--master_addr", "127.0.0.1", "--master_port", str(port),
                             "-m", "motionhub.cli", "train", str(recipe), f"run.out={out}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_nodes_with_a_sharded_store_follow_one_process_with_the_same_global_batch(tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", {**RECIPE, "data": {**RECIPE["data"], "cache_dir": str(tmp_path / "cache")}})
    nodes = [node(rank, recipe, tmp_path / "two", 29581) for rank in range(2)]
    printed = []
    for launched in nodes:
        out, err = launched.communicate(timeout=300)
        assert launched.returncode == 0, err[-3000:]
        printed.append(" ".join((out + err).split()))  # the console wraps long lines
    assert "process 0 reads shards 0-0" in printed[0]  # the main process says which part it reads
    two = [r for r in RunDir(tmp_path / "two").rows() if "split" not in r]

    # one process drawing both nodes' windows at once: train.batch_size doubled, same shards
    single = run_cli("train", str(recipe), f"run.out={tmp_path / 'one'}",
                     f"train.batch_size={2 * RECIPE['train']['batch_size']}")
    assert single.returncode == 0, single.stderr[-3000:]
    one = [r for r in RunDir(tmp_path / "one").rows() if "split" not in r]

    assert [r["step"] for r in two] == [r["step"] for r in one] == list(range(1, 7))
    assert [r["loss"] for r in two] == pytest.approx([r["loss"] for r in one], rel=1e-4)
    assert len({round(r["loss"], 6) for r in one}) > 1  # the loss moves: the comparison means something
