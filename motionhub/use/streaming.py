"""Encode a live motion stream chunk by chunk: ``StreamingEncoder``.

    stream = StreamingEncoder.from_run("runs/h3d_conv_fsq_causal")
    for chunk in frames_arriving():          # (n, 263) raw HumanML3D features, any n >= 0
        ids = stream.push(chunk)             # (n',) ids of the tokens these frames complete
    stream.reset()                           # a new, unrelated stream

The frames are normalised with the run's statistics, then fed to the encoder's own streaming form
(``encoder.stream()``), which keeps what later frames need: each conv of a causal ``conv1d``
encoder its left context, each block of a causal ``transformer`` encoder its keys and values.
Token t is emitted with the chunk that brings frame (t + 1) * downsample - 1; the ids of all pushes
together are those of encoding the whole stream at once (``Tokenizer.encode``).

Only a causal encoder streams: offline, one that is not lets a token read later frames. An
encoder plugin streams by setting ``causal = True`` and giving ``stream()``, a fresh object whose
``push(x: (B, n, D))`` takes normalised, flattened frames and returns the (B, m, out_dim) latents of
the tokens they complete (optionally ``max_frames``, the longest stream it holds).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from motionhub.data.formats import MotionFormat
from motionhub.errors import MotionhubError
from motionhub.model.tokenizer import Tokenizer


class StreamingError(MotionhubError):
    """A model that cannot stream, or a chunk that does not fit the stream."""


class StreamingEncoder:
    """Token ids of a motion stream, pushed in chunks of any size, equal to encoding it all at once.

    model:  a trained ``Tokenizer`` whose encoder is causal (``encoder.causal: true`` in the recipe);
            it is put in eval mode.
    format: the run's ``MotionFormat`` with its normalisation statistics (``LoadedRun.format``).
    device: where to encode; default the model's device.

    ``push(frames)`` takes raw (un-normalised) frames ``(n, *F)`` for one stream, or ``(B, n, *F)``
    for B streams side by side (B fixed until ``reset``), as numpy or torch, and returns the ids of
    the tokens they complete: ``(m, *Q)`` or ``(B, m, *Q)`` (Q: the quantizer's id axes, e.g.
    none for FSQ, (levels,) for residual VQ), of the same kind as the input (torch on ``device``).
    ``frames_seen`` and ``tokens`` count the stream so far; ``max_frames`` is the longest stream
    the encoder holds (None: unbounded).
    """

    def __init__(self, model: Tokenizer, format: MotionFormat, device: torch.device | str | None = None):
        encoder = model.encoder
        name = type(encoder).__name__
        if not getattr(encoder, "causal", False):
            raise StreamingError(
                f"the encoder {name} is not causal: offline its tokens read later frames, so a stream fed chunk "
                f"by chunk would give other ids; train the run with encoder.causal: true "
                f"(e.g. configs/humanml3d/conv_fsq_causal.yaml)")
        if not callable(getattr(encoder, "stream", None)):
            raise StreamingError(f"the encoder {name} is causal but has no streaming form (a stream() method); "
                                 f"the conv1d and transformer encoders have one")
        self.model = model.eval()
        self.format = format
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model.to(self.device)
        self.downsample = model.downsample
        with torch.inference_mode():  # the trailing id axes Q, for pushes that complete no token
            probe = torch.zeros(1, 1, encoder.out_dim, device=self.device)
            self._id_axes = tuple(self.model.quantizer(probe).indices.shape[2:])
        self.reset()

    @classmethod
    def from_run(cls, run_dir: str | Path, checkpoint: str = "best",
                 device: torch.device | str | None = None) -> StreamingEncoder:
        """The streaming encoder of a trained run (``checkpoints/<checkpoint>.pt``) or a packaged tokenizer folder."""
        from motionhub.use.trained_run import load_run

        loaded = load_run(run_dir, checkpoint)
        return cls(loaded.model, loaded.format, device)

    def reset(self) -> None:
        """Forget the stream: the next push starts a new one."""
        self._stream = self.model.encoder.stream()
        self.max_frames: int | None = getattr(self._stream, "max_frames", None)
        self.frames_seen = 0
        self.tokens = 0
        self._batch: int | None = None

    @torch.inference_mode()
    def push(self, frames: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Ids of the tokens ``frames`` ((n, *F) or (B, n, *F), raw features) complete: (m, *Q) or (B, m, *Q)."""
        as_numpy = isinstance(frames, np.ndarray)
        x = torch.from_numpy(frames) if as_numpy else frames
        single = self._check(tuple(x.shape))
        x = x.to(self.device, torch.float32)
        x = self.format.normalise(x[None] if single else x)
        latents = self._stream.push(x.reshape(*x.shape[:2], self.format.feature_dim))
        ids = self.model.quantizer(latents).indices if latents.shape[1] else \
            torch.empty(latents.shape[0], 0, *self._id_axes, dtype=torch.long, device=latents.device)
        self.frames_seen += x.shape[1]
        self.tokens += ids.shape[1]
        ids = ids[0] if single else ids
        return ids.cpu().numpy() if as_numpy else ids

    def _check(self, shape: tuple[int, ...]) -> bool:
        """Whether a chunk of ``shape`` is one stream (n, *F) rather than B side by side; else ``StreamingError``."""
        feature_shape = tuple(self.format.feature_shape)
        k = len(feature_shape)
        fits = len(shape) in (k + 1, k + 2) and shape[len(shape) - k:] == feature_shape
        if not fits:
            dims = ", ".join(map(str, feature_shape))
            raise StreamingError(
                f"a chunk of shape {shape} does not fit this stream: its frames have shape {feature_shape} "
                f"({self.format.name} features), so give (n, {dims}) for one stream or (B, n, {dims}) for B streams")
        single = len(shape) == k + 1
        batch = 1 if single else shape[0]
        if self._batch is not None and batch != self._batch:
            raise StreamingError(f"this stream carries {self._batch} sequence(s) side by side but a chunk of shape "
                                 f"{shape} has {batch}; call reset() to start a new stream")
        self._batch = batch
        n = shape[len(shape) - k - 1]
        if self.max_frames is not None and self.frames_seen + n > self.max_frames:
            raise StreamingError(
                f"the stream would reach {self.frames_seen + n} frames, more than the {self.max_frames} the "
                f"encoder holds (its positions cover encoder.max_len frames); call reset() to start a new "
                f"stream, or train with a larger encoder.max_len")
        return single
