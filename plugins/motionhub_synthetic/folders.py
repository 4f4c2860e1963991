"""Synthetic data sets written in the real on-disk layouts of HumanML3D, KIT-ML and MotionMillion.

The clips come from the ``synthetic`` data set, so a folder written here can be read by the
folder data sets exactly as the published data would be: for tests, docs and trying things.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from motionhub.api import Clip, SPLITS

from .dataset import SyntheticMotion

# Lemma/POS tags for the synthetic captions' words, in HumanML3D's ``word/POS`` token style.
_TAGS = {
    "a": "a/DET", "the": "the/DET", "person": "person/NOUN", "place": "place/NOUN", "hand": "hand/NOUN",
    "stands": "stand/VERB", "walks": "walk/VERB", "turning": "turn/VERB", "waves": "wave/VERB",
    "moves": "move/VERB", "in": "in/ADP", "while": "while/SCONJ", "and": "and/CCONJ",
    "slowly": "slowly/ADV", "briskly": "briskly/ADV", "left": "left/ADV", "right": "right/ADJ",
}  # fmt: skip

# MotionMillion's tokenizer_96 split holds clips of at least 96 frames (its training window).
_MOTIONMILLION_FRAMES = (96, 160)


def _tokens(caption: str) -> str:
    words = caption.rstrip(".").split()
    return " ".join(_TAGS.get(word, f"{word}/X") for word in words)


def _caption_lines(clip: Clip, fps: float) -> list[str]:
    """The clip's caption over the whole clip, and a second one over its first half."""
    half = round(len(clip.motion) / fps / 2, 1)
    second = "the person moves."
    return [f"{caption}#{_tokens(caption)}#0.0#0.0" for caption in clip.texts] + [
        f"{second}#{_tokens(second)}#0.0#{half}"
    ]


def _split_clips(dataset: SyntheticMotion) -> dict[str, list[Clip]]:
    return {split: list(dataset.clips(split)) for split in SPLITS}


def _write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def write_humanml3d_folder(root: str | os.PathLike, *, clips: int, seed: int, kit: bool = False) -> Path:
    """Write a HumanML3D (or, with ``kit``, KIT-ML) folder of ``clips`` synthetic clips.

    ```
    root/new_joint_vecs/<id>.npy   float32 (T, 263) or (T, 251)
    root/texts/<id>.txt            caption#tok/POS ...#start#end lines
    root/{train,val,test,train_val,all}.txt
    root/Mean.npy, Std.npy         float32, from the train split (std averaged per feature group)
    ```
    Ids are zero-padded numbers (6 digits, 5 for KIT-ML). Returns ``root``.
    """
    root = Path(root)
    dataset = SyntheticMotion(layout="kit_251" if kit else "humanml3d_263", clips=clips, seed=seed)
    fmt = dataset.format
    width = 5 if kit else 6
    ids: dict[str, list[str]] = {}
    number = 0
    (root / "new_joint_vecs").mkdir(parents=True, exist_ok=True)
    for split, split_clips in _split_clips(dataset).items():
        ids[split] = []
        for clip in split_clips:
            clip_id = f"{number:0{width}d}"
            number += 1
            np.save(root / "new_joint_vecs" / f"{clip_id}.npy", clip.motion.astype(np.float32))
            _write_lines(root / "texts" / f"{clip_id}.txt", _caption_lines(clip, fmt.fps))
            ids[split].append(clip_id)
    for split, split_ids in ids.items():
        _write_lines(root / f"{split}.txt", split_ids)
    _write_lines(root / "train_val.txt", ids["train"] + ids["val"])
    _write_lines(root / "all.txt", ids["train"] + ids["val"] + ids["test"])
    np.save(root / "Mean.npy", fmt.mean.astype(np.float32))
    np.save(root / "Std.npy", fmt.std.astype(np.float32))
    return root


def write_motionmillion_folder(root: str | os.PathLike, *, clips: int, seed: int) -> Path:
    """Write a MotionMillion folder of ``clips`` synthetic 272-dim clips (96 to 160 frames, 30 fps).

    ```
    root/motion_data/vector_272/synthetic/<id>.npy   float64 (T, 272), like the published sample
    root/texts/synthetic/<id>.txt                    one caption per line
    root/split/version1/tokenizer_96/{train,val,test}.txt
    root/split/version1/t2m_60_300/{train,val,test,all}.txt
    root/mean_std/vector_272/mean.npy, std.npy       float64, from the train split
    ```
    Names are ``synthetic/<6-digit number>``. Returns ``root``.
    """
    root = Path(root)
    low, high = _MOTIONMILLION_FRAMES
    dataset = SyntheticMotion(layout="motionmillion_272", clips=clips, seed=seed, min_frames=low, max_frames=high)
    names: dict[str, list[str]] = {}
    number = 0
    for split, split_clips in _split_clips(dataset).items():
        names[split] = []
        for clip in split_clips:
            name = f"synthetic/{number:06d}"
            number += 1
            motion_path = root / "motion_data" / "vector_272" / f"{name}.npy"
            motion_path.parent.mkdir(parents=True, exist_ok=True)
            np.save(motion_path, clip.motion.astype(np.float64))
            _write_lines(root / "texts" / f"{name}.txt", clip.texts)
            names[split].append(name)
    for subset in ("tokenizer_96", "t2m_60_300"):
        for split, split_names in names.items():
            _write_lines(root / "split" / "version1" / subset / f"{split}.txt", split_names)
    _write_lines(root / "split" / "version1" / "t2m_60_300" / "all.txt", [n for ns in names.values() for n in ns])
    stats_dir = root / "mean_std" / "vector_272"
    stats_dir.mkdir(parents=True, exist_ok=True)
    np.save(stats_dir / "mean.npy", dataset.format.mean.astype(np.float64))
    np.save(stats_dir / "std.npy", dataset.format.std.astype(np.float64))
    return root
