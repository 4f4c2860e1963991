"""motionhub_amplify: sizes, causality, labels, the fast decoder, checkpoint keys and losses."""

import math

import pytest
import torch
import torch.nn.functional as F
from vector_quantize_pytorch import FSQ

from motionhub.errors import MotionhubError
from motionhub.data.formats import MotionFormat
from motionhub.model.quantizer import Quantizer, QuantizerOutput
from motionhub.model.tokenizer import Tokenizer
from motionhub_amplify import (
    AmplifyDecoder,
    AmplifyEncoder,
    CodeHistogramEntropy,
    FocalLoss,
    LapsDecoder,
    LapsEncoder,
    RelativeCE,
    load_reference_state_dict,
    register_decoders,
    register_encoders,
    register_losses,
)
from motionhub_amplify.tracks import decode_points, pixel_positions, relative_labels

SMALL = dict(num_heads=4, horizon=6)
HIDDEN = 32


def tracks_format(views: int = 2, tracks: int = 5) -> MotionFormat:
    return MotionFormat("tracks", (views, tracks, 2), fps=10.0)


class FSQQuantizer(Quantizer):
    """vector_quantize_pytorch FSQ behind motionhub's quantizer interface."""

    def __init__(self, levels: list[int], dim: int):
        super().__init__()
        self.fsq = FSQ(levels=levels, dim=dim)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        quantized, indices = self.fsq(z)
        return QuantizerOutput(quantized, indices, z.new_zeros(()))


def small_tokenizer(views: int = 2, tracks: int = 5, grid: tuple[int, int] = (5, 5)) -> Tokenizer:
    fmt = tracks_format(views, tracks)
    return Tokenizer(
        AmplifyEncoder(fmt, hidden_dim=HIDDEN, num_layers=2, **SMALL),
        FSQQuantizer([5, 5, 3], HIDDEN),
        AmplifyDecoder(fmt, dim=HIDDEN, num_layers=1, grid=list(grid), **SMALL),
    )


def random_tracks(batch: int, frames: int, views: int, tracks: int, size=(64, 64), step_px: float = 2.0):
    """Random-walk tracks (B, T, V, N, 2), normalised to [-1, 1]."""
    size = torch.tensor(size, dtype=torch.float32)
    start = torch.rand(batch, 1, views, tracks, 2) * 1.6 - 0.8
    steps = torch.randn(batch, frames - 1, views, tracks, 2) * step_px * 2 / size
    return torch.cat([start, start + steps.cumsum(1)], dim=1).clamp(-1, 1)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- sizes -------------------------------------------------------------------------------------


def test_parameter_counts_equal_the_reference():
    fsq = FSQ(levels=[8, 8, 6, 5], dim=768)
    with torch.device("meta"):
        encoder, decoder = AmplifyEncoder(tracks_format(1, 400)), AmplifyDecoder(tracks_format(1, 400), dim=768)
        two_views = AmplifyEncoder(tracks_format(2, 400)), AmplifyDecoder(tracks_format(2, 400), dim=768)
    assert count(encoder) == 14_786_304
    assert count(decoder) == 15_439_585
    assert count(fsq) == 6_916 and fsq.codebook_size == 1920
    assert count(encoder) + count(decoder) + count(fsq) == 30_232_805
    assert sum(map(count, two_views)) + count(fsq) == 30_847_973


def test_shapes():
    model = small_tokenizer(views=2, tracks=5, grid=(5, 3))
    out = model(random_tracks(3, 6, 2, 5))
    assert out["logits"].shape == (3, 5, 2, 5, 15)
    assert out["latents"].shape == (3, 5, HIDDEN)
    assert out["indices"].shape == (3, 5)
    assert model.encoder.out_dim == HIDDEN and model.downsample == 1


def test_rejects_non_track_formats_and_long_windows():
    with pytest.raises(ValueError, match="views, tracks, 2"):
        AmplifyEncoder(MotionFormat("humanml3d_263", (263,), fps=20.0))
    encoder = AmplifyEncoder(tracks_format(), hidden_dim=HIDDEN, **SMALL)
    with pytest.raises(ValueError, match="horizon"):
        encoder(random_tracks(1, 7, 2, 5))
    decoder = AmplifyDecoder(tracks_format(), dim=HIDDEN, **SMALL)
    with pytest.raises(ValueError, match="horizon"):
        decoder(torch.randn(1, 6, HIDDEN))


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = small_tokenizer()
    points = random_tracks(2, 6, 2, 5)
    RelativeCE(image_size=[64, 64])({"motion": points}, model(points)).backward()
    for name, param in [*model.encoder.named_parameters(), *model.decoder.named_parameters()]:
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_encoder_is_causal():
    torch.manual_seed(0)
    causal = AmplifyEncoder(tracks_format(), hidden_dim=HIDDEN, **SMALL).eval()
    points = random_tracks(2, 6, 2, 5)
    later = points.clone()
    later[:, 4] += 0.1  # frame 4 enters velocities 3 and 4
    with torch.no_grad():
        before, after = causal(points), causal(later)
    assert torch.equal(before[:, :3], after[:, :3])
    assert not torch.allclose(before[:, 3:], after[:, 3:])

    full = AmplifyEncoder(tracks_format(), hidden_dim=HIDDEN, causal=False, **SMALL).eval()
    with torch.no_grad():
        assert not torch.allclose(full(points)[:, :3], full(later)[:, :3])


# --- labels and decoding -----------------------------------------------------------------------


def normalise(pixels, size):
    size = torch.tensor(size, dtype=torch.float32)
    return (torch.tensor(pixels, dtype=torch.float32) - size / 2) / (size / 2)


def test_labels_hand_checked():
    size = (128, 128)
    # one track: still, +1 row / -2 cols, then a jump of (+20, -30) px clipped to the grid border
    pixels = [[64, 64], [64, 64], [65, 62], [85, 32]]
    points = normalise(pixels, size).view(1, 4, 1, 1, 2)
    labels = relative_labels(points, size, (15, 15)).flatten().tolist()
    assert labels == [112, (1 + 7) * 15 + (-2 + 7), (7 + 7) * 15 + (-7 + 7)]


def test_labels_use_rounded_positions_and_per_axis_sizes():
    size = (100, 200)  # rows scale with H, columns with W
    # a sub-pixel step that crosses a rounding boundary counts as one pixel
    points = normalise([[10.4, 20.0], [10.6, 20.0]], size).view(1, 2, 1, 1, 2)
    assert relative_labels(points, size, (3, 3)).item() == (1 + 1) * 3 + 1
    wide = normalise([[10.0, 20.0], [10.0, 21.0]], size).view(1, 2, 1, 1, 2)
    assert relative_labels(wide, size, (3, 3)).item() == 1 * 3 + 2
    per_sample = torch.cat([points, wide])
    assert relative_labels(per_sample, torch.tensor([size, size]), (3, 3)).flatten().tolist() == [7, 5]


def test_decoding_one_hot_labels_gives_the_rounded_tracks():
    torch.manual_seed(0)
    size, grid = (96, 160), (15, 15)
    points = random_tracks(2, 16, 2, 7, size=size, step_px=1.5)
    labels = relative_labels(points, size, grid)
    assert labels.shape == (2, 15, 2, 7)
    logits = F.one_hot(labels, grid[0] * grid[1]).float()
    rounded = pixel_positions(points, size)
    assert (rounded[:, 1:] - rounded[:, :-1]).abs().max() <= 7  # nothing clipped
    scale = torch.tensor(size, dtype=torch.float32) / 2
    expected = (rounded - scale) / scale
    decoded = decode_points(logits, expected[:, :1], size, grid)
    torch.testing.assert_close(decoded, expected, rtol=0, atol=1e-6)


# --- the fast decoder --------------------------------------------------------------------------


def naive_classify(decoder: AmplifyDecoder, x: torch.Tensor) -> torch.Tensor:
    """The reference's way: MLP on the broadcast (B, T, V, N, 3 * dim) concatenation."""
    batch, steps, dim = x.shape
    views, tracks = decoder.view_emb.shape[0], decoder.track_emb.shape[0]
    shape = (batch, steps, views, tracks, dim)
    cat = torch.cat([
        x[:, :, None, None].expand(shape),
        decoder.track_emb[None, None, None].expand(shape),
        decoder.view_emb[None, None, :, None].expand(shape),
    ], dim=-1)
    y = x[:, :, None, None] + decoder.mlp_out(torch.relu(decoder.mlp_in(cat)))
    return decoder.head(y)


def test_fast_decoder_equals_the_concatenation():
    torch.manual_seed(0)
    decoder = AmplifyDecoder(tracks_format(3, 7), dim=HIDDEN, mlp_hidden_dim=24, grid=[5, 3], **SMALL)
    x = torch.randn(4, 5, HIDDEN, requires_grad=True)
    fast, naive = decoder.classify(x), naive_classify(decoder, x)
    torch.testing.assert_close(fast, naive, rtol=0, atol=1e-5)

    upstream = torch.randn_like(fast)
    params = [x, *decoder.parameters()]
    fast_grads = torch.autograd.grad(fast, params, upstream, allow_unused=True)
    naive_grads = torch.autograd.grad(naive, params, upstream, allow_unused=True)
    for fast_grad, naive_grad in zip(fast_grads, naive_grads):
        if naive_grad is not None:  # gradients sum over the grid: compare relative to their scale
            torch.testing.assert_close(fast_grad, naive_grad, rtol=0, atol=1e-5 * naive_grad.abs().max().item())


def test_decoder_results_do_not_depend_on_the_batch():
    torch.manual_seed(0)
    decoder = AmplifyDecoder(tracks_format(), dim=HIDDEN, **SMALL).eval()
    codes = torch.randn(3, 5, HIDDEN)
    with torch.no_grad():
        together = decoder(codes)["logits"]
        alone = torch.cat([decoder(codes[i : i + 1])["logits"] for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-6)


# --- reference checkpoints ---------------------------------------------------------------------

ENCODER_BLOCK = {  # reference name -> ours, per block
    "ln_1": "norm1", "attn.c_attn": "attn.qkv", "attn.c_proj": "attn.out",
    "ln_2": "norm2", "mlp.c_fc": "mlp.fc", "mlp.c_proj": "mlp.proj",
}
DECODER_BLOCK = {
    "ln_1": "norm1", "self_attn.c_attn": "self_attn.qkv", "self_attn.c_proj": "self_attn.out",
    "ln_2": "norm2", "mlp.c_fc": "mlp.fc", "mlp.c_proj": "mlp.proj", "ln_3": "norm3",
    "cross_attn.q_proj": "cross_attn.q", "cross_attn.kv_proj": "cross_attn.kv", "cross_attn.c_proj": "cross_attn.out",
    "ln_4": "norm4", "mlp_2.c_fc": "mlp2.fc", "mlp_2.c_proj": "mlp2.proj",
}
TOP_LEVEL = {
    "encoder.encoder_proj.weight": "encoder.proj.weight",
    "encoder.encoder_proj.bias": "encoder.proj.bias",
    "encoder.encoder.transformer.pos_emb.weight": "encoder.pos_emb",
    "encoder.encoder.transformer.ln_f.weight": "encoder.norm.weight",
    "decoder.decoder.transformer.pos_emb.weight": "decoder.queries",
    "decoder.decoder.transformer.ln_f.weight": "decoder.norm.weight",
    "decoder.track_pos_emb.weight": "decoder.track_emb",
    "decoder.view_emb.weight": "decoder.view_emb",
    "decoder.decoder_mlp.0.weight": "decoder.mlp_in.weight",
    "decoder.decoder_mlp.0.bias": "decoder.mlp_in.bias",
    "decoder.decoder_mlp.2.weight": "decoder.mlp_out.weight",
    "decoder.decoder_mlp.2.bias": "decoder.mlp_out.bias",
    "decoder.decoder_proj.weight": "decoder.head.weight",
    "decoder.decoder_proj.bias": "decoder.head.bias",
    "quantize.project_in.weight": "quantizer.fsq.project_in.weight",
    "quantize.project_in.bias": "quantizer.fsq.project_in.bias",
    "quantize.project_out.weight": "quantizer.fsq.project_out.weight",
    "quantize.project_out.bias": "quantizer.fsq.project_out.bias",
}


def reference_names() -> dict[str, str]:
    names = dict(TOP_LEVEL)
    for i in range(2):
        for ref, ours in ENCODER_BLOCK.items():
            names[f"encoder.encoder.transformer.h.{i}.{ref}.weight"] = f"encoder.blocks.{i}.{ours}.weight"
    for ref, ours in DECODER_BLOCK.items():
        names[f"decoder.decoder.transformer.h.0.{ref}.weight"] = f"decoder.blocks.0.{ours}.weight"
    return names


def synthetic_reference_state(model: Tokenizer, causal: bool = True) -> dict[str, torch.Tensor]:
    """A state dict with the reference's key names (and its buffers), random values."""
    ours = model.state_dict()
    state = {ref: torch.randn_like(ours[name]) for ref, name in reference_names().items()}
    mask = torch.ones(5, 5, dtype=torch.bool)
    for i in range(2):
        state[f"encoder.encoder.transformer.h.{i}.attn.attn_mask"] = (mask.tril() if causal else mask).view(1, 1, 5, 5)
    state["decoder.decoder.transformer.h.0.self_attn.attn_mask"] = mask.view(1, 1, 5, 5)
    state["decoder.decoder.transformer.h.0.cross_attn.attn_mask"] = mask.view(1, 1, 5, 5)
    state["decoder.fixed_positional_emb.inv_freq"] = torch.rand(HIDDEN // 2)
    return state


def test_reference_keys_load_into_the_right_tensors():
    model = small_tokenizer()
    state = synthetic_reference_state(model)
    load_reference_state_dict(model, {f"_orig_mod.{k}": v for k, v in state.items()})
    ours = model.state_dict()
    for ref, name in reference_names().items():
        assert torch.equal(ours[name], state[ref]), (ref, name)
    assert sum(state[ref].numel() for ref in reference_names()) == count(model)


def test_reference_loading_refuses_mismatches():
    model = small_tokenizer()
    state = synthetic_reference_state(model)
    with pytest.raises(KeyError, match="no place"):
        load_reference_state_dict(model, {**state, "vis_enc.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match="lacks"):
        load_reference_state_dict(model, {k: v for k, v in state.items() if k != "decoder.view_emb.weight"})
    with pytest.raises(ValueError, match="causal"):
        load_reference_state_dict(model, synthetic_reference_state(model, causal=False))


# --- losses ------------------------------------------------------------------------------------


def two_view_case():
    """One step of one track in two views: view 0 still (centre class 4), view 1 one row down (class 7).

    View 0 has flat logits (p = 1/9); view 1 gives its target logit ln 3 (p = 3/11).
    """
    size = (32, 32)
    still = normalise([[10.0, 10.0], [10.0, 10.0]], size)
    down = normalise([[10.0, 10.0], [11.0, 10.0]], size)
    motion = torch.stack([still, down], dim=1).view(1, 2, 2, 1, 2)  # (B, T, V, N, 2)
    logits = torch.zeros(1, 1, 2, 1, 9)
    logits[0, 0, 1, 0, 7] = math.log(3)
    return {"motion": motion, "image_size": size}, {"logits": logits}


def test_relative_ce_hand_checked():
    batch, outputs = two_view_case()
    assert RelativeCE(view_weights=[0.9, 0.1])(batch, outputs, None).item() == pytest.approx(
        0.9 * math.log(9) + 0.1 * math.log(11 / 3), rel=1e-6)
    assert RelativeCE()(batch, outputs, None).item() == pytest.approx(math.log(9) + math.log(11 / 3), rel=1e-6)
    with pytest.raises(MotionhubError, match="view_weights"):
        RelativeCE(view_weights=[1.0])(batch, outputs, None)
    with pytest.raises(MotionhubError, match="grid"):
        RelativeCE(grid=[5, 5])(batch, outputs, None)
    del batch["image_size"]
    with pytest.raises(MotionhubError, match="set the loss's image_size"):
        RelativeCE()(batch, outputs, None)


def test_view_weighting_stays_in_float32_under_mixed_precision():
    batch, outputs = two_view_case()
    loss = RelativeCE(view_weights=[0.9, 0.1])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(batch, outputs, None)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(0.9 * math.log(9) + 0.1 * math.log(11 / 3), rel=1e-6)


def test_padded_steps_do_not_count():
    torch.manual_seed(0)
    motion = random_tracks(2, 6, 2, 5)
    logits = torch.randn(2, 5, 2, 5, 225)
    loss = RelativeCE(view_weights=[0.9, 0.1], image_size=[64, 64])
    mask = torch.ones(2, 6, dtype=torch.bool)
    full = loss({"motion": motion}, {"logits": logits}, None)
    torch.testing.assert_close(loss({"motion": motion, "mask": mask}, {"logits": logits}, None), full)
    mask[:, 4:] = False  # frames 4 and 5 are padding: steps 3 and 4 do not count
    short = loss({"motion": motion[:, :4]}, {"logits": logits[:, :3]}, None)
    torch.testing.assert_close(loss({"motion": motion, "mask": mask}, {"logits": logits}, None), short)


def test_focal_hand_checked():
    batch, outputs = two_view_case()
    focal = FocalLoss(gamma=2.0, alpha=0.5, center_weight=0.25)
    expected = 0.5 * 0.25 * (8 / 9) ** 2 * math.log(9) + 0.5 * (8 / 11) ** 2 * math.log(11 / 3)
    assert focal(batch, outputs, None).item() == pytest.approx(expected, rel=1e-6)


def test_focal_without_focusing_is_relative_ce():
    torch.manual_seed(0)
    batch = {"motion": random_tracks(2, 6, 2, 5)}
    outputs = {"logits": torch.randn(2, 5, 2, 5, 225)}
    plain = FocalLoss(gamma=0.0, alpha=1.0, center_weight=1.0, view_weights=[0.9, 0.1], image_size=[64, 64])
    reference = RelativeCE(view_weights=[0.9, 0.1], image_size=[64, 64])
    torch.testing.assert_close(plain(batch, outputs, None), reference(batch, outputs, None))


# --- plugin ------------------------------------------------------------------------------------


def test_hooks_register_the_components():
    from motionhub.plugins.registry import resolve  # registrations may be 'module:Class' references

    registered = {}
    for hook in (register_encoders, register_decoders, register_losses):
        hook(lambda name, cls, kind=hook.__name__: registered.setdefault(kind, {}).update({name: resolve(cls)}))
    assert registered == {
        "register_encoders": {"amplify": AmplifyEncoder, "laps": LapsEncoder},
        "register_decoders": {"amplify": AmplifyDecoder, "laps": LapsDecoder},
        "register_losses": {"relative_ce": RelativeCE, "focal": FocalLoss,
                            "code_histogram_entropy": CodeHistogramEntropy},
    }
