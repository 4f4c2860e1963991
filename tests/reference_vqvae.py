"""The Conv1d VQ-VAE of T2M-GPT, MoMask and MotionGPT, written out from its published layer lists, for
the importer tests: state-dict names and shapes, seeded weights, and the forward pass at inference.

Nothing here uses motionhub's modules or key maps, so an importer that misplaces a tensor cannot
agree with it. Layout (stride 2, W width, C latent width, D features):

    encoder.model: 0 conv k3 D->W, 1 relu, 2..1+down_t [0 conv k4 s2 p1, 1 Resnet1D], 2+down_t conv k3 W->C
    decoder.model: 0 conv k3 C->W, 1 relu, 2..1+down_t [0 Resnet1D, 1 upsample x2, 2 conv k3],
                   2+down_t conv k3, 3+down_t relu, 4+down_t conv k3 W->D
    Resnet1D.model.{j}: relu, conv1 k3 dilation g**(depth-1-j), relu, conv2 k1, plus the input
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Shapes = dict[str, tuple[int, ...]]


def conv_vqvae_shapes(features: int, width: int, depth: int, down_t: int, emb: int) -> Shapes:
    """Names (relative to the VQ-VAE) and shapes of the encoder's and decoder's convolutions."""
    shapes: Shapes = {}

    def conv(name: str, out: int, inp: int, k: int) -> None:
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (out, inp, k), (out,)

    def resnet(name: str) -> None:
        for j in range(depth):
            conv(f"{name}.model.{j}.conv1", width, width, 3)
            conv(f"{name}.model.{j}.conv2", width, width, 1)

    conv("encoder.model.0", width, features, 3)
    for i in range(down_t):
        conv(f"encoder.model.{2 + i}.0", width, width, 4)
        resnet(f"encoder.model.{2 + i}.1")
    conv(f"encoder.model.{2 + down_t}", emb, width, 3)
    conv("decoder.model.0", width, emb, 3)
    for i in range(down_t):
        resnet(f"decoder.model.{2 + i}.0")
        conv(f"decoder.model.{2 + i}.2", width, width, 3)
    conv(f"decoder.model.{2 + down_t}", width, width, 3)
    conv(f"decoder.model.{4 + down_t}", features, width, 3)
    return shapes


def seeded_convs(shapes: Shapes, seed: int) -> dict[str, torch.Tensor]:
    """Weights of fan-in scale (so a deep stack stays finite) and small biases, from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        fan_in = shape[1] * shape[2] if len(shape) == 3 else 1
        scale = (1.0 / fan_in) ** 0.5 if name.endswith("weight") else 0.05
        state[name] = torch.randn(shape, generator=g) * scale
    return state


def _conv(x: torch.Tensor, state, name: str, stride: int = 1, padding: int = 1, dilation: int = 1) -> torch.Tensor:
    return F.conv1d(x, state[f"{name}.weight"], state[f"{name}.bias"], stride=stride, padding=padding,
                    dilation=dilation)


def _resnet(x: torch.Tensor, state, name: str, depth: int, growth: int) -> torch.Tensor:
    for j in range(depth):
        dilation = growth ** (depth - 1 - j)  # the blocks are built 1, g, g^2 ... and then reversed
        h = _conv(F.relu(x), state, f"{name}.model.{j}.conv1", padding=dilation, dilation=dilation)
        x = x + _conv(F.relu(h), state, f"{name}.model.{j}.conv2", padding=0)
    return x


def encode(x: torch.Tensor, state, prefix: str, down_t: int, depth: int, growth: int = 3) -> torch.Tensor:
    """(B, D, T) -> (B, C, T / 2**down_t)."""
    h = F.relu(_conv(x, state, f"{prefix}encoder.model.0"))
    for i in range(down_t):
        h = _conv(h, state, f"{prefix}encoder.model.{2 + i}.0", stride=2, padding=1)
        h = _resnet(h, state, f"{prefix}encoder.model.{2 + i}.1", depth, growth)
    return _conv(h, state, f"{prefix}encoder.model.{2 + down_t}")


def decode(z: torch.Tensor, state, prefix: str, down_t: int, depth: int, growth: int = 3) -> torch.Tensor:
    """(B, C, T') -> (B, D, T' * 2**down_t)."""
    h = F.relu(_conv(z, state, f"{prefix}decoder.model.0"))
    for i in range(down_t):
        h = _resnet(h, state, f"{prefix}decoder.model.{2 + i}.0", depth, growth)
        h = _conv(F.interpolate(h, scale_factor=2, mode="nearest"), state, f"{prefix}decoder.model.{2 + i}.2")
    h = F.relu(_conv(h, state, f"{prefix}decoder.model.{2 + down_t}"))
    return _conv(h, state, f"{prefix}decoder.model.{4 + down_t}")


def nearest_code(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """(M, C), (K, C) -> (M,): the EMA-reset quantizer's lookup, ||x||^2 - 2 x.k + ||k||^2, smallest first."""
    k = codebook.t()
    distance = (x ** 2).sum(-1, keepdim=True) - 2 * x @ k + (k ** 2).sum(0, keepdim=True)
    return distance.argmin(-1)


def residual_quantize(z: torch.Tensor, codebooks: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, T'), Q codebooks -> quantized (B, C, T'), indices (B, T', Q): each level picks the nearest
    code to what the earlier levels left, and the picked codes (straight-through, as the reference
    writes them) add up. One codebook is a plain EMA-reset VQ."""
    b, c, t = z.shape
    residual = z.permute(0, 2, 1).reshape(b * t, c)
    total, picked = torch.zeros_like(residual), []
    for codebook in codebooks:
        index = nearest_code(residual, codebook)
        code = residual + (codebook[index] - residual)
        residual = residual - code
        total = total + code
        picked.append(index.view(b, t))
    return total.view(b, t, c).permute(0, 2, 1), torch.stack(picked, -1)


def parameters_in(shapes: Shapes) -> int:
    """Elements of the trainable tensors (weights and biases) among ``shapes``."""
    total = 0
    for name, shape in shapes.items():
        if name.endswith((".weight", ".bias")):
            n = 1
            for s in shape:
                n *= s
            total += n
    return total
