import math

import pytest
import torch

from motionhub.errors import MotionhubError
from motionhub.data.formats import MotionFormat
from motionhub.recipes import bind_arguments
from motionhub.plugins.registry import Component
from motionhub.model.tokenizer import Tokenizer
from motionhub_losses.codebook import CodebookEntropyLoss, entropy_terms, level_log_probs
from motionhub_quantizers import FSQ, VQ
from motionhub_transformer import TransformerDecoder, TransformerEncoder

FORMAT = MotionFormat("test", (12,), 20.0)


@pytest.fixture(autouse=True)
def one_thread():
    """These tensors are tiny: extra intra-op threads only contend for shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def entropy(p: list[float]) -> float:
    return -sum(x * math.log(x) for x in p if x > 0)


def log_probs(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows).clamp_min(1e-30).log()


def at_grid(codes: torch.Tensor, levels: list[int]) -> torch.Tensor:
    """Latents that FSQ's bound maps exactly onto the given per-dimension grid values."""
    levels_t = torch.tensor(levels, dtype=torch.float64)
    half = (levels_t - 1) * (1 + 1e-3) / 2
    offset = (1 - levels_t % 2) / 2
    return (torch.atanh((codes + offset) / half) - torch.atanh(offset / half)).float()


def fsq_outputs(latents: torch.Tensor, levels: list[int]) -> dict:
    """What a tokenizer with an unprojected FSQ quantizer of ``levels`` hands the loss for these latents."""
    return {"quantizer": FSQ(dim=len(levels), levels=levels), "pre_quantized": latents}


def all_codes(levels: list[int]) -> torch.Tensor:
    """Every code as grid values (K, G)."""
    grids = [torch.arange(level, dtype=torch.float64) - level // 2 for level in levels]
    return torch.cartesian_prod(*grids).reshape(-1, len(levels))


def test_entropy_terms_uniform_and_one_hot():
    uniform = [torch.full((4, 4), 0.25).log(), torch.full((4, 3), 1 / 3).log()]
    weights = torch.full((4,), 0.25)
    per_sample, batch = entropy_terms(uniform, weights)
    torch.testing.assert_close((per_sample, batch), (torch.tensor(math.log(12)),) * 2)

    spread = [log_probs([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
              log_probs([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])]
    per_sample, batch = entropy_terms(spread, weights)
    assert per_sample.abs() < 1e-6
    torch.testing.assert_close(batch, torch.tensor(math.log(4) + entropy([0.5, 0.25, 0.25])))

    collapsed = [log_probs([[1, 0, 0, 0]] * 4), log_probs([[0, 1, 0]] * 4)]
    per_sample, batch = entropy_terms(collapsed, weights)
    assert per_sample.abs() < 1e-6 and batch.abs() < 1e-6


def test_loss_matches_hand_computation():
    # z = 0 sits on the middle grid value of odd levels: squared distances (1, 0, 1) and (4, 1, 0, 1, 4)
    loss = CodebookEntropyLoss(temperature=1.0, diversity_weight=0.5)
    p3 = [math.exp(-d) for d in (1, 0, 1)]
    p5 = [math.exp(-d) for d in (4, 1, 0, 1, 4)]
    h = entropy([p / sum(p3) for p in p3]) + entropy([p / sum(p5) for p in p5])
    value = loss({"motion": None}, fsq_outputs(torch.zeros(2, 3, 2), [3, 5]), FORMAT)
    torch.testing.assert_close(value, torch.tensor((1 - 0.5) * h))


def test_soft_and_peaked_limits():
    levels = [3, 5]
    codes = at_grid(all_codes(levels), levels)[None]  # every one of the 15 codes once
    soft = CodebookEntropyLoss(temperature=1e6, diversity_weight=0.0)
    torch.testing.assert_close(soft({}, fsq_outputs(codes, levels), FORMAT), torch.tensor(math.log(15)))

    peaked = CodebookEntropyLoss(temperature=1e-3, diversity_weight=1.0)
    torch.testing.assert_close(peaked({}, fsq_outputs(codes, levels), FORMAT), torch.tensor(-math.log(15)))
    one_code = codes[:, :1].expand(1, 15, 2)
    assert peaked({}, fsq_outputs(one_code, levels), FORMAT).abs() < 1e-6


def test_hard_assignment_is_fsq_rounding():
    levels = [8, 8, 6, 5]
    z = torch.randn(1, 2000, 4) * 2
    fsq = FSQ(dim=4, levels=levels)
    bounded = fsq.to_grid(z[0])
    level_index = torch.stack([log_p.argmax(-1) for log_p in level_log_probs(bounded, levels, 0.5)], -1)
    basis = torch.tensor([1, 8, 64, 384])
    assert torch.equal((level_index * basis).sum(-1), fsq(z).indices[0])


def test_gradient_reaches_latents_and_encoder():
    torch.manual_seed(0)
    enc = TransformerEncoder(FORMAT, width=32, depth=1, heads=4, down_t=1, output_emb_width=4, dropout=0.0)
    tokenizer = Tokenizer(enc, FSQ(dim=4, levels=[8, 5, 5, 5]), TransformerDecoder(FORMAT, encoder=enc))
    outputs = tokenizer(torch.randn(2, 16, 12))
    outputs["latents"].retain_grad()
    CodebookEntropyLoss()({}, outputs, FORMAT).backward()
    assert torch.isfinite(outputs["latents"].grad).all() and outputs["latents"].grad.abs().sum() > 0
    assert enc.proj_in.weight.grad.abs().sum() > 0


def test_minimising_uses_more_codes():
    torch.manual_seed(0)
    levels = [8, 8, 6, 5]
    fsq = FSQ(dim=4, levels=levels)
    latents = (0.05 * torch.randn(1, 512, 4)).requires_grad_()
    loss = CodebookEntropyLoss()
    before = fsq(latents).indices.unique().numel()
    optimiser = torch.optim.Adam([latents], lr=0.05)
    for _ in range(150):
        value = loss({}, {"quantizer": fsq, "pre_quantized": latents}, FORMAT)
        optimiser.zero_grad()
        value.backward()
        optimiser.step()
    after = fsq(latents).indices.unique().numel()
    assert before <= 16 and after > 10 * before


def test_padded_tokens_are_ignored():
    torch.manual_seed(0)
    loss = CodebookEntropyLoss()
    levels = [8, 5, 5, 5]
    latents = torch.randn(2, 8, 4)
    mask = torch.zeros(2, 32, dtype=torch.bool)
    mask[0, :32], mask[1, :13] = True, True  # clip 2 covers tokens 0..3 (4 frames per token)
    garbage = latents.clone()
    garbage[1, 4:] = 10 * torch.randn(4, 4)
    masked = loss({"mask": mask}, fsq_outputs(latents, levels), FORMAT)
    torch.testing.assert_close(masked, loss({"mask": mask}, fsq_outputs(garbage, levels), FORMAT))
    real = torch.cat([latents[0], latents[1, :4]])[None]
    torch.testing.assert_close(masked, loss({}, fsq_outputs(real, levels), FORMAT))


def test_bfloat16_latents():
    latents = torch.randn(2, 8, 4, dtype=torch.bfloat16)
    value = CodebookEntropyLoss()({}, fsq_outputs(latents, [8, 8, 6, 5]), FORMAT)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    torch.testing.assert_close(value, CodebookEntropyLoss()({}, fsq_outputs(latents.float(), [8, 8, 6, 5]), FORMAT))


def test_the_levels_come_from_the_quantizer_the_recipe_built():
    """The loss takes no levels of its own: the same latents under another FSQ grid give another value."""
    latents = torch.randn(1, 64, 4, generator=torch.Generator().manual_seed(3))
    loss = CodebookEntropyLoss()
    coarse, fine = (loss({}, fsq_outputs(latents, levels), FORMAT) for levels in ([3, 3, 3, 3], [8, 8, 8, 8]))
    # the soft batch entropy is bounded by ln K of the quantizer's own grid
    assert coarse > -math.log(81) - 1e-4 and fine < coarse


def test_a_projected_fsq_is_regularised_in_its_own_space():
    torch.manual_seed(0)
    levels = [8, 8, 6, 5]
    enc = TransformerEncoder(FORMAT, width=32, depth=1, heads=4, down_t=1, output_emb_width=16, dropout=0.0)
    fsq = FSQ(dim=16, levels=levels)
    tokenizer = Tokenizer(enc, fsq, TransformerDecoder(FORMAT, encoder=enc))
    outputs = tokenizer(torch.randn(2, 16, 12))
    assert outputs["latents"].shape[-1] == 16 and outputs["pre_quantized"].shape == (2, 8, 4)
    # the values FSQ rounds: soft assignments peak on the codes it picked
    bounded = fsq.to_grid(outputs["pre_quantized"].reshape(-1, 4))
    level_index = torch.stack([log_p.argmax(-1) for log_p in level_log_probs(bounded, levels, 0.5)], -1)
    assert torch.equal((level_index * torch.tensor([1, 8, 64, 384])).sum(-1), outputs["indices"].reshape(-1))

    CodebookEntropyLoss()({}, outputs, FORMAT).backward()
    assert fsq.fsq.project_in.weight.grad.abs().sum() > 0 and enc.proj_in.weight.grad.abs().sum() > 0


def test_a_quantizer_without_levels_or_its_input_is_refused():
    loss = CodebookEntropyLoss()
    with pytest.raises(MotionhubError, match=r"outputs\['quantizer'\], which the tokenizer's outputs lack"):
        loss({}, {"latents": torch.randn(2, 8, 4), "pre_quantized": torch.randn(2, 8, 4)}, FORMAT)
    with pytest.raises(MotionhubError, match=r"quantizer VQ has none: use it with the fsq quantizer"):
        loss({}, {"quantizer": VQ(dim=4, codebook_size=16), "latents": torch.randn(2, 8, 4)}, FORMAT)
    with pytest.raises(MotionhubError, match=r"should have 4 channels for levels \[8, 8, 6, 5\], but has 3 channels"):
        loss({}, fsq_outputs(torch.randn(2, 8, 3), [8, 8, 6, 5]), FORMAT)
    with pytest.raises(MotionhubError, match=r"but has none"):
        loss({}, {"quantizer": FSQ(dim=4, levels=[8, 8, 6, 5])}, FORMAT)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(temperature=0.0), "temperature"),
        (dict(temperature=-1.0), "temperature"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CodebookEntropyLoss(**kwargs)


def test_recipe_arguments_are_type_checked():
    component = Component("loss", "codebook_entropy", CodebookEntropyLoss, "motionhub_losses")
    assert bind_arguments(component, dict(temperature=0.5, diversity_weight=2), "losses[0]") == []
    problems = dict(bind_arguments(component, dict(levels=[8, 5], temperature="low"), "losses[0]"))
    assert set(problems) == {"losses[0].levels", "losses[0].temperature"}


def test_token_weights_follow_the_frames_each_token_covers_when_tokens_do_not_divide_frames():
    from motionhub_losses.codebook import _token_weights

    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[0, :12] = True  # 12 real frames of 16
    mask[1] = True
    weights = _token_weights(mask, 2, 15).view(2, 15)  # 15 tokens for 16 frames, as a track encoder gives
    # token k covers frames floor(16 k / 15) .. ceil(16 (k + 1) / 15) - 1: tokens 0..11 touch a real frame
    assert (weights[0] > 0).tolist() == [True] * 12 + [False] * 3
    assert (weights[1] > 0).all() and weights.sum().item() == pytest.approx(1.0)
    assert torch.equal(_token_weights(mask, 2, 4).view(2, 4) > 0,
                       torch.tensor([[True, True, True, False], [True] * 4]))
