"""The quantizer contract (``motionhub.model.quantizer``): what every quantizer exposes, and how losses
reach it through the tokenizer's outputs instead of importing a quantizer plugin."""

from __future__ import annotations

import math

import pytest
import torch
from motionhub_amplify.codes import CodeHistogramEntropy
from motionhub_conv import Conv1dDecoder, Conv1dEncoder
from motionhub_losses.codebook import CodebookEntropyLoss
from motionhub_quantizers import FSQ, LFQ, RVQ, VQ, EMAResetVQ

from motionhub.data.formats import MotionFormat
from motionhub.errors import MotionhubError
from motionhub.model.codebook import code_histogram
from motionhub.model.quantizer import Quantizer
from motionhub.model.tokenizer import Tokenizer

FORMAT = MotionFormat("test", (12,), 20.0)
QUANTIZERS = {
    "fsq": lambda: FSQ(16, levels=[8, 5, 5, 5]),
    "fsq_unprojected": lambda: FSQ(4, codebook_size=2048),
    "vq_ema_reset": lambda: EMAResetVQ(16, codebook_size=32),
    "vq": lambda: VQ(16, codebook_size=32),
    "rvq": lambda: RVQ(16, num_quantizers=3, codebook_size=32),
    "lfq": lambda: LFQ(16, codebook_size=64),
}


@pytest.mark.parametrize("name", QUANTIZERS)
def test_every_quantizer_keeps_the_documented_contract(name):
    torch.manual_seed(0)
    quantizer = QUANTIZERS[name]()
    assert isinstance(quantizer, Quantizer) and isinstance(quantizer.codebook_size, int)
    c = quantizer.dim
    quantizer.train()(torch.randn(4, 40, c))  # data-dependent codebooks initialise
    out = quantizer.eval()(torch.randn(2, 10, c))
    assert out.quantized.shape == (2, 10, c) and out.aux_loss.ndim == 0 and out.indices.dtype == torch.int64
    assert out.indices.shape[:2] == (2, 10) and 0 <= out.indices.min() and out.indices.max() < quantizer.codebook_size
    assert code_histogram(out.indices, quantizer.codebook_size).sum() == out.indices.numel()
    assert quantizer.indices_to_codes(out.indices).shape == (2, 10, c)
    assert isinstance(quantizer.codebook_state(), dict)
    if quantizer.levels is None:
        assert name not in ("fsq", "fsq_unprojected")
        with pytest.raises(NotImplementedError, match="no grid of levels"):
            quantizer.to_grid(torch.zeros(2, 10, 3))
        return
    # a scalar quantizer: D = len(levels) code dimensions, K = prod(levels), indices are the rounded grid
    levels = quantizer.levels
    assert isinstance(levels, tuple) and math.prod(levels) == quantizer.codebook_size
    assert out.pre_quantized.shape == (2, 10, len(levels))
    digits = quantizer.to_grid(out.pre_quantized).round().long() + torch.tensor(levels) // 2
    basis = torch.tensor([math.prod(levels[:g]) for g in range(len(levels))])
    assert torch.equal((digits * basis).sum(-1), out.indices)


def test_the_tokenizer_hands_its_quantizer_to_the_losses():
    torch.manual_seed(0)
    encoder = Conv1dEncoder(FORMAT, width=32, depth=1, down_t=1, output_emb_width=16)
    quantizer = FSQ(dim=16, levels=[8, 5, 5])
    tokenizer = Tokenizer(encoder, quantizer, Conv1dDecoder(FORMAT, encoder=encoder))
    outputs = tokenizer(torch.randn(2, 16, 12))
    assert outputs["quantizer"] is quantizer and outputs["pre_quantized"].shape == (2, 8, 3)
    # codebook_entropy takes its grid from there: the same loss on another FSQ gives another value
    loss = CodebookEntropyLoss()
    value = loss({}, outputs, FORMAT)
    other = loss({}, {**outputs, "quantizer": FSQ(dim=16, levels=[3, 3, 3])}, FORMAT)
    assert torch.isfinite(value) and not torch.isclose(value, other)


def test_code_histogram_entropy_normalises_by_the_quantizers_codebook_size_unless_given():
    indices = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0]])  # four codes, evenly: H = ln 4
    fsq = FSQ(dim=3, levels=[8, 8, 4])  # 256 codes
    assert CodeHistogramEntropy()({}, {"indices": indices, "quantizer": fsq}).item() == pytest.approx(
        -math.log(4) / math.log(256))
    assert CodeHistogramEntropy(16)({}, {"indices": indices, "quantizer": fsq}).item() == pytest.approx(-0.5)
    with pytest.raises(MotionhubError, match=r"outputs\['quantizer'\], which these outputs lack; give codebook_size"):
        CodeHistogramEntropy()({}, {"indices": indices})
