"""A shared run directory runs no code, and damaged or foreign files give one clear message.

Checkpoints are read with ``torch.load(weights_only=True)`` only; a file that needs more is
refused unless ``MOTIONHUB_TRUST_CHECKPOINTS=1``. Damaged checkpoints, metrics lines and token
files, a full disk and a kill between two checkpoint writes each end in a message naming the
file and the way on, never a traceback, and never cost a good checkpoint.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from helpers import TINY_RECIPE, run_cli, write_recipe

from motionhub.train import checkpoint as checkpoint_module
from motionhub.train.checkpoint import TRUST_ENV, load_checkpoint
from motionhub.cli import main
from motionhub.recipes import load_recipe
from motionhub.train.rundir import RunDir
from motionhub.train.trainer import train

RECIPE = {**TINY_RECIPE,
          "quantizer": {"name": "vq_ema_reset", "codebook_size": 32},
          "losses": [{"name": "recon"}, {"name": "commit", "weight": 0.02}],
          "train": {**TINY_RECIPE["train"], "iters": 6, "checkpoint_every": 2, "eval_every": 4, "threads": 1},
          "eval": {"train_codebook": False}}
MORE = "train.iters=8"  # a resumed run trains two more steps


class Planted:
    """Unpickling this creates a file: what a hostile checkpoint could do instead."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("base")
    recipe = write_recipe(folder / "r.yaml", RECIPE)
    run = train(load_recipe(recipe, [f"run.out={folder / 'run'}"]))
    main(["encode", str(run), "--out", str(folder / "tokens.h5")])
    return run


@pytest.fixture
def run(base, tmp_path) -> Path:
    """A copy of the trained run to damage."""
    return Path(shutil.copytree(base, tmp_path / "run"))


def ckpt(run: Path, name: str) -> Path:
    return run / "checkpoints" / f"{name}.pt"


def assert_clear(code: int, err: str, *expected: str) -> None:
    assert code != 0, err
    assert "Traceback" not in err, err
    for text in expected:
        assert text in err, f"{text!r} not in:\n{err}"


def plant(run: Path, name: str, marker: Path) -> None:
    data = load_checkpoint(ckpt(run, name))
    data["extra"] = Planted(marker)
    torch.save(data, ckpt(run, name))


def old_format(run: Path, name: str) -> None:
    """As motionhub wrote checkpoints before they were weights-only: numpy statistics and RNG state."""
    torch.save(load_checkpoint(ckpt(run, name)), ckpt(run, name))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# ---------------------------------------------------------------------------- writing
def test_checkpoints_load_weights_only(base):
    for path in sorted((base / "checkpoints").glob("*.pt")):
        data = torch.load(path, map_location="cpu", weights_only=True)
        assert {"model", "optimizer", "state", "rng", "recipe", "versions", "stats"} <= set(data)
        assert isinstance(data["stats"]["mean"], torch.Tensor)
    loaded = load_checkpoint(ckpt(base, "last"))
    assert isinstance(loaded["stats"]["mean"], np.ndarray)
    assert loaded["rng"][0]["numpy"][1].dtype == np.uint32


# ---------------------------------------------------------------------------- code never runs
@pytest.mark.parametrize("command", ["eval", "train"])
def test_a_checkpoint_that_would_run_code_is_refused(run, tmp_path, command):
    marker = tmp_path / "ran"
    plant(run, "best" if command == "eval" else "last", marker)
    args = ["eval", str(run)] if command == "eval" else ["train", str(run), MORE]
    result = run_cli(*args)
    assert_clear(result.returncode, result.stderr, "holds Python objects beyond tensors and plain data",
                 "could run any code", f"{TRUST_ENV}=1")
    assert not marker.exists()
    assert load_checkpoint(ckpt(run, "step_00000006"))["state"]["step"] == 6  # the others are untouched


def test_an_old_checkpoint_loads_only_when_trusted(run, monkeypatch, capsys):
    old_format(run, "best")
    assert_clear(main(["eval", str(run)]), capsys.readouterr().err, "numpy", f"{TRUST_ENV}=1")
    monkeypatch.setenv(TRUST_ENV, "1")
    assert main(["eval", str(run)]) == 0


# ---------------------------------------------------------------------------- commands on damaged runs
def _bare_state_dict(run):
    torch.save(load_checkpoint(ckpt(run, "best"))["model"], ckpt(run, "best"))


EVAL_CASES = {
    "truncated best.pt": (lambda run: truncate(ckpt(run, "best")), [],
                          ["cannot read checkpoint", "best.pt", "damaged", "Other checkpoints", "--checkpoint last"]),
    "empty best.pt": (lambda run: ckpt(run, "best").write_bytes(b""), [],
                      ["cannot read checkpoint", "step_00000004"]),
    "text as best.pt": (lambda run: ckpt(run, "best").write_text("not a checkpoint\n"), [],
                        ["cannot read checkpoint", "not a torch file"]),
    "bare state dict": (_bare_state_dict, [], ["not a motionhub checkpoint", "a bare state dict of", "motionhub import"]),
    "a list": (lambda run: torch.save([1, 2], ckpt(run, "best")), [], ["not a motionhub checkpoint", "a list"]),
    "missing step": (lambda run: None, ["--checkpoint", "step_00000003"],
                     ["checkpoint not found", "step_00000003.pt", "Other checkpoints"]),
    "model override": (lambda run: None, ["encoder.width=48"],
                       ["does not fit the model", "tensors differ in shape", "(32, 263, 3) in the checkpoint, (48, 263, 3)",
                        "encoder.width=48"]),
    "data of another width": (lambda run: None, ["data.layout=kit_251"],
                              ["trained on frames of shape (263,)", "(251,)", "data layout the run was trained with"]),
}


@pytest.mark.parametrize("case", list(EVAL_CASES))
def test_eval_on_a_damaged_or_foreign_run(run, capsys, case):
    damage, extra, expected = EVAL_CASES[case]
    damage(run)
    assert_clear(main(["eval", str(run), *extra]), capsys.readouterr().err, *expected)
    assert load_checkpoint(ckpt(run, "last"))["state"]["step"] == 6  # nothing lost


# ---------------------------------------------------------------------------- resume
def test_a_truncated_last_checkpoint_resumes_from_the_newest_readable_one(run, capsys):
    truncate(ckpt(run, "last"))
    (run / "checkpoints" / ".last.pt.abc123.tmp").write_bytes(b"partial")  # left by a SIGKILL
    assert main(["train", str(run), MORE]) == 0
    err = capsys.readouterr().err
    assert "cannot read checkpoint" in err and "(step 6), the newest readable checkpoint" in err
    assert "removed .last.pt.abc123.tmp" in err and not list((run / "checkpoints").glob("*.tmp"))
    assert load_checkpoint(ckpt(run, "last"))["state"]["step"] == 8


def test_damaged_metrics_lines_are_skipped_with_a_warning(run, capsys, caplog):
    good = (run / "metrics.jsonl").read_bytes()
    bad = [b"not json", b"[1, 2]", b'{"step": "three"}', b"\xff\xfe{}"]
    (run / "metrics.jsonl").write_bytes(b"\n".join(bad) + b"\n" + good + b'{"step": 7, "lo')
    assert main(["train", str(run), MORE]) == 0
    err = capsys.readouterr().err + caplog.text  # warnings go through logging
    for line, why in enumerate(["not JSON", "not an object", "not an integer", "not UTF-8"], 1):
        assert f"metrics.jsonl:{line}: " in err and why in err, err
    assert "cut short" in err
    rows = RunDir(run).rows()
    assert max(r["step"] for r in rows) == 8 and all(isinstance(r["step"], int) for r in rows)


RESUME_CASES = {
    "every checkpoint damaged": (lambda run: [truncate(p) for p in (run / "checkpoints").glob("*.pt")], [],
                                 ["cannot read checkpoint", "No other checkpoint", "cannot be resumed"]),
    "not motionhub's": (lambda run: torch.save({"net": {}}, ckpt(run, "last")), [],
                        ["not a motionhub checkpoint", "keys net"]),
    "model override": (lambda run: None, ["encoder.width=48"], ["does not fit the model", "encoder.", "(48, 263, 3)"]),
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_of_a_damaged_or_foreign_run(run, capsys, case):
    damage, extra, expected = RESUME_CASES[case]
    damage(run)
    before = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    assert_clear(main(["train", str(run), MORE, *extra]), capsys.readouterr().err, *expected)
    assert {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()} == before  # nothing lost or added


def test_a_full_disk_names_the_file_and_keeps_the_last_checkpoint(run, capsys, monkeypatch):
    def full(obj, f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full)
    assert_clear(main(["train", str(run), MORE]), capsys.readouterr().err,
                 "no space left on the device to write", "step_00000008.pt", "the checkpoint needs about",
                 "MiB are free", "partial file was removed", "motionhub train RUN_DIR")
    monkeypatch.undo()
    assert load_checkpoint(ckpt(run, "last"))["state"]["step"] == 6
    assert not list((run / "checkpoints").glob(".*.tmp"))


def test_a_kill_between_two_checkpoint_writes_skips_no_numbered_checkpoint(run, monkeypatch):
    save = checkpoint_module.save_atomic
    written = []

    def killed_before_last(obj, path):
        if Path(path).name == "last.pt" and obj["state"]["step"] == 8:
            raise KeyboardInterrupt  # stands for SIGKILL
        written.append(Path(path).name)
        return save(obj, path)

    monkeypatch.setattr(checkpoint_module, "save_atomic", killed_before_last)
    assert main(["train", str(run), MORE]) == 130
    monkeypatch.undo()
    assert "step_00000008.pt" in written and load_checkpoint(ckpt(run, "last"))["state"]["step"] == 6
    assert main(["train", str(run), MORE]) == 0
    assert load_checkpoint(ckpt(run, "step_00000008"))["state"]["step"] == 8
    assert load_checkpoint(ckpt(run, "last"))["state"]["step"] == 8


# ---------------------------------------------------------------------------- decode, encode, import
def _set_tokens(path: Path, change) -> None:
    with h5py.File(path, "r+") as f:
        tokens = change(f["tokens"][()])
        del f["tokens"]
        f.create_dataset("tokens", data=tokens)


def _at(value):
    def change(tokens):
        tokens = tokens.copy()
        tokens[5] = value
        return tokens
    return change


DECODE_CASES = {
    "id = codebook size": (_at(32), ["token id 32", "outside the codebook of 32 codes (ids 0..31)", "clip '"]),
    "negative id": (_at(-1), ["token id -1", "outside the codebook"]),
    "extra axis": (lambda t: np.stack([t, t], axis=-1), ["tokens of shape (2,) per position do not fit"]),
    "float tokens": (lambda t: t.astype(np.float32), ["not integer ids"]),
    "offsets beyond the tokens": (lambda t: t[:-3], ["offsets do not divide"]),
}


@pytest.mark.parametrize("case", list(DECODE_CASES))
def test_decode_checks_the_token_ids(base, tmp_path, capsys, case):
    change, expected = DECODE_CASES[case]
    tokens = Path(shutil.copy(base.parent / "tokens.h5", tmp_path / "tokens.h5"))
    _set_tokens(tokens, change)
    assert_clear(main(["decode", str(base), str(tokens), "--out", str(tmp_path / "recon.h5")]),
                 capsys.readouterr().err, str(tokens), *expected)
    assert not (tmp_path / "recon.h5").exists()


@pytest.mark.parametrize("target, expected", [("folder", "is a directory"), ("file/tokens.h5", "is a file, not a folder")])
def test_encode_refuses_an_output_it_cannot_write_before_encoding(base, tmp_path, capsys, target, expected):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("")
    assert_clear(main(["encode", str(base), "--out", str(tmp_path / target)]), capsys.readouterr().err, expected)


def test_import_of_a_motionhub_checkpoint_says_so(base, tmp_path, capsys):
    assert_clear(main(["import", "t2m-gpt", str(ckpt(base, "last")), "--recipe", str(base / "recipe.yaml"),
                       "--out", str(tmp_path / "imported")]), capsys.readouterr().err,
                 "is a motionhub checkpoint", "needs no import", str(base))
    assert not (tmp_path / "imported").exists()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EROFS])
def test_a_full_disk_while_logging_is_one_message_and_the_checkpoints_stay(run, capsys, monkeypatch, code):
    """Not only checkpoint writes: any file a resumed run writes on a still-full disk."""
    from motionhub.train.rundir import RunDir

    before = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}

    def full(self, row):
        raise OSError(code, os.strerror(code), str(self.metrics))

    monkeypatch.setattr(RunDir, "log", full)
    capsys.readouterr()
    status = main(["train", str(run), MORE])
    err = capsys.readouterr().err
    assert_clear(status, err, "metrics.jsonl", "keeps its last checkpoint", "motionhub train RUN_DIR")
    assert err.count("Error:") == 1
    after = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    assert {name: after[name] for name in before} == before  # nothing earlier was lost
    assert not list((run / "checkpoints").glob(".*.tmp"))


def test_an_unexpected_os_error_still_shows_its_traceback(run, monkeypatch):
    """Only disk conditions a user can fix are turned into messages; a bug stays visible."""
    from motionhub.train.rundir import RunDir

    def broken(self, row):
        raise OSError(errno.EBADF, "bad file descriptor")

    monkeypatch.setattr(RunDir, "log", broken)
    with pytest.raises(OSError, match="bad file descriptor"):
        main(["train", str(run), MORE])


def test_a_folder_one_may_not_write_to_is_one_message(run, capsys, monkeypatch):
    from motionhub.train.rundir import RunDir

    def denied(self, row):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(self.metrics))

    monkeypatch.setattr(RunDir, "log", denied)
    capsys.readouterr()
    status = main(["train", str(run), MORE])
    err = capsys.readouterr().err
    assert_clear(status, err, "permission denied writing", "metrics.jsonl", "write somewhere you may")
    assert err.count("Error:") == 1
