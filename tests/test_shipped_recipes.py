"""Every shipped recipe trains for a few steps on synthetic data written in its real on-disk layout.

The models keep the recipes' full sizes (T2M-GPT, MotionMillion, ...); only the data, the
number of steps and the batch size are overridden.
"""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import REPO

from motionhub.recipes import load_recipe
from motionhub.train.trainer import train
from motionhub_synthetic.folders import write_humanml3d_folder, write_motionmillion_folder
from motionhub_synthetic.tracks import write_track_files, write_velocity_files

pytestmark = pytest.mark.slow
# configs/t2m_evaluator/ are two-stage recipes that need the first stage's run and word vectors:
# tests/test_t2m_training.py trains them
RECIPES = sorted(p for p in (REPO / "configs").rglob("*.yaml") if "t2m_evaluator" not in p.parts)
SHORT = ["train.iters=2", "train.warmup_iters=0", "train.milestones=[]", "train.batch_size=2",
         "train.log_every=1", "train.eval_every=0", "train.checkpoint_every=0", "eval.batch_size=4",
         "eval.train_codebook=false"]


def data_overrides(data: dict, root: Path, tracks: int = 400) -> list[str]:
    """Write synthetic data for the recipe's data section under ``root``; the overrides that use it.
    ``tracks``: points per track window."""
    name = data["name"]
    if name in ("humanml3d", "kit"):
        folder = write_humanml3d_folder(root / name, clips=12, seed=0, kit=name == "kit")
        overrides = [f"data.root={folder}", "eval.min_length=null", "eval.max_length=null"]
        if data.get("stats_path"):
            meta = root / "meta"  # stand-in for the evaluator's statistics folder
            meta.mkdir()
            shutil.copy(folder / "Mean.npy", meta / "mean.npy")
            shutil.copy(folder / "Std.npy", meta / "std.npy")
            overrides.append(f"data.stats_path={meta}")
        return overrides
    if name == "motionmillion":
        folder = write_motionmillion_folder(root / name, clips=8, seed=0)
        return [f"data.root={folder}", "eval.min_length=null", "eval.max_length=null"]
    if name == "gtea_tracks":
        write_track_files(root / "tracks", videos=3, frames=6, tracks=tracks, seed=0)
        return [f"data.root={root / 'tracks'}", "data.val_fraction=0.34"]
    if name == "laps_velocities":
        write_velocity_files(root / "velocities", segments=3, frames=6, tracks=tracks, seed=0)
        return [f"data.root={root / 'velocities'}", "data.val_fraction=0.34"]
    return []


def track_count(tree: dict) -> int:
    """Points per synthetic track window: the reference's 400, but 16 where a component makes one
    token or query per point (LAPS's 6000-token attention is minutes per step on a CPU)."""
    per_point = {tree["encoder"]["name"], tree["decoder"]["name"]} & {"laps"}
    return 16 if per_point else 400


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(REPO)))
def test_recipe_trains_a_few_steps_on_synthetic_data_of_its_layout(path, tmp_path):
    tree = yaml.safe_load(path.read_text())
    overrides = [*SHORT, *data_overrides(tree["data"], tmp_path, track_count(tree)), f"run.out={tmp_path / 'run'}"]
    recipe = load_recipe(path, overrides)
    run_dir = train(recipe)
    report = json.loads((run_dir / "report.json").read_text())
    assert report["time"]["steps"] == 2
    assert report["losses"]["final"]["loss"] > 0
    assert (run_dir / "checkpoints" / "last.pt").is_file()


COMMENTED_LOSS = "  # - {"  # a loss a recipe offers commented out, to be uncommented by the user


@pytest.mark.parametrize("path", [p for p in RECIPES if COMMENTED_LOSS in p.read_text()],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_losses_offered_commented_out_train_when_uncommented(path, tmp_path):
    text = path.read_text().replace(COMMENTED_LOSS, "  - {")
    enabled = tmp_path / path.name
    enabled.write_text(text)
    tree = yaml.safe_load(text)
    overrides = [*SHORT, *data_overrides(tree["data"], tmp_path, track_count(tree)), f"run.out={tmp_path / 'run'}"]
    run_dir = train(load_recipe(enabled, overrides))
    report = json.loads((run_dir / "report.json").read_text())
    offered = [line for line in path.read_text().splitlines() if line.startswith(COMMENTED_LOSS)]
    for line in offered:
        name = yaml.safe_load(line.replace("#", "", 1).strip())[0]["name"]
        assert name in report["losses"]["final"]
