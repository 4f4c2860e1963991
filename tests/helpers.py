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
