"""A causal ``TransformerEncoder`` fed chunk by chunk, with a key / value cache per block.

A token is a patch of ``downsample`` frames: frames wait until their patch is whole. Each new
token is embedded at its absolute position, and every block attends from the new tokens to the
keys and values it cached for all earlier tokens plus the new ones (token t sees tokens <= t, as
the causal mask does offline). So the latents equal the offline ones for any chunking, while each
token is computed once. The cache grows with the stream, up to the ``max_len`` frames the
positions cover; past that the stream must be reset, as the offline encoder refuses a longer clip.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from motionhub.api import MotionhubError

from .model import Block, TransformerEncoder


class KVCache:
    """One block's keys and values so far: (B, heads, N, W / heads) each."""

    def __init__(self):
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None

    def extend(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.keys = k if self.keys is None else torch.cat([self.keys, k], dim=2)
        self.values = v if self.values is None else torch.cat([self.values, v], dim=2)
        return self.keys, self.values


def _block_step(block: Block, x: torch.Tensor, cache: KVCache, mask: torch.Tensor) -> torch.Tensor:
    """``block`` on the new tokens x (B, m, W), attending to the cached tokens too; ``mask`` (m, N) is True where allowed."""
    attn = block.attn
    q, k, v = (t.unflatten(-1, (attn.heads, -1)).transpose(1, 2) for t in attn.qkv(block.norm1(x)).chunk(3, dim=-1))
    keys, values = cache.extend(k, v)
    y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
    x = x + attn.out(y.transpose(1, 2).flatten(2))
    return x + block.mlp(block.norm2(x))


class TransformerEncoderStream:
    """A causal ``TransformerEncoder`` on a stream of normalised frames.

    ``push(x: (B, n, D))`` -> (B, m, out_dim): the latents of the tokens these frames complete.
    Concatenating every push's output gives ``encoder(whole stream)`` for any chunking, up to
    ``max_len`` frames. Start a new stream with a new object.
    """

    def __init__(self, encoder: TransformerEncoder):
        if not encoder.causal:
            raise MotionhubError("this transformer encoder is not causal: each token attends to later tokens, so it "
                                 "cannot be streamed; train it with encoder.causal: true")
        if encoder.training:
            raise MotionhubError("stream an encoder in eval mode (dropout off): call .eval()")
        self.encoder = encoder
        self.pending: torch.Tensor | None = None  # (B, < downsample, D) frames of an unfinished patch
        self.tokens = 0
        self.caches = [KVCache() for _ in encoder.backbone.blocks]

    @property
    def max_frames(self) -> int:
        """The most frames one stream may hold: the positions cover ``max_len`` frames."""
        return self.encoder.backbone.positions.max_tokens * self.encoder.downsample

    def push(self, x: torch.Tensor) -> torch.Tensor:
        enc, s = self.encoder, self.encoder.downsample
        frames = x if self.pending is None else torch.cat([self.pending, x], dim=1)
        m = frames.shape[1] // s
        self.pending = frames[:, m * s:]
        if not m:
            return x.new_empty(x.shape[0], 0, enc.out_dim)
        if self.tokens + m > enc.backbone.positions.max_tokens:
            raise MotionhubError(f"the stream has reached {(self.tokens + m) * s} frames, more than the "
                                 f"{self.max_frames} (encoder.max_len) this encoder's positions cover; reset the "
                                 f"stream, or train with a larger encoder.max_len")
        h = enc.proj_in(frames[:, :m * s].reshape(x.shape[0], m, s * x.shape[2]))
        h = h + enc.backbone.positions.table[self.tokens:self.tokens + m].to(h.dtype)
        # new token i (position tokens + i) sees every position <= tokens + i
        mask = torch.ones(m, self.tokens + m, dtype=torch.bool, device=h.device).tril(self.tokens)
        for block, cache in zip(enc.backbone.blocks, self.caches):
            h = _block_step(block, h, cache, mask)
        self.tokens += m
        return enc.proj_out(enc.backbone.norm(h))
