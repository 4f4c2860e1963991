"""The residual EMA-reset quantizer (``rvq_ema_reset``, MoMask's): levels, quantize dropout, partial decoding."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from motionhub.model.codebook import code_histogram
from motionhub.plugins.manager import get_registry
from motionhub_quantizers import EMAResetVQ, ResidualEMAResetVQ


def trained(levels: int = 3, codes: int = 16, dim: int = 4, dropout: float = 0.0, seed: int = 0) -> ResidualEMAResetVQ:
    """A quantizer whose codebooks one training step has initialised."""
    torch.manual_seed(seed)
    quantizer = ResidualEMAResetVQ(dim, num_quantizers=levels, codebook_size=codes, quantize_dropout_prob=dropout,
                                   sample_temperature=0.0)
    quantizer.train()(torch.randn(4, 40, dim))
    return quantizer


def test_every_level_quantises_what_the_earlier_ones_left():
    quantizer = trained().eval()
    z = torch.randn(2, 10, 4)
    out = quantizer(z)
    assert out.indices.shape == (2, 10, 3) and out.indices.dtype == torch.int64
    residual, total = z, torch.zeros_like(z)
    for i, layer in enumerate(quantizer.layers):  # each level is a plain EMA-reset VQ on the residual
        level = layer(residual)
        assert torch.equal(level.indices, out.indices[..., i])
        residual, total = residual - level.quantized, total + level.quantized
    torch.testing.assert_close(out.quantized, total)
    torch.testing.assert_close(quantizer.indices_to_codes(out.indices), out.quantized, rtol=1e-5, atol=1e-5)
    assert code_histogram(out.indices, quantizer.codebook_size).sum() == out.indices.numel()


def test_a_training_step_is_each_levels_own_step_on_its_residual():
    torch.manual_seed(0)
    quantizer = ResidualEMAResetVQ(4, num_quantizers=2, codebook_size=8, quantize_dropout_prob=0.0,
                                   sample_temperature=0.0)
    z = torch.randn(2, 20, 4)
    out = quantizer.train()(z)
    residual = z
    for i, layer in enumerate(quantizer.layers):  # initialise from the first batch, look up, update: per level
        alone = EMAResetVQ(4, codebook_size=8).train()
        level = alone(residual)
        assert torch.equal(level.indices, out.indices[..., i])
        assert torch.equal(alone.codebook, layer.codebook) and torch.equal(alone.code_count, layer.code_count)
        residual = residual - level.quantized.detach()


def test_partial_decoding_sums_the_first_levels():
    quantizer = trained().eval()
    out = quantizer(torch.randn(2, 10, 4))
    codes = [torch.nn.functional.embedding(out.indices[..., i], layer.codebook)
             for i, layer in enumerate(quantizer.layers)]
    torch.testing.assert_close(quantizer.indices_to_codes(out.indices, levels=1), codes[0])
    torch.testing.assert_close(quantizer.indices_to_codes(out.indices, levels=2), codes[0] + codes[1])
    dropped = out.indices.clone()
    dropped[..., 2] = -1  # a level left out in training adds nothing
    torch.testing.assert_close(quantizer.indices_to_codes(dropped), codes[0] + codes[1])
    assert quantizer.num_levels == 3
    with pytest.raises(ValueError, match="between 1 and the 3 residual levels, got 4"):
        quantizer.indices_to_codes(out.indices, levels=4)


def test_quantize_dropout_runs_the_first_k_levels_and_marks_the_rest():
    quantizer = trained(levels=4, dropout=1.0)
    torch.manual_seed(1)
    kept = set()
    for _ in range(40):
        out = quantizer(torch.randn(2, 6, 4))
        dropped = (out.indices == -1).all(dim=(0, 1))
        k = int((~dropped).sum())
        assert dropped.tolist() == [False] * k + [True] * (4 - k)  # always a prefix of the levels
        kept.add(k)
    assert kept == {1, 2, 3, 4}
    eval_out = quantizer.eval()(torch.randn(2, 6, 4))
    assert (eval_out.indices >= 0).all()  # never at inference


def test_training_samples_codes_from_the_softmax_of_minus_distance_over_the_temperature():
    quantizer = ResidualEMAResetVQ(1, num_quantizers=1, codebook_size=2, quantize_dropout_prob=0.0,
                                   sample_temperature=0.5)
    level = quantizer.layers[0]
    codebook = torch.tensor([[1.0], [-1.1]])  # squared distances from 0: 1.0 and 1.21
    for buffer, value in ((level.codebook, codebook), (level.code_sum, codebook), (level.code_count, 1.0),
                          (level.initialised, True)):
        buffer.copy_(torch.as_tensor(value).expand_as(buffer))
    torch.manual_seed(0)
    z = torch.zeros(1, 20000, 1)
    first = (quantizer.train()(z).indices == 0).double().mean().item()
    expected = 1 / (1 + torch.exp(torch.tensor(-0.21 / 0.5)).item())  # softmax of -distance / T: 0.6035
    assert abs(first - expected) < 0.02  # 6 standard deviations of 20000 draws
    level.codebook.copy_(codebook)
    assert (quantizer.eval()(z).indices == 0).all()  # inference takes the nearest


def test_aux_loss_is_the_mean_of_the_levels_commitment():
    quantizer = trained().eval()
    z = torch.randn(2, 10, 4)
    out, residual, losses = quantizer(z), z, []
    for layer in quantizer.layers:
        level = layer(residual)
        residual = residual - level.quantized
        losses.append(level.aux_loss)
    torch.testing.assert_close(out.aux_loss, torch.stack(losses).mean())


def test_gradients_pass_straight_through_every_level():
    quantizer = trained()
    z = torch.randn(2, 10, 4, requires_grad=True)
    quantizer(z).quantized.sum().backward()
    # each level passes its gradient straight to its input, z less the earlier (detached) codes, as MoMask's does
    torch.testing.assert_close(z.grad, torch.full_like(z, 3.0))


def test_state_resumes_with_every_levels_ema_statistics():
    quantizer = trained()
    keys = set(quantizer.state_dict())
    assert {f"layers.{i}.{name}" for i in range(3) for name in ("codebook", "code_sum", "code_count",
                                                                 "initialised")} == keys
    copy = ResidualEMAResetVQ(4, num_quantizers=3, codebook_size=16, quantize_dropout_prob=0.0, sample_temperature=0.0)
    copy.load_state_dict(quantizer.state_dict())
    torch.manual_seed(2)
    z = torch.randn(3, 12, 4)
    a, b = quantizer.train()(z), copy.train()(z)
    assert torch.equal(a.indices, b.indices)
    assert all(torch.equal(x, y) for x, y in zip(quantizer.state_dict().values(), copy.state_dict().values()))


def test_registered_as_rvq_ema_reset_with_momasks_defaults():
    component = get_registry().get("quantizer", "rvq_ema_reset")
    assert component.cls is ResidualEMAResetVQ and component.provider == "motionhub_quantizers"
    quantizer = ResidualEMAResetVQ()
    assert (quantizer.num_levels, quantizer.codebook_size, quantizer.dim) == (6, 512, 512)
    assert quantizer.quantize_dropout_prob == 0.2 and quantizer.layers[0].temperature == 0.5
    assert sum(p.numel() for p in quantizer.parameters()) == 0


def _two_process_worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    torch.manual_seed(rank)  # each rank would draw its own dropout and its own Gumbel noise
    quantizer = ResidualEMAResetVQ(4, num_quantizers=4, codebook_size=16, quantize_dropout_prob=0.5).train()
    kept = []
    for _ in range(8):
        out = quantizer(torch.randn(2, 24, 4) + rank)
        kept.append(int((out.indices[0, 0] >= 0).sum()))
    torch.save({"state": quantizer.state_dict(), "kept": kept}, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_every_process_runs_the_same_levels_and_keeps_the_same_codebooks(tmp_path):
    mp.spawn(_two_process_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert rank0["kept"] == rank1["kept"] and len(set(rank0["kept"])) > 1  # rank 0's draw, and it varied
    for key, value in rank0["state"].items():
        assert torch.equal(value, rank1["state"][key]), key
