"""The kernels the training and encoding paths pick compute what the plain ones do.

The trainer's AdamW is the fused one where torch has it; the transformer tokenizers' attention is
``scaled_dot_product_attention``. Each is held against the plain computation in fp32, and the
fused optimizer against checkpoints written by the multi-tensor one.
"""

import copy

import torch
from torch import nn

from helpers import TINY_RECIPE
from motionhub.recipes import recipe_from_tree
from motionhub.train.trainer import make_optimizer
from motionhub_transformer.model import Attention


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(6, 16, 3, padding=1), nn.ReLU(), nn.Conv1d(16, 6, 3, padding=2, dilation=2))


def train_config():
    return recipe_from_tree(TINY_RECIPE, "tiny.yaml", ["train.weight_decay=0.01", "train.lr=1e-2"]).train


def steps(model: nn.Module, optimizer: torch.optim.Optimizer, n: int, seed: int = 1) -> None:
    generator = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randn(4, 6, 12, generator=generator)
        optimizer.zero_grad()
        (model(x) - x).square().mean().backward()
        optimizer.step()


def test_the_training_optimizer_is_fused_on_the_cpu_and_steps_like_the_multi_tensor_one():
    fused_model, plain_model = small_model(), small_model()
    cfg = train_config()
    fused = make_optimizer(fused_model, cfg)
    assert fused.defaults["fused"] is True
    plain = torch.optim.AdamW(plain_model.parameters(), lr=fused.defaults["lr"], betas=tuple(cfg.betas),
                              weight_decay=cfg.weight_decay, foreach=True)
    steps(fused_model, fused, 20)
    steps(plain_model, plain, 20)
    moved = max((a - b).abs().max().item() for a, b in zip(plain_model.parameters(), small_model().parameters()))
    assert moved > 1e-2  # the steps did change the weights
    for (name, a), b in zip(fused_model.named_parameters(), plain_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}: {m}")


def test_a_multi_tensor_optimizer_state_loads_into_the_fused_one_and_continues_alike():
    cfg = train_config()
    model = small_model()
    plain = torch.optim.AdamW(model.parameters(), lr=make_optimizer(small_model(), cfg).defaults["lr"],
                              betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, foreach=True)
    steps(model, plain, 5)
    saved_model, saved_state = copy.deepcopy(model.state_dict()), copy.deepcopy(plain.state_dict())
    steps(model, plain, 5, seed=2)

    resumed = small_model()
    resumed.load_state_dict(saved_model)
    fused = make_optimizer(resumed, cfg)
    fused.load_state_dict(saved_state)
    steps(resumed, fused, 5, seed=2)
    for a, b in zip(resumed.parameters(), model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def explicit_attention(attention: Attention, x: torch.Tensor, causal: bool) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v per head, written out: (B, N, W) -> (B, N, W)."""
    q, k, v = (t.unflatten(-1, (attention.heads, -1)).transpose(1, 2) for t in attention.qkv(x).chunk(3, dim=-1))
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if causal:
        n = x.shape[1]
        scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    return attention.out((scores.softmax(-1) @ v).transpose(1, 2).flatten(2))


def test_the_transformer_attention_kernel_equals_explicit_softmax_attention_in_fp32():
    torch.manual_seed(0)
    x = torch.randn(3, 10, 32)
    for causal in (False, True):
        attention = Attention(32, heads=4, dropout=0.1, causal=causal).eval()
        with torch.no_grad():
            torch.testing.assert_close(attention(x), explicit_attention(attention, x, causal), rtol=1e-5, atol=1e-5)
