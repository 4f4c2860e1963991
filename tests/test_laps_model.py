"""The LAPS re-implementation's tokenizer (encoder and decoder ``laps``): sizes, torch-equal
layers, blocked dropout attention, causality, decoder queries, checkpoint import, training.

Expected values come from torch's own transformer modules and from the reference's shapes
and formulas, never from the code under test.
"""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from vector_quantize_pytorch import FSQ as LibraryFSQ

from motionhub.use import importing
from motionhub.errors import MotionhubError
from motionhub.data.formats import MotionFormat
from motionhub.data.layouts import point_tracks
from motionhub.recipes import recipe_from_tree
from motionhub.use.trained_run import load_run
from motionhub.model.tokenizer import Tokenizer
from motionhub.train.trainer import train
from motionhub_amplify import LapsDecoder, LapsEncoder, laps
from motionhub_quantizers import FSQ
from motionhub_synthetic.tracks import write_velocity_files

SIZE = (48, 64)  # (height, width) pixels
RADIUS = 7.0
SMALL = dict(hidden_dim=32, num_heads=4, num_layers=2, codes=5, horizon=5)  # T = 5: 4 steps
TRACKS = 9
LEVELS = [8, 5, 5]


def tracks_format(views: int = 1, tracks: int = TRACKS, image_size=SIZE):
    return point_tracks(views, tracks, fps=20.0, image_size=image_size)


def small_model(causal: bool = True, queries: str = "points", views: int = 1, dropout: float = 0.1) -> Tokenizer:
    fmt = tracks_format(views)
    encoder = LapsEncoder(fmt, causal=causal, dropout=dropout, **SMALL)
    quantizer = FSQ(dim=encoder.out_dim, levels=LEVELS)
    return Tokenizer(encoder, quantizer, LapsDecoder(fmt, dim=quantizer.dim, encoder=encoder, queries=queries))


def random_points(batch: int, frames: int = 5, views: int = 1, tracks: int = TRACKS, step_px: float = 3.0):
    """Random-walk tracks (B, T, V, N, 2), (row, col) normalised by SIZE; some steps exceed the radius."""
    size = torch.tensor(SIZE, dtype=torch.float32)
    start = torch.rand(batch, 1, views, tracks, 2) * 1.6 - 0.8
    steps = torch.randn(batch, frames - 1, views, tracks, 2) * step_px * 2 / size
    return torch.cat([start, start + steps.cumsum(1)], dim=1)


def reference_velocities(points: torch.Tensor, image_size=SIZE, radius: float = RADIUS) -> torch.Tensor:
    """The reference's model input, written out: clamp((x, y) pixel step / radius, -1, 1)."""
    pixels = (points[:, 1:] - points[:, :-1]) * torch.tensor(image_size, dtype=torch.float32) / 2
    return torch.stack([pixels[..., 1], pixels[..., 0]], dim=-1).div(radius).clamp(-1, 1)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- the reference's model, from torch's modules and the reference's attribute names ------------


class TorchLaps(nn.Module):
    """LAPS's MotionTokenizer as its description gives it: velocities (B, T - 1, N, 2) ->
    (logits (B, T - 1, N, W^2), FSQ indices (B, d))."""

    def __init__(self, steps: int, points: int, hidden: int, heads: int, layers: int, codes: int,
                 levels: list[int], classes: int = 225):
        super().__init__()
        tokens = steps * points
        self.input_projection = nn.Linear(2, hidden)
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, hidden))
        self.encoder = nn.Module()
        self.encoder.transformer_encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(
            hidden, heads, 4 * hidden, 0.1, activation="gelu", batch_first=True), layers, enable_nested_tensor=False)
        self.encoder_output_projection = nn.Linear(tokens, codes)
        self.quantizer = LibraryFSQ(levels=levels, dim=hidden)
        self.decoder = nn.Module()
        self.decoder.transformer_decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(
            hidden, heads, 4 * hidden, 0.1, activation="gelu", batch_first=True), layers)
        self.decoder_queries = nn.Parameter(torch.randn(1, points, hidden))
        self.output_projection = nn.Linear(hidden, classes)
        self.register_buffer("causal_mask", nn.Transformer.generate_square_subsequent_mask(tokens))

    def forward(self, velocities: torch.Tensor):
        batch, steps, points, _ = velocities.shape
        x = self.input_projection(velocities.reshape(batch, steps * points, 2)) + self.pos_embed
        x = self.encoder.transformer_encoder(x, mask=self.causal_mask)
        z = self.encoder_output_projection(x.transpose(1, 2)).transpose(1, 2)
        quantized, indices = self.quantizer(z)
        decoded = self.decoder.transformer_decoder(self.decoder_queries.expand(batch, -1, -1), quantized)
        logits = self.output_projection(decoded)
        return logits[:, None].expand(-1, steps, -1, -1), indices


def torch_reference(seed: int = 0) -> TorchLaps:
    torch.manual_seed(seed)
    return TorchLaps(steps=4, points=TRACKS, hidden=32, heads=4, layers=2, codes=5, levels=LEVELS).eval()


def reference_key_count(hidden_layers: int = 2) -> int:
    # input 2 + pos 1 + per encoder layer 12 + projection 2 + FSQ 4 + per decoder layer 18 + queries 1 + head 2 + mask 1
    return 2 + 1 + 12 * hidden_layers + 2 + 4 + 18 * hidden_layers + 1 + 2 + 1


# --- sizes ---------------------------------------------------------------------------------------


def test_the_reference_configuration_has_the_reference_parameter_count():
    fmt = point_tracks(1, 400, fps=20.0, image_size=(480, 853))
    encoder = LapsEncoder(fmt)
    quantizer = FSQ(dim=encoder.out_dim, levels=[8, 8, 4, 4])
    decoder = LapsDecoder(fmt, dim=quantizer.dim, encoder=encoder)
    model = Tokenizer(encoder, quantizer, decoder)
    per_layer_encoder = 3 * 768 * 768 + 3 * 768 + 768 * 768 + 768 + 768 * 3072 + 3072 + 3072 * 768 + 768 + 4 * 768
    per_layer_decoder = per_layer_encoder + 3 * 768 * 768 + 3 * 768 + 768 * 768 + 768 + 2 * 768
    assert (per_layer_encoder, per_layer_decoder) == (7_087_872, 9_451_776)
    assert count(encoder.embed) == 2_304 and encoder.positions.numel() == 4_608_000
    assert count(encoder.layers) == 14_175_744 and count(encoder.to_codes) == 96_016
    assert count(quantizer) == 6_916
    assert count(decoder.layers) == 18_903_552 and decoder.queries.numel() == 307_200
    assert count(decoder.head) == 173_025
    assert count(model) == 38_272_757
    assert encoder.downsample == 1
    timed = LapsDecoder(fmt, dim=768, encoder=encoder, queries="steps_points")
    assert count(timed) - count(decoder) == 15 * 768


def test_shapes_and_downsampling():
    model = small_model(views=2)
    out = model(random_points(3, views=2))
    assert out["logits"].shape == (3, 4, 2, TRACKS, 225)
    assert out["latents"].shape == (3, 5, 32) and out["indices"].shape == (3, 5)
    fmt = tracks_format()
    halved = LapsEncoder(fmt, **{**SMALL, "horizon": 6, "codes": 3})
    assert halved(random_points(2, frames=6)).shape == (2, 3, 32) and halved.downsample == 2
    uneven = LapsEncoder(fmt, **{**SMALL, "codes": 4})  # 4 codes of a 5-frame window, as AMPLIFY's T - 1
    assert uneven(random_points(2)).shape == (2, 4, 32) and uneven.downsample == 1


def test_settings_that_cannot_work_are_refused():
    fmt = tracks_format()
    with pytest.raises(ValueError, match=r"codes must be 1 to horizon \(5\).*got codes 6"):
        LapsEncoder(fmt, **{**SMALL, "codes": 6})
    with pytest.raises(ValueError, match="image_size"):
        LapsEncoder(tracks_format(image_size=None), **SMALL)
    assert LapsEncoder(tracks_format(image_size=None), image_size=[48, 64], **SMALL).image_size == (48, 64)
    with pytest.raises(ValueError, match="views, tracks, 2"):
        LapsEncoder(MotionFormat("features", (263,), fps=20.0))
    encoder = LapsEncoder(fmt, **SMALL)
    with pytest.raises(MotionhubError, match=r"exactly 5 frames.*got 6.*data.window: 5"):
        encoder(random_points(1, frames=6))


# --- layers equal torch's ------------------------------------------------------------------------

ENCODER_LAYER = {  # torch's nn.TransformerEncoderLayer name -> PostNormLayer name
    "self_attn.in_proj_weight": "self_attn.qkv.weight", "self_attn.in_proj_bias": "self_attn.qkv.bias",
    "self_attn.out_proj.weight": "self_attn.out.weight", "self_attn.out_proj.bias": "self_attn.out.bias",
    "linear1.weight": "ff_in.weight", "linear1.bias": "ff_in.bias",
    "linear2.weight": "ff_out.weight", "linear2.bias": "ff_out.bias",
    "norm1.weight": "norm1.weight", "norm1.bias": "norm1.bias",
    "norm2.weight": "norm2.weight", "norm2.bias": "norm2.bias",
}
DECODER_LAYER = {
    **ENCODER_LAYER,
    "multihead_attn.in_proj_weight": "cross_attn.qkv.weight", "multihead_attn.in_proj_bias": "cross_attn.qkv.bias",
    "multihead_attn.out_proj.weight": "cross_attn.out.weight", "multihead_attn.out_proj.bias": "cross_attn.out.bias",
    "norm3.weight": "norm3.weight", "norm3.bias": "norm3.bias",
}


def copied_layers(cross: bool, dropout: float):
    """(torch layer, ours) with the same random weights (biases and norms made non-trivial)."""
    torch_cls = nn.TransformerDecoderLayer if cross else nn.TransformerEncoderLayer
    theirs = torch_cls(32, 4, 128, dropout, activation="gelu", batch_first=True)
    with torch.no_grad():
        for param in theirs.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    ours = laps.PostNormLayer(32, 4, dropout, causal=not cross, cross=cross)
    names = DECODER_LAYER if cross else ENCODER_LAYER
    assert set(names.values()) == set(ours.state_dict())
    ours.load_state_dict({names[k]: v for k, v in theirs.state_dict().items()})
    return theirs, ours


@pytest.mark.parametrize("cross", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_layers_compute_what_torchs_transformer_layers_compute(cross, training):
    torch.manual_seed(0)
    theirs, ours = copied_layers(cross, dropout=0.0 if training else 0.1)
    theirs.train(training), ours.train(training)
    x = torch.randn(2, 12, 32, requires_grad=True)
    memory = torch.randn(2, 5, 32, requires_grad=True)
    if cross:
        expected, got = theirs(x, memory), ours(x, memory)
        inputs = [x, memory]
    else:
        mask = nn.Transformer.generate_square_subsequent_mask(12)
        expected, got = theirs(x, src_mask=mask, is_causal=True), ours(x)
        inputs = [x]
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    upstream = torch.randn_like(expected)
    names = DECODER_LAYER if cross else ENCODER_LAYER
    their_params = dict(theirs.named_parameters())
    our_params = dict(ours.named_parameters())
    pairs = [(their_params[t], our_params[o]) for t, o in names.items()]
    expected_grads = torch.autograd.grad(expected, inputs + [t for t, _ in pairs], upstream)
    got_grads = torch.autograd.grad(got, inputs + [o for _, o in pairs], upstream)
    for want, have in zip(expected_grads, got_grads):
        torch.testing.assert_close(have, want, rtol=0, atol=1e-4 * max(1.0, want.abs().max().item()))
    if not training:  # and torch's inference fast path
        with torch.no_grad():
            fast = theirs(x, memory) if cross else theirs(x, src_mask=mask, is_causal=True)
            torch.testing.assert_close(ours(x, memory) if cross else ours(x), fast, rtol=0, atol=1e-5)


# --- blocked dropout attention -------------------------------------------------------------------


@pytest.mark.parametrize("causal", [True, False])
def test_blocked_attention_without_dropout_is_sdpa(causal, monkeypatch):
    monkeypatch.setattr(laps, "BLOCK_SCORES", 16 * 2 * 3 * 37)  # 16 rows a block: three blocks
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 37, 8, dtype=torch.float64, requires_grad=True) for _ in range(3))
    ours = laps._BlockedAttention.apply(q, k, v, 0.0, causal)
    theirs = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    upstream = torch.randn_like(ours)
    got, expected = torch.autograd.grad(ours, (q, k, v), upstream), torch.autograd.grad(theirs, (q, k, v), upstream)
    for have, want in zip(got, expected):
        torch.testing.assert_close(have, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("causal", [True, False])
def test_blocked_dropout_gradients_match_its_forward(causal, monkeypatch):
    monkeypatch.setattr(laps, "BLOCK_SCORES", 16 * 2 * 20)  # blocks of 16 and 4 rows
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 20, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))

    def dropped(q, k, v):
        torch.manual_seed(7)  # the same dropout masks on every call
        return laps.attend(q, k, v, dropout=0.3, causal=causal)

    assert torch.autograd.gradcheck(dropped, (q, k, v), fast_mode=True)


def test_blocked_dropout_zeroes_attention_weights_and_rescales_the_rest(monkeypatch):
    monkeypatch.setattr(laps, "BLOCK_SCORES", 16 * 4 * 64)
    torch.manual_seed(0)
    length, p = 64, 0.25
    q, k = torch.randn(1, 4, length, length), torch.randn(1, 4, length, length)
    v = torch.eye(length).expand(1, 4, -1, -1)  # the output rows are the attention weights
    weights = laps.attend(q, k, v, dropout=p, causal=True)
    plain = torch.softmax((q @ k.transpose(-1, -2) / length**0.5).masked_fill(
        torch.ones(length, length, dtype=torch.bool).triu(1), -torch.inf), dim=-1)
    kept = weights != 0
    torch.testing.assert_close(weights[kept], plain[kept] / (1 - p), rtol=1e-5, atol=1e-7)
    assert not kept.triu(1).any()
    visible = 4 * length * (length + 1) // 2
    dropped_share = 1 - kept.sum().item() / visible
    assert abs(dropped_share - p) < 0.02


# --- causality and the sequence projection ---------------------------------------------------------


def test_causal_tokens_never_see_later_tokens_but_every_code_does():
    torch.manual_seed(0)
    encoder = LapsEncoder(tracks_format(), **SMALL).eval()
    points = random_points(2)
    later = points.clone()
    later[:, 3, 0, 4] += 0.05  # frame 3 enters steps 2 and 3 of point 4: first changed token 2 * 9 + 4
    with torch.no_grad():
        before, after = encoder.tokens(points), encoder.tokens(later)
        codes_before, codes_after = encoder(points), encoder(later)
    first = 2 * TRACKS + 4
    assert torch.equal(before[:, :first], after[:, :first])
    assert not torch.allclose(before[:, first], after[:, first])
    for j in range(SMALL["codes"]):  # every code mixes all tokens, the changed ones included
        assert not torch.allclose(codes_before[:, j], codes_after[:, j])

    full = LapsEncoder(tracks_format(), causal=False, **SMALL).eval()
    with torch.no_grad():
        assert not torch.allclose(full.tokens(points)[:, :first], full.tokens(later)[:, :first])


def test_codes_are_the_sequence_projection_of_the_tokens():
    torch.manual_seed(0)
    encoder = LapsEncoder(tracks_format(), **SMALL).eval()
    points = random_points(2)
    with torch.no_grad():
        tokens = encoder.tokens(points)
        expected = encoder.to_codes(tokens.transpose(1, 2)).transpose(1, 2)  # a Linear over the sequence axis
        torch.testing.assert_close(encoder(points), expected, rtol=0, atol=1e-5)


# --- decoder queries -------------------------------------------------------------------------------


def test_point_queries_repeat_the_logits_over_steps_and_step_queries_do_not():
    torch.manual_seed(0)
    codes = torch.randn(2, 5, 32)
    fmt = tracks_format(views=2)
    points = LapsDecoder(fmt, dim=32, num_heads=4, horizon=5).eval()
    timed = LapsDecoder(fmt, dim=32, num_heads=4, horizon=5, queries="steps_points").eval()
    with torch.no_grad():
        same, differ = points(codes)["logits"], timed(codes)["logits"]
    assert same.shape == differ.shape == (2, 4, 2, TRACKS, 225)
    for t in range(1, 4):
        assert torch.equal(same[:, t], same[:, 0])
        assert not torch.allclose(differ[:, t], differ[:, 0])


def test_the_decoder_sees_the_codes_as_a_set():
    torch.manual_seed(0)
    decoder = LapsDecoder(tracks_format(), dim=32, num_heads=4, horizon=5).eval()
    codes = torch.randn(2, 5, 32)
    with torch.no_grad():
        logits = decoder(codes)["logits"]
        permuted = decoder(codes[:, torch.randperm(5)])["logits"]
    torch.testing.assert_close(permuted, logits, rtol=0, atol=1e-5)


def test_decoder_results_do_not_depend_on_the_batch():
    torch.manual_seed(0)
    decoder = LapsDecoder(tracks_format(), dim=32, num_heads=4, horizon=5).eval()
    codes = torch.randn(3, 5, 32)
    with torch.no_grad():
        together = decoder(codes)["logits"]
        alone = torch.cat([decoder(codes[i : i + 1])["logits"] for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-6)


def test_decoded_tracks_start_at_the_input_and_follow_the_argmax():
    torch.manual_seed(0)
    model = small_model().eval()
    points = random_points(2)
    with torch.no_grad():
        outputs = model(points)
    decoded = model.reconstruction(outputs, points)
    assert decoded.shape == points.shape and torch.equal(decoded[:, 0], points[:, 0])
    label = outputs["logits"][0, 0, 0, 0].argmax().item()
    step_px = torch.tensor([label // 15 - 7, label % 15 - 7], dtype=torch.float32)  # (row, col) pixels
    expected = points[0, 0, 0, 0] + step_px * 2 / torch.tensor(SIZE, dtype=torch.float32)
    torch.testing.assert_close(decoded[0, 1, 0, 0], expected)


# --- checkpoint import -----------------------------------------------------------------------------


def test_a_reference_state_dict_imports_and_gives_the_reference_logits():
    reference = torch_reference()
    state = reference.state_dict()
    assert len(state) == reference_key_count()
    model = small_model().eval()
    converted = importing.convert_state_dict("laps", model, importing.strip_wrappers(
        {f"module._orig_mod.{key}": value for key, value in state.items()}))
    model.load_state_dict(converted)
    points = random_points(3)
    with torch.no_grad():
        expected_logits, expected_indices = reference(reference_velocities(points)[:, :, 0])
        outputs = model(points)
    torch.testing.assert_close(outputs["logits"][:, :, 0], expected_logits, rtol=0, atol=1e-5)
    assert torch.equal(outputs["indices"], expected_indices.long())


def reference_state(changes: dict | None = None) -> dict:
    """A reference state dict with some tensors replaced (None: removed)."""
    state = dict(torch_reference().state_dict())
    for key, value in (changes or {}).items():
        if value is None:
            del state[key]
        else:
            state[key] = value
    return state


@pytest.mark.parametrize(("changes", "message"), [
    ({"decoder_queries": None}, r"1 model tensors are missing.*decoder_queries"),
    ({"vision.weight": torch.zeros(1)}, r"1 checkpoint tensors have no place.*vision.weight"),
    ({"output_projection.weight": torch.zeros(100, 32)},
     r"shapes differ; the first: output_projection.weight is \(100, 32\) in the checkpoint"),
    ({"causal_mask": torch.zeros(36, 36)}, r"attention is full.*encoder.causal=false"),
    ({"causal_mask": torch.zeros(35, 35)}, r"is \(35, 35\).*36 tokens"),
    ({"causal_mask": torch.randn(36, 36)}, r"other than 0 and -inf"),
])
def test_import_names_what_does_not_fit(changes, message):
    with pytest.raises(MotionhubError, match=message):
        importing.convert_state_dict("laps", small_model(), reference_state(changes))


def test_a_causal_checkpoint_does_not_load_into_a_full_attention_recipe():
    with pytest.raises(MotionhubError, match=r"attention is causal.*encoder.causal=true"):
        importing.convert_state_dict("laps", small_model(causal=False), reference_state())
    full = reference_state({"causal_mask": torch.zeros(36, 36)})
    assert len(importing.convert_state_dict("laps", small_model(causal=False), full)) == reference_key_count() - 1
    # a checkpoint without the mask (saved without its 144 MB at the reference's size) still loads
    unmasked = reference_state({"causal_mask": None})
    assert len(importing.convert_state_dict("laps", small_model(), unmasked)) == reference_key_count() - 1


def test_import_refuses_other_models():
    fmt = tracks_format()
    from motionhub_amplify import AmplifyDecoder, AmplifyEncoder

    amplify = Tokenizer(AmplifyEncoder(fmt, hidden_dim=32, num_heads=4, horizon=5), FSQ(dim=32, levels=LEVELS),
                        AmplifyDecoder(fmt, dim=32, num_heads=4, horizon=5))
    with pytest.raises(MotionhubError, match=r"encoder \(AmplifyEncoder\) has no counterpart in a laps checkpoint .*; use encoder: \{name: laps\}"):
        importing.convert_state_dict("laps", amplify, reference_state())
    with pytest.raises(MotionhubError, match="no reference name.*step_emb"):
        importing.convert_state_dict("laps", small_model(queries="steps_points"), reference_state())


# --- recipes: import a checkpoint file, train ------------------------------------------------------


@pytest.fixture(scope="module")
def velocity_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("laps") / "velocities"
    write_velocity_files(root, segments=4, frames=6, tracks=TRACKS, horizon=5, image_size=SIZE, seed=0)
    return root


def laps_recipe(folder, out, **train) -> dict:
    return {
        "run": {"name": "laps", "out": str(out), "seed": 0},
        "data": {"name": "laps_velocities", "root": str(folder), "image_size": list(SIZE), "val_fraction": 0.25,
                 "window": 5},
        "encoder": {"name": "laps", **SMALL},
        "quantizer": {"name": "fsq", "levels": LEVELS},
        "decoder": {"name": "laps"},
        "losses": [{"name": "focal", "gamma": 2.0, "alpha": 1.0, "center_weight": 0.25, "static_threshold": 0.1}],
        "train": {"batch_size": 8, "iters": 4, "log_every": 1, **train},
        "eval": {"train_codebook": False, "metrics": ["tracks"]},
    }


@pytest.mark.parametrize("wrapped", [False, True])
def test_import_command_reads_a_bare_or_wrapped_checkpoint(velocity_folder, tmp_path, wrapped):
    import yaml

    reference = torch_reference()
    state = reference.state_dict()
    torch.save({"model": state} if wrapped else state, tmp_path / "best.pth")
    (tmp_path / "laps.yaml").write_text(yaml.safe_dump(laps_recipe(velocity_folder, tmp_path / "unused")))
    imported = importing.import_checkpoint("laps", tmp_path / "best.pth", tmp_path / "laps.yaml", tmp_path / "run")
    assert imported.tensors == reference_key_count() - 1 and imported.step == 0
    loaded = load_run(imported.run)
    points = random_points(2)
    with torch.no_grad():
        expected, _ = reference(reference_velocities(points)[:, :, 0])
        torch.testing.assert_close(loaded.model.eval()(points)["logits"][:, :, 0], expected, rtol=0, atol=1e-5)


def test_training_through_the_trainer_lowers_the_loss(velocity_folder, tmp_path):
    tree = laps_recipe(velocity_folder, tmp_path / "run", iters=20, lr=3e-3, log_every=1)
    run_dir = train(recipe_from_tree(tree, "laps.yaml"))
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["focal"] for r in rows if "split" not in r]
    assert len(losses) == 20
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.75 * first, (first, last)
    assert rows[-1]["split"] == "val" and torch.isfinite(torch.tensor(rows[-1]["track_mse"]))


def test_the_plugin_registers_both_parts():
    from motionhub.plugins.manager import get_registry

    registry = get_registry()
    assert registry.get("encoder", "laps").cls is LapsEncoder
    assert registry.get("decoder", "laps").cls is LapsDecoder
