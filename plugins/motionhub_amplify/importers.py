"""The ``amplify`` and ``laps`` importers: AMPLIFY's and LAPS's tokenizer checkpoints as motionhub runs.

AMPLIFY's names come from ``motionhub_amplify.model.reference_key_map(encoder_layers,
decoder_layers)``; its attention masks and unused sinusoidal table hold no trained state and are
checked (the encoder's masks must attend as the recipe's ``encoder.causal`` says) rather than
loaded.

LAPS's re-implementation saves a bare state dict (``{'model': ...}`` is read too) that carries
its encoder's (S, S) float attention mask, ``causal_mask``: it is checked against the recipe's
``encoder.causal`` and dropped. The LAPS encoder and decoder name their tensors with
``laps_key_map()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from motionhub.api import MotionhubError, StateDictImporter

from .model import AmplifyDecoder, AmplifyEncoder, reference_key_map

AMPLIFY_SETTINGS = ("hidden_dim", "num_heads", "num_layers", "codebook_size", "causal_encoder", "num_tracks",
                    "cond_cameraviews", "per_view", "track_pred_horizon", "decoder_mlp_hidden_dim")
LAPS_MASK = "causal_mask"  # the LAPS encoder's (S, S) additive attention mask, a persistent buffer


class AmplifyImporter(StateDictImporter):
    """AMPLIFY's motion tokenizer (``{'model': ..., 'train_global_iter': ..., 'config': ...}``) as a run.

    The recipe names encoder and decoder ``amplify`` and ``fsq``; the checkpoint's training
    configuration, when it saved one, is shown when they do not fit. Its sample counter, divided by
    the configuration's batch size, gives the step the run continues at.
    """

    source = "amplify"
    state_entry = "model"
    samples_key = "train_global_iter"
    quantizer_hint = "use quantizer: fsq with the checkpoint's levels"

    @classmethod
    def key_map(cls, model: nn.Module, reference: Mapping[str, torch.Tensor]) -> dict[str, str]:
        if not isinstance(model.encoder, AmplifyEncoder) or not isinstance(model.decoder, AmplifyDecoder):
            raise MotionhubError(f"the recipe's encoder ({type(model.encoder).__name__}) is not AMPLIFY's; "
                                 f"use encoder: {{name: amplify}} and decoder: {{name: amplify}}")
        mapping = reference_key_map(len(model.encoder.blocks), len(model.decoder.blocks))
        keys = {ours: ref for ref, ours in mapping.items()}
        return keys | cls.quantizer_keys(model, "quantize.")

    @classmethod
    def skipped(cls, key: str) -> bool:
        """Attention masks and the reference's unused sinusoidal table."""
        return key.endswith((".attn_mask", "fixed_positional_emb.inv_freq"))

    @classmethod
    def check(cls, model: nn.Module, reference: Mapping[str, torch.Tensor]) -> None:
        check_amplify_masks(reference, bool(getattr(model.encoder, "causal", True)))

    @classmethod
    def likely_cause(cls, reference: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> str:
        held = ", ".join(f"{k} {config[k]}" for k in AMPLIFY_SETTINGS if k in config) or "no configuration saved"
        return (f"The checkpoint was trained with: {held}. Most likely the recipe does not describe its model: "
                f"make encoder hidden_dim / num_layers / horizon, decoder num_layers / mlp_hidden_dim / grid, the "
                f"FSQ levels and the data's views and tracks match it (key=value overrides work).")


class LapsImporter(StateDictImporter):
    """LAPS's re-implementation of the tokenizer (a bare state dict, or ``{'model': ...}``) as a run.

    The recipe names encoder and decoder ``laps`` and ``fsq``; the checkpoint's ``causal_mask`` must
    attend as the recipe's ``encoder.causal`` says.
    """

    source = "laps"
    state_entry = "model"
    samples_key = "train_global_iter"
    quantizer_hint = "use quantizer: fsq with the checkpoint's levels"

    @classmethod
    def key_map(cls, model: nn.Module, reference: Mapping[str, torch.Tensor]) -> dict[str, str]:
        keys = cls.part_keys(model, "laps_key_map", "laps", {"encoder": "", "decoder": ""})
        return keys | cls.quantizer_keys(model, "quantizer.")

    @classmethod
    def skipped(cls, key: str) -> bool:
        """The encoder's attention mask."""
        return key == LAPS_MASK

    @classmethod
    def check(cls, model: nn.Module, reference: Mapping[str, torch.Tensor]) -> None:
        if LAPS_MASK in reference:
            check_laps_mask(reference[LAPS_MASK], bool(model.encoder.causal), model.encoder.positions.shape[1])

    @classmethod
    def likely_cause(cls, reference: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> str:
        return (f"The checkpoint holds: {describe_laps(reference)}. Most likely the recipe does not describe its "
                f"model: make encoder hidden_dim / num_layers / codes / horizon, decoder num_layers / grid / "
                f"queries: points, the FSQ levels (their count) and the data's views and tracks match it "
                f"(key=value overrides work).")


def check_amplify_masks(reference: Mapping[str, torch.Tensor], causal: bool) -> None:
    """Refuse a checkpoint whose encoder attends otherwise than the recipe's ``encoder.causal`` says."""
    for key, mask in reference.items():
        if key.startswith("encoder.") and key.endswith(".attn_mask"):
            square = mask.reshape(mask.shape[-2:]).bool()
            full = torch.ones_like(square)
            if not torch.equal(square, full.tril() if causal else full):
                raise MotionhubError(f"{key}: the checkpoint's encoder attention is "
                                     f"{'not causal' if causal else 'causal'}; set encoder.causal={not causal}")


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
