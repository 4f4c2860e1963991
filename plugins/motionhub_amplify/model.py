"""AMPLIFY's motion-tokenizer encoder and decoder (Collins et al., arXiv 2506.14198).

Same parameters and the same numbers as the official implementation, computed faster: the
decoder never builds the (B, T, V, N, 3 * dim) input of its track MLP, and the linear maps
after that MLP's non-linearity are merged before they touch the (B, T, V, N, .) grid.
``load_reference_state_dict`` loads an official checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from motionhub.api import Bounds, Decoder, Encoder, MotionFormat, MotionhubError

from .tracks import decode_points, track_layout, velocities

HORIZON = Bounds(low=2, hint="frames per window; horizon - 1 velocity steps")
GRID = Bounds(low=1, length=2, hint="[rows, cols] of displacement classes")
DROPOUT = Bounds(low=0, high=1, high_open=True)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, T, C) -> (B, heads, T, C // heads)."""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, T, C // heads) -> (B, T, C)."""
    return x.transpose(1, 2).flatten(2)


class SelfAttention(nn.Module):
    """Multi-head self-attention, bias-free fused q/k/v and output projections."""

    def __init__(self, dim: int, heads: int, dropout: float, causal: bool = False):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)
        self.drop = nn.Dropout(dropout)
        self.heads, self.dropout, self.causal = heads, dropout, causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, C); token t sees tokens <= t when causal."""
        q, k, v = (_split_heads(part, self.heads) for part in self.qkv(x).chunk(3, dim=-1))
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=self.causal
        )
        return self.drop(self.out(_merge_heads(y)))


class CrossAttention(nn.Module):
    """Multi-head attention from queries to a context, bias-free projections."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)
        self.drop = nn.Dropout(dropout)
        self.heads, self.dropout = heads, dropout

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x (B or 1, T, C), context (B, S, C) -> (B, T, C)."""
        q = self.q(x).expand(context.shape[0], -1, -1)
        k, v = self.kv(context).chunk(2, dim=-1)
        y = F.scaled_dot_product_attention(
            _split_heads(q, self.heads), _split_heads(k, self.heads), _split_heads(v, self.heads),
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.drop(self.out(_merge_heads(y)))


class MLP(nn.Module):
    """dim -> 4 dim -> dim, exact GELU, bias-free, dropout on the output."""

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.fc = nn.Linear(dim, 4 * dim, bias=False)
        self.proj = nn.Linear(4 * dim, dim, bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))


class EncoderBlock(nn.Module):
    """Pre-LN block: self-attention, then MLP; bias-free LayerNorms."""

    def __init__(self, dim: int, heads: int, dropout: float, causal: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, bias=False)
        self.attn = SelfAttention(dim, heads, dropout, causal)
        self.norm2 = nn.LayerNorm(dim, bias=False)
        self.mlp = MLP(dim, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DecoderBlock(nn.Module):
    """Pre-LN block: self-attention, MLP, cross-attention to the codes, second MLP."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, bias=False)
        self.self_attn = SelfAttention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim, bias=False)
        self.mlp = MLP(dim, dropout)
        self.norm3 = nn.LayerNorm(dim, bias=False)
        self.cross_attn = CrossAttention(dim, heads, dropout)
        self.norm4 = nn.LayerNorm(dim, bias=False)
        self.mlp2 = MLP(dim, dropout)

    def forward(self, x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """x (B or 1, T, C), codes (B, S, C) -> (B, T, C)."""
        x = x + self.self_attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        x = x + self.cross_attn(self.norm3(x), codes)
        return x + self.mlp2(self.norm4(x))


def _init_transformer(positions: nn.Parameter, blocks: nn.ModuleList) -> None:
    """GPT-2 initialisation: N(0, 0.02), residual output projections N(0, 0.02 / sqrt(2 * layers))."""
    nn.init.normal_(positions, std=0.02)
    residual_std = 0.02 / math.sqrt(2 * len(blocks))
    for name, param in blocks.named_parameters():
        if name.endswith((".out.weight", ".proj.weight")):
            nn.init.normal_(param, std=residual_std)
        elif param.ndim == 2:
            nn.init.normal_(param, std=0.02)


class AmplifyEncoder(Encoder):
    """AMPLIFY track encoder: one causal transformer token per frame-to-frame velocity.

    format:     the data set's MotionFormat, point tracks shaped (views, tracks, 2).
    hidden_dim: token width C, the latent width (``out_dim``) the quantizer receives.
    num_heads:  attention heads per layer; must divide hidden_dim.
    num_layers: transformer blocks (self-attention then MLP, pre-LN).
    horizon:    most frames per window; it gives horizon - 1 velocity tokens and learned positions.
    causal:     each token attends only to earlier steps (the official checkpoints' mask); False: all.
    dropout:    dropout probability on embeddings, attention weights and block outputs.
    """

    def __init__(
        self,
        format: MotionFormat,
        hidden_dim: Annotated[int, Bounds(low=1)] = 768,
        num_heads: Annotated[int, Bounds(low=1)] = 8,
        num_layers: Annotated[int, Bounds(low=1)] = 2,
        horizon: Annotated[int, HORIZON] = 16,
        causal: bool = True,
        dropout: Annotated[float, DROPOUT] = 0.1,
    ):
        """``horizon`` frames per window give ``horizon - 1`` velocity tokens."""
        super().__init__()
        views, tracks = track_layout(format, "AMPLIFY")
        self.out_dim, self.causal = hidden_dim, causal
        self.proj = nn.Linear(views * tracks * 2, hidden_dim)
        self.pos_emb = nn.Parameter(torch.empty(horizon - 1, hidden_dim))
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(EncoderBlock(hidden_dim, num_heads, dropout, causal) for _ in range(num_layers))
        self.norm = nn.LayerNorm(hidden_dim, bias=False)
        _init_transformer(self.pos_emb, self.blocks)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """(B, T, V, N, 2) points, T <= horizon -> (B, T - 1, hidden_dim); features ordered (view, track, coord)."""
        steps = velocities(points).flatten(2)
        if steps.shape[1] > self.pos_emb.shape[0]:
            raise ValueError(f"{points.shape[1]} frames exceed the encoder's horizon of {self.pos_emb.shape[0] + 1}")
        x = self.drop(self.proj(steps) + self.pos_emb[: steps.shape[1]])
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class AmplifyDecoder(Decoder):
    """AMPLIFY track decoder: per-frame queries attend to the codes; every track and view is classified.

    format:         the data set's MotionFormat, point tracks shaped (views, tracks, 2), with its image_size.
    dim:            width of the codes and of the queries; the framework passes the quantizer's output width.
    num_heads:      attention heads per layer; must divide dim.
    num_layers:     decoder blocks (self-attention, MLP, cross-attention to the codes, MLP).
    mlp_hidden_dim: hidden width of the per-track MLP on [step feature, track embedding, view embedding].
    grid:           [rows, cols] window of integer-pixel displacement classes per step; odd, centre = no motion.
    horizon:        most frames per window, as the encoder's: horizon - 1 learned queries, one per code.
    dropout:        dropout probability on the queries, attention weights and block outputs.
    """

    def __init__(
        self,
        format: MotionFormat,
        dim: Annotated[int, Bounds(low=1)] = 768,
        num_heads: Annotated[int, Bounds(low=1)] = 8,
        num_layers: Annotated[int, Bounds(low=1)] = 1,
        mlp_hidden_dim: Annotated[int, Bounds(low=1)] = 256,
        grid: Annotated[list[int], GRID] = [15, 15],
        horizon: Annotated[int, HORIZON] = 16,
        dropout: Annotated[float, DROPOUT] = 0.1,
    ):
        """Logits over a ``grid`` (rows, cols) window of integer-pixel displacements per track step."""
        super().__init__()
        views, tracks = track_layout(format, "AMPLIFY")
        self.grid = (int(grid[0]), int(grid[1]))
        self.image_size = format.image_size
        self.queries = nn.Parameter(torch.empty(horizon - 1, dim))
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(DecoderBlock(dim, num_heads, dropout) for _ in range(num_layers))
        self.norm = nn.LayerNorm(dim, bias=False)
        _init_transformer(self.queries, self.blocks)
        self.track_emb = nn.Parameter(torch.randn(tracks, dim))
        self.view_emb = nn.Parameter(torch.randn(views, dim))
        self.mlp_in = nn.Linear(3 * dim, mlp_hidden_dim)  # acts on [step feature, track emb, view emb]
        self.mlp_out = nn.Linear(mlp_hidden_dim, dim)
        self.head = nn.Linear(dim, self.grid[0] * self.grid[1])

    def forward(self, codes: torch.Tensor) -> dict[str, torch.Tensor]:
        """codes (B, T, dim) -> ``{"logits": (B, T, V, N, rows * cols)}``."""
        return {"logits": self.classify(self.attend(codes))}

    def to_features(self, outputs: dict[str, torch.Tensor], motion: torch.Tensor) -> torch.Tensor:
        """Decoded tracks (B, T, V, N, 2): the most likely displacements integrated from the
        input's first frame, as AMPLIFY decodes them."""
        if self.image_size is None:
            raise MotionhubError("decoding tracks needs the frame size, and the data's files differ in size")
        return decode_points(outputs["logits"], motion[:, :1], self.image_size, self.grid)

    def attend(self, codes: torch.Tensor) -> torch.Tensor:
        """Per-step features: the learned queries attend to the codes; (B, T, dim) -> (B, T, dim)."""
        batch, steps, _ = codes.shape
        if steps > self.queries.shape[0]:
            raise ValueError(f"{steps} codes exceed the decoder's {self.queries.shape[0]} queries (horizon - 1)")
        x = self.queries[:steps].unsqueeze(0)
        if self.training and self.drop.p > 0:
            x = x.expand(batch, -1, -1)  # each sample draws its own dropout masks
        # otherwise the queries are the same for every sample until the first cross-attention
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, codes)
        return self.norm(x.expand(batch, -1, -1))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Displacement logits of every track: (B, T, dim) -> (B, T, V, N, rows * cols).

        Equals head(x + mlp_out(relu(mlp_in([x, track_emb, view_emb])))) on the broadcast
        (B, T, V, N, 3 * dim) concatenation, which is never built.
        """
        dim = x.shape[-1]
        # a Linear on a concatenation is the sum of its column blocks applied to each part
        w_step, w_track, w_view = self.mlp_in.weight.split(dim, dim=1)
        per_step = F.linear(x, w_step)  # (B, T, M)
        per_view = F.linear(self.view_emb, w_view, self.mlp_in.bias)  # (V, M)
        per_track = F.linear(self.track_emb, w_track)  # (N, M)
        hidden = ((per_step[:, :, None] + per_view)[:, :, :, None] + per_track).relu_()  # (B, T, V, N, M)
        # mlp_out then head with only a residual add between: one (K, M) map on the grid,
        # while the residual x and both biases stay per step
        merged = self.head.weight @ self.mlp_out.weight
        per_step_logits = self.head(x) + self.head.weight @ self.mlp_out.bias  # (B, T, K)
        return (hidden @ merged.T).add_(per_step_logits[:, :, None, None])


def reference_key_map(encoder_layers: int = 2, decoder_layers: int = 1) -> dict[str, str]:
    """Official ``MotionTokenizer`` state-dict key -> key of a tokenizer with these ``encoder`` / ``decoder``."""
    keys = {
        "encoder.encoder_proj.weight": "encoder.proj.weight",
        "encoder.encoder_proj.bias": "encoder.proj.bias",
        "encoder.encoder.transformer.pos_emb.weight": "encoder.pos_emb",
        "encoder.encoder.transformer.ln_f.weight": "encoder.norm.weight",
        "decoder.decoder.transformer.pos_emb.weight": "decoder.queries",
        "decoder.decoder.transformer.ln_f.weight": "decoder.norm.weight",
        "decoder.track_pos_emb.weight": "decoder.track_emb",
        "decoder.view_emb.weight": "decoder.view_emb",
    }
    for ref, ours in (("decoder_mlp.0", "mlp_in"), ("decoder_mlp.2", "mlp_out"), ("decoder_proj", "head")):
        for kind in ("weight", "bias"):
            keys[f"decoder.{ref}.{kind}"] = f"decoder.{ours}.{kind}"
    encoder_parts = {
        "ln_1": "norm1", "attn.c_attn": "attn.qkv", "attn.c_proj": "attn.out",
        "ln_2": "norm2", "mlp.c_fc": "mlp.fc", "mlp.c_proj": "mlp.proj",
    }
    decoder_parts = {
        "ln_1": "norm1", "self_attn.c_attn": "self_attn.qkv", "self_attn.c_proj": "self_attn.out",
        "ln_2": "norm2", "mlp.c_fc": "mlp.fc", "mlp.c_proj": "mlp.proj",
        "ln_3": "norm3", "cross_attn.q_proj": "cross_attn.q", "cross_attn.kv_proj": "cross_attn.kv",
        "cross_attn.c_proj": "cross_attn.out", "ln_4": "norm4", "mlp_2.c_fc": "mlp2.fc", "mlp_2.c_proj": "mlp2.proj",
    }
    for side, layers, parts in (("encoder", encoder_layers, encoder_parts), ("decoder", decoder_layers, decoder_parts)):
        for i in range(layers):
            for ref, ours in parts.items():
                keys[f"{side}.{side}.transformer.h.{i}.{ref}.weight"] = f"{side}.blocks.{i}.{ours}.weight"
    return keys


def _fsq_prefix(quantizer: nn.Module | None) -> str | None:
    """Where a quantizer keeps FSQ's ``project_in`` / ``project_out`` (e.g. ``"fsq."``), None if it has none."""
    for name in (quantizer.state_dict() if quantizer is not None else {}):
        if name.endswith("project_in.weight"):
            return name[: -len("project_in.weight")]
    return None


def load_reference_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load an official AMPLIFY ``MotionTokenizer`` state dict (``checkpoint["model"]``) into ``model``.

    ``model`` has ``encoder`` (AmplifyEncoder) and ``decoder`` (AmplifyDecoder) attributes, e.g. a
    motionhub ``Tokenizer``; its ``quantizer``, when it wraps FSQ with projections, gets the
    ``quantize.*`` weights. Every checkpoint tensor must find a place and every encoder and decoder
    tensor must be set; the checkpoint's encoder attention masks must match ``encoder.causal``.
    Attention-mask buffers and the reference's unused sinusoidal table are not loaded.
    """
    keys = reference_key_map(len(model.encoder.blocks), len(model.decoder.blocks))
    fsq = _fsq_prefix(getattr(model, "quantizer", None))
    target, unknown = {}, []
    for key, value in state_dict.items():
        key = key.replace("_orig_mod.", "")  # torch.compile's wrapper prefix
        if key in keys:
            target[keys[key]] = value
        elif key.startswith("quantize.") and fsq is not None:
            target[f"quantizer.{fsq}{key.removeprefix('quantize.')}"] = value
        elif key.startswith("encoder.") and key.endswith(".attn_mask"):
            _check_mask(key, value, model.encoder.causal)
        elif not key.endswith((".attn_mask", "fixed_positional_emb.inv_freq")):
            unknown.append(key)
    if unknown:
        raise KeyError(f"checkpoint keys with no place in this model: {', '.join(sorted(unknown))}")
    required = {k for k in model.state_dict() if k.startswith(("encoder.", "decoder."))}
    missing = sorted(required - target.keys())
    if missing:
        raise KeyError(f"checkpoint lacks: {', '.join(missing)}")
    model.load_state_dict(target, strict=False)


def _check_mask(key: str, mask: torch.Tensor, causal: bool) -> None:
    """Refuse a checkpoint whose encoder attention pattern differs from ``causal``."""
    mask = mask.reshape(mask.shape[-2:]).bool()
    expected = torch.ones_like(mask)
    if causal:
        expected = expected.tril()
    if not torch.equal(mask, expected):
        kind = "causal" if causal else "full"
        raise ValueError(f"{key}: the checkpoint's encoder mask is not {kind} attention; set causal accordingly")
