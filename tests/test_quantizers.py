import io
import math
from collections import Counter

import pluggy
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from motionhub.plugins import hookspecs
from motionhub.data.formats import MotionFormat
from motionhub.model.quantizer import QuantizerOutput
from motionhub_conv import Conv1dEncoder
from motionhub_quantizers import FSQ, LFQ, RVQ, VQ, EMAResetVQ, ResidualEMAResetVQ, codebook_usage
from motionhub_quantizers.fsq import LEVELS_FOR_SIZE
from motionhub.model.codebook import code_histogram, usage_from_histogram

QUANTIZERS = {
    "fsq": lambda dim: FSQ(dim, levels=[8, 5, 5, 5]),
    "vq_ema_reset": lambda dim: EMAResetVQ(dim, codebook_size=32),
    "vq": lambda dim: VQ(dim, codebook_size=32),
    "rvq": lambda dim: RVQ(dim, num_quantizers=3, codebook_size=32),
    "lfq": lambda dim: LFQ(dim, codebook_size=64),
}


def ema(dim=1, codebook=(0.0, 10.0), decay=0.5) -> EMAResetVQ:
    """An initialised EMAResetVQ with a hand-set codebook, code_sum = codebook, code_count = 1."""
    q = EMAResetVQ(dim, codebook_size=len(codebook), decay=decay)
    rows = torch.tensor(codebook).reshape(len(codebook), dim)
    q.codebook.copy_(rows)
    q.code_sum.copy_(rows)
    q.code_count.fill_(1.0)
    q.initialised.fill_(True)
    return q


# ---------------------------------------------------------------- all quantizers


@pytest.mark.parametrize("name", QUANTIZERS)
def test_shapes_and_gradients_reach_the_encoder(name):
    torch.manual_seed(0)
    encoder = Conv1dEncoder(MotionFormat("test", (12,), 20.0), width=32, depth=1, down_t=1, output_emb_width=16)
    quantizer = QUANTIZERS[name](encoder.out_dim).train()
    z = encoder(torch.randn(4, 16, 12))
    out = quantizer(z)
    assert isinstance(out, QuantizerOutput)
    assert out.quantized.shape == z.shape and out.aux_loss.ndim == 0
    assert out.indices.shape == ((4, 8, 3) if name == "rvq" else (4, 8))
    assert out.indices.dtype == torch.int64
    assert 0 <= out.indices.min() and out.indices.max() < quantizer.codebook_size
    (out.quantized.square().mean() + out.aux_loss).backward()
    for pname, p in encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", QUANTIZERS)
def test_indices_to_codes_round_trip(name):
    torch.manual_seed(0)
    quantizer = QUANTIZERS[name](16)
    quantizer.train()(torch.randn(4, 40, 16))  # initialise data-dependent codebooks
    out = quantizer.eval()(torch.randn(2, 10, 16))
    torch.testing.assert_close(quantizer.indices_to_codes(out.indices), out.quantized, atol=1e-5, rtol=1e-5)


def test_plugin_registers_quantizers():
    import motionhub_quantizers

    from motionhub.plugins.registry import resolve  # registrations may be 'module:Class' references

    pm = pluggy.PluginManager("motionhub")
    pm.add_hookspecs(hookspecs)
    pm.register(motionhub_quantizers)
    found = {}
    pm.hook.register_quantizers(register=lambda name, cls: found.__setitem__(name, resolve(cls)))
    assert found == {"fsq": FSQ, "vq_ema_reset": EMAResetVQ, "vq": VQ, "rvq": RVQ, "lfq": LFQ,
                     "rvq_ema_reset": ResidualEMAResetVQ}


# ---------------------------------------------------------------- FSQ


@pytest.mark.parametrize("size, levels", sorted(LEVELS_FOR_SIZE.items()))
def test_fsq_codebook_size_maps_to_reference_levels(size, levels):
    q = FSQ(codebook_size=size)
    assert q.levels == tuple(levels) and q.codebook_size == math.prod(levels)


@pytest.mark.parametrize("levels", [[8, 5, 5, 5], [8, 8, 6, 5], [3, 4], [7, 5, 5, 5, 5]])
def test_fsq_to_grid_is_what_the_library_rounds(levels):
    """Rounded and scaled, ``to_grid`` is the library's bound; rounded and shifted, it is the index digits."""
    torch.manual_seed(0)
    q = FSQ(dim=len(levels), levels=levels)
    z = torch.randn(3, 50, len(levels)) * 3
    grid = q.to_grid(z)
    half_width = torch.tensor(levels) // 2
    assert torch.equal(grid.round() / half_width, q.fsq.bound(z))
    digits = grid.round().long() + half_width
    basis = torch.tensor([math.prod(levels[:g]) for g in range(len(levels))])
    assert torch.equal((digits * basis).sum(-1), q(z).indices)
    assert ((digits >= 0) & (digits < torch.tensor(levels))).all()


@pytest.mark.parametrize("name", [n for n in QUANTIZERS if n != "fsq"])
def test_quantizers_with_a_learned_codebook_have_no_levels(name):
    quantizer = QUANTIZERS[name](16)
    assert quantizer.levels is None
    with pytest.raises(NotImplementedError, match="has no grid of levels"):
        quantizer.to_grid(torch.zeros(2, 3))


def test_fsq_reports_true_size():
    assert FSQ(codebook_size=2048).codebook_size == 1920
    assert FSQ(codebook_size=65536).codebook_size == 64_000


def test_fsq_motionmillion_projection_parameters():
    q = FSQ(dim=512, codebook_size=65536)
    assert sum(p.numel() for p in q.parameters()) == 6_662
    assert set(q.reference_key_map().values()) == {"project_in.weight", "project_in.bias",
                                                   "project_out.weight", "project_out.bias"}


def test_fsq_without_projection():
    q = FSQ(levels=[5, 5, 5])
    assert q.dim == 3 and sum(p.numel() for p in q.parameters()) == 0
    out = q(torch.randn(2, 7, 3))
    assert out.aux_loss == 0 and out.quantized.abs().max() <= 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(codebook_size=1000), "256, 512, 1024, 2048, 4096, 16384, 65536"),
        (dict(), "exactly one"),
        (dict(levels=[8, 8], codebook_size=64), "exactly one"),
        (dict(levels=[8, 2]), ">= 3"),
        (dict(levels=[]), ">= 3"),
    ],
)
def test_fsq_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FSQ(dim=16, **kwargs)


# ---------------------------------------------------------------- library wrappers


def test_library_wrappers_report_codebook_size():
    assert VQ(8, codebook_size=100).codebook_size == 100
    assert RVQ(8, num_quantizers=2, codebook_size=50).codebook_size == 50
    assert LFQ(8, codebook_size=1024).codebook_size == 1024
    assert LFQ(codebook_size=256).dim == 8


def test_lfq_rejects_non_power_of_two():
    with pytest.raises(ValueError, match="power of two.*try 1024"):
        LFQ(16, codebook_size=1000)


# ---------------------------------------------------------------- EMA reset VQ


def test_ema_init_from_first_training_batch():
    q = EMAResetVQ(4, codebook_size=6).train()
    z = torch.randn(2, 5, 4)
    out = q(z)
    # ten vectors >= six codes: the codebook starts as the first six, so they quantize to themselves
    assert bool(q.initialised)
    assert torch.equal(out.indices.flatten()[:6], torch.arange(6))
    flat, quantized = z.reshape(-1, 4), out.quantized.reshape(-1, 4)
    assert torch.equal(quantized[:6], flat[:6])
    assert out.aux_loss.item() == pytest.approx(((flat - quantized) ** 2).mean().item())


def test_ema_init_tiles_a_short_batch_with_small_noise():
    torch.manual_seed(0)
    q = EMAResetVQ(16, codebook_size=10).train()
    z = torch.randn(1, 3, 16)
    out = q(z)
    # the output uses the initial codebook: each vector's nearest code is a noisy copy of itself
    noise = out.quantized - z
    assert noise.abs().max() < 0.02 and noise.abs().min() > 0
    nearest_batch_vector = torch.cdist(q.codebook, z.reshape(3, 16)).min(1).values
    assert nearest_batch_vector.max() < 0.1


def test_ema_does_not_initialise_in_eval():
    q = EMAResetVQ(4, codebook_size=6).eval()
    q(torch.randn(2, 5, 4))
    assert not q.initialised and q.codebook.abs().sum() == 0


def test_ema_update_by_hand():
    q = ema(codebook=(0.0, 10.0), decay=0.5).train()
    out = q(torch.tensor([[[1.0], [2.0], [9.0]]]))
    assert out.indices.tolist() == [[0, 0, 1]]
    assert out.quantized.flatten().tolist() == [0.0, 0.0, 10.0]  # the codebook before the update
    assert out.aux_loss.item() == pytest.approx((1 + 4 + 1) / 3)
    # sums 0.5*[0, 10] + 0.5*[3, 9]; counts 0.5*[1, 1] + 0.5*[2, 1]
    assert q.code_sum.flatten().tolist() == [1.5, 9.5]
    assert q.code_count.tolist() == [1.5, 1.0]
    assert q.codebook.flatten().tolist() == [1.0, 9.5]


def test_ema_dead_code_reset_by_hand():
    q = ema(codebook=(0.0, 10.0, 100.0), decay=0.5).train()
    q(torch.tensor([[[1.0], [2.0], [9.0]]]))
    # code 2 got nothing: count 0.5 < 1, so it takes batch row 2; its EMA state is left as is
    assert q.code_count.tolist() == [1.5, 1.0, 0.5]
    assert q.codebook.flatten().tolist() == [1.0, 9.5, 9.0]
    assert q.code_sum.flatten().tolist() == [1.5, 9.5, 50.0]


def test_ema_eval_does_not_update():
    q = ema(codebook=(0.0, 10.0)).eval()
    before = {k: v.clone() for k, v in q.state_dict().items()}
    q(torch.tensor([[[1.0], [2.0], [9.0]]]))
    assert all(torch.equal(before[k], v) for k, v in q.state_dict().items())


def test_ema_resume_continues_exactly():
    torch.manual_seed(0)
    batches = [torch.randn(4, 12, 8) for _ in range(5)]
    trained = EMAResetVQ(8, codebook_size=16, decay=0.9).train()
    for z in batches[:4]:
        trained(z)
    assert {"codebook", "code_sum", "code_count", "initialised"} <= set(trained.state_dict())
    assert (trained.code_count < 1).any()  # some codes were being reset

    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    buffer.seek(0)
    resumed = EMAResetVQ(8, codebook_size=16, decay=0.9)
    resumed.load_state_dict(torch.load(buffer))
    resumed.train()

    a, b = trained(batches[4]), resumed(batches[4])
    assert torch.equal(a.indices, b.indices) and torch.equal(a.quantized, b.quantized)
    assert torch.equal(a.aux_loss, b.aux_loss)
    for key, value in trained.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def _two_process_worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    torch.manual_seed(rank)  # different data and different init noise on each rank
    tiled = EMAResetVQ(4, codebook_size=32, decay=0.9).train()
    tiled(torch.randn(1, 10, 4))  # 10 < 32 vectors: noisy tiling
    for _ in range(5):
        tiled(torch.randn(2, 24, 4) + rank)

    data = torch.randn(6, 2, 2, 24, 4, generator=torch.Generator().manual_seed(7))
    synced = EMAResetVQ(4, codebook_size=32, decay=0.9).train()
    for step in data:
        synced(step[rank])
    torch.save({"tiled": tiled.state_dict(), "synced": synced.state_dict()}, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_ema_codebooks_identical_across_processes(tmp_path):
    mp.spawn(_two_process_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    for model in ("tiled", "synced"):
        for key, value in rank0[model].items():
            assert torch.equal(value, rank1[model][key]), (model, key)
    assert (rank0["tiled"]["code_count"] < 1).any()

    # the all-reduced update equals one process seeing both ranks' batches (rank 0 first)
    data = torch.randn(6, 2, 2, 24, 4, generator=torch.Generator().manual_seed(7))
    single = EMAResetVQ(4, codebook_size=32, decay=0.9).train()
    for step in data:
        single(torch.cat([step[0], step[1]]))
    for key, value in single.state_dict().items():
        torch.testing.assert_close(rank0["synced"][key], value, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- usage statistics


def naive_usage(indices: torch.Tensor, codebook_size: int) -> dict[str, float]:
    counts = Counter(indices.flatten().tolist())
    total = sum(counts.values())
    entropy = -sum(c / total * math.log(c / total) for c in counts.values())
    return {"used": len(counts), "dead": codebook_size - len(counts),
            "perplexity": math.exp(entropy), "normalised_perplexity": math.exp(entropy) / codebook_size}


@pytest.mark.parametrize("codebook_size", [7, 512, 64_000])
def test_usage_matches_naive_count(codebook_size):
    torch.manual_seed(0)
    indices = (torch.randn(16, 48).abs() * codebook_size / 6).long().clamp(max=codebook_size - 1)
    got, expected = codebook_usage(indices, codebook_size), naive_usage(indices, codebook_size)
    assert got["used"] == expected["used"] and got["dead"] == expected["dead"]
    assert got["perplexity"] == pytest.approx(expected["perplexity"], rel=1e-9)
    assert got["normalised_perplexity"] == pytest.approx(expected["normalised_perplexity"], rel=1e-9)


def test_usage_histograms_add_up():
    a, b = torch.randint(0, 100, (8, 20)), torch.randint(0, 100, (3, 20))
    total = code_histogram(a, 100) + code_histogram(b, 100)
    assert usage_from_histogram(total) == codebook_usage(torch.cat([a.flatten(), b.flatten()]), 100)


def test_usage_edge_cases():
    assert codebook_usage(torch.zeros(5, dtype=torch.long), 4) == {
        "used": 1, "dead": 3, "perplexity": 1.0, "normalised_perplexity": 0.25}
    assert codebook_usage(torch.empty(0, dtype=torch.long), 4)["perplexity"] == 0.0
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        codebook_usage(torch.tensor([0, 4]), 4)
