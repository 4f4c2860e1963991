"""bf16 autocast on the CPU: quantizers and losses compute in fp32, and the run says which part ran in what."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import TINY_RECIPE
from motionhub_quantizers.ema_reset import EMAResetVQ
from motionhub_quantizers.fsq import FSQ
from motionhub_quantizers.library import LFQ, RVQ, VQ

from motionhub.model.losses import LossSet, LossTerm
from motionhub.model.precision import (describe_precision, forget_full_precision_runs, full_precision,
                                       ran_in_full_precision, to_float32)
from motionhub.recipes import recipe_from_tree
from motionhub.train.trainer import train

BF16 = dict(device_type="cpu", dtype=torch.bfloat16)


def latents(seed: int = 0, shape=(4, 64, 32)) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


QUANTIZERS = {
    "fsq": lambda: FSQ(dim=32, levels=[8, 5, 5, 5]),
    "vq": lambda: VQ(dim=32, codebook_size=512),
    "rvq": lambda: RVQ(dim=32, num_quantizers=3, codebook_size=256),
    "lfq": lambda: LFQ(dim=32, codebook_size=1024),
    "ema_reset": lambda: EMAResetVQ(dim=32, codebook_size=64),
}


@pytest.mark.parametrize("name", QUANTIZERS)
def test_quantizer_indices_under_bf16_autocast_equal_the_fp32_ones(name):
    torch.manual_seed(0)
    quantizer = QUANTIZERS[name]()
    z = latents()
    if name == "ema_reset":
        quantizer.train()
        quantizer(latents(1))  # initialise the codebook from a batch
    quantizer.eval()
    with torch.no_grad():
        full = quantizer(z)
        with torch.autocast(**BF16):
            mixed = quantizer(z)
    assert torch.equal(mixed.indices, full.indices)
    assert mixed.quantized.dtype == torch.float32 and torch.equal(mixed.quantized, full.quantized)
    assert mixed.aux_loss.dtype == torch.float32
    if full.pre_quantized is not None:
        assert mixed.pre_quantized.dtype == torch.float32


def test_the_library_fsq_alone_rounds_a_bf16_projection_under_cpu_autocast():
    """Why the wrapper turns autocast off: the library does so for CUDA only, and on the CPU its
    projection runs in bf16 and moves some values across a rounding boundary."""
    torch.manual_seed(0)
    quantizer = FSQ(dim=32, levels=[8, 5, 5, 5])
    z = latents()
    with torch.autocast(**BF16):
        _, library = quantizer.fsq(z)
        wrapped = quantizer(z).indices
    assert not torch.equal(library.long(), wrapped)


@pytest.mark.parametrize("name", ["vq", "ema_reset"])
def test_a_training_step_under_bf16_autocast_updates_the_codebook_as_in_fp32(name):
    """The EMA sums and the nearest-code distances of a training step are fp32 products."""
    models = []
    for autocast in (False, True):
        torch.manual_seed(0)
        quantizer = QUANTIZERS[name]().train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = quantizer(latents())
        models.append((quantizer, out))
    (full, full_out), (mixed, mixed_out) = models
    assert torch.equal(mixed_out.indices, full_out.indices)
    for (key, a), (_, b) in zip(full.state_dict().items(), mixed.state_dict().items()):
        assert torch.equal(a, b), key


def test_vq_distances_run_in_fp32_under_autocast():
    """The distance is an einsum inside the library: recorded here through torch's dispatch."""
    quantizer = VQ(dim=32, codebook_size=512).eval()
    seen = []

    class Recorder(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            result = func(*args, **(kwargs or {}))
            if func is torch.einsum and isinstance(result, torch.Tensor):
                seen.append(result.dtype)
            return result

    with torch.no_grad(), torch.autocast(**BF16), Recorder():
        quantizer(latents())
    assert seen and set(seen) == {torch.float32}


class MatmulLoss:
    """A loss built on a matrix product, which autocast would put in bf16."""

    def __call__(self, batch, outputs, fmt):
        return (outputs["recon"] @ batch["motion"].transpose(1, 2)).abs().mean()


class L1Loss:
    def __call__(self, batch, outputs, fmt):
        return (outputs["recon"] - batch["motion"]).abs().mean()


def test_every_loss_value_is_float32_under_bf16_autocast_and_unchanged_in_fp32():
    torch.manual_seed(0)
    motion = torch.randn(2, 16, 8)
    recon = torch.randn(2, 16, 8, requires_grad=True)
    losses = LossSet([LossTerm("matmul", MatmulLoss()), LossTerm("l1", L1Loss(), downsample=2)])
    batch = {"motion": motion}
    with torch.autocast(**BF16):
        total, values = losses(batch, {"recon": recon.bfloat16(), "aux_loss": torch.zeros(())}, None, 0)
        raw = MatmulLoss()(batch, {"recon": recon}, None)
    assert raw.dtype == torch.bfloat16  # what the term would be without full precision
    assert total.dtype == torch.float32
    reference = (recon.bfloat16().float() @ motion.transpose(1, 2)).abs().mean()
    assert values["matmul"].item() == reference.item()
    total.backward()
    assert recon.grad is not None and recon.grad.dtype == torch.float32

    plain_total, plain = losses(batch, {"recon": recon, "aux_loss": torch.zeros(())}, None, 0)
    assert plain["matmul"].item() == (recon @ motion.transpose(1, 2)).abs().mean().item()
    assert plain["l1"].item() == (recon[:, ::2] - motion[:, ::2]).abs().mean().item()


def test_full_precision_records_only_parts_that_ran_under_autocast():
    forget_full_precision_runs()
    with full_precision("outside"):
        assert not torch.is_autocast_enabled("cpu")
    with torch.autocast(**BF16):
        with full_precision("inside"):
            assert not torch.is_autocast_enabled("cpu")
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
        assert torch.is_autocast_enabled("cpu")
    assert ran_in_full_precision() == {"inside"}


def test_to_float32_casts_only_low_precision_floating_tensors():
    half, double, ints = torch.ones(2, dtype=torch.bfloat16), torch.ones(2, dtype=torch.float64), torch.ones(2, dtype=torch.long)
    cast = to_float32({"a": half, "b": [double, ints], "c": "text"})
    assert cast["a"].dtype == torch.float32 and cast["b"][0] is double and cast["b"][1] is ints and cast["c"] == "text"


class Model(torch.nn.Module):
    def __init__(self, quantizer):
        super().__init__()
        self.encoder = torch.nn.Conv1d(4, 32, 3)
        self.quantizer = quantizer
        self.decoder = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.ConvTranspose1d(32, 4, 3))


def test_the_precision_line_reads_what_each_part_declares():
    losses = LossSet([])
    assert describe_precision("fp32", Model(FSQ(dim=32, levels=[8, 5, 5])), losses) == "fp32"
    assert describe_precision("bf16", Model(FSQ(dim=32, levels=[8, 5, 5])), losses) == (
        "bf16 autocast: encoder convs in bf16, decoder matmuls/convs in bf16; quantizer and losses in fp32")

    class PlainQuantizer(torch.nn.Module):
        def forward(self, z):
            return z

    assert describe_precision("bf16", Model(PlainQuantizer()), None) == (
        "bf16 autocast: encoder convs in bf16, decoder matmuls/convs in bf16; quantizer under bf16 autocast")


def test_a_bf16_run_prints_and_reports_the_precision_of_each_part(tmp_path, capsys):
    from rich.console import Console

    tree = {**TINY_RECIPE, "run": {"name": "t", "out": str(tmp_path / "run"), "seed": 0},
            "train": {**TINY_RECIPE["train"], "iters": 2, "precision": "bf16"}}
    forget_full_precision_runs()
    console = Console(record=True, width=200)
    run_dir = train(recipe_from_tree(tree, "tiny.yaml"), console=console)
    printed = console.export_text()
    report = json.loads((run_dir / "report.json").read_text())
    parts = report["run"]["precision_parts"]
    assert parts.startswith("bf16 autocast: ") and parts.endswith("quantizer and losses in fp32")
    assert f"precision {parts}" in printed
    assert f"precision {parts}" in (run_dir / "report.md").read_text()
    assert {"quantizer", "losses"} <= ran_in_full_precision()  # what is declared is what ran
