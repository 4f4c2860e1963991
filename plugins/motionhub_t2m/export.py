"""An evaluator trained here, written as an evaluator folder that ``t2m-eval`` and the ``t2m``
protocol read like the published one.

``export_evaluator(run_dir, out)`` reads a matching-stage run (decoder ``t2m_matching``) and writes

```
out/finest.tar        {movement_encoder, motion_encoder, text_encoder} state dicts, the published keys
out/mean.npy std.npy  the statistics the run normalised its data with (the evaluator's own)
out/our_vab_*         copies of the word vectors it was trained with
out/evaluator.json    architecture, provenance (run, step, checkpoint sha256, data) and the note that
                      its figures are not comparable with published ones
```
The folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from motionhub.api import MotionhubError, atomic_folder, check_new_folder, read_torch_file

from .files import MANIFEST, VOCABULARY, find_file, sha256_of

# Each part of finest.tar and where the matching run keeps it.
PREFIXES = {"movement_encoder": "encoder.net.", "motion_encoder": "decoder.motion_encoder.",
            "text_encoder": "decoder.text_encoder."}


def run_checkpoint_file(run_dir: Path, checkpoint: str) -> Path:
    path = run_dir / "checkpoints" / f"{checkpoint}.pt"
    if not path.is_file() and checkpoint == "best":
        path = run_dir / "checkpoints" / "last.pt"
    if not path.is_file():
        raise MotionhubError(f"{run_dir} has no checkpoints/{checkpoint}.pt; pass the run directory 'motionhub train' "
                             f"printed for the text-motion matching stage")
    return path


def architecture(parts: dict[str, dict[str, torch.Tensor]], features: int) -> dict[str, int]:
    """The sizes ``T2MEvaluator("self", ...)`` needs, read from the weights' shapes."""
    movement, motion, text = parts["movement_encoder"], parts["motion_encoder"], parts["text_encoder"]
    return {"contacts": features - movement["main.0.weight"].shape[1],
            "movement_hidden": movement["main.0.weight"].shape[0],
            "movement_latent": movement["out_net.weight"].shape[0],
            "motion_hidden": motion["input_emb.weight"].shape[0],
            "embedding_dim": motion["output_net.3.weight"].shape[0],
            "text_hidden": text["input_emb.weight"].shape[0],
            "word_dim": text["pos_emb.weight"].shape[0]}


def export_evaluator(run_dir: str | Path, out: str | Path, checkpoint: str = "best") -> dict[str, Any]:
    """Write ``out`` from the matching run ``run_dir``; returns the manifest written."""
    run_dir, out = Path(run_dir), Path(out)
    check_new_folder(out, "the evaluator")
    path = run_checkpoint_file(run_dir, checkpoint)
    state = read_torch_file(path)
    recipe = state.get("recipe") or {}
    decoder = recipe.get("decoder") or {}
    if not isinstance(decoder, dict) or decoder.get("name") != "t2m_matching":
        raise MotionhubError(f"{run_dir} trained decoder '{decoder.get('name') if isinstance(decoder, dict) else decoder}'"
                             f"; an evaluator comes from the text-motion matching stage (decoder t2m_matching), e.g. "
                             f"configs/t2m_evaluator/humanml3d_matching.yaml")
    model = state["model"]
    parts = {name: {key[len(prefix):]: value for key, value in model.items() if key.startswith(prefix)}
             for name, prefix in PREFIXES.items()}
    mean = np.asarray(state["stats"]["mean"], dtype=np.float64).reshape(-1)
    std = np.asarray(state["stats"]["std"], dtype=np.float64).reshape(-1)
    words_dir = Path(decoder["words_dir"]).expanduser()
    vocabulary = [find_file(words_dir, "vocabulary", name, "") for name in VOCABULARY]
    manifest = {
        "self_trained": True,
        "features": int(len(mean)),
        "sizes": architecture(parts, len(mean)),
        "run": str(run_dir.resolve()),
        "checkpoint": str(path.resolve()),
        "checkpoint_sha256": sha256_of(path),
        "step": int((state.get("state") or {}).get("step", 0)),
        "data": recipe.get("data"),
        "word_vectors": {p.name: sha256_of(p) for p in vocabulary},
        "note": "trained with motionhub on the data above: figures it gives are not comparable with those of "
                "the published HumanML3D / KIT-ML evaluators",
    }
    with atomic_folder(out) as temp:
        torch.save(parts, temp / "finest.tar")
        np.save(temp / "mean.npy", mean)
        np.save(temp / "std.npy", std)
        for source in vocabulary:
            shutil.copyfile(source, temp / source.name)
        (temp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
