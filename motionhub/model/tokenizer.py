"""Encoder, decoder base classes and the ``Tokenizer`` that chains encoder -> quantizer -> decoder."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from motionhub.errors import MotionhubError
from motionhub.model.quantizer import Quantizer


class Encoder(nn.Module):
    """Base class for encoder plugins: ``forward(x: (B, T, *F)) -> (B, T // downsample, out_dim)``.

    Must provide:
      out_dim:    C, the latent width; the quantizer's ``dim`` is set to it unless the recipe sets it.
      downsample: temporal down-sampling T / T' (default 1); clips are cropped to a multiple of it,
                  and the framework checks it is not above ``data.window``.

    May provide:
      pads_exactly: True when the only mixing over time is ``nn.Conv1d`` and everything else acts
                  frame by frame, so that clips of different lengths can share a batch, padded on
                  the right, and encode exactly as alone (``motionhub.model.padding``). Default False.

    Constructors receive ``format`` (the data set's ``MotionFormat``) from the framework
    unless the recipe sets it; everything else comes from the recipe.
    """

    out_dim: int
    downsample: int = 1  # temporal down-sampling factor; clip lengths are cropped to a multiple
    pads_exactly: bool = False  # see motionhub.model.padding


class Decoder(nn.Module):
    """Base class for decoder plugins: ``forward(z: (B, T', C)) -> (B, T, *F)``, or a dict of outputs.

    Must provide: ``forward`` returning the reconstruction in normalised feature space
    (a tensor, or a dict whose ``recon`` or own keys such as ``logits`` losses read).

    Constructors may ask for ``format``, ``dim`` (the quantizer's output width) and
    ``encoder`` (the built encoder, to mirror its hyper-parameters); the framework passes
    whichever of these the signature names and the recipe leaves unset.

    A decoder whose outputs are not features (e.g. classification logits) implements
    ``to_features`` so its reconstructions can be drawn and compared.
    """

    def to_features(self, outputs: dict[str, torch.Tensor], motion: torch.Tensor) -> torch.Tensor:
        """Normalised features (B, T, *F) from this decoder's ``outputs`` for the input ``motion``."""
        raise MotionhubError(f"the decoder {type(self).__name__} outputs {', '.join(sorted(outputs))}, not "
                             f"features, and cannot turn them into a reconstruction")


def mirrored_settings(encoder: nn.Module | None, encoder_cls: type, given: dict[str, Any],
                      defaults: dict[str, Any]) -> dict[str, Any]:
    """A decoder's settings: each value given, else the encoder's own (when ``encoder`` is an
    ``encoder_cls``), else the default. Lets ``decoder: {name: conv1d}`` mirror its encoder."""
    source = encoder if isinstance(encoder, encoder_cls) else None
    return {name: given[name] if given.get(name) is not None
            else getattr(source, name) if source is not None else default
            for name, default in defaults.items()}


class Tokenizer(nn.Module):
    """encoder -> quantizer -> decoder.

    ``forward(x: (B, T, *F))`` returns a dict with ``recon`` (or the decoder's own keys,
    e.g. ``logits``), ``latents`` (B, T', C), ``quantized`` (B, T', C), ``indices``,
    ``aux_loss``, where the quantizer gives it, ``pre_quantized`` (B, T', D), and ``quantizer``:
    the quantizer module itself, so that losses and metrics read its contract (levels, code
    space, ``codebook_size``, ``indices_to_codes``; see ``motionhub.model.quantizer``).
    """

    def __init__(self, encoder: Encoder, quantizer: Quantizer, decoder: Decoder):
        super().__init__()
        self.encoder, self.quantizer, self.decoder = encoder, quantizer, decoder

    @property
    def downsample(self) -> int:
        return getattr(self.encoder, "downsample", 1)

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        latents = self.encoder(x)
        q = self.quantizer(latents)
        decoded = self.decoder(q.quantized)
        outputs = decoded if isinstance(decoded, dict) else {"recon": decoded}
        outputs = {**outputs, "latents": latents, "quantized": q.quantized, "indices": q.indices,
                   "aux_loss": q.aux_loss, "quantizer": self.quantizer}
        if q.pre_quantized is not None:
            outputs["pre_quantized"] = q.pre_quantized
        return outputs

    def reconstruction(self, outputs: dict[str, torch.Tensor], motion: torch.Tensor) -> torch.Tensor:
        """The reconstruction of ``motion`` (B, T, *F) in ``outputs``, as normalised features."""
        if "recon" in outputs:
            return outputs["recon"]
        return self.decoder.to_features(outputs, motion)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Token ids for ``x``: (B, T', ...) integers."""
        return self.quantizer(self.encoder(x)).indices

    @torch.no_grad()
    def decode(self, indices: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        """Decoder output for token ids."""
        return self.decoder(self.quantizer.indices_to_codes(indices))
