"""The text-to-motion protocol on a loaded run: its split, its tokenizer, the published evaluator
(or one trained here, whose figures are labelled as not comparable with published ones)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from motionhub.api import MotionhubError, resolve_device

from . import metrics
from .files import EvaluatorFiles, evaluator_dir as find_folder, load_evaluator_files, read_manifest, sha256_of
from .modules import FEATURES, MAX_MOTION_LENGTH, MAX_TEXT_LENGTH, UNIT_LENGTH
from .protocol import MIN_LENGTH, SUBCLIP_FPS, Embedder, EvalSet, run_protocol, tokenizer_reconstructor
from .words import WordEmbedder, caption_words

# Published real-motion figures on the HumanML3D test split, 20 repetitions (MDM's rerun of Guo et
# al. 2022, assets/fixed_results.tex of GuyTevet/motion-diffusion-model): a check that the evaluator
# files and the inputs are right, since the real row here should land close to them.
PUBLISHED_REAL = {
    "t2m": {"source": "real motion, HumanML3D test (Guo et al. 2022, as rerun by MDM)",
            "top1": 0.512, "top2": 0.702, "top3": 0.797, "mm_dist": 2.97, "diversity": 9.50},
}
TITLES = {"t2m": "HumanML3D", "kit": "KIT-ML"}
NOT_COMPARABLE = ("SELF-TRAINED evaluator: these figures are NOT comparable with published ones (their evaluator "
                  "is another network, trained on other data)")


def evaluator_dataset(fmt) -> str:
    """t2m or kit, from the run's feature size."""
    for ds, features in FEATURES.items():
        if fmt.feature_dim == features and len(fmt.feature_shape) == 1:
            return ds
    raise MotionhubError(f"the text-to-motion evaluator reads HumanML3D (263 features) or KIT-ML (251) motion; "
                         f"this run's format '{fmt.name}' has frames of shape {tuple(fmt.feature_shape)}")


def evaluate_t2m(run, evaluator_dir=None, *, split: str = "test", repeats: int = 20, seed: int = 0,
                 device: str | None = None, batch_size: int = 256, files: EvaluatorFiles | None = None,
                 on_repeat=None) -> dict[str, Any]:
    """The text-to-motion table of a run (``motionhub.api.ProtocolRun``) on ``split``.

    Reads the evaluator files from ``evaluator_dir`` (or ``$MOTIONHUB_EVALUATOR_DIR``; ``files``
    when already read; a folder with ``evaluator.json`` holds one trained here), the split's clips
    and captions from the run's data set (tagged, or bare for an evaluator trained here), and runs
    ``repeats`` repetitions (see ``protocol``). Returns a JSON-ready dict: the table (mean and 95 %
    interval per figure), every repetition, the files used with their sha256, which statistics
    normalised what, the item counts and the settings.
    """
    import torch

    clock = time.perf_counter()
    if files is None:
        folder = find_folder(evaluator_dir)
        files = load_evaluator_files(folder, "self" if read_manifest(folder) else evaluator_dataset(run.format))
    ds = files.dataset
    if ds == "self" and run.format.feature_dim != files.evaluator.features:
        raise MotionhubError(f"the self-trained evaluator reads {files.evaluator.features} features per frame; this "
                             f"run's format '{run.format.name}' has {run.format.feature_dim}")
    dataset = run.dataset
    if not callable(getattr(dataset, "caption_records", None)):
        raise MotionhubError(f"the text-to-motion protocol needs captions (caption#word/POS ...#start#end lines, as "
                             f"HumanML3D's and KIT-ML's texts/ hold, or bare ones for a self-trained evaluator); "
                             f"{dataset.describe()} offers none")
    if run.format.mean is None:
        raise MotionhubError("the run has no normalisation statistics to de-normalise its reconstructions with")
    read = []  # clip ids, counted as they stream past: only the clips the protocol keeps stay in memory

    def counted(clips):
        for clip in clips:
            read.append(clip.id)
            yield clip

    try:
        source = dataset.clips(split)
    except ValueError as exc:
        raise MotionhubError(f"{dataset.describe()}: {exc}") from None
    try:
        # a self-trained evaluator reads bare captions as it was trained on them; the published ones need tags
        words = (lambda caption: caption_words(caption, files.vocabulary.index)) if ds == "self" else None
        eval_set = EvalSet.build(counted(source), dataset.caption_records, ds, words)
    except ValueError as exc:
        raise MotionhubError(str(exc)) from None
    if len(eval_set.items) < metrics.GROUP:
        raise MotionhubError(f"split '{split}' gives {len(eval_set.items)} evaluation items (skipped: "
                             f"{eval_set.skipped or 'none'}); the protocol needs at least {metrics.GROUP}")
    torch_device = resolve_device(device)
    model = run.model.to(torch_device).eval()
    reconstruct = tokenizer_reconstructor(model, run.format, torch_device)
    embedder = Embedder(files.evaluator, files.mean, files.std, torch_device, batch_size)
    result = run_protocol(eval_set, reconstruct, embedder, WordEmbedder(files.vocabulary), repeats=repeats,
                          seed=seed, tokenizer_batch=batch_size, on_repeat=on_repeat)
    run_checkpoint = run.checkpoint
    data_kwargs = run.recipe.data.kwargs
    run_stats = f"data.stats: {data_kwargs.get('stats', 'the data set default')}"
    if data_kwargs.get("stats_path"):
        run_stats += f" ({data_kwargs['stats_path']})"
    mean, std = np.asarray(run.format.mean, np.float64), np.asarray(run.format.std, np.float64)
    return {
        "protocol": "t2m",
        "dataset": TITLES.get(ds) or getattr(dataset, "title", None) or type(dataset).__name__,
        "evaluator": ds,
        "comparable_with_published": ds != "self",
        "self_trained": ({**files.self_trained, "note": NOT_COMPARABLE} if files.self_trained else None),
        "split": split,
        "repeats": repeats,
        "seed": seed,
        "run": {"path": str(run.path), "checkpoint": str(run_checkpoint), "step": run.step,
                "sha256": sha256_of(run_checkpoint) if run_checkpoint.is_file() else None},
        "files": files.checksums(),
        "normalisation": {
            "tokenizer_input": f"the run's own statistics (saved in its checkpoint; {run_stats})",
            "evaluator_input": f"the evaluator's statistics ({files.files[1].path}, {files.files[2].path}), for "
                               f"real and reconstructed motion alike",
            "reconstruction": "de-normalised with the run's statistics, then normalised with the evaluator's",
            "run_vs_evaluator": {"max_abs_mean_difference": float(np.abs(mean - files.mean).max()),
                                 "std_ratio_range": [float((std / files.std).min()), float((std / files.std).max())]},
        },
        "items": {"clips_in_split": len(read), "items": len(eval_set.items),
                  "whole_clips": sum("@" not in item.id for item in eval_set.items),
                  "sub_clips": sum("@" in item.id for item in eval_set.items),
                  "captions": len(eval_set.captions), "skipped": eval_set.skipped,
                  "pairs_per_repetition": result["pairs_per_repetition"],
                  "crops_embedded": result["crops_embedded"]},
        "settings": {"group": metrics.GROUP, "unit_length": UNIT_LENGTH, "max_motion_length": MAX_MOTION_LENGTH,
                     "max_text_length": MAX_TEXT_LENGTH, "min_length": MIN_LENGTH[ds], "max_length_exclusive": 200,
                     "subclip_fps": SUBCLIP_FPS, "diversity_pairs": result["diversity_pairs"],
                     "tokenizer_unit": getattr(reconstruct, "unit", 1),
                     "device": str(torch_device), "batch_size": batch_size},
        "table": result["table"],
        "published_real": PUBLISHED_REAL.get(ds),
        "repetitions": result["repetitions"],
        "seconds": {**result["seconds"], "total": time.perf_counter() - clock},
    }
