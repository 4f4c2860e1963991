"""Which reference code base wrote a checkpoint, told from where it keeps its weights and their names.

The Conv1d VQ-VAE references save the same encoder and decoder under different roots:

=============================  ==================  ===========================================
reference                      weights under       tensors
=============================  ==================  ===========================================
T2M-GPT                        ``net``             ``vqvae.encoder.*``, ``vqvae.quantizer.codebook``
MotionMillion                  ``net`` (+nb_iter)  as T2M-GPT, often FSQ ``vqvae.quantizer.project_in.*``
MoMask (RVQ-VAE)               ``vq_model``        ``encoder.*``, ``quantizer.layers.{i}.codebook``
MotionGPT (Lightning)          ``state_dict``      ``vae.encoder.*``, ``vae.quantizer.codebook``, ``lm.*``
=============================  ==================  ===========================================

``RecognisesOtherCheckpoints`` gives an importer a ``read`` that refuses a checkpoint of one of
the others with one message naming what it is and the importer to use instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from motionhub.api import MotionhubError, read_torch_file

WRAPPERS = ("module.", "_orig_mod.")


class Kind(NamedTuple):
    """A checkpoint's writer: the importer that reads it and what gave it away."""

    importer: str
    evidence: str


def _names(state: Any) -> list[str]:
    """The tensor names of a state dict, without DDP / torch.compile wrappers; [] for anything else."""
    if not isinstance(state, Mapping):
        return []
    names = []
    for key in state:
        key = str(key)
        while key.startswith(WRAPPERS):
            key = key.split(".", 1)[1]
        names.append(key)
    return names


def _has(names: list[str], *prefixes: str) -> bool:
    return any(name.startswith(prefixes) for name in names)


def recognise(checkpoint: Any) -> Kind | None:
    """The reference that wrote ``checkpoint`` (what a torch file holds), None when none fits."""
    if not isinstance(checkpoint, Mapping):
        return None
    momask = _names(checkpoint.get("vq_model"))
    if _has(momask, "quantizer.layers."):
        return Kind("momask", "MoMask's residual VQ-VAE: 'vq_model' with per-level codebooks quantizer.layers.*")
    motiongpt = _names(checkpoint.get("state_dict"))
    if _has(motiongpt, "vae.", "motion_vae."):
        return Kind("motiongpt", "MotionGPT's: a Lightning 'state_dict' with its VQ-VAE under vae.*")
    vqvae = _names(checkpoint.get("net"))
    if _has(vqvae, "vqvae."):
        if "nb_iter" in checkpoint or _has(vqvae, "vqvae.quantizer.project_in.", "vqvae.encoder.model.0.wavelets"):
            return Kind("motionmillion", "MotionMillion's VQ-VAE: 'net' with vqvae.* tensors and an iteration count "
                                         "or FSQ projections")
        return Kind("t2m-gpt", "T2M-GPT's VQ-VAE: 'net' with vqvae.* tensors and one codebook")
    bare = _names(checkpoint)
    if _has(bare, "quantizer.layers.") and _has(bare, "encoder.model."):
        return Kind("momask", "MoMask's residual VQ-VAE state dict: per-level codebooks quantizer.layers.*")
    if _has(bare, "vae.encoder.", "motion_vae.encoder."):
        return Kind("motiongpt", "MotionGPT's VQ-VAE state dict: vae.* tensors")
    if _has(bare, "vqvae.encoder."):
        return Kind("t2m-gpt", "a T2M-GPT-style VQ-VAE state dict: vqvae.* tensors")
    return None


def _family(importer: str) -> str:
    """T2M-GPT and MotionMillion save one layout: either importer reads the other's checkpoints."""
    return "vqvae" if importer in ("t2m-gpt", "motionmillion") else importer


def refusal(path: str | Path, kind: Kind, source: str) -> str:
    """The message for ``kind``'s checkpoint at ``path`` given to importer ``source``."""
    return (f"{path} looks like a {kind.importer} checkpoint ({kind.evidence}), not a {source} one. "
            f"Import it with its own importer: motionhub import {kind.importer} {path} --recipe RECIPE --out RUN_DIR")


class RecognisesOtherCheckpoints:
    """Mixin for a ``StateDictImporter``: a checkpoint another listed reference wrote is refused by name.

    Put it before ``StateDictImporter`` in the bases; ``source`` is the importer's registered name.
    """

    source = ""

    @classmethod
    def read(cls, path):
        try:
            read = super().read(path)
        except MotionhubError:
            kind = _recognise_file(path)
            if kind is not None and _family(kind.importer) != _family(cls.source):
                raise MotionhubError(refusal(path, kind, cls.source)) from None
            raise
        kind = recognise(read.state_dict)
        if kind is not None and _family(kind.importer) != _family(cls.source):
            raise MotionhubError(refusal(path, kind, cls.source))
        return read


def _recognise_file(path: str | Path) -> Kind | None:
    """``recognise`` of the file at ``path``; None when it cannot be read (the first error says why)."""
    try:
        return recognise(read_torch_file(path))
    except MotionhubError:
        return None
