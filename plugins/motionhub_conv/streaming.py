"""A causal ``Conv1dEncoder`` fed chunk by chunk: every conv keeps the input frames its next outputs need.

Offline, a ``CausalConv1d`` sees ``left_pad`` zero frames and then the whole clip. Streaming, each
conv holds a ``ConvCache``: the frames it was given that a later output still reads (at most
``dilation * (kernel - 1) + stride`` of them, starting as ``left_pad`` zeros) plus the new ones. It
emits every output whose receptive field is complete and drops the frames no later output reads,
so a clip fed in chunks of any size yields the same outputs as the clip at once. The element-wise
layers (activations, per-frame norms, the residual sums) need no state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from motionhub.api import MotionhubError

from .conv1d import CausalConv1d, Conv1dEncoder, ResBlock


class ConvCache:
    """One causal conv run on a stream: ``push((B, C_in, n)) -> (B, C_out, m)``, the outputs now complete.

    A stride-1 conv returns one output per input frame; a strided one returns one per ``stride``
    frames received, as they complete. ``frames`` holds the (B, C_in, <= span + stride - 1) frames kept.
    The conv's weights are read at each push, so the cache follows the conv's device and dtype.
    """

    def __init__(self, conv: CausalConv1d):
        if conv.groups != 1:
            raise ValueError("a streamed conv must have groups=1")
        self.conv = conv
        self.span = conv.dilation[0] * (conv.kernel_size[0] - 1) + 1  # input frames one output reads
        self.stride = conv.stride[0]
        self.frames: torch.Tensor | None = None  # allocated on the first push (batch size, dtype, device)

    def push(self, x: torch.Tensor) -> torch.Tensor:
        if self.frames is None:
            self.frames = x.new_zeros(x.shape[0], x.shape[1], self.conv.left_pad)
        frames = torch.cat([self.frames, x], dim=2)
        ready = (frames.shape[2] - self.span) // self.stride + 1 if frames.shape[2] >= self.span else 0
        self.frames = frames[:, :, ready * self.stride:]
        if not ready:
            return x.new_empty(x.shape[0], self.conv.out_channels, 0)
        # one matrix product over each output's taps: for inputs this small torch would pick its direct
        # (non-oneDNN) convolution, many times slower
        taps = frames.unfold(2, self.span, self.stride)[:, :, :ready, ::self.conv.dilation[0]]  # (B, C_in, m, k)
        weight = self.conv.weight.reshape(self.conv.out_channels, -1)  # (C_out, C_in * k), taps in (c, k) order
        y = taps.transpose(1, 2).reshape(x.shape[0], ready, -1) @ weight.T  # (B, m, C_out)
        if self.conv.bias is not None:
            y = y + self.conv.bias
        return y.transpose(1, 2)


class ResBlockStream:
    """A ``ResBlock`` on a stream: (B, W, n) -> (B, W, n); its dilated conv keeps its left context."""

    def __init__(self, block: ResBlock):
        self.block, self.conv1, self.conv2 = block, ConvCache(block.conv1), ConvCache(block.conv2)

    def push(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        h = self.conv1.push(b.act(b.norm1(x)))
        return x + self.conv2.push(b.act(b.norm2(h)))


class ConvEncoderStream:
    """A causal ``Conv1dEncoder`` on a stream of normalised frames.

    ``push(x: (B, n, D))`` -> (B, m, out_dim): the latents of the tokens these frames complete
    (token t completes with frame (t + 1) * downsample - 1). Concatenating every push's output
    gives ``encoder(whole stream)`` for any chunking. Start a new stream with a new object.
    """

    def __init__(self, encoder: Conv1dEncoder):
        if not encoder.causal:
            raise MotionhubError("this conv1d encoder is not causal: each latent reads frames after its own, so "
                                 "it cannot be streamed; train it with encoder.causal: true")
        if encoder.training:
            raise MotionhubError("stream an encoder in eval mode (its norms then act per frame): call .eval()")
        self.encoder = encoder
        self.stem = ConvCache(encoder.stem)
        self.down = [(ConvCache(block.conv), [ResBlockStream(res) for res in block.res]) for block in encoder.down]
        self.proj_out = ConvCache(encoder.proj_out)

    def push(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.stem.push(x.transpose(1, 2)))
        for conv, blocks in self.down:
            h = conv.push(h)
            if not h.shape[2]:  # nothing new below a stride: the later layers' state is unchanged
                return h.new_empty(h.shape[0], 0, self.encoder.out_dim)
            for block in blocks:
                h = block.push(h)
        return self.proj_out.push(h).transpose(1, 2)
