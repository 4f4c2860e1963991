"""The text-to-motion evaluator's three networks, laid out as its published ``finest.tar`` stores them.

``MovementEncoder``: two strided 1-D convolutions (x4 fewer frames) and a per-frame linear map.
``MotionEncoder``: a bidirectional GRU over the movement features, from a learned initial
state, read at each clip's last valid step. ``TextEncoder``: the same over word vectors plus
a projection of part-of-speech one-hots. ``T2MEvaluator`` holds the three and turns
evaluator-normalised motion and tokenised captions into 512-d embeddings, in input order.

Sub-module names (``main.0``, ``out_net``, ``gru``, ``output_net.3``, ``hidden`` ...) are the
published state dicts' keys, so ``load_state_dict`` reads those files as they are.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

# Evaluator settings shared by every published evaluator (HumanML3D and KIT-ML).
UNIT_LENGTH = 4  # motion frames per movement frame (two stride-2 convolutions)
MAX_MOTION_LENGTH = 196  # frames every motion is padded to
MAX_TEXT_LENGTH = 20  # caption tokens kept, before sos/eos are added
WORD_DIM = 300
POS_DIM = 15
CONTACT_DIMS = 4  # trailing foot-contact features the movement encoder never sees
EMBEDDING_DIM = 512
FEATURES = {"t2m": 263, "kit": 251}  # evaluator name -> feature size of its data set


def xavier_init(*modules: nn.Module) -> None:
    """Xavier-normal weights and zero biases on every Conv1d and Linear inside ``modules``."""
    for module in modules:
        for layer in module.modules():
            if isinstance(layer, (nn.Conv1d, nn.Linear)):
                nn.init.xavier_normal_(layer.weight)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)


class MovementEncoder(nn.Module):
    """Motion features without foot contacts (B, T, D-4) -> movement features (B, T // 4, 512).

    input_dim:  features per frame it reads, the data set's size minus the 4 foot contacts (259 or 247).
    hidden_dim: channels of the two convolutions.
    output_dim: features per movement frame.
    """

    def __init__(self, input_dim: int, hidden_dim: int = 512, output_dim: int = 512):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv1d(input_dim, hidden_dim, 4, 2, 1), nn.Dropout(0.2, inplace=True), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv1d(hidden_dim, output_dim, 4, 2, 1), nn.Dropout(0.2, inplace=True), nn.LeakyReLU(0.2, inplace=True),
        )
        self.out_net = nn.Linear(output_dim, output_dim)
        xavier_init(self.main, self.out_net)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_net(self.main(x.transpose(1, 2)).transpose(1, 2))


class _BiGRUEncoder(nn.Module):
    """A bidirectional GRU from a learned initial state over packed sequences, then an output MLP."""

    gru: nn.GRU
    hidden: nn.Parameter
    output_net: nn.Sequential

    def _mlp(self, hidden_dim: int, output_dim: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(2 * hidden_dim, hidden_dim), nn.LayerNorm(hidden_dim),
                             nn.LeakyReLU(0.2, inplace=True), nn.Linear(hidden_dim, output_dim))

    def _encode(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, H) inputs and (B,) valid steps, any order -> (B, output) in the same order.

        Rows are sorted by length, longest first (a stable sort), packed so that no padding
        step enters the GRU, and put back in input order.
        """
        lengths = torch.as_tensor(lengths).to("cpu", torch.int64)
        if lengths.numel() and int(lengths.min()) < 1:
            raise ValueError(f"every sequence needs at least one step; got lengths {lengths.tolist()}")
        order = torch.sort(lengths, descending=True, stable=True).indices
        restore = torch.empty_like(order)
        restore[order] = torch.arange(order.numel())
        packed = pack_padded_sequence(x[order.to(x.device)], lengths[order], batch_first=True, enforce_sorted=True)
        h0 = self.hidden.repeat(1, x.shape[0], 1)
        _, last = self.gru(packed, h0)  # (2, B, H): forward after the last valid step, backward after step 0
        states = torch.cat([last[0], last[1]], dim=-1)
        return self.output_net(states)[restore.to(x.device)]


class MotionEncoder(_BiGRUEncoder):
    """Movement features (B, T', 512) and valid movement frames (B,) -> motion embeddings (B, 512).

    input_dim:  movement features per step.
    hidden_dim: GRU state size per direction.
    output_dim: embedding size.
    """

    def __init__(self, input_dim: int = 512, hidden_dim: int = 1024, output_dim: int = 512):
        super().__init__()
        self.input_emb = nn.Linear(input_dim, hidden_dim)
        self.gru = nn.GRU(hidden_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.output_net = self._mlp(hidden_dim, output_dim)
        self.hidden = nn.Parameter(torch.randn(2, 1, hidden_dim))
        xavier_init(self.input_emb, self.output_net)

    def forward(self, movements: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self._encode(self.input_emb(movements), lengths)


class TextEncoder(_BiGRUEncoder):
    """Word vectors (B, L, 300), part-of-speech one-hots (B, L, 15), valid tokens (B,) -> (B, 512).

    word_dim:   word-vector size.
    pos_dim:    part-of-speech classes.
    hidden_dim: GRU state size per direction.
    output_dim: embedding size.
    """

    def __init__(self, word_dim: int = WORD_DIM, pos_dim: int = POS_DIM, hidden_dim: int = 512,
                 output_dim: int = 512):
        super().__init__()
        self.pos_emb = nn.Linear(pos_dim, word_dim)
        self.input_emb = nn.Linear(word_dim, hidden_dim)
        self.gru = nn.GRU(hidden_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.output_net = self._mlp(hidden_dim, output_dim)
        self.hidden = nn.Parameter(torch.randn(2, 1, hidden_dim))
        xavier_init(self.pos_emb, self.input_emb, self.output_net)

    def forward(self, words: torch.Tensor, pos: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self._encode(self.input_emb(words + self.pos_emb(pos)), lengths)


class T2MEvaluator(nn.Module):
    """The evaluator of one data set: ``movement_encoder``, ``motion_encoder``, ``text_encoder``.

    dataset: t2m (HumanML3D, 263 features) or kit (KIT-ML, 251); decides the movement encoder's input.
    sizes:   for an evaluator trained here (``self``), its architecture as ``evaluator.json`` records it:
             features, contacts, movement_hidden, movement_latent, motion_hidden, text_hidden,
             embedding_dim, word_dim. The published evaluators take the defaults.
    """

    def __init__(self, dataset: Literal["t2m", "kit", "self"] = "t2m", **sizes: int):
        super().__init__()
        if dataset not in FEATURES and dataset != "self":
            raise ValueError(f"unknown evaluator data set {dataset!r}; choose t2m (HumanML3D), kit (KIT-ML) or self "
                             f"(one trained here, with its sizes)")
        self.dataset = dataset
        self.features = sizes["features"] if dataset == "self" else FEATURES[dataset]
        self.contacts = sizes.get("contacts", CONTACT_DIMS)
        latent = sizes.get("movement_latent", 512)
        self.movement_encoder = MovementEncoder(self.features - self.contacts, sizes.get("movement_hidden", 512),
                                                latent)
        self.motion_encoder = MotionEncoder(latent, sizes.get("motion_hidden", 1024), sizes.get("embedding_dim", 512))
        self.text_encoder = TextEncoder(sizes.get("word_dim", WORD_DIM), hidden_dim=sizes.get("text_hidden", 512),
                                        output_dim=sizes.get("embedding_dim", 512))
        self.eval()

    def parts(self) -> dict[str, nn.Module]:
        """The three networks under the names ``finest.tar`` stores their state dicts by."""
        return {"movement_encoder": self.movement_encoder, "motion_encoder": self.motion_encoder,
                "text_encoder": self.text_encoder}

    def train(self, mode: bool = True) -> T2MEvaluator:
        if mode:
            raise RuntimeError("the T2M evaluator only evaluates; it has no training mode here")
        return super().train(False)

    @torch.no_grad()
    def motion_embeddings(self, motions: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, D) evaluator-normalised motions, zero beyond each length, and (B,) lengths in frames
        (multiples of 4) -> (B, 512), in input order.

        The trailing foot contacts are dropped here (pass all D features). The convolutions see up to 3
        frames past a length, so what lies there must be the zero padding the reference uses; T
        needs at least ``padded_length(max length)`` frames, and frames beyond that are never read.
        """
        if motions.shape[-1] != self.features:
            raise ValueError(f"the {self.dataset} evaluator reads {self.features} features per frame; "
                             f"got {motions.shape[-1]}")
        lengths = torch.as_tensor(lengths).to("cpu", torch.int64)
        movements = self.movement_encoder(motions[..., :self.features - self.contacts].float())
        return self.motion_encoder(movements, lengths // UNIT_LENGTH)

    @torch.no_grad()
    def text_embeddings(self, words: torch.Tensor, pos: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, 22, 300) word vectors, (B, 22, 15) POS one-hots, (B,) tokens with sos/eos -> (B, 512)."""
        return self.text_encoder(words.float(), pos.float(), lengths)


def padded_length(longest: int) -> int:
    """Frames a batch whose longest motion has ``longest`` frames needs so that its embeddings equal
    those of the batch padded to 196: everything the convolutions read for the last valid step."""
    return min(MAX_MOTION_LENGTH, max(longest + UNIT_LENGTH, UNIT_LENGTH))


def parameter_counts(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
