"""Dilated residual Conv1d encoder and decoder, the backbone of the T2M-GPT and MotionMillion VQ-VAEs.

Layout (W = width, C = output_emb_width, D = feature_dim, all convolutions over time):

    encoder  (B, T, D) -> conv k3 D->W, relu
                       -> down_t x [conv k=2s s=s p=s//2, ResStack]
                       -> conv k3 W->C                                  -> (B, T / s**down_t, C)
    decoder  (B, T', C) -> conv k3 C->W, relu
                        -> down_t x [ResStack, nearest upsample x s, conv k3]
                        -> conv k3, relu, conv k3 W->D (linear output)  -> (B, T, *F)

A ``ResStack`` is ``depth`` pre-activation residual blocks with dilations
``dilation_growth ** i``, deepest first when ``reverse_dilation`` (9, 3, 1 by default).

A causal encoder (``causal=True``) moves every conv's padding to the left: output frame t then
depends on input frames <= t only (a strided conv: <= the last frame of its stride), so it can
encode a live stream chunk by chunk (``Conv1dEncoder.stream``). The decoder is never causal.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from motionhub.api import Bounds, Decoder, Encoder, MotionFormat, mirrored_settings

Activation = Literal["relu", "silu", "gelu"]
Norm = Literal["LN", "GN", "BN"]

_ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}
_GROUPS = 32


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, T) tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def make_norm(norm: Optional[Norm], channels: int) -> nn.Module:
    """The normalisation layer for (B, C, T) activations; identity when ``norm`` is None."""
    if norm is None:
        return nn.Identity()
    if norm == "LN":
        return ChannelLayerNorm(channels)
    if norm == "GN":
        return nn.GroupNorm(_GROUPS, channels, eps=1e-6)
    if norm == "BN":
        return nn.BatchNorm1d(channels, eps=1e-6)
    raise ValueError(f"unknown norm {norm!r}; choose one of 'LN', 'GN', 'BN' or None")


class CausalConv1d(nn.Conv1d):
    """A Conv1d padded on the left only, by the whole padding a same-length conv splits over both sides.

    (B, C_in, T) -> (B, C_out, T / stride). Built from a padded ``nn.Conv1d`` whose weights it shares
    (so the state dict keys and shapes are unchanged); ``left_pad`` = 2 * its padding.
    """

    def __init__(self, conv: nn.Conv1d):
        super().__init__(conv.in_channels, conv.out_channels, conv.kernel_size[0], stride=conv.stride[0],
                         padding=0, dilation=conv.dilation[0], groups=conv.groups, bias=conv.bias is not None)
        self.left_pad = 2 * conv.padding[0]
        self.weight, self.bias = conv.weight, conv.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.left_pad, 0)))


def make_causal(module: nn.Module) -> None:
    """Swap every ``nn.Conv1d`` inside ``module`` for a ``CausalConv1d`` with the same weights, in place."""
    for name, child in module.named_children():
        if type(child) is nn.Conv1d:
            setattr(module, name, CausalConv1d(child))
        else:
            make_causal(child)


class ResBlock(nn.Module):
    """Pre-activation residual block: x + conv1x1(act(norm(conv3_dilated(act(norm(x)))))). (B, W, T) -> (B, W, T)."""

    def __init__(self, channels: int, dilation: int, activation: Activation = "relu", norm: Optional[Norm] = None):
        super().__init__()
        self.norm1 = make_norm(norm, channels)
        self.conv1 = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.norm2 = make_norm(norm, channels)
        self.conv2 = nn.Conv1d(channels, channels, 1)
        self.act = _ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = self.conv2(self.act(self.norm2(h)))
        return x + h


class ResStack(nn.Sequential):
    """``depth`` residual blocks with dilations growth**i, deepest first when ``reverse``. (B, W, T) -> (B, W, T)."""

    def __init__(self, channels: int, depth: int, growth: int, reverse: bool,
                 activation: Activation, norm: Optional[Norm]):
        dilations = [growth**i for i in range(depth)]
        if reverse:
            dilations.reverse()
        super().__init__(*(ResBlock(channels, d, activation, norm) for d in dilations))


class DownBlock(nn.Module):
    """Strided conv (k = 2 * stride, padding = stride // 2) then a ResStack. (B, W, T) -> (B, W, T / stride)."""

    def __init__(self, width: int, stride: int, res: ResStack):
        super().__init__()
        self.conv = nn.Conv1d(width, width, 2 * stride, stride=stride, padding=stride // 2)
        self.res = res

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res(self.conv(x))


class UpBlock(nn.Module):
    """A ResStack, nearest up-sampling by ``stride`` and a k3 conv. (B, W, T) -> (B, W, T * stride)."""

    def __init__(self, width: int, stride: int, res: ResStack):
        super().__init__()
        self.res = res
        self.up = nn.Upsample(scale_factor=stride, mode="nearest")
        self.conv = nn.Conv1d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.up(self.res(x)))


def _check(width: int, depth: int, down_t: int, stride_t: int, dilation_growth: int, norm: Optional[Norm]) -> None:
    bounds = (("width", width, 1), ("depth", depth, 0), ("down_t", down_t, 0), ("dilation_growth", dilation_growth, 1))
    for name, value, low in bounds:
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    if stride_t < 2 or stride_t % 2:
        raise ValueError(f"stride_t must be an even number >= 2 (kernel 2*stride_t, padding stride_t//2 "
                         f"divides the length exactly only then), got {stride_t}")
    if norm == "GN" and width % _GROUPS:
        raise ValueError(f"norm 'GN' uses {_GROUPS} groups, so width must be a multiple of {_GROUPS}, got {width}")


def _expand(state_keys, prefixes: dict[str, str]) -> dict[str, str]:
    out = {}
    for key in state_keys:
        mine = max((p for p in prefixes if key.startswith(p)), key=len)
        out[key] = prefixes[mine] + key[len(mine):]
    return out


class Conv1dEncoder(Encoder):
    """Dilated residual Conv1d encoder (T2M-GPT / MotionMillion): (B, T, *F) -> (B, T / stride_t**down_t, C).

    format:           the data set's MotionFormat; frames are flattened to ``format.feature_dim`` channels.
    width:            channels of every hidden conv.
    depth:            residual blocks per down-sampling stage.
    down_t, stride_t: number of down-sampling stages and the stride of each (even).
    dilation_growth:  block i of a stage has dilation dilation_growth**i.
    output_emb_width: C, the latent width (``out_dim``).
    activation:       non-linearity inside the residual blocks. The stem uses ReLU, as in the references.
    norm:             None, "LN" (over channels), "GN" (32 groups) or "BN", inside the residual blocks.
    reverse_dilation: run the blocks of a stage deepest dilation first (9, 3, 1).
    causal:           pad every conv on the left only, so latent t sees frames up to the end of its
                      stride and none after (streaming, ``stream()``); GN, which pools over time, is refused.

    T must be a multiple of ``downsample``.
    """

    def __init__(
        self,
        format: MotionFormat,
        width: Annotated[int, Bounds(low=1)] = 512,
        depth: Annotated[int, Bounds(low=0)] = 3,
        down_t: Annotated[int, Bounds(low=0)] = 2,
        stride_t: Annotated[int, Bounds(low=2, hint="even strides only")] = 2,
        dilation_growth: Annotated[int, Bounds(low=1)] = 3,
        output_emb_width: Annotated[int, Bounds(low=1)] = 512,
        activation: Activation = "relu",
        norm: Optional[Norm] = None,
        reverse_dilation: bool = True,
        causal: bool = False,
    ):
        super().__init__()
        _check(width, depth, down_t, stride_t, dilation_growth, norm)
        if causal and norm == "GN":
            raise ValueError("norm 'GN' pools each group over all frames, so a causal encoder cannot use it; "
                             "use norm 'LN' or 'BN' (per frame at inference) or none")
        self.in_dim = format.feature_dim
        self.width, self.depth, self.down_t, self.stride_t = width, depth, down_t, stride_t
        self.dilation_growth, self.activation, self.norm = dilation_growth, activation, norm
        self.reverse_dilation = reverse_dilation
        self.out_dim = output_emb_width
        self.downsample = stride_t**down_t

        self.stem = nn.Conv1d(self.in_dim, width, 3, padding=1)
        self.down = nn.ModuleList(
            DownBlock(width, stride_t, ResStack(width, depth, dilation_growth, reverse_dilation, activation, norm))
            for _ in range(down_t)
        )
        self.proj_out = nn.Conv1d(width, output_emb_width, 3, padding=1)
        self.causal = causal
        if causal:
            make_causal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, *F) -> (B, T / downsample, out_dim)."""
        h = x.reshape(*x.shape[:2], -1)
        if h.shape[-1] != self.in_dim:
            raise ValueError(f"expected frames of {self.in_dim} features, got shape {tuple(x.shape[2:])}")
        h = F.relu(self.stem(h.transpose(1, 2)))
        for block in self.down:
            h = block(h)
        return self.proj_out(h).transpose(1, 2)

    @property
    def pads_exactly(self) -> bool:
        """Clips of different lengths batch exactly (``motionhub.model.padding``): every mixing over
        time is a Conv1d, except GN, which pools each group over all frames."""
        return self.norm != "GN"

    def stream(self):
        """A ``ConvEncoderStream``: this causal encoder fed chunk by chunk, each conv keeping its left context."""
        from .streaming import ConvEncoderStream

        return ConvEncoderStream(self)

    def reference_key_map(self, patcher: bool = False) -> dict[str, str]:
        """``{own state_dict key: reference key}``, reference keys relative to the reference encoder.

        Prefix it with ``vqvae.encoder.`` for T2M-GPT / MotionMillion checkpoints (plus ``module.``
        for MotionMillion's DDP saves). ``patcher``: the checkpoint was trained with MotionMillion's
        ``--use_patcher``, whose parameter-free wavelet patcher occupies ``model.0``.

        =====================  ==================================
        own prefix             reference prefix (o = patcher)
        =====================  ==================================
        stem                   model.{o}
        down.{i}.conv          model.{o+2+i}.0
        down.{i}.res.{j}       model.{o+2+i}.1.model.{j}
        proj_out               model.{o+2+down_t}
        =====================  ==================================
        """
        o = int(patcher)
        prefixes = {"stem.": f"model.{o}.", "proj_out.": f"model.{o + 2 + self.down_t}."}
        for i in range(self.down_t):
            prefixes[f"down.{i}.conv."] = f"model.{o + 2 + i}.0."
            for j in range(self.depth):
                prefixes[f"down.{i}.res.{j}."] = f"model.{o + 2 + i}.1.model.{j}."
        return _expand(self.state_dict(), prefixes)


class Conv1dDecoder(Decoder):
    """Dilated residual Conv1d decoder mirroring ``Conv1dEncoder``: (B, T', C) -> (B, T' * stride_t**down_t, *F).

    format:           the data set's MotionFormat; the output is reshaped to ``format.feature_shape``.
    dim:              C, the input (quantized latent) width; default ``encoder.out_dim``, else 512.
    encoder:          the built encoder; every hyper-parameter left as None is copied from it when it is a
                      ``Conv1dEncoder``, else takes the encoder defaults. (So ``norm=None`` with an LN
                      encoder gives an LN decoder.)
    width:            channels of every hidden conv; None: the encoder's, else 512.
    depth:            residual blocks per up-sampling stage; None: the encoder's, else 3.
    down_t, stride_t: number of up-sampling stages and the factor of each (even); None: the encoder's, else 2.
    dilation_growth:  block i of a stage has dilation dilation_growth**i; None: the encoder's, else 3.
    activation:       non-linearity inside the residual blocks; None: the encoder's, else relu.
    norm:             "LN", "GN" (32 groups) or "BN" in the residual blocks; None: the encoder's, else no norm.
    reverse_dilation: run the blocks of a stage deepest dilation first (9, 3, 1); None: the encoder's, else True.

    The stem and output stage use ReLU whatever ``activation``, as in the references.
    """

    def __init__(
        self,
        format: MotionFormat,
        dim: Annotated[Optional[int], Bounds(low=1)] = None,
        encoder: Optional[Encoder] = None,
        width: Annotated[Optional[int], Bounds(low=1)] = None,
        depth: Annotated[Optional[int], Bounds(low=0)] = None,
        down_t: Annotated[Optional[int], Bounds(low=0)] = None,
        stride_t: Annotated[Optional[int], Bounds(low=2, hint="even strides only")] = None,
        dilation_growth: Annotated[Optional[int], Bounds(low=1)] = None,
        activation: Optional[Activation] = None,
        norm: Optional[Norm] = None,
        reverse_dilation: Optional[bool] = None,
    ):
        super().__init__()
        dim = dim if dim is not None else getattr(encoder, "out_dim", 512)
        given = dict(width=width, depth=depth, down_t=down_t, stride_t=stride_t, dilation_growth=dilation_growth,
                     activation=activation, norm=norm, reverse_dilation=reverse_dilation)
        settings = mirrored_settings(encoder, Conv1dEncoder, given, {
            "width": 512, "depth": 3, "down_t": 2, "stride_t": 2, "dilation_growth": 3,
            "activation": "relu", "norm": None, "reverse_dilation": True})
        width, depth, down_t, stride_t = (settings[k] for k in ("width", "depth", "down_t", "stride_t"))
        dilation_growth, activation, norm = settings["dilation_growth"], settings["activation"], settings["norm"]
        reverse_dilation = settings["reverse_dilation"]
        _check(width, depth, down_t, stride_t, dilation_growth, norm)

        self.feature_shape = tuple(format.feature_shape)
        self.dim, self.width, self.depth, self.down_t, self.stride_t = dim, width, depth, down_t, stride_t
        self.dilation_growth, self.activation, self.norm = dilation_growth, activation, norm
        self.reverse_dilation = reverse_dilation
        self.upsample = stride_t**down_t

        self.stem = nn.Conv1d(dim, width, 3, padding=1)
        self.up = nn.ModuleList(
            UpBlock(width, stride_t, ResStack(width, depth, dilation_growth, reverse_dilation, activation, norm))
            for _ in range(down_t)
        )
        self.post_conv = nn.Conv1d(width, width, 3, padding=1)
        self.proj_out = nn.Conv1d(width, format.feature_dim, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, T', dim) -> (B, T' * upsample, *feature_shape)."""
        h = F.relu(self.stem(z.transpose(1, 2)))
        for block in self.up:
            h = block(h)
        h = self.proj_out(F.relu(self.post_conv(h)))
        return h.transpose(1, 2).reshape(h.shape[0], h.shape[2], *self.feature_shape)

    def reference_key_map(self) -> dict[str, str]:
        """``{own state_dict key: reference key}``, reference keys relative to the reference decoder.

        Prefix it with ``vqvae.decoder.``. MotionMillion's un-patcher sits after the last conv and
        holds only wavelet buffers, so it shifts nothing and has no counterpart here.

        =====================  ==================================
        own prefix             reference prefix
        =====================  ==================================
        stem                   model.0
        up.{i}.res.{j}         model.{2+i}.0.model.{j}
        up.{i}.conv            model.{2+i}.2
        post_conv              model.{2+down_t}
        proj_out               model.{4+down_t}
        =====================  ==================================
        """
        prefixes = {"stem.": "model.0.", "post_conv.": f"model.{2 + self.down_t}.",
                    "proj_out.": f"model.{4 + self.down_t}."}
        for i in range(self.down_t):
            prefixes[f"up.{i}.conv."] = f"model.{2 + i}.2."
            for j in range(self.depth):
                prefixes[f"up.{i}.res.{j}."] = f"model.{2 + i}.0.model.{j}."
        return _expand(self.state_dict(), prefixes)
