"""The training loop's typed state and the plain checkpoint dict it is saved as."""

import copy

import pytest
import torch
from helpers import TINY_RECIPE

from motionhub.recipes import recipe_from_tree
from motionhub.train.checkpoint import load_checkpoint, save_checkpoint
from motionhub.train.state import CheckpointState, LogWindow, LoopState
from motionhub.train.trainer import train

# The keys checkpoint["state"] has always held, in their order.
STATE_KEYS = ["step", "best", "nonfinite_skipped", "seconds", "loss_seconds", "loss_sums", "logged_steps",
              "train_seconds", "recent_step_times"]


def same(a, b) -> bool:
    """Equal values, containers of the same type with keys in the same order, tensors equal bit for bit."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                and a.shape == b.shape and torch.equal(a, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished run: best.pt and last.pt written at step 4; the recipe before and after training."""
    out = tmp_path_factory.mktemp("state") / "run"
    recipe = recipe_from_tree({**TINY_RECIPE, "run": {"name": "s", "out": str(out), "seed": 0},
                               "train": {**TINY_RECIPE["train"], "iters": 4, "log_every": 3},
                               "eval": {"train_codebook": False}}, "s.yaml")
    as_loaded = copy.deepcopy(recipe)
    return train(recipe), recipe, as_loaded


def test_a_checkpoint_read_into_the_typed_state_and_written_again_is_the_same_file_content(trained, tmp_path):
    run_dir = trained[0]
    raw = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    state = CheckpointState.from_dict(load_checkpoint(run_dir / "checkpoints" / "last.pt"))
    assert state.loop.step == 4 and state.loop.logged_steps == 2 and state.loop.best_step == 4
    save_checkpoint(state, tmp_path / "again.pt")
    again = torch.load(tmp_path / "again.pt", map_location="cpu", weights_only=True)  # still weights-only
    assert same(again, raw)
    assert list(raw) == ["model", "optimizer", "scaler", "state", "rng", "recipe", "versions", "stats"]
    assert list(raw["state"])[:len(STATE_KEYS)] == STATE_KEYS


def test_training_leaves_the_recipe_as_loaded(trained):
    run_dir, recipe, as_loaded = trained
    assert recipe == as_loaded
    assert (run_dir / "recipe.yaml").read_text() == as_loaded.to_yaml()


def test_an_imported_checkpoint_state_keeps_its_record_and_gains_only_the_usual_keys():
    imported = {"source": "t2m-gpt", "checkpoint": "/x/net_last.pth", "nb_iter": 300000, "samples": None}
    loop = LoopState.from_dict({"step": 300000, "imported": imported})
    assert loop.step == 300000 and loop.best is None and loop.final_losses is None
    assert loop.window.steps == 0 and loop.window.sums == {}
    written = loop.to_dict()
    assert list(written) == [*STATE_KEYS, "imported"] and written["imported"] == imported


def test_optional_state_is_written_only_once_it_holds_something():
    loop = LoopState(step=8, best=0.5, best_step=6, best_collapse=None, final_losses={"loss": 0.5})
    written = loop.to_dict()
    assert written["best_step"] == 6 and "best_collapse" in written and written["final_losses"] == {"loss": 0.5}
    assert "best_missing_warned" not in written and "log_windows" not in written
    assert LoopState.from_dict(written) == loop


def test_a_log_interval_saved_as_floats_sums_on_bit_for_bit():
    values = torch.rand(10, dtype=torch.float32) * 7
    straight, cut = LogWindow(), LogWindow()
    for value in values[:6]:
        straight.add({"loss": value})
        cut.add({"loss": value})
    saved = cut.to_dict()
    assert isinstance(saved["sums"]["loss"], float) and saved["steps"] == 6
    cut = LogWindow.from_dict(saved)
    for value in values[6:]:
        straight.add({"loss": value})
        cut.add({"loss": value})
    assert cut.steps == straight.steps == 10
    assert cut.sums["loss"].dtype == torch.float32 and torch.equal(cut.sums["loss"], straight.sums["loss"])


def test_each_process_resumes_its_own_log_interval_and_another_process_count_starts_afresh():
    windows = [{"steps": 2, "seconds": 1.0, "sums": {"loss": 1.0}}, {"steps": 2, "seconds": 1.0, "sums": {"loss": 3.0}}]
    assert LoopState.from_dict({"step": 6, "log_windows": windows}, 1, 2).window.sums == {"loss": 3.0}
    assert LoopState.from_dict({"step": 6, "log_windows": windows}, 0, 1).window.steps == 0
    state = CheckpointState.from_dict({"model": {}, "state": {"step": 6, "log_windows": windows}, "rng": [{"a": 1}]})
    assert state.to_dict()["state"]["log_windows"] == windows  # kept as read
    assert state.rng_for(3) == {"a": 1}  # more processes than were saved reuse the last RNG state
