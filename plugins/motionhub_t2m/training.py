"""The evaluator's networks as motionhub components, so that ``motionhub train`` trains an
evaluator for a data set that has none, in the reference's two stages.

How the tokenizer loop (encoder -> quantizer -> decoder, then losses) drives them:

* Stage 1, the movement autoencoder: encoder ``t2m_movement`` (the movement encoder, (B, T, D)
  -> (B, T / 4, 512)), quantizer ``t2m_identity`` (hands the latents on unchanged), decoder
  ``t2m_movement_decoder`` (its mirror, back to (B, T, D)); losses ``recon`` (kind l1) plus
  ``t2m_sparsity`` and ``t2m_smooth`` on the latents. A tokenizer in all but the codes.
* Stage 2, text-motion matching: encoder ``t2m_movement`` again, loaded from stage 1's run and
  frozen (``init_from``, ``freeze``); quantizer ``t2m_identity``; decoder ``t2m_matching``,
  which holds the motion and text encoders. The trainer hands the model the motion only, while
  the motion encoder needs each window's length and the text encoder its caption, which only
  the losses see (``batch["mask"]``, ``batch["captions"]``). So the decoder returns the movement
  features with itself as ``outputs["matching"]`` (as the tokenizer hands losses its quantizer),
  and the loss ``t2m_contrastive``, which holds nothing trainable, calls
  ``matching.embed(movements, frames, captions)``. Every trainable weight stays inside the
  model: the optimizer, checkpoints, resume, parameter counts and data parallelism see them as
  any tokenizer's.

``motionhub t2m-export-evaluator RUN_DIR`` turns a stage-2 run into an evaluator folder that
``motionhub t2m-eval --evaluator-dir`` reads; its figures are labelled as not comparable with
published ones.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from motionhub.api import Decoder, Encoder, MotionFormat, MotionhubError, Quantizer, QuantizerOutput, read_torch_file

from .modules import UNIT_LENGTH, MotionEncoder, MovementEncoder, TextEncoder, xavier_init
from .words import WordEmbedder, caption_words


def contact_features(fmt: MotionFormat) -> int:
    """Trailing foot-contact features of ``fmt`` (its ``contacts`` slice, where it ends the frame), else 0."""
    part = fmt.slices.get("contacts")
    if part is not None and part.stop == fmt.feature_dim:
        return part.stop - part.start
    return 0


def run_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file: ``path`` itself, or a run directory's checkpoints/best.pt (else last.pt)."""
    path = Path(path).expanduser()
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / "checkpoints" / name).is_file():
                return path / "checkpoints" / name
        raise MotionhubError(f"{path} holds no checkpoints/best.pt or checkpoints/last.pt; pass the run directory "
                             f"that 'motionhub train' printed for the movement autoencoder")
    if not path.is_file():
        raise MotionhubError(f"{path} does not exist; pass the movement autoencoder's run directory or checkpoint")
    return path


def part_state(path: Path, prefix: str) -> dict[str, torch.Tensor]:
    """The weights under ``prefix`` (e.g. ``encoder.``) of a motionhub checkpoint, without it."""
    checkpoint = read_torch_file(path)
    model = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(model, dict):
        raise MotionhubError(f"{path} is not a motionhub checkpoint (no 'model' state dict)")
    state = {key[len(prefix):]: value for key, value in model.items() if key.startswith(prefix)}
    if not state:
        raise MotionhubError(f"{path} holds no '{prefix}*' weights")
    return state


class MovementFeatures(Encoder):
    """The evaluator's movement encoder: (B, T, D) normalised motion -> (B, T // 4, latent_dim).

    It reads every feature but the trailing foot contacts, as the published evaluator does.

    format:     the data set's format (from the framework).
    hidden_dim: channels of the first convolution.
    latent_dim: movement features per 4 frames.
    contacts:   trailing foot-contact features it leaves out; null = the format's contacts slice (4 for HumanML3D, 0 for MotionMillion).
    init_from:  a movement autoencoder's run directory (or checkpoint file) whose encoder weights it starts from.
    freeze:     keep the weights it starts from and its dropout off (the matching stage trains only the text and motion encoders).
    """

    downsample = UNIT_LENGTH

    def __init__(self, format: MotionFormat, hidden_dim: int = 512, latent_dim: int = 512,
                 contacts: Optional[int] = None, init_from: Optional[str] = None, freeze: bool = False):
        super().__init__()
        if len(format.feature_shape) != 1:
            raise ValueError(f"reads flat frames (T, D); format '{format.name}' has frames of shape "
                             f"{tuple(format.feature_shape)}")
        self.contacts = contact_features(format) if contacts is None else contacts
        if not 0 <= self.contacts < format.feature_dim:
            raise ValueError(f"contacts must lie in [0, {format.feature_dim}), got {self.contacts}")
        self.features, self.out_dim, self.freeze = format.feature_dim, latent_dim, freeze
        self.net = MovementEncoder(format.feature_dim - self.contacts, hidden_dim, latent_dim)
        if init_from is not None:
            path = run_checkpoint(init_from)
            try:
                self.net.load_state_dict(part_state(path, "encoder.net."))
            except RuntimeError as exc:
                raise MotionhubError(f"init_from {path}: its movement encoder does not fit this one ({exc}); give "
                                     f"encoder hidden_dim, latent_dim and contacts as that run's recipe has "
                                     "them") from None
        elif freeze:
            raise ValueError("freeze keeps the weights it starts from: give init_from, the movement autoencoder's run")
        if freeze:
            self.net.requires_grad_(False)
            self.net.eval()

    def train(self, mode: bool = True) -> MovementFeatures:
        return super().train(mode and not self.freeze)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x[..., :self.features - self.contacts])


class MovementDecoder(Decoder):
    """The movement autoencoder's decoder: (B, T', latent_dim) -> (B, 4 T', D), every feature.

    Two transposed convolutions (x2 frames each, LeakyReLU 0.2) and a per-frame linear map.

    format:     the data set's format (from the framework).
    dim:        movement features per step (from the quantizer).
    hidden_dim: channels of the first transposed convolution.
    """

    def __init__(self, format: MotionFormat, dim: int = 512, hidden_dim: int = 512):
        super().__init__()
        out = format.feature_dim
        self.main = nn.Sequential(
            nn.ConvTranspose1d(dim, hidden_dim, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.ConvTranspose1d(hidden_dim, out, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
        )
        self.out_net = nn.Linear(out, out)
        xavier_init(self.main, self.out_net)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out_net(self.main(z.transpose(1, 2)).transpose(1, 2))


class IdentityQuantizer(Quantizer):
    """No quantisation: the latents pass unchanged (indices all 0, one "code"), so the tokenizer
    loop trains a plain autoencoder or an embedding model.

    dim: latent width (from the encoder).
    """

    def __init__(self, dim: int = 512):
        super().__init__()
        self.dim = dim

    @property
    def codebook_size(self) -> int:
        return 1

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        return QuantizerOutput(z, torch.zeros(z.shape[:2], dtype=torch.long, device=z.device), z.new_zeros(()))

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        raise MotionhubError("t2m_identity keeps no codes: its latents cannot be rebuilt from indices")


class TextMotionMatching(Decoder):
    """The evaluator's motion encoder and text encoder, trained together by ``t2m_contrastive``.

    ``forward(movements (B, T', C))`` returns ``{"movements": movements, "matching": self}``; the
    loss calls ``embed`` with each window's frames and caption (see the module docstring).

    words_dir:     folder of the word vectors our_vab_data.npy, our_vab_words.pkl, our_vab_idx.pkl (GloVe-style; yours or the published ones).
    dim:           movement features per step (from the quantizer).
    motion_hidden: GRU state size per direction of the motion encoder.
    text_hidden:   GRU state size per direction of the text encoder.
    embedding_dim: size of the shared text-motion embedding.
    """

    def __init__(self, words_dir: str, dim: int = 512, motion_hidden: int = 1024, text_hidden: int = 512,
                 embedding_dim: int = 512):
        super().__init__()
        from .files import VOCABULARY, find_file, read_vocabulary

        folder = Path(words_dir).expanduser()
        if not folder.is_dir():
            raise ValueError(f"words_dir {folder} is not a folder; it must hold {', '.join(VOCABULARY)}")
        self.words_dir = folder
        self.vocabulary_paths = [find_file(folder, "vocabulary", name, "") for name in VOCABULARY]
        self.vocabulary = read_vocabulary(*self.vocabulary_paths)
        self.words = WordEmbedder(self.vocabulary)
        self.motion_encoder = MotionEncoder(dim, motion_hidden, embedding_dim)
        self.text_encoder = TextEncoder(self.vocabulary.vectors.shape[1], hidden_dim=text_hidden,
                                        output_dim=embedding_dim)

    def forward(self, movements: torch.Tensor) -> dict:
        return {"movements": movements, "matching": self}

    def embed(self, movements: torch.Tensor, frames: torch.Tensor, captions: list[str]
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T', C) movements, (B,) real frames of each window and B captions -> (text, motion)
        embeddings, each (B, embedding_dim), row i of both from window i."""
        if len(captions) != len(movements):
            raise MotionhubError(f"{len(captions)} captions for {len(movements)} windows")
        steps = torch.clamp(torch.as_tensor(frames).to("cpu", torch.int64) // UNIT_LENGTH, 1, movements.shape[1])
        motion = self.motion_encoder(movements, steps)
        words, pos, lengths = self.words.captions([caption_words(c, self.vocabulary.index) for c in captions])
        device = movements.device
        text = self.text_encoder(torch.from_numpy(words).to(device), torch.from_numpy(pos).to(device),
                                 torch.from_numpy(lengths))
        return text, motion

    def to_features(self, outputs: dict, motion: torch.Tensor) -> torch.Tensor:
        raise MotionhubError("t2m_matching embeds motion and captions; it reconstructs no motion (set eval.metrics: [] "
                             "in its recipe)")
