"""Clips the training sampler leaves out are named: in the run's printout and in its report."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from helpers import TINY_RECIPE
from rich.console import Console

from motionhub.data.batches import open_split
from motionhub.data.windows import WindowSampler
from motionhub.recipes import recipe_from_tree
from motionhub.train.trainer import train
from motionhub_humanml3d.dataset import HumanML3D
from motionhub_synthetic.dataset import SyntheticMotion


def test_a_run_names_the_clips_shorter_than_the_window_in_its_printout_and_report(tmp_path):
    tree = {**TINY_RECIPE, "run": {"name": "short", "out": str(tmp_path / "run"), "seed": 0},
            "data": {**TINY_RECIPE["data"], "window": 52},
            "train": {**TINY_RECIPE["train"], "iters": 2, "log_every": 1}}
    recipe = recipe_from_tree(tree, "short.yaml")
    lengths = {c.id: len(c.motion) for c in SyntheticMotion(**recipe.data.kwargs).clips("train")}
    short = [(clip_id, n) for clip_id, n in lengths.items() if n < 52]
    assert 1 <= len(short) < len(lengths)  # the recipe leaves some clips out, not all
    out = io.StringIO()
    run_dir = train(recipe, console=Console(file=out, width=400))

    named = ", ".join(f"{clip_id} ({n} frames)" for clip_id, n in short)
    summary = f"{len(short)} clip{'s' * (len(short) != 1)} shorter than the 52-frame window left out: {named}"
    assert summary in out.getvalue()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["data"]["dropped_short"] == len(short)
    assert report["data"]["dropped_short_clips"] == [{"id": clip_id, "frames": n} for clip_id, n in short]
    assert report["data"]["dropped_summary"] == summary
    markdown = (run_dir / "report.md").read_text()
    assert f"| left out | {summary} (all {len(short)} in report.json) |" in markdown


def test_a_real_humanml3d_clip_shorter_than_the_window_is_named(real_data, tmp_path):
    h3d = real_data / "EricGuo5513-HumanML3D" / "HumanML3D"
    if not (h3d / "new_joint_vecs" / "012314.npy").is_file():
        pytest.skip(f"HumanML3D sample not found in {h3d}")
    root = tmp_path / "HumanML3D"
    (root / "new_joint_vecs").mkdir(parents=True)
    shutil.copy(h3d / "new_joint_vecs" / "012314.npy", root / "new_joint_vecs")
    real = np.load(h3d / "new_joint_vecs" / "012314.npy")  # 170 frames
    np.save(root / "new_joint_vecs" / "012314_twice.npy", np.concatenate([real, real]))
    shutil.copy(h3d / "Mean.npy", root)
    shutil.copy(h3d / "Std.npy", root)
    for split in ("train", "val", "test"):
        (root / f"{split}.txt").write_text("012314\n012314_twice\n")
    tree = {**TINY_RECIPE, "data": {"name": "humanml3d", "root": str(root), "stats": "dataset",
                                    "window": 196, "cache_dir": str(tmp_path / "cache")}}
    recipe = recipe_from_tree(tree, "real.yaml")
    dataset = HumanML3D(str(root), stats="dataset")
    store = open_split(dataset, "train", recipe, console=None)
    sampler = WindowSampler(store, dataset.format, 196, 2, seed=0)
    assert sampler.dropped_summary() == "1 clip shorter than the 196-frame window left out: 012314 (170 frames)"
