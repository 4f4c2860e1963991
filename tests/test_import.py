"""Importing reference checkpoints: key mapping, wrapper prefixes, errors, and the CLI end to end.

Reference state dicts are generated here from the published layouts (names and shapes), not
from motionhub's own key maps, so a wrong map cannot agree with itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from motionhub.data import layouts
from motionhub.use import importing
from motionhub.model.build import build_tokenizer
from motionhub.train.checkpoint import load_checkpoint
from motionhub.cli import main
from motionhub.errors import MotionhubError
from motionhub.data.formats import MotionFormat
from motionhub.recipes import recipe_from_tree
from motionhub.use.trained_run import load_run
from motionhub.model.tokenizer import Tokenizer
from motionhub.plugins.manager import get_registry
from motionhub_conv import Conv1dDecoder, Conv1dEncoder
from motionhub_quantizers import FSQ, EMAResetVQ

FEATURES = 263


# ---------------------------------------------------------------------------- reference layouts
def vqvae_shapes(features: int, width: int, depth: int, down_t: int, emb: int, norm: str | None = None,
                 patcher: bool = False, codebook: int | None = None, fsq_dims: int | None = None
                 ) -> dict[str, tuple[int, ...]]:
    """``HumanVQVAE.state_dict()`` names and shapes (stride 2): encoder ``model`` = [patcher], conv, relu,
    down_t x (strided conv k4, Resnet1D), conv; decoder ``model`` = conv, relu, down_t x (Resnet1D,
    upsample, conv), conv, relu, conv, [unpatcher]. A Resnet1D is ``model.{j}`` blocks of norm1, conv1 (k3),
    norm2, conv2 (k1)."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(name: str, out: int, inp: int, k: int) -> None:
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (out, inp, k), (out,)

    def resnet(name: str) -> None:
        for j in range(depth):
            block = f"{name}.model.{j}"
            conv(f"{block}.conv1", width, width, 3)
            conv(f"{block}.conv2", width, width, 1)
            for n in ("norm1", "norm2"):
                if norm is not None:
                    shapes[f"{block}.{n}.weight"] = shapes[f"{block}.{n}.bias"] = (width,)
                if norm == "BN":
                    shapes[f"{block}.{n}.running_mean"] = shapes[f"{block}.{n}.running_var"] = (width,)
                    shapes[f"{block}.{n}.num_batches_tracked"] = ()

    enc, dec, o = "vqvae.encoder.model", "vqvae.decoder.model", int(patcher)
    if patcher:
        shapes[f"{enc}.0.wavelets"], shapes[f"{enc}.0._arange"] = (2,), (2,)
        shapes[f"{dec}.{5 + down_t}.wavelets"], shapes[f"{dec}.{5 + down_t}._arange"] = (2,), (2,)
    conv(f"{enc}.{o}", width, features, 3)
    for i in range(down_t):
        conv(f"{enc}.{o + 2 + i}.0", width, width, 4)
        resnet(f"{enc}.{o + 2 + i}.1")
    conv(f"{enc}.{o + 2 + down_t}", emb, width, 3)
    conv(f"{dec}.0", width, emb, 3)
    for i in range(down_t):
        resnet(f"{dec}.{2 + i}.0")
        conv(f"{dec}.{2 + i}.2", width, width, 3)
    conv(f"{dec}.{2 + down_t}", width, width, 3)
    conv(f"{dec}.{4 + down_t}", features, width, 3)
    if codebook is not None:
        shapes["vqvae.quantizer.codebook"] = (codebook, emb)
    if fsq_dims is not None:
        q = "vqvae.quantizer"
        shapes[f"{q}.project_in.weight"], shapes[f"{q}.project_in.bias"] = (fsq_dims, emb), (fsq_dims,)
        shapes[f"{q}.project_out.weight"], shapes[f"{q}.project_out.bias"] = (emb, fsq_dims), (emb,)
    return shapes


def random_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.tensor(3) if k.endswith("num_batches_tracked") else torch.randn(s, generator=g))
            for k, s in shapes.items()}


def fmt(features: int = FEATURES) -> MotionFormat:
    return MotionFormat(name="test", feature_shape=(features,), fps=20.0)


def conv_model(quantizer, features: int = FEATURES, **encoder) -> Tokenizer:
    enc = Conv1dEncoder(fmt(features), **encoder)
    return Tokenizer(enc, quantizer, Conv1dDecoder(fmt(features), encoder=enc))


SMALL = {"width": 16, "depth": 2, "down_t": 2, "output_emb_width": 8}


# ---------------------------------------------------------------------------- T2M-GPT / MotionMillion
def test_t2m_gpt_layout_fills_every_tensor_and_rebuilds_the_ema_statistics():
    reference = random_state(vqvae_shapes(FEATURES, 16, 2, 2, 8, codebook=32))
    model = conv_model(EMAResetVQ(dim=8, codebook_size=32), **SMALL)
    state = importing.convert_state_dict("t2m-gpt", model, reference)
    assert set(state) == set(model.state_dict())
    assert state["encoder.stem.weight"] is reference["vqvae.encoder.model.0.weight"]
    assert state["encoder.down.1.res.0.conv1.weight"] is reference["vqvae.encoder.model.3.1.model.0.conv1.weight"]
    assert state["encoder.proj_out.bias"] is reference["vqvae.encoder.model.4.bias"]
    assert state["decoder.up.0.conv.weight"] is reference["vqvae.decoder.model.2.2.weight"]
    assert state["decoder.proj_out.weight"] is reference["vqvae.decoder.model.6.weight"]
    codebook = reference["vqvae.quantizer.codebook"]
    assert state["quantizer.codebook"] is codebook
    assert torch.equal(state["quantizer.code_sum"], codebook)
    assert torch.equal(state["quantizer.code_count"], torch.ones(32)) and bool(state["quantizer.initialised"])
    model.load_state_dict(state)  # strict


def test_an_all_zero_codebook_stays_uninitialised():
    reference = random_state(vqvae_shapes(FEATURES, 16, 2, 2, 8, codebook=32))
    reference["vqvae.quantizer.codebook"] = torch.zeros(32, 8)
    state = importing.convert_state_dict("t2m-gpt", conv_model(EMAResetVQ(dim=8, codebook_size=32), **SMALL), reference)
    assert not bool(state["quantizer.initialised"]) and not state["quantizer.code_count"].any()


def test_motionmillion_layout_with_patcher_layernorm_and_fsq():
    reference = random_state(vqvae_shapes(272, 16, 2, 1, 8, norm="LN", patcher=True, fsq_dims=6))
    model = conv_model(FSQ(dim=8, levels=[8, 8, 8, 5, 5, 5]), 272, **{**SMALL, "down_t": 1, "norm": "LN"})
    state = importing.convert_state_dict("motionmillion", model, reference)
    assert set(state) == set(model.state_dict())
    assert state["encoder.stem.weight"] is reference["vqvae.encoder.model.1.weight"]
    assert state["encoder.down.0.res.1.norm2.bias"] is reference["vqvae.encoder.model.3.1.model.1.norm2.bias"]
    assert state["quantizer.fsq.project_in.weight"] is reference["vqvae.quantizer.project_in.weight"]
    model.load_state_dict(state)


def test_our_state_renamed_to_the_reference_names_comes_back_exactly():
    model = conv_model(EMAResetVQ(dim=8, codebook_size=32), **{**SMALL, "norm": "BN"})
    ours = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    model.load_state_dict(ours)
    keys = importing.key_map("t2m-gpt", model, {})
    reference = {ref: ours[mine] for mine, ref in keys.items()}
    assert set(reference) == set(vqvae_shapes(FEATURES, 16, 2, 2, 8, norm="BN", codebook=32))
    state = importing.convert_state_dict("t2m-gpt", model, reference)
    for key in keys:
        assert torch.equal(state[key], ours[key]), key


def test_wrapper_prefixes_are_removed():
    reference = random_state(vqvae_shapes(FEATURES, 16, 2, 2, 8, codebook=32))
    wrapped = {f"module._orig_mod.{k}": v for k, v in reference.items()}
    assert importing.strip_wrappers(wrapped) == reference
    assert importing.strip_wrappers({"module.vqvae._orig_mod.encoder.x": 1}) == {"vqvae.encoder.x": 1}


def test_reading_a_ddp_checkpoint_with_its_iteration(tmp_path):
    reference = random_state(vqvae_shapes(272, 16, 2, 1, 8, norm="LN", patcher=True, fsq_dims=6))
    path = tmp_path / "net_latest.pth"
    torch.save({"net": {f"module.{k}": v for k, v in reference.items()}, "nb_iter": 120}, path)
    read = importing.read_reference(path, "motionmillion")
    assert read.state_dict.keys() == reference.keys() and read.iteration == 120
    assert importing.completed_steps(read, warmup_iters=50) == 170  # nb_iter counts steps after warm-up


def test_reading_the_wrong_kind_of_checkpoint_says_where_weights_are_kept(tmp_path):
    path = tmp_path / "latest.pt"
    torch.save({"model": {"encoder.encoder_proj.weight": torch.zeros(1)}, "epoch": 3}, path)
    with pytest.raises(MotionhubError, match=r"no 'net' state dict.*top-level keys: model, epoch; "
                                             r"amplify and laps checkpoints keep 'model'"):
        importing.read_reference(path, "t2m-gpt")
    with pytest.raises(MotionhubError, match="unknown importer 'mdm'. Available importers: amplify, laps, "):
        importing.read_reference(path, "mdm")


def test_a_deeper_checkpoint_lists_the_unmatched_keys_and_what_it_holds():
    reference = random_state(vqvae_shapes(FEATURES, 16, 3, 2, 8, codebook=32))
    model = conv_model(EMAResetVQ(dim=8, codebook_size=32), **SMALL)  # depth 2
    with pytest.raises(MotionhubError) as info:
        importing.convert_state_dict("t2m-gpt", model, reference, "net_last.pth")
    text = str(info.value)
    assert "net_last.pth does not fit the recipe's model" in text
    assert "16 checkpoint tensors have no place in the model: vqvae.encoder.model.2.1.model.2.conv1.weight" in text
    assert "(6 more)" in text  # ten listed
    assert "width 16" in text and "depth 3" in text and "down_t 2" in text and "codebook_size 32" in text


def test_a_wider_checkpoint_shows_the_first_shape_mismatch():
    reference = random_state(vqvae_shapes(FEATURES, 32, 2, 2, 8, codebook=32))
    model = conv_model(EMAResetVQ(dim=8, codebook_size=32), **SMALL)
    with pytest.raises(MotionhubError, match=r"shapes differ; the first: vqvae\.encoder\.model\.0\.weight is "
                                             r"\(32, 263, 3\) in the checkpoint, encoder\.stem\.weight is "
                                             r"\(16, 263, 3\) in the model"):
        importing.convert_state_dict("t2m-gpt", model, reference)


def test_a_quantizer_without_a_reference_counterpart_is_refused():
    reference = random_state(vqvae_shapes(FEATURES, 16, 2, 2, 8, codebook=32))
    with pytest.raises(MotionhubError, match="use quantizer: vq_ema_reset"):
        importing.convert_state_dict("t2m-gpt", conv_model(torch.nn.Identity(), **SMALL), reference)


# ---------------------------------------------------------------------------- AMPLIFY
def amplify_shapes(hidden: int, layers: int, views: int, tracks: int, steps: int, mlp: int, classes: int,
                   fsq_dims: int) -> dict[str, tuple[int, ...]]:
    """``MotionTokenizer.state_dict()`` names and shapes: nanoGPT blocks (``ln_1``, ``attn.c_attn``, ...,
    bias-free), a decoder of ``layers // 2`` cross-attending blocks, the track MLP and FSQ projections."""
    h = hidden
    shapes = {"encoder.encoder_proj.weight": (h, views * tracks * 2), "encoder.encoder_proj.bias": (h,),
              "decoder.track_pos_emb.weight": (tracks, h), "decoder.view_emb.weight": (views, h),
              "decoder.decoder_mlp.0.weight": (mlp, 3 * h), "decoder.decoder_mlp.0.bias": (mlp,),
              "decoder.decoder_mlp.2.weight": (h, mlp), "decoder.decoder_mlp.2.bias": (h,),
              "decoder.decoder_proj.weight": (classes, h), "decoder.decoder_proj.bias": (classes,),
              "decoder.fixed_positional_emb.inv_freq": (h // 2,),
              "quantize.project_in.weight": (fsq_dims, h), "quantize.project_in.bias": (fsq_dims,),
              "quantize.project_out.weight": (h, fsq_dims), "quantize.project_out.bias": (h,)}
    mlp_parts = {"c_fc.weight": (4 * h, h), "c_proj.weight": (h, 4 * h)}
    for side, n in (("encoder", layers), ("decoder", layers // 2)):
        stack = f"{side}.{side}.transformer"
        shapes[f"{stack}.pos_emb.weight"], shapes[f"{stack}.ln_f.weight"] = (steps, h), (h,)
        for i in range(n):
            block = f"{stack}.h.{i}"
            attn = "attn" if side == "encoder" else "self_attn"
            shapes |= {f"{block}.{attn}.c_attn.weight": (3 * h, h), f"{block}.{attn}.c_proj.weight": (h, h),
                       f"{block}.{attn}.attn_mask": (1, 1, steps, steps)}
            shapes |= {f"{block}.mlp.{k}": s for k, s in mlp_parts.items()}
            norms = 2 if side == "encoder" else 4
            shapes |= {f"{block}.ln_{k}.weight": (h,) for k in range(1, norms + 1)}
            if side == "decoder":
                cross = f"{block}.cross_attn"
                shapes |= {f"{cross}.q_proj.weight": (h, h), f"{cross}.kv_proj.weight": (2 * h, h),
                           f"{cross}.c_proj.weight": (h, h), f"{cross}.attn_mask": (1, 1, steps, steps)}
                shapes |= {f"{block}.mlp_2.{k}": s for k, s in mlp_parts.items()}
    return shapes


def amplify_reference(causal: bool = True) -> dict[str, torch.Tensor]:
    reference = random_state(amplify_shapes(hidden=16, layers=2, views=1, tracks=4, steps=15, mlp=8, classes=225,
                                            fsq_dims=4))
    full = torch.ones(1, 1, 15, 15, dtype=torch.bool)
    for key in reference:
        if key.endswith(".attn_mask"):
            reference[key] = full.tril() if causal and key.startswith("encoder.") else full
    return reference


def amplify_model() -> Tokenizer:
    amplify = pytest.importorskip("motionhub_amplify")
    tracks = layouts.point_tracks(views=1, tracks=4, fps=10.0)
    return Tokenizer(amplify.AmplifyEncoder(tracks, hidden_dim=16, num_heads=2, num_layers=2),
                     FSQ(dim=16, levels=[8, 8, 6, 5]),
                     amplify.AmplifyDecoder(tracks, dim=16, num_heads=2, num_layers=1, mlp_hidden_dim=8))


def test_amplify_layout_fills_every_tensor_and_skips_masks():
    model, reference = amplify_model(), amplify_reference()
    state = importing.convert_state_dict("amplify", model, reference)
    assert set(state) == set(model.state_dict())
    assert state["encoder.proj.weight"] is reference["encoder.encoder_proj.weight"]
    assert state["quantizer.fsq.project_out.bias"] is reference["quantize.project_out.bias"]
    model.load_state_dict(state)


def test_amplify_attention_must_match_the_recipe():
    with pytest.raises(MotionhubError, match="attention is not causal; set encoder.causal=False"):
        importing.convert_state_dict("amplify", amplify_model(), amplify_reference(causal=False))


def test_amplify_steps_come_from_samples_and_batch_size():
    reference = importing.ForeignCheckpoint("amplify", Path("latest.pt"), {}, None, 64 * 30, {"batch_size": 64})
    assert importing.completed_steps(reference, warmup_iters=100) == 30


# ---------------------------------------------------------------------------- the CLI, end to end
RECIPE = {
    "run": {"name": "imported", "seed": 0},
    "data": {"name": "synthetic", "layout": "humanml3d_263", "clips": 12, "min_frames": 40, "max_frames": 60,
             "window": 32},
    "encoder": {"name": "conv1d", "width": 128, "depth": 2, "down_t": 2, "output_emb_width": 128},
    "quantizer": {"name": "vq_ema_reset", "codebook_size": 64},
    "decoder": {"name": "conv1d"},
    "losses": [{"name": "recon", "kind": "smooth_l1"}, {"name": "commit", "weight": 0.02}],
    "train": {"batch_size": 4, "iters": 2, "log_every": 1},
    "eval": {"train_codebook": False},
}


def test_cli_import_then_eval_and_continue_training(tmp_path, capsys):
    from motionhub_synthetic.dataset import SyntheticMotion

    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(RECIPE, sort_keys=False))
    recipe = recipe_from_tree(RECIPE, "recipe.yaml")
    data_format = SyntheticMotion(**recipe.data.kwargs).format
    torch.manual_seed(1)
    source = build_tokenizer(recipe, data_format)
    source.train()(torch.randn(4, 32, FEATURES))  # initialises the EMA codebook
    source.eval()
    keys = importing.key_map("t2m-gpt", source, {})
    ours = source.state_dict()
    checkpoint = tmp_path / "net_last.pth"
    torch.save({"net": {ref: ours[mine] for mine, ref in keys.items()}}, checkpoint)

    run = tmp_path / "run"
    assert main(["import", "t2m-gpt", str(checkpoint), "--recipe", str(recipe_path), "--out", str(run)]) == 0
    assert capsys.readouterr().out.strip().endswith(str(run))
    assert main(["eval", str(run)]) == 0
    assert json.loads((run / "eval_val.json").read_text())["step"] == 0

    loaded = load_run(run)
    clip = next(SyntheticMotion(**recipe.data.kwargs).clips("val")).motion[:32]
    x = torch.as_tensor(data_format.normalise(clip))[None]
    with torch.no_grad():
        expected, got = source(x), loaded.model(x)
    assert torch.equal(got["recon"], expected["recon"]) and torch.equal(got["indices"], expected["indices"])
    assert np.array_equal(loaded.format.mean, data_format.mean)

    assert main(["encode", str(run), "--out", str(tmp_path / "tokens.h5")]) == 0
    assert (tmp_path / "tokens.h5").is_file()

    assert main(["train", str(run)]) == 0  # continues the imported run
    state = load_checkpoint(run / "checkpoints" / "last.pt")["state"]
    assert state["step"] == 2 and state["imported"]["source"] == "t2m-gpt"
    assert main(["import", "t2m-gpt", str(checkpoint), "--recipe", str(recipe_path), "--out", str(run)]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_cli_import_without_data_takes_the_statistics_files(tmp_path, capsys):
    model = conv_model(EMAResetVQ(dim=8, codebook_size=32), **SMALL)
    reference = {ref: torch.randn(model.state_dict()[mine].shape)
                 for mine, ref in importing.key_map("t2m-gpt", model, {}).items()}
    checkpoint = tmp_path / "net_last.pth"
    torch.save({"net": reference}, checkpoint)
    tree = {**RECIPE, "data": {"name": "humanml3d", "root": str(tmp_path / "absent"), "stats": "dataset"},
            "encoder": {"name": "conv1d", **SMALL}, "quantizer": {"name": "vq_ema_reset", "codebook_size": 32}}
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(tree, sort_keys=False))
    mean, std = np.arange(FEATURES, dtype=np.float32), np.full(FEATURES, 2.0, np.float32)
    np.save(tmp_path / "mean.npy", mean)
    np.save(tmp_path / "std.npy", std)
    args = ["import", "t2m-gpt", str(checkpoint), "--recipe", str(recipe_path), "--out", str(tmp_path / "run")]
    assert main(args) == 2
    assert "--no-data --stats-mean" in capsys.readouterr().err  # the data folder is absent
    stats = ["--stats-mean", str(tmp_path / "mean.npy"), "--stats-std", str(tmp_path / "std.npy")]
    assert main([*args, "--no-data", *stats]) == 0
    saved = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert np.array_equal(saved["stats"]["mean"], mean) and np.array_equal(saved["stats"]["std"], std)
    assert saved["recipe"]["run"]["out"] == str(tmp_path / "run")


# ---------------------------------------------------------------------------- the importers are plugins
def test_each_reference_importer_comes_from_its_plugin():
    registry = get_registry()
    providers = {name: registry.get("importer", name).provider for name in ("t2m-gpt", "motionmillion", "amplify", "laps")}
    assert providers == {"t2m-gpt": "motionhub_conv", "motionmillion": "motionhub_conv",
                         "amplify": "motionhub_amplify", "laps": "motionhub_amplify"}
    assert all(issubclass(registry.get("importer", name).cls, importing.StateDictImporter) for name in providers)


def test_the_core_importing_module_names_no_reference_and_reaches_no_trainer():
    source = Path(importing.__file__).read_text().lower()
    for name in ("t2m", "motionmillion", "amplify", "laps", "vqvae", "motionhub.train.trainer"):
        assert name not in source, name


def test_an_unknown_importer_lists_the_registered_ones_and_suggests_the_closest(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["import", "t2m-gtp", str(tmp_path / "net.pth"), "--recipe", "r.yaml", "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown importer 't2m-gtp'; did you mean 't2m-gpt'?" in err
    assert "Available importers: amplify, laps, momask, motiongpt, motionmillion, t2m-gpt." in err


def test_an_importers_options_come_from_its_constructor(capsys):
    with pytest.raises(SystemExit):
        main(["import", "motionmillion", "--help"])
    out = capsys.readouterr().out
    assert "usage: motionhub import motionmillion" in out and "--recipe RECIPE" in out and "--no-data" in out
    assert "--stats-mean STATS_MEAN" in out and "key=value" in out and "CHECKPOINT" in out.upper()
    assert "nb_iter" in out  # the importer's own description


def test_no_data_without_the_statistics_files_says_what_is_missing(tmp_path, capsys):
    args = ["import", "t2m-gpt", str(tmp_path / "net.pth"), "--recipe", str(tmp_path / "r.yaml"),
            "--out", str(tmp_path / "run")]
    assert main([*args, "--no-data"]) == 2
    assert "--no-data needs both --stats-mean and --stats-std" in capsys.readouterr().err
    assert main([*args, "--stats-mean", "m.npy"]) == 2
    assert "--stats-mean / --stats-std are read only with --no-data" in capsys.readouterr().err
