"""Importer of MotionGPT's motion tokenizer (``mGPT.archs.mgpt_vq.VQVae``) into a conv1d encoder and
decoder and a ``vq_ema_reset`` quantizer.

MotionGPT trains its tokenizer inside a Lightning module, so its checkpoints (``*.ckpt`` and the
released ``motiongpt_s3_h3d.tar``) keep every weight in one ``state_dict``: the VQ-VAE under
``vae.`` (older releases: ``motion_vae.``) beside the language model (``lm.``) and the metrics.
The VQ-VAE is T2M-GPT's layout (``vae.encoder.model.*``, ``vae.decoder.model.*``) with one
EMA-reset codebook ``vae.quantizer.codebook`` (K, C); everything outside it is left alone.

Its configuration (``configs/vq/default.yaml``): 263 features, width 512, depth 3, down_t 2,
stride_t 2, dilation growth 3, 512 x 512 codebook, relu, no norm (T2M-GPT's):
19,436,807 parameters and a 512 x 512 = 262,144-value codebook buffer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from motionhub.api import StateDictImporter

from .importers import check_doubling_decoder, describe_vqvae
from .recognise import RecognisesOtherCheckpoints

PREFIXES = ("vae.", "motion_vae.")  # where MotionGPT's Lightning module keeps its VQ-VAE


class MotionGPTImporter(RecognisesOtherCheckpoints, StateDictImporter):
    """MotionGPT's motion tokenizer (a Lightning .ckpt / .tar) as a run: conv1d encoder and decoder, vq_ema_reset.

    The recipe describes the tokenizer: encoder and decoder ``conv1d`` (configs/humanml3d/t2m_gpt_vq.yaml
    is MotionGPT's too, statistics included), quantizer ``vq_ema_reset``. Only the ``vae.`` tensors
    are read; the language model's are left in the file. Lightning's ``global_step`` counts the
    optimizer steps and MotionGPT's tokenizer trains without warm-up: the run continues at the
    recipe's warm-up plus that many steps. Lightning also saves its hyper-parameters as Python
    objects; such a file is read only when trusted (MOTIONHUB_TRUST_CHECKPOINTS=1).
    """

    source = "motiongpt"
    state_entry = "state_dict"
    iteration_key = "global_step"
    quantizer_hint = "use quantizer: vq_ema_reset (an EMA codebook)"

    @classmethod
    def key_map(cls, model: nn.Module, reference: Mapping[str, torch.Tensor]) -> dict[str, str]:
        prefix = vae_prefix(reference)
        keys = cls.part_keys(model, "reference_key_map", "conv1d",
                             {"encoder": f"{prefix}encoder.", "decoder": f"{prefix}decoder."})
        return keys | cls.quantizer_keys(model, f"{prefix}quantizer.")

    @classmethod
    def skipped(cls, key: str) -> bool:
        """The language model, the metrics and anything else outside the VQ-VAE."""
        return not key.startswith(PREFIXES)

    @classmethod
    def check(cls, model: nn.Module, reference: Mapping[str, torch.Tensor]) -> None:
        check_doubling_decoder(model, "MotionGPT")

    @classmethod
    def likely_cause(cls, reference: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> str:
        prefix = vae_prefix(reference)
        if not any(key.startswith(prefix) for key in reference):
            top = sorted({key.split(".", 1)[0] for key in reference})
            return (f"The checkpoint's state_dict holds no VQ-VAE ({' or '.join(PREFIXES)} tensors; its tensors begin "
                    f"with {', '.join(top[:10])}): it is not a MotionGPT tokenizer checkpoint.")
        vqvae = {f"vqvae.{key[len(prefix):]}": value for key, value in reference.items() if key.startswith(prefix)}
        return (f"The checkpoint holds: {describe_vqvae(vqvae)}. Most likely the recipe does not describe its "
                f"model: make encoder width / depth / down_t / output_emb_width / norm, the quantizer and the "
                f"data layout (feature size) match it (key=value overrides work).")


def vae_prefix(reference: Mapping[str, torch.Tensor]) -> str:
    """``motion_vae.`` where the checkpoint uses it, else ``vae.``."""
    return next((p for p in PREFIXES[1:] if any(key.startswith(p) for key in reference)), PREFIXES[0])
