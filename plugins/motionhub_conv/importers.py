"""Importers of VQ-VAE checkpoints written by T2M-GPT's ``HumanVQVAE`` (``vqvae.encoder.model.0.weight``,
...) into the ``conv1d`` encoder and decoder.

The Conv1d encoder and decoder name their reference tensors with ``reference_key_map()``, and so
does the quantizer (an EMA codebook, whose statistics it rebuilds, or FSQ's projections).
MotionMillion trains the same ``HumanVQVAE`` layout, usually with FSQ, LayerNorm and, with
``--use_patcher``, a parameter-free wavelet patcher that occupies the encoder's ``model.0`` and is
recognised by its ``wavelets`` buffer; its DDP saves carry ``module.`` prefixes, which are removed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from motionhub.api import MotionhubError, StateDictImporter

from .recognise import RecognisesOtherCheckpoints

PATCHER = "vqvae.encoder.model.0.wavelets"  # present when MotionMillion's wavelet patcher was used

_STEM_OR_OUT = re.compile(r"vqvae\.encoder\.model\.(\d+)\.weight")
_DOWN = re.compile(r"vqvae\.encoder\.model\.\d+\.0\.weight")
_BLOCK = re.compile(r"vqvae\.encoder\.model\.\d+\.1\.model\.(\d+)\.conv1\.weight")


class VQVAEImporter(RecognisesOtherCheckpoints, StateDictImporter):
    """A ``HumanVQVAE`` checkpoint (``{'net': state dict}``) into a conv1d encoder and decoder and our quantizer.

    The recipe describes the checkpoint's model: encoder and decoder ``conv1d`` with its width,
    depth, down-sampling and norm; quantizer ``vq_ema_reset`` (an EMA codebook) or ``fsq``.
    """

    state_entry = "net"
    iteration_key = "nb_iter"  # steps after warm-up, where the checkpoint counts them
    quantizer_hint = "use quantizer: vq_ema_reset (an EMA codebook) or fsq"

    @classmethod
    def key_map(cls, model: nn.Module, reference: Mapping[str, torch.Tensor]) -> dict[str, str]:
        patcher = {"patcher": True} if PATCHER in reference else {}
        keys = cls.part_keys(model, "reference_key_map", "conv1d",
                             {"encoder": "vqvae.encoder.", "decoder": "vqvae.decoder."}, **patcher)
        return keys | cls.quantizer_keys(model, "vqvae.quantizer.")

    @classmethod
    def skipped(cls, key: str) -> bool:
        """The wavelet patcher's fixed filters."""
        return key.startswith(("vqvae.encoder.", "vqvae.decoder.")) and key.endswith((".wavelets", "._arange"))

    @classmethod
    def likely_cause(cls, reference: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> str:
        return (f"The checkpoint holds: {describe_vqvae(reference)}. Most likely the recipe does not describe its "
                f"model: make encoder width / depth / down_t / stride_t / output_emb_width / norm, the quantizer "
                f"and the data layout (feature size) match it (key=value overrides work).")


class T2MGPTImporter(VQVAEImporter):
    """T2M-GPT's VQ-VAE (net_last.pth / net_best_fid.pth) as a run: conv1d encoder and decoder, vq_ema_reset.

    The EMA codebook's sums and counts, which T2M-GPT keeps outside its checkpoint, are rebuilt as
    its initialisation sets them. T2M-GPT saves no step counter: the run starts at step 0.
    """

    source = "t2m-gpt"


class MotionMillionImporter(VQVAEImporter):
    """MotionMillion's VQ-VAE (net_latest.pth) as a run: conv1d encoder and decoder, fsq (or vq_ema_reset).

    Its ``nb_iter`` counts the optimizer steps after its warm-up: the run continues at warm-up plus
    that many steps.
    """

    source = "motionmillion"


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


def check_doubling_decoder(model: nn.Module, reference: str) -> None:
    """The reference's decoder up-samples by 2 at every stage whatever stride_t (MoMask's and
    MotionGPT's do); a conv1d decoder up-samples by its stride_t, so only stride_t 2 imports exactly."""
    stride = getattr(model.decoder, "stride_t", 2)
    if stride != 2:
        raise MotionhubError(f"the recipe's decoder up-samples by stride_t {stride}, but {reference}'s decoder "
                             f"up-samples by 2 at every stage whatever its stride: only stride_t 2 imports "
                             f"exactly; set encoder.stride_t=2")
