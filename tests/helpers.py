"""Shared test helpers: run the CLI in a subprocess, write recipes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# The shared real-data folder; tests that need it skip cleanly when it is absent.
REAL_DATA = Path(os.environ.get("MOTIONHUB_REAL_DATA", REPO.parent / "shared" / "real_data"))

TINY_RECIPE = {
    "run": {"name": "tiny", "out": "runs/${run.name}", "seed": 0},
    "data": {"name": "synthetic", "layout": "humanml3d_263", "clips": 12, "min_frames": 40,
             "max_frames": 60, "window": 32},
    "encoder": {"name": "conv1d", "width": 32, "depth": 1, "down_t": 1, "output_emb_width": 16},
    "quantizer": {"name": "fsq", "levels": [8, 5, 5]},
    "decoder": {"name": "conv1d"},
    "losses": [{"name": "recon"}, {"name": "feature", "slice": "positions", "weight": 0.5}],
    "train": {"batch_size": 4, "iters": 6, "lr": 1e-3, "log_every": 2},
}


def write_recipe(path: Path, tree: dict | None = None, **sections) -> Path:
    tree = {**(tree or TINY_RECIPE), **sections}
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, pythonpath: list[Path] = ()
            ) -> subprocess.CompletedProcess:
    """``python -m motionhub.cli ARGS`` in a fresh process with entry-point loading on."""
    full_env = {k: v for k, v in os.environ.items() if k != "MOTIONHUB_LOAD_PLUGINS"}
    if pythonpath:
        existing = [full_env["PYTHONPATH"]] if full_env.get("PYTHONPATH") else []
        full_env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), *existing])
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "motionhub.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=600)


def track_recipe(tmp_path: Path, iters: int) -> dict:
    """A tiny AMPLIFY-style run on three synthetic 4-frame track videos written under ``tmp_path``."""
    from motionhub_synthetic.tracks import write_track_files

    write_track_files(tmp_path / "tracks", videos=3, frames=4, tracks=16, image_size=(64, 64), seed=0)
    return {"run": {"name": "tracks", "out": str(tmp_path / "run")},
            "data": {"name": "gtea_tracks", "root": str(tmp_path / "tracks"), "val_fraction": 0.34, "window": 16},
            "encoder": {"name": "amplify", "hidden_dim": 32, "num_heads": 4, "num_layers": 1},
            "quantizer": {"name": "fsq", "levels": [8, 5, 5]},
            "decoder": {"name": "amplify", "num_heads": 4, "mlp_hidden_dim": 16},
            "losses": [{"name": "relative_ce"}],
            "train": {"batch_size": 2, "iters": iters, "log_every": 1}, "eval": {"train_codebook": False}}
