"""Importer of MoMask's residual VQ-VAE (``RVQVAE``) checkpoints into a conv1d encoder and decoder
and an ``rvq_ema_reset`` quantizer.

MoMask's trainer saves ``{'vq_model': state dict, 'opt_vq_model', 'scheduler', 'ep', 'total_it'}``
(``net_best_fid.tar``, ``latest.tar``). Its encoder and decoder are T2M-GPT's ``Encoder`` /
``Decoder`` (``encoder.model.*``, ``decoder.model.*``; the residual blocks add a dropout, which
holds no tensors) and its quantizer is Q levels of T2M-GPT's EMA-reset codebook
(``quantizer.layers.{i}.codebook``, (K, C) buffers, no projection). At inference every level runs:
level i picks the nearest code to what levels 0..i-1 left, and the codes add up.

A checkpoint trained with ``--shared_codebook`` holds its one codebook under every level's name:
it imports and reconstructs the same, and training then continues with the levels' copies apart.

Released configuration (``rvq_nq6_dc512_nc512_noshare_qdp0.2``): 263 features, width 512, depth 3,
down_t 2, stride_t 2, dilation growth 3, code_dim 512, 6 levels of 512 codes, relu, no norm:
19,436,807 parameters and 6 x 512 x 512 = 1,572,864 codebook values (buffers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from motionhub.api import StateDictImporter

from .importers import check_doubling_decoder, describe_vqvae
from .recognise import RecognisesOtherCheckpoints

QUANTIZER = "quantizer."
LAYER_CODEBOOK = "quantizer.layers.{}.codebook"


class MoMaskImporter(RecognisesOtherCheckpoints, StateDictImporter):
    """MoMask's residual VQ-VAE (net_best_fid.tar) as a run: conv1d encoder and decoder, rvq_ema_reset.

    The recipe describes the checkpoint's model: encoder and decoder ``conv1d`` (width, depth,
    down_t, stride_t 2, norm); quantizer ``rvq_ema_reset`` with its num_quantizers and
    codebook_size. Each level's EMA sums and counts, which MoMask keeps outside its checkpoint,
    are rebuilt as its initialisation sets them. MoMask's ``total_it`` counts its warm-up steps
    with the rest, which the recipe's schedule cannot place: the run starts at step 0 with a
    fresh optimizer, as a T2M-GPT import does.
    """

    source = "momask"
    state_entry = "vq_model"
    quantizer_hint = "use quantizer: rvq_ema_reset (residual EMA codebooks) with the checkpoint's num_quantizers"

    @classmethod
    def key_map(cls, model: nn.Module, reference: Mapping[str, torch.Tensor]) -> dict[str, str]:
        keys = cls.part_keys(model, "reference_key_map", "conv1d", {"encoder": "encoder.", "decoder": "decoder."})
        return keys | cls.quantizer_keys(model, QUANTIZER)

    @classmethod
    def check(cls, model: nn.Module, reference: Mapping[str, torch.Tensor]) -> None:
        check_doubling_decoder(model, "MoMask")

    @classmethod
    def likely_cause(cls, reference: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> str:
        return (f"The checkpoint holds: {describe_rvqvae(reference)}. Most likely the recipe does not describe its "
                f"model: make encoder width / depth / down_t / output_emb_width / norm, the quantizer's "
                f"num_quantizers and codebook_size and the data layout (feature size) match it "
                f"(key=value overrides work).")


def describe_rvqvae(reference: Mapping[str, torch.Tensor]) -> str:
    """The hyper-parameters a MoMask ``RVQVAE`` state dict reveals, as recipe settings."""
    parts = {f"vqvae.{key}": value for key, value in reference.items() if key.startswith(("encoder.", "decoder."))}
    levels = 0
    while LAYER_CODEBOOK.format(levels) in reference:
        levels += 1
    text = describe_vqvae(parts)
    if levels:
        size, dim = reference[LAYER_CODEBOOK.format(0)].shape
        text += (f", {levels} residual levels of {size} x {dim} codes "
                 f"(rvq_ema_reset, num_quantizers {levels}, codebook_size {size})")
    return text
