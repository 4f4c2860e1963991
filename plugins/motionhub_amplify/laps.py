"""LAPS's re-implementation of the AMPLIFY motion tokenizer: its encoder and decoder.

The encoder makes one token per (step, view, point) velocity, runs a causal post-LN
transformer over all of them and projects the sequence axis down to ``codes`` tokens; the
decoder lets learned point queries cross-attend to the quantized codes and classifies each
point's displacement on a W x W grid. Same parameters and the same numbers as the reference
(torch's ``nn.TransformerEncoderLayer`` / ``nn.TransformerDecoderLayer``, post-LN, GELU),
computed without its (S, S) float mask: causal attention goes through
``F.scaled_dot_product_attention(is_causal=True)``, and attention dropout on the CPU a block
of query rows at a time (``attend``), where torch's own kernel would hold every (S, S)
score, weight and dropout mask of a 6000-token window for the backward pass.

``LapsEncoder.laps_key_map`` / ``LapsDecoder.laps_key_map`` name the reference's state-dict
key of every tensor (``motionhub import laps`` reads them).

What the reference's architecture does, kept for fidelity and worth knowing when reading its
results: the causal mask does not make the tokenizer causal, since the sequence projection
gives every code a weighted sum of all tokens, the last of which has seen the whole window;
within a step the mask's order over points is arbitrary; the decoder's memory has no positions,
so it sees the codes as an unordered set; and with ``queries: points`` every step of a window
gets the same logits, so at best the decoder learns each point's label marginal over the
window (``queries: steps_points`` lifts that).
"""

from __future__ import annotations

import copy
import math
from typing import Annotated, Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from motionhub.api import Bounds, Decoder, Encoder, MotionFormat, MotionhubError, mirrored_settings

from .tracks import decode_points, radius_velocities, track_layout

Queries = Literal["points", "steps_points"]
HORIZON = Bounds(low=2, hint="frames per window; horizon - 1 velocity steps")
GRID = Bounds(low=1, length=2, hint="[rows, cols] of displacement classes")
DROPOUT = Bounds(low=0, high=1, high_open=True)

# Scores held at once by the blocked CPU attention: 2^23 floats (32 MiB) per block of query rows.
BLOCK_SCORES = 1 << 23


# ---------------------------------------------------------------------------- attention


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout: float = 0.0,
           causal: bool = False) -> torch.Tensor:
    """softmax(q k^T / sqrt(E)) v with ``dropout`` on the attention weights: (B, H, L, E),
    (B, H, S, E) x 2 -> (B, H, L, E). When ``causal``, query i sees keys j <= i (L = S).

    torch's CPU kernels apply attention dropout only in their reference ("math") path, which
    materialises the (B, H, L, S) scores several times over and keeps them for the backward
    pass; on the CPU dropout therefore runs in ``_BlockedAttention``. Everything else (no
    dropout, or a GPU) is ``F.scaled_dot_product_attention``, whose fused kernels skip the
    masked half of causal attention.
    """
    if dropout > 0 and q.device.type == "cpu":
        return _BlockedAttention.apply(q, k, v, float(dropout), bool(causal))
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=causal)


def _row_blocks(q: torch.Tensor, keys: int, causal: bool):
    """(start, end, visible keys) of each block of query rows, about ``BLOCK_SCORES`` scores each."""
    batch, heads, length, _ = q.shape
    rows = max(16, BLOCK_SCORES // max(1, batch * heads * keys))
    for start in range(0, length, rows):
        end = min(start + rows, length)
        yield start, end, min(end, keys) if causal else keys


def _statistics_type(q: torch.Tensor) -> torch.dtype:
    """Softmax statistics and gradient sums: float32, or float64 for float64 inputs."""
    return torch.promote_types(q.dtype, torch.float32)


def _block_scores(q: torch.Tensor, k: torch.Tensor, start: int, causal: bool) -> torch.Tensor:
    """(B, H, rows, keys) scaled scores of the query rows ``q`` (starting at row ``start``), in
    ``_statistics_type``; under ``causal`` the keys after each row are -inf."""
    scores = torch.matmul(q, k.transpose(-1, -2)).to(_statistics_type(q)).mul_(q.shape[-1] ** -0.5)
    if causal:  # only the block's last rows x rows square holds keys after a row
        square = scores[..., start:]
        square.masked_fill_(torch.ones(square.shape[-2:], dtype=torch.bool, device=q.device).triu_(1), -math.inf)
    return scores


class _BlockedAttention(torch.autograd.Function):
    """``attend`` with dropout, a block of query rows at a time.

    The backward pass keeps q, k, v, the output, each row's log-sum-exp and the dropout masks
    (one byte per visible weight, a quarter of the float32 weights), and recomputes each
    block's weights from them. Drawing the masks again from a stored seed would save that
    memory, but torch's CPU generator is slow: a second draw adds about a sixth to the time.
    Causal blocks stop at their last row's key, skipping the masked half. Softmax statistics
    and gradient sums are at least float32 whatever the input type.
    """

    @staticmethod
    def forward(ctx, q, k, v, p: float, causal: bool):
        out = torch.empty_like(q)
        keeps = []
        logsumexp = q.new_empty(q.shape[:-1], dtype=_statistics_type(q))
        for start, end, keys in _row_blocks(q, k.shape[-2], causal):
            weights = _block_scores(q[..., start:end, :], k[..., :keys, :], start, causal)
            peak = weights.amax(-1, keepdim=True)
            total = weights.sub_(peak).exp_().sum(-1, keepdim=True)
            logsumexp[..., start:end] = (peak + total.log()).squeeze(-1)
            weights.div_(total)
            if p > 0:
                keeps.append(torch.rand(weights.shape, device=q.device) >= p)  # kept with probability 1 - p
                weights.mul_(keeps[-1]).div_(1 - p)
            out[..., start:end, :] = torch.matmul(weights.to(v.dtype), v[..., :keys, :])
        ctx.save_for_backward(q, k, v, out, logsumexp, *keeps)
        ctx.p, ctx.causal = p, causal
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, out, logsumexp, *keeps = ctx.saved_tensors
        p, causal = ctx.p, ctx.causal
        grad = grad.contiguous()
        # rowsum(dO * O) = rowsum(P * dP): the softmax backward without keeping P
        acc = _statistics_type(q)
        delta = (grad.to(acc) * out.to(acc)).sum(-1, keepdim=True)
        dq = torch.empty_like(q, dtype=acc)
        dk = torch.zeros_like(k, dtype=acc)
        dv = torch.zeros_like(v, dtype=acc)
        scale = q.shape[-1] ** -0.5
        for block, (start, end, keys) in enumerate(_row_blocks(q, k.shape[-2], causal)):
            weights = _block_scores(q[..., start:end, :], k[..., :keys, :], start, causal)
            weights.sub_(logsumexp[..., start:end, None]).exp_()  # the softmax, before dropout
            rows_grad = grad[..., start:end, :]
            d_weights = torch.matmul(rows_grad, v[..., :keys, :].transpose(-1, -2)).to(acc)
            if p > 0:
                keep = keeps[block]
                dropped = weights * keep / (1 - p)
                d_weights.mul_(keep).div_(1 - p)
            else:
                dropped = weights
            dv[..., :keys, :] += torch.matmul(dropped.transpose(-1, -2).to(grad.dtype), rows_grad).to(acc)
            del dropped
            d_scores = d_weights.sub_(delta[..., start:end, :]).mul_(weights).mul_(scale).to(q.dtype)
            dq[..., start:end, :] = torch.matmul(d_scores, k[..., :keys, :]).to(acc)
            dk[..., :keys, :] += torch.matmul(d_scores.transpose(-1, -2), q[..., start:end, :]).to(acc)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None, None


class Attention(nn.Module):
    """Multi-head attention laid out and initialised as torch's ``nn.MultiheadAttention``: one
    fused q/k/v projection with bias (Xavier-uniform, zero bias), an output projection with
    (zero) bias, dropout on the attention weights."""

    def __init__(self, dim: int, heads: int, dropout: float, causal: bool = False):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden_dim {dim} is not divisible by num_heads {heads}")
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.qkv.weight)
        nn.init.zeros_(self.qkv.bias)
        nn.init.zeros_(self.out.bias)
        self.heads, self.dropout, self.causal = heads, dropout, causal

    def forward(self, x: torch.Tensor, context: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B or 1, L, C), context (B, S, C) or None for self-attention -> (B, L, C)."""
        dim = x.shape[-1]
        if context is None:
            q, k, v = self.qkv(x).chunk(3, dim=-1)
        else:
            q = F.linear(x, self.qkv.weight[:dim], self.qkv.bias[:dim]).expand(context.shape[0], -1, -1)
            k, v = F.linear(context, self.qkv.weight[dim:], self.qkv.bias[dim:]).chunk(2, dim=-1)
        heads = [t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v)]
        y = attend(*heads, dropout=self.dropout if self.training else 0.0, causal=self.causal)
        return self.out(y.transpose(1, 2).flatten(2))


class PostNormLayer(nn.Module):
    """A post-LN transformer layer as torch's ``nn.TransformerEncoderLayer`` (``cross=False``) or
    ``nn.TransformerDecoderLayer`` (``cross=True``) with ``activation="gelu"``,
    ``dim_feedforward=4 * dim``, ``norm_first=False`` computes it:

        x = norm1(x + drop(self_attn(x)))
        x = norm2(x + drop(cross_attn(x, memory)))         (cross only)
        x = norm_ff(x + drop(ff_out(drop(gelu(ff_in(x))))))

    ``norm_ff`` is torch's ``norm2`` in an encoder layer and ``norm3`` in a decoder layer.
    """

    def __init__(self, dim: int, heads: int, dropout: float, causal: bool = False, cross: bool = False):
        super().__init__()
        self.self_attn = Attention(dim, heads, dropout, causal)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn = Attention(dim, heads, dropout) if cross else None
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim) if cross else None
        self.ff_in = nn.Linear(dim, 4 * dim)
        self.ff_out = nn.Linear(4 * dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, memory: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B or 1, L, C), memory (B, S, C) for a cross layer -> (B or 1 without memory, L, C)."""
        x = self.norm1(x + self.drop(self.self_attn(x)))
        if self.cross_attn is not None:
            x = self.norm2(x + self.drop(self.cross_attn(x, memory)))
        norm_ff = self.norm3 if self.cross_attn is not None else self.norm2
        return norm_ff(x + self.drop(self.ff_out(self.drop(F.gelu(self.ff_in(x))))))


def _stack(layer: PostNormLayer, count: int) -> nn.ModuleList:
    """``count`` copies of ``layer``: like torch's ``nn.TransformerEncoder`` / ``Decoder``, whose
    layers (and so the reference's) all start from the same initial weights."""
    return nn.ModuleList(copy.deepcopy(layer) for _ in range(count))


# torch's layer attribute names, for the reference's checkpoint keys
_TORCH_NAMES = {
    "self_attn.qkv.weight": "self_attn.in_proj_weight", "self_attn.qkv.bias": "self_attn.in_proj_bias",
    "self_attn.out.weight": "self_attn.out_proj.weight", "self_attn.out.bias": "self_attn.out_proj.bias",
    "cross_attn.qkv.weight": "multihead_attn.in_proj_weight", "cross_attn.qkv.bias": "multihead_attn.in_proj_bias",
    "cross_attn.out.weight": "multihead_attn.out_proj.weight", "cross_attn.out.bias": "multihead_attn.out_proj.bias",
    "ff_in.weight": "linear1.weight", "ff_in.bias": "linear1.bias",
    "ff_out.weight": "linear2.weight", "ff_out.bias": "linear2.bias",
}


def _layer_keys(layers: nn.ModuleList, ours: str, theirs: str) -> dict[str, str]:
    """``{ours.i.name: theirs.i.torch name}`` for every tensor of ``layers``."""
    keys = {}
    for i, layer in enumerate(layers):
        for name in layer.state_dict():
            keys[f"{ours}.{i}.{name}"] = f"{theirs}.{i}.{_TORCH_NAMES.get(name, name)}"
    return keys


# ---------------------------------------------------------------------------- encoder and decoder


class LapsEncoder(Encoder):
    """LAPS track encoder: one causal post-LN token per point and step, projected along the sequence to the codes.

    format:     the data set's MotionFormat, point tracks shaped (views, tracks, 2).
    hidden_dim: token width C, the latent width (``out_dim``) the quantizer receives.
    num_heads:  attention heads per layer; must divide hidden_dim.
    num_layers: post-LN transformer layers (torch's TransformerEncoderLayer, GELU, 4 x feed-forward).
    dropout:    dropout probability on attention weights, feed-forward and residual branches.
    codes:      tokens per window (1 to horizon) the sequence projection makes.
    horizon:    frames of every window (>= 2), exactly; gives horizon - 1 velocity steps per point.
    radius:     pixels per unit of velocity (> 0) before clamping to [-1, 1]; 7 = (15 - 1) / 2 for a 15 x 15 grid.
    causal:     token s attends only to tokens s' <= s, ordered (step, view, point), as the reference.
    image_size: [height, width] in pixels the tracks are normalised to; None: the data format's own.
    """

    def __init__(
        self,
        format: MotionFormat,
        hidden_dim: Annotated[int, Bounds(low=1)] = 768,
        num_heads: Annotated[int, Bounds(low=1)] = 8,
        num_layers: Annotated[int, Bounds(low=0)] = 2,
        dropout: Annotated[float, DROPOUT] = 0.1,
        codes: Annotated[int, Bounds(low=1, hint="at most horizon")] = 16,
        horizon: Annotated[int, HORIZON] = 16,
        radius: Annotated[float, Bounds(low=0, low_open=True, hint="pixels per unit of velocity")] = 7.0,
        causal: bool = True,
        image_size: Annotated[Optional[list[int]], Bounds(low=1, length=2, hint="[height, width] in pixels")] = None,
    ):
        """Windows of exactly ``horizon`` frames -> ``codes`` tokens of width ``hidden_dim``.

        Velocities are clamp(pixels per step / ``radius``, -1, 1) in (x, y), pixels counted in
        ``image_size`` [height, width] (default: the data format's). ``causal``: token s sees
        tokens s' <= s, s = (step * views + view) * tracks + point. Every code depends on the
        whole window; ``downsample`` (the frames the framework counts per code) is
        horizon / codes where that is whole, else 1 (as for AMPLIFY's 15 codes of 16 frames).
        """
        super().__init__()
        views, tracks = track_layout(format, "the LAPS tokenizer")
        size = image_size if image_size is not None else format.image_size
        if size is None:
            raise ValueError("the LAPS encoder measures velocities in pixels, and the data's files differ in frame "
                             "size; set the encoder's image_size: [height, width]")
        if horizon < 2 or not 1 <= codes <= horizon:
            raise ValueError(f"codes must be 1 to horizon ({horizon}) and horizon at least 2; got codes {codes}")
        if radius <= 0:
            raise ValueError(f"radius must be positive (pixels per unit of velocity); got {radius}")
        self.image_size = (int(size[0]), int(size[1]))
        self.out_dim, self.hidden_dim, self.num_heads, self.num_layers = hidden_dim, hidden_dim, num_heads, num_layers
        self.dropout, self.codes, self.horizon, self.radius, self.causal = dropout, codes, horizon, radius, causal
        self.downsample = horizon // codes if horizon % codes == 0 else 1
        tokens = (horizon - 1) * views * tracks
        self.embed = nn.Linear(2, hidden_dim)
        self.positions = nn.Parameter(torch.randn(1, tokens, hidden_dim))
        self.layers = _stack(PostNormLayer(hidden_dim, num_heads, dropout, causal), num_layers)
        self.to_codes = nn.Linear(tokens, codes)  # acts on the sequence axis

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """(B, horizon, V, N, 2) points -> (B, codes, hidden_dim)."""
        return self.project(self.tokens(points))

    def tokens(self, points: torch.Tensor) -> torch.Tensor:
        """The transformer's output per token: (B, horizon, V, N, 2) -> (B, S, hidden_dim),
        S = (horizon - 1) V N, token (step * V + view) * N + point."""
        if points.shape[1] != self.horizon:
            raise MotionhubError(f"the LAPS encoder reads windows of exactly {self.horizon} frames (its horizon) and "
                                 f"got {points.shape[1]}; set data.window: {self.horizon} (or the encoder's horizon "
                                 f"to {points.shape[1]})")
        steps = radius_velocities(points, self.image_size, self.radius).flatten(1, 3)  # (B, S, 2) (x, y)
        if steps.shape[1] != self.positions.shape[1]:
            raise MotionhubError(f"the LAPS encoder was built for {self.positions.shape[1]} tokens per window and got "
                                 f"{points.shape[2]} views x {points.shape[3]} tracks x {points.shape[1] - 1} steps")
        x = self.embed(steps) + self.positions
        for layer in self.layers:
            x = layer(x)
        return x

    def project(self, tokens: torch.Tensor) -> torch.Tensor:
        """The sequence projection: code j = sum_s A[j, s] tokens[:, s] + b[j]; (B, S, C) -> (B, codes, C)."""
        return torch.matmul(self.to_codes.weight, tokens) + self.to_codes.bias[:, None]

    def laps_key_map(self) -> dict[str, str]:
        """``{own state_dict key: key in the reference's MotionTokenizer state dict}``."""
        return {
            "embed.weight": "input_projection.weight", "embed.bias": "input_projection.bias",
            "positions": "pos_embed",
            "to_codes.weight": "encoder_output_projection.weight", "to_codes.bias": "encoder_output_projection.bias",
            **_layer_keys(self.layers, "layers", "encoder.transformer_encoder.layers"),
        }


class LapsDecoder(Decoder):
    """LAPS track decoder: point queries cross-attend to the codes; a displacement class per point and step.

    format:     the data set's MotionFormat, point tracks shaped (views, tracks, 2).
    dim:        width of the codes and of the queries; the framework passes the quantizer's output width.
    encoder:    the built encoder, passed by the framework; a LAPS encoder's settings fill those left None.
    num_heads:  attention heads per layer (must divide dim); None: the LAPS encoder's, else 8.
    num_layers: post-LN decoder layers (self-attention, cross-attention, MLP); None: the encoder's, else 2.
    dropout:    dropout probability in the layers; None: the LAPS encoder's, else 0.1.
    horizon:    frames per window, logits for horizon - 1 steps; None: the LAPS encoder's, else 16.
    grid:       [rows, cols] window of integer-pixel displacement classes per step; odd, centre = no motion.
    queries:    points (the reference: one query per point, the same logits every step) or steps_points.
    """

    def __init__(
        self,
        format: MotionFormat,
        dim: Annotated[int, Bounds(low=1)] = 768,
        encoder: Optional[Encoder] = None,
        num_heads: Annotated[Optional[int], Bounds(low=1)] = None,
        num_layers: Annotated[Optional[int], Bounds(low=0)] = None,
        dropout: Annotated[Optional[float], DROPOUT] = None,
        horizon: Annotated[Optional[int], HORIZON] = None,
        grid: Annotated[list[int], GRID] = [15, 15],
        queries: Queries = "points",
    ):
        """Logits over a ``grid`` (rows, cols) window of integer-pixel displacements per track step.

        ``num_heads`` / ``num_layers`` / ``dropout`` / ``horizon``: default to a LAPS encoder's own
        (else 8 / 2 / 0.1 / 16). ``queries``:

        * ``points`` (the reference): one query per (view, point); its logits are repeated
          over the horizon - 1 steps, so every step gets the same prediction.
        * ``steps_points``: one query per (step, view, point), the point's query plus a
          learned step embedding (initialised N(0, 1), as the point queries), so each step
          gets its own prediction. The (horizon - 1) V N queries self-attend densely in every
          layer: for the reference's 15 x 400 that is 6000 tokens, about the cost of an
          encoder layer, against 400 for ``points``.
        """
        super().__init__()
        views, tracks = track_layout(format, "the LAPS tokenizer")
        settings = mirrored_settings(encoder, LapsEncoder, dict(
            num_heads=num_heads, num_layers=num_layers, dropout=dropout, horizon=horizon),
            {"num_heads": 8, "num_layers": 2, "dropout": 0.1, "horizon": 16})
        if queries not in ("points", "steps_points"):
            raise ValueError(f"queries must be 'points' or 'steps_points'; got {queries!r}")
        self.views, self.tracks, self.steps = views, tracks, settings["horizon"] - 1
        self.grid, self.queries_kind = (int(grid[0]), int(grid[1])), queries
        self.image_size = format.image_size or getattr(encoder, "image_size", None)
        self.queries = nn.Parameter(torch.randn(1, views * tracks, dim))
        self.step_emb = nn.Parameter(torch.randn(self.steps, dim)) if queries == "steps_points" else None
        layer = PostNormLayer(dim, settings["num_heads"], settings["dropout"], cross=True)
        self.layers = _stack(layer, settings["num_layers"])
        self.head = nn.Linear(dim, self.grid[0] * self.grid[1])

    def forward(self, codes: torch.Tensor) -> dict[str, torch.Tensor]:
        """codes (B, d, dim) -> ``{"logits": (B, horizon - 1, V, N, rows * cols)}``."""
        batch = codes.shape[0]
        x = self.queries
        if self.step_emb is not None:  # (1, steps * V * N, dim), step-major
            x = (self.step_emb[:, None] + x).flatten(0, 1)[None]
        if self.training and self.layers and self.layers[0].drop.p > 0:
            x = x.expand(batch, -1, -1)  # each sample draws its own dropout masks
        # otherwise the queries are the same for every sample until the first cross-attention
        for layer in self.layers:
            x = layer(x, codes)
        logits = self.head(x.expand(batch, -1, -1))
        if self.step_emb is not None:
            return {"logits": logits.view(batch, self.steps, self.views, self.tracks, -1)}
        per_point = logits.view(batch, 1, self.views, self.tracks, -1)
        return {"logits": per_point.expand(-1, self.steps, -1, -1, -1)}  # a view, as the reference's

    def to_features(self, outputs: dict[str, torch.Tensor], motion: torch.Tensor) -> torch.Tensor:
        """Decoded tracks (B, T, V, N, 2): the most likely displacements integrated from the
        input's first frame."""
        if self.image_size is None:
            raise MotionhubError("decoding tracks needs the frame size, and the data's files differ in size")
        return decode_points(outputs["logits"], motion[:, :1], self.image_size, self.grid)

    def laps_key_map(self) -> dict[str, str]:
        """``{own state_dict key: key in the reference's MotionTokenizer state dict}``; the step
        embedding of ``queries: steps_points`` has none."""
        return {
            "queries": "decoder_queries",
            "head.weight": "output_projection.weight", "head.bias": "output_projection.bias",
            **_layer_keys(self.layers, "layers", "decoder.transformer_decoder.layers"),
        }
