import pluggy
import pytest
import torch
from torch import nn

from motionhub.plugins import hookspecs
from motionhub.data.formats import MotionFormat
from motionhub_conv import Conv1dDecoder, Conv1dEncoder
from motionhub_conv.conv1d import ChannelLayerNorm, ResBlock


def fmt(shape) -> MotionFormat:
    return MotionFormat("test", tuple(shape), 20.0)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


SMALL = dict(width=32, depth=2, down_t=2, output_emb_width=16)


@pytest.mark.parametrize(
    "features, kwargs, encoder, decoder",
    [
        (263, {}, 9_587_200, 9_849_607),  # T2M-GPT, HumanML3D
        (251, {}, 9_568_768, 9_831_163),  # T2M-GPT, KIT-ML
        (272, dict(down_t=1, norm="LN"), 5_409_280, 5_933_840),  # MotionMillion script
    ],
)
def test_parameter_counts_match_references(features, kwargs, encoder, decoder):
    enc = Conv1dEncoder(fmt((features,)), **kwargs)
    dec = Conv1dDecoder(fmt((features,)), encoder=enc)
    assert (n_params(enc), n_params(dec)) == (encoder, decoder)


def test_t2m_gpt_total():
    enc = Conv1dEncoder(fmt((263,)))
    assert n_params(enc) + n_params(Conv1dDecoder(fmt((263,)), encoder=enc)) == 19_436_807


@pytest.mark.parametrize("shape", [(263,), (4, 3, 2)])
@pytest.mark.parametrize("down_t", [1, 2, 3])
def test_shapes_round_trip(shape, down_t):
    enc = Conv1dEncoder(fmt(shape), **{**SMALL, "down_t": down_t})
    dec = Conv1dDecoder(fmt(shape), encoder=enc)
    x = torch.randn(3, 48, *shape)
    z = enc(x)
    assert enc.downsample == 2**down_t and enc.out_dim == 16
    assert z.shape == (3, 48 // 2**down_t, 16)
    assert dec(z).shape == x.shape


def test_stride_four():
    enc = Conv1dEncoder(fmt((10,)), **{**SMALL, "stride_t": 4})
    dec = Conv1dDecoder(fmt((10,)), encoder=enc)
    x = torch.randn(2, 64, 10)
    assert enc(x).shape == (2, 4, 16) and dec(enc(x)).shape == x.shape


def test_gradients_reach_every_parameter():
    enc = Conv1dEncoder(fmt((12,)), **SMALL, norm="LN")
    dec = Conv1dDecoder(fmt((12,)), encoder=enc)
    dec(enc(torch.randn(2, 16, 12))).square().mean().backward()
    for name, p in [*enc.named_parameters(), *dec.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_decoder_mirrors_encoder():
    enc = Conv1dEncoder(fmt((12,)), width=64, depth=4, down_t=1, stride_t=4, dilation_growth=2,
                        output_emb_width=24, activation="gelu", norm="GN", reverse_dilation=False)
    dec = Conv1dDecoder(fmt((12,)), encoder=enc)
    for name in ("width", "depth", "down_t", "stride_t", "dilation_growth", "activation", "norm", "reverse_dilation"):
        assert getattr(dec, name) == getattr(enc, name), name
    assert dec.dim == 24 and dec.stem.in_channels == 24
    assert [block.conv1.dilation[0] for block in dec.up[0].res] == [1, 2, 4, 8]
    assert isinstance(dec.up[0].res[0].act, nn.GELU) and isinstance(dec.up[0].res[0].norm1, nn.GroupNorm)


def test_decoder_arguments_override_encoder():
    enc = Conv1dEncoder(fmt((12,)), **SMALL)
    dec = Conv1dDecoder(fmt((12,)), dim=8, encoder=enc, width=48, depth=1)
    assert (dec.dim, dec.width, dec.depth, dec.down_t) == (8, 48, 1, 2)
    assert dec(torch.randn(2, 5, 8)).shape == (2, 20, 12)


def test_decoder_without_encoder_uses_reference_defaults():
    dec = Conv1dDecoder(fmt((263,)))
    assert (dec.dim, dec.width, dec.depth, dec.down_t, dec.stride_t, dec.norm) == (512, 512, 3, 2, 2, None)
    assert n_params(dec) == 9_849_607


def test_dilations_are_reversed_by_default():
    enc = Conv1dEncoder(fmt((12,)), **{**SMALL, "depth": 3})
    assert [block.conv1.dilation[0] for block in enc.down[0].res] == [9, 3, 1]
    assert [block.conv1.padding[0] for block in enc.down[0].res] == [9, 3, 1]
    enc = Conv1dEncoder(fmt((12,)), **{**SMALL, "depth": 3}, reverse_dilation=False)
    assert [block.conv1.dilation[0] for block in enc.down[0].res] == [1, 3, 9]


def test_residual_block_is_pre_activation():
    block = ResBlock(8, dilation=3, activation="relu", norm=None)
    x = torch.randn(2, 8, 20)
    expected = x + block.conv2(torch.relu(block.conv1(torch.relu(x))))
    torch.testing.assert_close(block(x), expected)


def test_layer_norm_is_over_channels():
    norm = ChannelLayerNorm(6)
    x = torch.randn(2, 6, 10)
    expected = (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, unbiased=False, keepdim=True) + norm.eps)
    torch.testing.assert_close(norm(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(stride_t=3), "stride_t"),
        (dict(stride_t=1), "stride_t"),
        (dict(width=48, norm="GN"), "multiple of 32"),
        (dict(down_t=-1), "down_t"),
    ],
)
def test_bad_hyper_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Conv1dEncoder(fmt((12,)), **{**SMALL, **kwargs})


def test_wrong_feature_size_is_reported():
    enc = Conv1dEncoder(fmt((12,)), **SMALL)
    with pytest.raises(ValueError, match="12 features"):
        enc(torch.randn(2, 16, 13))


def test_reference_key_map_t2m_gpt():
    enc = Conv1dEncoder(fmt((263,)), **{**SMALL, "depth": 3})
    dec = Conv1dDecoder(fmt((263,)), encoder=enc)
    ekeys, dkeys = enc.reference_key_map(), dec.reference_key_map()
    assert set(ekeys) == set(enc.state_dict()) and set(dkeys) == set(dec.state_dict())
    assert len(set(ekeys.values())) == len(ekeys) and len(set(dkeys.values())) == len(dkeys)
    assert ekeys["stem.weight"] == "model.0.weight"
    assert ekeys["down.0.conv.bias"] == "model.2.0.bias"
    assert ekeys["down.1.res.0.conv1.weight"] == "model.3.1.model.0.conv1.weight"  # dilation 9
    assert ekeys["proj_out.weight"] == "model.4.weight"
    assert dkeys["stem.weight"] == "model.0.weight"
    assert dkeys["up.0.res.2.conv2.weight"] == "model.2.0.model.2.conv2.weight"
    assert dkeys["up.1.conv.weight"] == "model.3.2.weight"
    assert dkeys["post_conv.weight"] == "model.4.weight"
    assert dkeys["proj_out.bias"] == "model.6.bias"


def test_reference_key_map_motionmillion_patcher_and_norm():
    enc = Conv1dEncoder(fmt((272,)), **{**SMALL, "down_t": 1, "norm": "LN"})
    keys = enc.reference_key_map(patcher=True)
    assert keys["stem.weight"] == "model.1.weight"
    assert keys["down.0.res.1.norm2.weight"] == "model.3.1.model.1.norm2.weight"
    assert keys["proj_out.bias"] == "model.4.bias"
    bn = Conv1dEncoder(fmt((12,)), **{**SMALL, "norm": "BN"}).reference_key_map()
    assert bn["down.0.res.0.norm1.running_mean"] == "model.2.1.model.0.norm1.running_mean"


def test_plugin_registers_conv1d():
    import motionhub_conv

    from motionhub.plugins.registry import resolve  # registrations may be 'module:Class' references

    pm = pluggy.PluginManager("motionhub")
    pm.add_hookspecs(hookspecs)
    pm.register(motionhub_conv)
    found = {}
    pm.hook.register_encoders(register=lambda name, cls: found.setdefault(("encoder", name), resolve(cls)))
    pm.hook.register_decoders(register=lambda name, cls: found.setdefault(("decoder", name), resolve(cls)))
    assert found == {("encoder", "conv1d"): Conv1dEncoder, ("decoder", "conv1d"): Conv1dDecoder}
