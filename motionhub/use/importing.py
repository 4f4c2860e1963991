"""Reference checkpoints (T2M-GPT, MotionMillion, AMPLIFY, LAPS) -> motionhub run directories.

The recipe names the model; its encoder, decoder and quantizer are built and every tensor of
the reference checkpoint is given its place by name. Conv1d encoders and decoders and FSQ
describe their reference names with ``reference_key_map()``; the AMPLIFY names come from the
plugin module that defines the AMPLIFY encoder (its ``reference_key_map(encoder_layers,
decoder_layers)``); the LAPS encoder and decoder name theirs with ``laps_key_map()``. Every
reference tensor must be used and every model tensor filled, with equal shapes; otherwise a
``MotionhubError`` lists what does not fit.

LAPS's re-implementation saves a bare state dict (``{'model': ...}`` is read too) that
carries its encoder's (S, S) float attention mask, ``causal_mask``: it is checked against the
recipe's ``encoder.causal`` and dropped.

T2M-GPT's EMA codebook is the only part of its quantizer in the checkpoint: the EMA sums and
counts live outside it. They are rebuilt as the reference's own initialisation sets them,
``code_sum = codebook`` and ``code_count = 1`` (so every code counts as used once, and codes
that the next training batches do not pick are reset, as right after the reference's
initialisation); ``initialised`` is set unless the codebook is all zeros, which means the
reference never trained it.

The run directory holds ``recipe.yaml`` (resolved) and ``checkpoints/last.pt`` in the
trainer's format, so ``motionhub eval`` / ``encode`` read it and ``motionhub train RUN_DIR``
continues it. The optimizer starts fresh (the references' AdamW moments are not carried over).
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from motionhub.model.build import build_dataset, build_tokenizer
from motionhub.train.checkpoint import (UnsafeCheckpoint, is_motionhub_checkpoint, read_torch_file, save_checkpoint,
                         unsafe_globals)
from motionhub.data.batches import with_train_statistics
from motionhub.errors import MotionhubError
from motionhub.data.formats import MotionFormat
from motionhub.recipes.recipe import Recipe, load_recipe
from motionhub.train.rundir import RunDir
from motionhub.model.tokenizer import Tokenizer
from motionhub.plugins.manager import versions
from motionhub.train.trainer import make_optimizer, rng_state, seed_everything, set_rng_state
from motionhub.data.windows import ClipBank

SOURCES = ("t2m-gpt", "motionmillion", "amplify", "laps")
# where each keeps its weights (a LAPS checkpoint is usually the bare state dict itself)
STATE_ENTRY = {"t2m-gpt": "net", "motionmillion": "net", "amplify": "model", "laps": "model"}
WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile
EMA_BUFFERS = frozenset({"codebook", "code_sum", "code_count", "initialised"})
LISTED = 10  # unmatched keys shown in an error


@dataclasses.dataclass
class Reference:
    """A reference checkpoint: its weights (wrapper prefixes removed) and what it says about training."""

    source: str
    path: Path
    state_dict: dict[str, torch.Tensor]
    iteration: int | None  # MotionMillion's nb_iter (steps after warm-up)
    samples: int | None  # AMPLIFY's train_global_iter (samples seen)
    config: dict[str, Any]  # AMPLIFY's training configuration


@dataclasses.dataclass
class Imported:
    run: Path
    step: int
    tensors: int  # reference tensors given a place in the model


# ---------------------------------------------------------------------------- reading
def check_source(source: str) -> None:
    if source not in SOURCES:
        raise MotionhubError(f"unknown checkpoint source '{source}'; sources: {', '.join(SOURCES)}")


def read_reference(path: str | Path, source: str) -> Reference:
    """The weights and training counters of a reference checkpoint (``{'net': ...}`` or ``{'model': ...}``)."""
    check_source(source)
    path = Path(path)
    try:
        checkpoint = read_torch_file(path)
    except UnsafeCheckpoint as exc:
        if unsafe_globals(path) and all(name.startswith("numpy") for name in unsafe_globals(path)):
            raise UnsafeCheckpoint(f"{exc}\nIf it is a checkpoint of an older motionhub version, it needs no import: "
                                   f"its run directory works with 'motionhub eval' / 'train RUN_DIR' as it is.") from None
        raise
    if is_motionhub_checkpoint(checkpoint):
        raise MotionhubError(f"{path} is a motionhub checkpoint (written by 'motionhub train' or 'import'), not a "
                             f"{source} one: it needs no import. Use the run directory that holds it "
                             f"({path.parent.parent}) directly: 'motionhub eval RUN_DIR', 'motionhub train RUN_DIR' "
                             f"to continue it.")
    if not isinstance(checkpoint, dict):
        raise MotionhubError(f"{path}: expected a dict, got {type(checkpoint).__name__}")
    entry = STATE_ENTRY[source]
    state = checkpoint.get(entry, checkpoint)
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        others = "; ".join(f"{' and '.join(s for s in SOURCES if STATE_ENTRY[s] == e)} checkpoints keep '{e}'"
                           for e in sorted(set(STATE_ENTRY.values()) - {entry}))
        raise MotionhubError(f"{path} has no '{entry}' state dict, where {source} checkpoints keep their weights "
                             f"(top-level keys: {', '.join(map(str, checkpoint)) or 'none'}; {others})")
    config = checkpoint.get("config")
    return Reference(source, path, strip_wrappers(state), _int_or_none(checkpoint.get("nb_iter")),
                     _int_or_none(checkpoint.get("train_global_iter")), config if isinstance(config, dict) else {})


def strip_wrappers(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys without the prefixes DistributedDataParallel (``module.``) and torch.compile (``_orig_mod.``) add."""
    out = {}
    for key, value in state_dict.items():
        while key.startswith(WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        out[key.replace("._orig_mod.", ".")] = value
    return out


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def completed_steps(reference: Reference, warmup_iters: int) -> int:
    """Optimizer steps the reference had taken, counted as the trainer counts them (warm-up included).

    MotionMillion's ``nb_iter`` counts the steps after its warm-up; AMPLIFY counts samples,
    ``batch_size`` per step. T2M-GPT saves no counter.
    """
    if reference.iteration is not None:
        return warmup_iters + reference.iteration
    batch = _int_or_none(reference.config.get("batch_size"))
    if reference.samples is not None and batch:
        return reference.samples // batch
    return 0


# ---------------------------------------------------------------------------- key maps
def key_map(source: str, model: Tokenizer, reference: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """``{model key: reference key}`` for every model tensor read from the reference (all but derived ones)."""
    check_source(source)
    if source == "amplify":
        return amplify_keys(model)
    if source == "laps":
        return laps_keys(model)
    return vqvae_keys(model, patcher="vqvae.encoder.model.0.wavelets" in reference)


def vqvae_keys(model: Tokenizer, patcher: bool = False) -> dict[str, str]:
    """T2M-GPT / MotionMillion ``HumanVQVAE`` names (``vqvae.encoder.model.0.weight``, ...).

    ``patcher``: MotionMillion's parameter-free wavelet patcher occupies the encoder's ``model.0``.
    """
    for part in ("encoder", "decoder"):
        if not hasattr(getattr(model, part), "reference_key_map"):
            raise MotionhubError(f"the recipe's {part} ({type(getattr(model, part)).__name__}) has no counterpart "
                                 f"in the reference VQ-VAE; use {part}: {{name: conv1d}}")
    encoder = model.encoder.reference_key_map(patcher=patcher) if patcher else model.encoder.reference_key_map()
    keys = {f"encoder.{ours}": f"vqvae.encoder.{ref}" for ours, ref in encoder.items()}
    keys |= {f"decoder.{ours}": f"vqvae.decoder.{ref}" for ours, ref in model.decoder.reference_key_map().items()}
    return keys | quantizer_keys(model.quantizer, "vqvae.quantizer.")


def quantizer_keys(quantizer: nn.Module, prefix: str) -> dict[str, str]:
    """Quantizer tensors: FSQ's projections by its own map, or an EMA codebook's ``codebook``."""
    if hasattr(quantizer, "reference_key_map"):
        return {f"quantizer.{ours}": prefix + ref for ours, ref in quantizer.reference_key_map().items()}
    if has_ema_codebook(quantizer):
        return {"quantizer.codebook": f"{prefix}codebook"}
    raise MotionhubError(f"the recipe's quantizer ({type(quantizer).__name__}) has no counterpart in the reference; "
                         f"use quantizer: vq_ema_reset (T2M-GPT) or fsq (MotionMillion, AMPLIFY)")


def has_ema_codebook(quantizer: nn.Module) -> bool:
    return set(quantizer.state_dict()) == EMA_BUFFERS


def amplify_keys(model: Tokenizer) -> dict[str, str]:
    """AMPLIFY ``MotionTokenizer`` names, from the module that defines the model's encoder."""
    mapping = getattr(sys.modules[type(model.encoder).__module__], "reference_key_map", None)
    if mapping is None or not hasattr(model.encoder, "blocks") or not hasattr(model.decoder, "blocks"):
        raise MotionhubError(f"the recipe's encoder ({type(model.encoder).__name__}) is not AMPLIFY's; "
                             f"use encoder: {{name: amplify}} and decoder: {{name: amplify}}")
    keys = {ours: ref for ref, ours in mapping(len(model.encoder.blocks), len(model.decoder.blocks)).items()}
    return keys | quantizer_keys(model.quantizer, "quantize.")


def laps_keys(model: Tokenizer) -> dict[str, str]:
    """LAPS ``MotionTokenizer`` names, from the LAPS encoder's and decoder's ``laps_key_map()``."""
    for part in ("encoder", "decoder"):
        if not hasattr(getattr(model, part), "laps_key_map"):
            raise MotionhubError(f"the recipe's {part} ({type(getattr(model, part)).__name__}) is not LAPS's; "
                                 f"use {part}: {{name: laps}}")
    keys = {f"encoder.{ours}": ref for ours, ref in model.encoder.laps_key_map().items()}
    keys |= {f"decoder.{ours}": ref for ours, ref in model.decoder.laps_key_map().items()}
    return keys | quantizer_keys(model.quantizer, "quantizer.")


def not_state(source: str) -> Callable[[str], bool]:
    """Reference buffers that hold no trained state: wavelet filters, attention masks, an unused table."""
    if source == "amplify":
        return lambda key: key.endswith((".attn_mask", "fixed_positional_emb.inv_freq"))
    if source == "laps":
        return lambda key: key == LAPS_MASK
    return lambda key: key.startswith(("vqvae.encoder.", "vqvae.decoder.")) and key.endswith((".wavelets", "._arange"))


# ---------------------------------------------------------------------------- conversion
def convert_state_dict(source: str, model: Tokenizer, reference: Mapping[str, torch.Tensor],
                       checkpoint: str = "the checkpoint", config: Mapping[str, Any] | None = None
                       ) -> dict[str, torch.Tensor]:
    """The model's full state dict from a reference state dict; a ``MotionhubError`` when they do not fit."""
    keys = key_map(source, model, reference)
    derived = set()
    if has_ema_codebook(model.quantizer):
        derived = {f"quantizer.{name}" for name in EMA_BUFFERS - {"codebook"}}
    problems = fit_problems(model.state_dict(), reference, keys, not_state(source), derived)
    if problems:
        raise MotionhubError(f"{checkpoint} does not fit the recipe's model:\n" + "\n".join(problems) + "\n"
                             + likely_cause(source, reference, config or {}))
    if source == "amplify":
        check_amplify_masks(reference, bool(getattr(model.encoder, "causal", True)))
    if source == "laps" and LAPS_MASK in reference:
        check_laps_mask(reference[LAPS_MASK], bool(model.encoder.causal), model.encoder.positions.shape[1])
    state = {ours: reference[ref] for ours, ref in keys.items()}
    if derived:
        state |= ema_statistics(state["quantizer.codebook"])
    return state


def fit_problems(ours: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor], keys: Mapping[str, str],
                 skip: Callable[[str], bool], derived: set[str]) -> list[str]:
    """What keeps ``reference`` from filling ``ours`` through ``keys``: one line per kind of problem."""
    wanted = set(keys.values())
    unused = [k for k in reference if k not in wanted and not skip(k)]
    absent = [f"{ref} (for {mine})" for mine, ref in keys.items() if ref not in reference]
    unmapped = [k for k in ours if k not in keys and k not in derived]
    shapes = [(mine, ref) for mine, ref in keys.items()
              if ref in reference and reference[ref].shape != ours[mine].shape]
    problems = []
    for items, what in ((unused, "checkpoint tensors have no place in the model"),
                        (absent, "model tensors are missing from the checkpoint"),
                        (unmapped, "model tensors have no reference name")):
        if items:
            more = f", ... ({len(items) - LISTED} more)" if len(items) > LISTED else ""
            problems.append(f"  {len(items)} {what}: {', '.join(items[:LISTED])}{more}")
    if shapes:
        mine, ref = shapes[0]
        problems.append(f"  {len(shapes)} shapes differ; the first: {ref} is {tuple(reference[ref].shape)} in the "
                        f"checkpoint, {mine} is {tuple(ours[mine].shape)} in the model")
    return problems


def likely_cause(source: str, reference: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> str:
    if source == "laps":
        return (f"The checkpoint holds: {describe_laps(reference)}. Most likely the recipe does not describe its "
                f"model: make encoder hidden_dim / num_layers / codes / horizon, decoder num_layers / grid / "
                f"queries: points, the FSQ levels (their count) and the data's views and tracks match it "
                f"(key=value overrides work).")
    if source == "amplify":
        held = ", ".join(f"{k} {config[k]}" for k in AMPLIFY_SETTINGS if k in config) or "no configuration saved"
        return (f"The checkpoint was trained with: {held}. Most likely the recipe does not describe its model: "
                f"make encoder hidden_dim / num_layers / horizon, decoder num_layers / mlp_hidden_dim / grid, the "
                f"FSQ levels and the data's views and tracks match it (key=value overrides work).")
    return (f"The checkpoint holds: {describe_vqvae(reference)}. Most likely the recipe does not describe its "
            f"model: make encoder width / depth / down_t / stride_t / output_emb_width / norm, the quantizer and "
            f"the data layout (feature size) match it (key=value overrides work).")


AMPLIFY_SETTINGS = ("hidden_dim", "num_heads", "num_layers", "codebook_size", "causal_encoder", "num_tracks",
                    "cond_cameraviews", "per_view", "track_pred_horizon", "decoder_mlp_hidden_dim")

_STEM_OR_OUT = re.compile(r"vqvae\.encoder\.model\.(\d+)\.weight")
_DOWN = re.compile(r"vqvae\.encoder\.model\.\d+\.0\.weight")
_BLOCK = re.compile(r"vqvae\.encoder\.model\.\d+\.1\.model\.(\d+)\.conv1\.weight")


def describe_vqvae(reference: Mapping[str, torch.Tensor]) -> str:
    """The hyper-parameters a T2M-GPT / MotionMillion state dict reveals, as recipe settings."""
    convs = sorted((int(m[1]), key) for key in reference if (m := _STEM_OR_OUT.fullmatch(key)))
    downs = [key for key in reference if _DOWN.fullmatch(key)]
    parts = []
    if convs:
        stem, out = reference[convs[0][1]], reference[convs[-1][1]]
        parts += [f"feature size {stem.shape[1]}", f"width {stem.shape[0]}", f"output_emb_width {out.shape[0]}"]
    parts.append(f"down_t {len(downs)}" + (f", stride_t {reference[downs[0]].shape[-1] // 2}" if downs else ""))
    parts.append(f"depth {len({m[1] for key in reference if (m := _BLOCK.fullmatch(key))})}")
    if any(key.endswith("norm1.running_mean") for key in reference):
        parts.append("norm BN")
    else:
        parts.append("norm LN or GN" if any(key.endswith("norm1.weight") for key in reference) else "no norm")
    if "vqvae.quantizer.codebook" in reference:
        size, dim = reference["vqvae.quantizer.codebook"].shape
        parts.append(f"an EMA codebook of {size} x {dim} (vq_ema_reset, codebook_size {size})")
    elif "vqvae.quantizer.project_in.weight" in reference:
        parts.append(f"FSQ with {reference['vqvae.quantizer.project_in.weight'].shape[0]} levels (fsq)")
    return ", ".join(parts)


def describe_laps(reference: Mapping[str, torch.Tensor]) -> str:
    """The hyper-parameters a LAPS state dict reveals, as recipe settings."""
    parts = []
    if "pos_embed" in reference:
        parts.append(f"{reference['pos_embed'].shape[1]} tokens ((horizon - 1) x views x tracks) of width "
                     f"{reference['pos_embed'].shape[-1]} (hidden_dim)")
    if "encoder_output_projection.weight" in reference:
        parts.append(f"codes {reference['encoder_output_projection.weight'].shape[0]}")
    if "decoder_queries" in reference:
        parts.append(f"{reference['decoder_queries'].shape[1]} decoder queries (views x tracks)")
    for side in ("encoder.transformer_encoder", "decoder.transformer_decoder"):
        layers = {key.split(".")[3] for key in reference if key.startswith(f"{side}.layers.")}
        parts.append(f"{side.split('.')[0]} num_layers {len(layers)}")
    if "output_projection.weight" in reference:
        parts.append(f"{reference['output_projection.weight'].shape[0]} classes (grid rows x cols)")
    if "quantizer.project_in.weight" in reference:
        parts.append(f"FSQ with {reference['quantizer.project_in.weight'].shape[0]} levels")
    return ", ".join(parts) or "none of the LAPS tensors"


def ema_statistics(codebook: torch.Tensor) -> dict[str, torch.Tensor]:
    """EMA state the reference keeps outside its checkpoint, as its initialisation sets it."""
    trained = bool(codebook.any())
    return {
        "quantizer.code_sum": codebook.clone() if trained else torch.zeros_like(codebook),
        "quantizer.code_count": torch.full(codebook.shape[:1], float(trained), dtype=codebook.dtype),
        "quantizer.initialised": torch.tensor(trained),
    }


def check_amplify_masks(reference: Mapping[str, torch.Tensor], causal: bool) -> None:
    """Refuse a checkpoint whose encoder attends otherwise than the recipe's ``encoder.causal`` says."""
    for key, mask in reference.items():
        if key.startswith("encoder.") and key.endswith(".attn_mask"):
            square = mask.reshape(mask.shape[-2:]).bool()
            full = torch.ones_like(square)
            if not torch.equal(square, full.tril() if causal else full):
                raise MotionhubError(f"{key}: the checkpoint's encoder attention is "
                                     f"{'not causal' if causal else 'causal'}; set encoder.causal={not causal}")


LAPS_MASK = "causal_mask"  # the LAPS encoder's (S, S) additive attention mask, a persistent buffer


def check_laps_mask(mask: torch.Tensor, causal: bool, tokens: int) -> None:
    """Refuse a LAPS ``causal_mask`` that is not an (S, S) mask of the attention ``causal`` names.

    The mask is additive (0 where a token may attend, -inf where not) or boolean (True where not).
    """
    if mask.shape != (tokens, tokens):
        raise MotionhubError(f"{LAPS_MASK} is {tuple(mask.shape)} in the checkpoint, the recipe's encoder has "
                             f"{tokens} tokens; make the horizon and the data's views and tracks match it")
    blocked = mask if mask.dtype == torch.bool else mask.isneginf()
    if mask.dtype != torch.bool and not torch.all((mask == 0) | blocked):
        raise MotionhubError(f"{LAPS_MASK} holds values other than 0 and -inf; motionhub's LAPS encoder only "
                             f"attends causally or fully")
    later = torch.ones_like(blocked).triu_(1)
    if torch.equal(blocked, later):
        found = "causal"
    elif not blocked.any():
        found = "full"
    else:
        raise MotionhubError(f"{LAPS_MASK} is neither causal nor full attention; motionhub's LAPS encoder only "
                             f"attends causally or fully")
    if (found == "causal") != causal:
        raise MotionhubError(f"{LAPS_MASK}: the checkpoint's encoder attention is {found}, the recipe's "
                             f"encoder.causal is {str(causal).lower()}; set encoder.causal={str(not causal).lower()}")


# ---------------------------------------------------------------------------- formats
def training_format(recipe: Recipe) -> MotionFormat:
    """The data set's format with the statistics training would normalise with."""
    dataset = build_dataset(recipe)
    if dataset.format.mean is not None:
        return dataset.format
    return with_train_statistics(dataset.format, ClipBank.from_clips(dataset.clips("train")).frames)


def statistics_format(mean_path: str | Path, std_path: str | Path) -> MotionFormat:
    """A format known only by its statistics: frames shaped like the mean array.

    Enough to build an encoder and decoder, which read only the frame shape.
    """
    mean, std = (_load_array(p) for p in (mean_path, std_path))
    if mean.shape != std.shape:
        raise MotionhubError(f"statistics differ in shape: mean {mean.shape} ({mean_path}), "
                             f"std {std.shape} ({std_path})")
    return MotionFormat(name="statistics", feature_shape=tuple(mean.shape), fps=0.0).with_stats(mean, std)


def _load_array(path: str | Path) -> np.ndarray:
    try:
        return np.load(path)
    except (OSError, ValueError) as exc:
        raise MotionhubError(f"cannot read statistics {path}: {exc}") from None


# ---------------------------------------------------------------------------- the run directory
def import_checkpoint(source: str, checkpoint: str | Path, recipe_path: str | Path, out: str | Path,
                      overrides: Sequence[str] = (), stats: tuple[str | Path, str | Path] | None = None) -> Imported:
    """Write the run directory ``out`` (recipe.yaml, checkpoints/last.pt) for a reference checkpoint.

    ``stats``: (mean.npy, std.npy) to use instead of building the recipe's data set.
    """
    check_source(source)
    run = RunDir(Path(out))
    if (run.path / "checkpoints").exists():
        raise MotionhubError(f"{run.path} already holds a run; choose another --out")
    recipe = load_recipe(recipe_path, [*overrides, f"run.out={run.path}"])
    reference = read_reference(checkpoint, source)
    fmt = statistics_format(*stats) if stats else training_format(recipe)
    model = build_tokenizer(recipe, fmt)
    state = convert_state_dict(source, model, reference.state_dict, str(reference.path), reference.config)
    model.load_state_dict(state)
    step = completed_steps(reference, recipe.train.warmup_iters)
    payload = checkpoint_payload(recipe, model, fmt, step, reference)
    save_checkpoint(payload, run.last)
    (run.path / "recipe.yaml").write_text(recipe.to_yaml())
    tensors = sum(1 for key in reference.state_dict if not not_state(source)(key))
    return Imported(run.path, step, tensors)


def checkpoint_payload(recipe: Recipe, model: Tokenizer, fmt: MotionFormat, step: int, reference: Reference) -> dict:
    """What the trainer saves, for a run that starts at ``step`` with a fresh optimizer."""
    cfg = recipe.train
    optimizer = make_optimizer(model, cfg, step)
    imported = {"source": reference.source, "checkpoint": str(reference.path.resolve()),
                "nb_iter": reference.iteration, "samples": reference.samples}
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": None,
            "state": {"step": step, "imported": imported}, "rng": [seeded_rng_state(recipe.run.seed)],
            "recipe": recipe.tree, "versions": versions(), "stats": {"mean": fmt.mean, "std": fmt.std}}


def seeded_rng_state(seed: int) -> dict:
    """The RNG state a run seeded with ``seed`` starts from; this process's own state is left as it was."""
    saved = rng_state()
    seed_everything(seed)
    state = rng_state()
    set_rng_state(saved)
    return state


