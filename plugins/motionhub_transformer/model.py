"""Pre-LN Transformer encoder and decoder over time for skeleton features (HumanML3D, MotionMillion, ...).

Layout (W = width, C = output_emb_width, D = feature_dim, s = 2**down_t):

    encoder  (B, T, *F) -> (B, T / s, s * D)      patchify: one token per s consecutive frames
                        -> Linear s*D -> W, + positions, dropout
                        -> depth x Block
                        -> LayerNorm, Linear W -> C                     -> (B, T / s, C)
    decoder  (B, T', C) -> Linear C -> W, + positions, dropout
                        -> depth x Block
                        -> LayerNorm, Linear W -> s * D
                        -> un-patchify                                  -> (B, T' * s, *F)

    Block    x + Dropout(Attention(LayerNorm(x))), then x + Dropout(MLP(LayerNorm(x))),
             MLP = Linear W -> 4W, GELU, Linear 4W -> W.

T must be a multiple of s (the framework crops windows and clips to a multiple of ``downsample``)
and at most ``max_len`` frames. Both kinds of positions are a table of max_len // s rows added to
the first N tokens, so any clip length up to ``max_len`` works with the same weights: "sinusoidal"
is fixed and not saved in checkpoints, "learned" is trained (changing ``max_len`` then changes the
checkpoint, and rows past the longest training window stay at their initial values).

``forward(x)`` takes no padding mask: padded frames are excluded where the losses and metrics
apply the batch mask, not in the attention. With ``causal=True`` token t sees tokens <= t only, so
the padding after a clip reaches no token of the clip except a last token it shares with the clip's
final frames; with full attention every token sees it.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from motionhub.api import Bounds, Decoder, Encoder, MotionFormat, mirrored_settings

Positional = Literal["sinusoidal", "learned"]

MLP_RATIO = 4


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """(length, dim) sine / cosine table of "Attention Is All You Need" (sines in the first half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = torch.arange(length, dtype=torch.float32)[:, None] * freqs[None]
    table = torch.cat([angles.sin(), angles.cos()], dim=1)
    return F.pad(table, (0, dim - 2 * half))


class PositionalEncoding(nn.Module):
    """Adds a position vector to each token: (B, N, W) -> (B, N, W), N <= max_tokens."""

    def __init__(self, kind: Positional, max_tokens: int, dim: int):
        super().__init__()
        self.kind, self.max_tokens = kind, max_tokens
        if kind == "learned":
            self.table = nn.Parameter(torch.empty(max_tokens, dim))
            nn.init.trunc_normal_(self.table, std=0.02)
        else:
            self.register_buffer("table", sinusoidal_positions(max_tokens, dim), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        if n > self.max_tokens:
            raise ValueError(f"{n} tokens exceed the {self.max_tokens} positions of this model; "
                             f"raise max_len (in frames) to at least {n} * downsample")
        return x + self.table[:n].to(x.dtype)


class Attention(nn.Module):
    """Multi-head self-attention with fused q/k/v: (B, N, W) -> (B, N, W); token t sees tokens <= t when causal."""

    def __init__(self, dim: int, heads: int, dropout: float, causal: bool):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.heads, self.dropout, self.causal = heads, dropout, causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in self.qkv(x).chunk(3, dim=-1))
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=self.causal
        )
        return self.out(y.transpose(1, 2).flatten(2))


class Block(nn.Module):
    """Pre-LN Transformer block: (B, N, W) -> (B, N, W)."""

    def __init__(self, dim: int, heads: int, dropout: float, causal: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout, causal)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, MLP_RATIO * dim), nn.GELU(), nn.Linear(MLP_RATIO * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.drop(self.mlp(self.norm2(x)))


class Backbone(nn.Module):
    """Positions, dropout, ``depth`` blocks and a final LayerNorm: (B, N, W) -> (B, N, W)."""

    def __init__(self, width: int, depth: int, heads: int, dropout: float, causal: bool,
                 positional: Positional, max_tokens: int):
        super().__init__()
        self.positions = PositionalEncoding(positional, max_tokens, width)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(width, heads, dropout, causal) for _ in range(depth))
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.positions(x))
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def _check(width: int, depth: int, heads: int, down_t: int, max_len: int, dropout: float,
           positional: str) -> None:
    bounds = (("width", width, 1), ("depth", depth, 0), ("heads", heads, 1), ("down_t", down_t, 0))
    for name, value, low in bounds:
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    if width % heads:
        raise ValueError(f"width ({width}) must be a multiple of heads ({heads})")
    if max_len < 2**down_t:
        raise ValueError(f"max_len ({max_len} frames) must hold at least one token of 2**down_t = {2**down_t} frames")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
    if positional not in ("sinusoidal", "learned"):
        raise ValueError(f"positional must be 'sinusoidal' or 'learned', got {positional!r}")


class TransformerEncoder(Encoder):
    """Pre-LN Transformer encoder over time, one token per 2**down_t frames: (B, T, *F) -> (B, T / 2**down_t, C).

    format:           the data set's MotionFormat; frames are flattened to ``format.feature_dim`` values.
    width:            W, the token width.
    depth:            number of Transformer blocks.
    heads:            attention heads (must divide ``width``).
    down_t:           tokens are patches of 2**down_t consecutive frames (a Linear over the patch).
    output_emb_width: C, the latent width (``out_dim``).
    causal:           token t attends to tokens <= t only, so ``stream()`` can encode a live stream chunk
                      by chunk; else full attention.
    positional:       "sinusoidal" (fixed) or "learned" (trained table of max_len // 2**down_t rows).
    max_len:          the longest clip in frames the model accepts.
    dropout:          on the embedded tokens, attention weights and both residual branches.

    T must be a multiple of ``downsample`` and at most ``max_len``.
    """

    def __init__(
        self,
        format: MotionFormat,
        width: Annotated[int, Bounds(low=1)] = 512,
        depth: Annotated[int, Bounds(low=0)] = 4,
        heads: Annotated[int, Bounds(low=1)] = 8,
        down_t: Annotated[int, Bounds(low=0)] = 2,
        output_emb_width: Annotated[int, Bounds(low=1)] = 512,
        causal: bool = False,
        positional: Positional = "sinusoidal",
        max_len: Annotated[int, Bounds(low=1)] = 1024,
        dropout: Annotated[float, Bounds(low=0, high=1, high_open=True)] = 0.1,
    ):
        super().__init__()
        _check(width, depth, heads, down_t, max_len, dropout, positional)
        self.in_dim = format.feature_dim
        self.width, self.depth, self.heads, self.down_t = width, depth, heads, down_t
        self.causal, self.positional, self.max_len, self.dropout = causal, positional, max_len, dropout
        self.out_dim = output_emb_width
        self.downsample = 2**down_t

        self.proj_in = nn.Linear(self.downsample * self.in_dim, width)
        self.backbone = Backbone(width, depth, heads, dropout, causal, positional, max_len // self.downsample)
        self.proj_out = nn.Linear(width, output_emb_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, *F) -> (B, T / downsample, out_dim)."""
        b, t = x.shape[:2]
        h = x.reshape(b, t, -1)
        if h.shape[-1] != self.in_dim:
            raise ValueError(f"expected frames of {self.in_dim} features, got shape {tuple(x.shape[2:])}")
        if t % self.downsample:
            low = t - t % self.downsample
            raise ValueError(f"clip length {t} is not a multiple of downsample = 2**down_t = {self.downsample}; "
                             f"crop or pad it to {low} or {low + self.downsample} frames")
        h = h.reshape(b, t // self.downsample, self.downsample * self.in_dim)
        return self.proj_out(self.backbone(self.proj_in(h)))

    def stream(self):
        """A ``TransformerEncoderStream``: this causal encoder fed chunk by chunk, with a key / value cache."""
        from .streaming import TransformerEncoderStream

        return TransformerEncoderStream(self)


class TransformerDecoder(Decoder):
    """Pre-LN Transformer decoder mirroring ``TransformerEncoder``: (B, T', C) -> (B, T' * 2**down_t, *F).

    format:     the data set's MotionFormat; the output is reshaped to ``format.feature_shape``.
    dim:        C, the input (quantized latent) width; default ``encoder.out_dim``, else 512.
    encoder:    the built encoder; every hyper-parameter left as None is copied from it when it is a
                ``TransformerEncoder``, else takes the encoder defaults.
    width:      W, the token width; None: the encoder's, else 512.
    depth:      number of Transformer blocks; None: the encoder's, else 4.
    heads:      attention heads (must divide ``width``); None: the encoder's, else 8.
    down_t:     each token is un-patchified into 2**down_t frames; None: the encoder's, else 2.
    causal:     token t attends to tokens <= t only; None: the encoder's, else False (full attention).
    positional: "sinusoidal" (fixed) or "learned" (trained table); None: the encoder's, else sinusoidal.
    max_len:    the longest clip in frames the model outputs; None: the encoder's, else 1024.
    dropout:    on the embedded tokens, attention weights and both residual branches; None: the encoder's, else 0.1.
    """

    def __init__(
        self,
        format: MotionFormat,
        dim: Annotated[Optional[int], Bounds(low=1)] = None,
        encoder: Optional[Encoder] = None,
        width: Annotated[Optional[int], Bounds(low=1)] = None,
        depth: Annotated[Optional[int], Bounds(low=0)] = None,
        heads: Annotated[Optional[int], Bounds(low=1)] = None,
        down_t: Annotated[Optional[int], Bounds(low=0)] = None,
        causal: Optional[bool] = None,
        positional: Optional[Positional] = None,
        max_len: Annotated[Optional[int], Bounds(low=1)] = None,
        dropout: Annotated[Optional[float], Bounds(low=0, high=1, high_open=True)] = None,
    ):
        super().__init__()
        dim = dim if dim is not None else getattr(encoder, "out_dim", 512)
        given = dict(width=width, depth=depth, heads=heads, down_t=down_t, causal=causal, positional=positional,
                     max_len=max_len, dropout=dropout)
        settings = mirrored_settings(encoder, TransformerEncoder, given, {
            "width": 512, "depth": 4, "heads": 8, "down_t": 2, "causal": False,
            "positional": "sinusoidal", "max_len": 1024, "dropout": 0.1})
        width, depth, heads, down_t = (settings[k] for k in ("width", "depth", "heads", "down_t"))
        causal, positional, max_len, dropout = (settings[k] for k in ("causal", "positional", "max_len", "dropout"))
        _check(width, depth, heads, down_t, max_len, dropout, positional)

        self.feature_shape = tuple(format.feature_shape)
        self.dim, self.width, self.depth, self.heads, self.down_t = dim, width, depth, heads, down_t
        self.causal, self.positional, self.max_len, self.dropout = causal, positional, max_len, dropout
        self.upsample = 2**down_t

        self.proj_in = nn.Linear(dim, width)
        self.backbone = Backbone(width, depth, heads, dropout, causal, positional, max_len // self.upsample)
        self.proj_out = nn.Linear(width, self.upsample * format.feature_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, T', dim) -> (B, T' * upsample, *feature_shape)."""
        b, n = z.shape[:2]
        h = self.proj_out(self.backbone(self.proj_in(z)))
        return h.reshape(b, n * self.upsample, *self.feature_shape)
