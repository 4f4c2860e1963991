"""Bad input ends in one clear message naming what is wrong: never a traceback, never a silent run.

Each case goes through the command line (in this process, for speed; a few also in a fresh one).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from helpers import TINY_RECIPE, run_cli, write_recipe

from motionhub import recipes as recipe_module
from motionhub.cli import main
from motionhub.train.rundir import RunDir

# (overrides of the tiny recipe, the YAML path the message must name, text the message must hold)
BAD_VALUES = [
    (["train.batch_size=0"], "train.batch_size", "must be at least 1, got 0"),
    (["train.batch_size=-3"], "train.batch_size", "must be at least 1, got -3"),
    (["train.iters=0"], "train.iters", "must be at least 1, got 0"),
    (["train.iters=-5"], "train.iters", "must be at least 1, got -5"),
    (["train.lr=-1"], "train.lr", "must be greater than 0, got -1"),
    (["train.lr=0"], "train.lr", "must be greater than 0, got 0"),
    (["train.lr=.nan"], "train.lr", "must be greater than 0, got nan"),
    (["train.weight_decay=-0.1"], "train.weight_decay", "must be at least 0, got -0.1"),
    (["train.betas=[1.5,2]"], "train.betas", "each item must be at least 0 and below 1, got 1.5"),
    (["train.betas=[0.9]"], "train.betas", "must hold 2 numbers, got 1"),
    (["train.grad_accum=0"], "train.grad_accum", "must be at least 1, got 0"),
    (["train.log_every=0"], "train.log_every", "must be at least 1, got 0"),
    (["train.log_every=-2"], "train.log_every", "must be at least 1, got -2"),
    (["train.checkpoint_every=-1"], "train.checkpoint_every", "must be at least 0, got -1"),
    (["train.eval_every=-1"], "train.eval_every", "must be at least 0, got -1"),
    (["train.warmup_iters=-1"], "train.warmup_iters", "must be at least 0, got -1"),
    (["train.milestones=[-3]"], "train.milestones", "each item must be at least 1, got -3"),
    (["train.milestones=[6]"], "train.milestones", "the run is train.iters=6 steps long"),
    (["train.gamma=0"], "train.gamma", "must be greater than 0, got 0"),
    (["train.grad_clip=-1"], "train.grad_clip", "must be greater than 0, got -1"),
    (["train.grad_clip=0"], "train.grad_clip", "null turns clipping off"),
    (["train.threads=0"], "train.threads", "must be at least 1, got 0"),
    (["run.seed=-1"], "run.seed", "must be at least 0 and at most 4294967295, got -1"),
    (["eval.batch_size=0"], "eval.batch_size", "must be at least 1, got 0"),
    (["eval.min_length=0"], "eval.min_length", "must be at least 1, got 0"),
    (["eval.min_length=50", "eval.max_length=10"], "eval.min_length", "above eval.max_length=10"),
    (["data.window=0"], "data.window", "must be at least 1, got 0"),
    (["bench.stride=0"], "bench.stride", "must be at least 1, got 0"),
    (["bench.windows=0"], "bench.windows", "must be at least 1, got 0"),
    (["bench.warmup=-1"], "bench.warmup", "must be at least 0, got -1"),
    (["losses[0].every=0"], "losses[0].every", "must be at least 1, got 0"),
    (["losses[0].weight=-1"], "losses[0].weight", "must be at least 0, got -1"),
    (["quantizer={name: vq, codebook_size: 1}"], "quantizer.codebook_size", "must be at least 2, got 1"),
    (["quantizer={name: vq_ema_reset, codebook_size: 1}"], "quantizer.codebook_size", "must be at least 2, got 1"),
    (["quantizer={name: rvq, codebook_size: 1}"], "quantizer.codebook_size", "must be at least 2, got 1"),
    (["quantizer={name: vq_ema_reset, decay: 1.0}"], "quantizer.decay", "below 1, got 1.0"),
]


def assert_one_clear_error(code: int, err: str, *expected: str) -> None:
    assert code != 0, err
    assert "Traceback" not in err, err
    assert err.count("Error: ") == 1, err
    for text in expected:
        assert text in err, err


@pytest.mark.parametrize("overrides,key,text", BAD_VALUES, ids=[" ".join(case[0]) for case in BAD_VALUES])
def test_a_bad_value_is_one_clear_problem(tmp_path, capsys, overrides, key, text):
    recipe = write_recipe(tmp_path / "r.yaml")
    code = main(["validate", str(recipe), *overrides])
    err = capsys.readouterr().err
    assert_one_clear_error(code, err, "1 problem:", f"  {key}: ", text)


def test_every_bad_value_is_reported_at_once(tmp_path, capsys):
    recipe = write_recipe(tmp_path / "r.yaml")
    overrides = ["train.batch_size=0", "train.lr=-1", "train.grad_clip=-1", "eval.batch_size=0", "data.window=0",
                 "quantizer={name: vq, codebook_size: 1}"]
    code = main(["validate", str(recipe), *overrides])
    assert_one_clear_error(code, capsys.readouterr().err, "6 problems:")


def test_the_bounds_let_every_default_through():
    recipe = recipe_module.recipe_from_tree(TINY_RECIPE, "r.yaml")
    assert recipe.train.grad_clip is None and recipe.train.betas == [0.9, 0.99]


# ---------------------------------------------------------------------------- recipe files
def _binary(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 4)


def _latin1(path: Path) -> None:
    path.write_bytes("run: {name: café}\n".encode("latin-1"))


def _nul(path: Path) -> None:
    path.write_bytes(b"run: {name: a}\n\x00\x00\n")


def _directory(path: Path) -> None:
    path.mkdir()


def _missing(path: Path) -> None:
    pass


BAD_FILES = [(_binary, "not a text recipe"), (_latin1, "byte 15 is not UTF-8"), (_nul, "NUL bytes"),
             (_directory, "is a directory, not a recipe file"), (_missing, "recipe file not found")]


@pytest.mark.parametrize("make,text", BAD_FILES, ids=[make.__name__.strip("_") for make, _ in BAD_FILES])
@pytest.mark.parametrize("command", ["validate", "train"])
def test_a_recipe_file_that_is_not_a_text_recipe_is_named(tmp_path, capsys, make, text, command):
    path = tmp_path / "recipe.yaml"
    make(path)
    code = main([command, str(path)])
    assert_one_clear_error(code, capsys.readouterr().err, text)


def test_an_unreadable_recipe_is_named(tmp_path, capsys, monkeypatch):
    path = write_recipe(tmp_path / "r.yaml")

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)  # the tests may run as root, who reads anything
    code = main(["validate", str(path)])
    assert_one_clear_error(code, capsys.readouterr().err, str(path), "permission denied")


# ---------------------------------------------------------------------------- the start of a run
BAD_STARTS = [
    (["quantizer.dim=8"], ["encoder 'conv1d' outputs 16-wide latents", "quantizer 'fsq' takes dim=8"]),
    (["quantizer={name: vq, codebook_size: 16, dim: 12}"], ["16-wide latents", "quantizer 'vq' takes dim=12"]),
    (["encoder.down_t=6"], ["encoder 'conv1d' down-samples time x64", "32-frame window", "data.window"]),
    (["eval.min_length=1000"], ["val split (eval.min_length=1000): no clip is at least 1000 frames long"]),
]


@pytest.mark.parametrize("overrides,texts", BAD_STARTS, ids=[" ".join(case[0]) for case in BAD_STARTS])
def test_what_would_fail_later_fails_before_a_run_folder_exists(tmp_path, capsys, overrides, texts):
    recipe = write_recipe(tmp_path / "r.yaml")
    out = tmp_path / "runs" / "bad"
    code = main(["train", str(recipe), f"run.out={out}", *overrides])
    assert_one_clear_error(code, capsys.readouterr().err, *texts)
    assert not out.exists() and not out.with_name("bad-2").exists()


def test_a_failed_start_leaves_no_folder_and_the_next_run_gets_the_name(tmp_path, capsys, monkeypatch):
    from motionhub.train import trainer
    from motionhub.errors import MotionhubError

    def fail(*args, **kwargs):
        raise MotionhubError("train.trackers: the tracker would not start")

    recipe = write_recipe(tmp_path / "r.yaml")
    out = tmp_path / "run"
    monkeypatch.setattr(trainer, "_print_plan", fail)  # fails after the run folder was claimed
    assert main(["train", str(recipe), f"run.out={out}", "train.iters=1"]) != 0
    assert not out.exists()
    monkeypatch.undo()
    assert main(["train", str(recipe), f"run.out={out}", "train.iters=1", "eval.train_codebook=false"]) == 0
    assert (out / "checkpoints" / "last.pt").is_file() and not out.with_name("run-2").exists()


def test_runs_started_at_the_same_instant_never_share_a_folder(tmp_path):
    barrier, claimed = threading.Barrier(8), []

    def start():
        barrier.wait()
        claimed.append(RunDir.create(tmp_path / "run").path)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted([tmp_path / "run", *(tmp_path / f"run-{n}" for n in range(2, 9))])


# ---------------------------------------------------------------------------- the real command line
def test_the_command_line_prints_one_message_and_no_traceback(tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml")
    result = run_cli("validate", str(recipe), "train.grad_clip=-1", "train.iters=0")
    assert_one_clear_error(result.returncode, result.stderr, "2 problems:", "train.grad_clip:", "train.iters:")
    _binary(tmp_path / "bin.yaml")
    result = run_cli("train", str(tmp_path / "bin.yaml"))
    assert_one_clear_error(result.returncode, result.stderr, "bin.yaml: not a text recipe")
