import math

import pluggy
import pytest
import torch
from torch import nn

from motionhub.plugins import hookspecs
from motionhub.data.formats import MotionFormat
from motionhub.recipes import bind_arguments
from motionhub.plugins.registry import Component
from motionhub.model.tokenizer import Tokenizer
from motionhub_quantizers import FSQ
from motionhub_transformer import TransformerDecoder, TransformerEncoder
from motionhub_transformer.model import Block, sinusoidal_positions


def fmt(shape) -> MotionFormat:
    return MotionFormat("test", tuple(shape), 20.0)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


SMALL = dict(width=32, depth=2, heads=4, down_t=2, output_emb_width=16, max_len=320, dropout=0.0)


@pytest.fixture(autouse=True)
def one_thread():
    """These tensors are tiny: extra intra-op threads only contend for shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("shape", [(263,), (22, 3), (4, 3, 2)])
@pytest.mark.parametrize("down_t", [0, 1, 2, 3])
def test_shapes_round_trip(shape, down_t):
    enc = TransformerEncoder(fmt(shape), **{**SMALL, "down_t": down_t})
    dec = TransformerDecoder(fmt(shape), encoder=enc)
    x = torch.randn(3, 48, *shape)
    z = enc(x)
    assert enc.downsample == dec.upsample == 2**down_t and enc.out_dim == 16
    assert z.shape == (3, 48 // 2**down_t, 16)
    assert dec(z).shape == x.shape


@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_gradients_reach_every_parameter(positional):
    enc = TransformerEncoder(fmt((12,)), **SMALL, positional=positional)
    dec = TransformerDecoder(fmt((12,)), encoder=enc)
    dec(enc(torch.randn(2, 16, 12))).square().mean().backward()
    for name, p in [*enc.named_parameters(), *dec.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("causal", [True, False])
def test_causal_tokens_ignore_future_frames(causal):
    torch.manual_seed(0)
    enc = TransformerEncoder(fmt((12,)), **SMALL, causal=causal).eval()
    dec = TransformerDecoder(fmt((12,)), encoder=enc).eval()
    x = torch.randn(2, 32, 12)
    future = x.clone()
    future[:, 12:] = torch.randn(2, 20, 12)  # frames of tokens 3.. (4 frames per token)
    z, z_future = enc(x), enc(future)
    assert not torch.allclose(z[:, 3:], z_future[:, 3:])
    assert torch.allclose(z[:, :3], z_future[:, :3]) == causal

    codes = z.clone()
    codes[:, 5:] = torch.randn(2, 3, 16)
    recon, recon_future = dec(z), dec(codes)
    assert torch.allclose(recon[:, :20], recon_future[:, :20]) == causal


@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_variable_lengths_up_to_max_len(positional):
    enc = TransformerEncoder(fmt((12,)), **SMALL, positional=positional, causal=True).eval()
    dec = TransformerDecoder(fmt((12,)), encoder=enc).eval()
    x = torch.randn(1, 320, 12)
    full = enc(x)
    for length in (4, 60, 196, 300, 320):
        z = enc(x[:, :length])
        assert z.shape == (1, length // 4, 16) and dec(z).shape == (1, length, 12)
        # absolute positions: a causal prefix gets the same tokens whatever follows it
        torch.testing.assert_close(z, full[:, : length // 4], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="raise max_len"):
        enc(torch.randn(1, 324, 12))
    with pytest.raises(ValueError, match="raise max_len"):
        dec(torch.randn(1, 81, 16))


def test_length_must_be_a_multiple_of_downsample():
    enc = TransformerEncoder(fmt((12,)), **SMALL)
    with pytest.raises(ValueError, match="multiple of downsample"):
        enc(torch.randn(2, 30, 12))


def test_wrong_feature_size_is_reported():
    enc = TransformerEncoder(fmt((12,)), **SMALL)
    with pytest.raises(ValueError, match="12 features"):
        enc(torch.randn(2, 16, 13))


def test_sinusoidal_table():
    table = sinusoidal_positions(75, 8)
    pos, i = 7, 1
    angle = pos / 10_000 ** (i / 4)
    assert table.shape == (75, 8)
    torch.testing.assert_close(table[pos, [i, 4 + i]], torch.tensor([math.sin(angle), math.cos(angle)]))
    assert sinusoidal_positions(3, 7)[:, -1].abs().sum() == 0  # odd width: last channel padded


def test_sinusoidal_positions_are_not_saved():
    enc = TransformerEncoder(fmt((12,)), **SMALL)
    assert not any("positions" in key for key in enc.state_dict())
    learned = TransformerEncoder(fmt((12,)), **SMALL, positional="learned")
    assert learned.state_dict()["backbone.positions.table"].shape == (80, 32)


def test_block_is_pre_layer_norm():
    torch.manual_seed(0)
    block = Block(16, heads=2, dropout=0.0, causal=False)
    x = torch.randn(2, 5, 16)
    q, k, v = (t.reshape(2, 5, 2, 8).transpose(1, 2) for t in block.attn.qkv(block.norm1(x)).chunk(3, dim=-1))
    attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), dim=-1) @ v
    h = x + block.attn.out(attn.transpose(1, 2).reshape(2, 5, 16))
    expected = h + block.mlp[2](torch.nn.functional.gelu(block.mlp[0](block.norm2(h))))
    torch.testing.assert_close(block(x), expected, atol=1e-5, rtol=1e-5)


def test_parameter_count_formula():
    d, s, w, depth, c, tokens = 12, 4, 32, 2, 16, 80
    block = 12 * w * w + 13 * w  # q/k/v, out, MLP (ratio 4) with biases, two LayerNorms
    enc = TransformerEncoder(fmt((d,)), **SMALL, positional="learned")
    dec = TransformerDecoder(fmt((d,)), encoder=enc)
    assert n_params(enc) == (s * d * w + w) + tokens * w + depth * block + 2 * w + (w * c + c)
    assert n_params(dec) == (c * w + w) + tokens * w + depth * block + 2 * w + (w * s * d + s * d)
    assert n_params(TransformerEncoder(fmt((d,)), **SMALL)) == n_params(enc) - tokens * w


def test_decoder_mirrors_encoder():
    enc = TransformerEncoder(fmt((12,)), width=48, depth=3, heads=6, down_t=1, output_emb_width=24,
                             causal=True, positional="learned", max_len=100, dropout=0.2)
    dec = TransformerDecoder(fmt((12,)), encoder=enc)
    for name in ("width", "depth", "heads", "down_t", "causal", "positional", "max_len", "dropout"):
        assert getattr(dec, name) == getattr(enc, name), name
    assert dec.dim == 24 and dec.proj_in.in_features == 24 and len(dec.backbone.blocks) == 3
    assert dec.backbone.blocks[0].attn.causal and dec.backbone.positions.table.shape == (50, 48)


def test_decoder_arguments_override_encoder():
    enc = TransformerEncoder(fmt((12,)), **SMALL)
    dec = TransformerDecoder(fmt((12,)), dim=8, encoder=enc, width=64, depth=1, causal=True)
    assert (dec.dim, dec.width, dec.depth, dec.heads, dec.down_t, dec.causal) == (8, 64, 1, 4, 2, True)
    assert dec(torch.randn(2, 5, 8)).shape == (2, 20, 12)


def test_decoder_without_encoder_uses_encoder_defaults():
    dec = TransformerDecoder(fmt((263,)))
    enc = TransformerEncoder(fmt((263,)))
    for name in ("width", "depth", "heads", "down_t", "causal", "positional", "max_len", "dropout"):
        assert getattr(dec, name) == getattr(enc, name), name
    assert dec.dim == enc.out_dim == 512


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(width=30, heads=4), "multiple of heads"),
        (dict(down_t=-1), "down_t"),
        (dict(depth=-1), "depth"),
        (dict(dropout=1.0), "dropout"),
        (dict(max_len=2), "max_len"),
    ],
)
def test_bad_hyper_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TransformerEncoder(fmt((12,)), **{**SMALL, **kwargs})


def test_recipe_arguments_are_type_checked():
    encoder = Component("encoder", "transformer", TransformerEncoder, "motionhub_transformer")
    decoder = Component("decoder", "transformer", TransformerDecoder, "motionhub_transformer")
    good = dict(width=256, depth=6, heads=8, down_t=2, causal=True, positional="learned", max_len=300, dropout=0.1)
    assert bind_arguments(encoder, good, "encoder") == []
    assert bind_arguments(decoder, {}, "decoder") == []
    problems = dict(bind_arguments(encoder, dict(causal="yes", positional="rope"), "encoder"))
    assert set(problems) == {"encoder.causal", "encoder.positional"}


def test_tokenizer_with_fsq():
    enc = TransformerEncoder(fmt((263,)), **SMALL)
    quantizer = FSQ(dim=enc.out_dim, levels=[8, 5, 5, 5])
    dec = TransformerDecoder(fmt((263,)), dim=quantizer.dim, encoder=enc)
    out = Tokenizer(enc, quantizer, dec)(torch.randn(2, 64, 263))
    assert out["recon"].shape == (2, 64, 263) and out["indices"].shape == (2, 16)


def test_overfits_one_batch():
    torch.manual_seed(0)
    enc = TransformerEncoder(fmt((12,)), width=32, depth=2, heads=4, down_t=1, output_emb_width=16, dropout=0.0)
    dec = TransformerDecoder(fmt((12,)), encoder=enc)
    x = torch.randn(4, 32, 12)
    params = [*enc.parameters(), *dec.parameters()]
    optimiser = torch.optim.Adam(params, lr=3e-3)
    losses = []
    for _ in range(200):
        loss = (dec(enc(x)) - x).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 5


def test_plugin_registers_transformer():
    import motionhub_transformer

    from motionhub.plugins.registry import resolve  # registrations may be 'module:Class' references

    pm = pluggy.PluginManager("motionhub")
    pm.add_hookspecs(hookspecs)
    pm.register(motionhub_transformer)
    found = {}
    pm.hook.register_encoders(register=lambda name, cls: found.setdefault(("encoder", name), resolve(cls)))
    pm.hook.register_decoders(register=lambda name, cls: found.setdefault(("decoder", name), resolve(cls)))
    assert found == {("encoder", "transformer"): TransformerEncoder, ("decoder", "transformer"): TransformerDecoder}
