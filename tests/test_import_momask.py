"""Importing MoMask's residual VQ-VAE: a checkpoint with MoMask's names and shapes (released
configuration, seeded weights) becomes a run whose model has the reference's parameter count and
reconstructs the real HumanML3D clip as the reference's forward pass does (tests/reference_vqvae.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import REAL_DATA, REPO
from reference_vqvae import conv_vqvae_shapes, decode, encode, parameters_in, residual_quantize, seeded_convs

from motionhub.cli import main
from motionhub.data.formats import MotionFormat
from motionhub.errors import MotionhubError
from motionhub.model.build import build_tokenizer
from motionhub.model.tokenizer import Tokenizer
from motionhub.recipes import recipe_from_tree
from motionhub.train.checkpoint import load_checkpoint
from motionhub.use import importing
from motionhub_conv import Conv1dDecoder, Conv1dEncoder
from motionhub_quantizers import ResidualEMAResetVQ

HUMANML3D = REAL_DATA / "EricGuo5513-HumanML3D" / "HumanML3D"
SHIPPED = REPO / "configs" / "humanml3d" / "momask_rvq.yaml"
# MoMask's released tokenizer (rvq_nq6_dc512_nc512_noshare_qdp0.2): options of train_vq.py / vq_option.py
FEATURES, WIDTH, DEPTH, DOWN_T, CODE_DIM, LEVELS, CODES = 263, 512, 3, 2, 512, 6, 512


def humanml3d_clip() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T, 263) features with T a multiple of 4, and the mean / std to normalise them: the real clip
    012314 with HumanML3D's statistics, or a synthetic clip where the real data is absent."""
    if (HUMANML3D / "new_joint_vecs" / "012314.npy").is_file():
        clip = np.load(HUMANML3D / "new_joint_vecs" / "012314.npy")
        mean, std = np.load(HUMANML3D / "Mean.npy"), np.load(HUMANML3D / "Std.npy")
    else:
        from motionhub_synthetic.dataset import SyntheticMotion

        data = SyntheticMotion(clips=3, min_frames=120, max_frames=120)
        clip, mean, std = next(data.clips("train")).motion, data.format.mean, data.format.std
    return clip[: len(clip) // 4 * 4].astype(np.float32), mean.astype(np.float32), std.astype(np.float32)


def momask_shapes(features=FEATURES, width=WIDTH, depth=DEPTH, down_t=DOWN_T, dim=CODE_DIM, levels=LEVELS,
                  codes=CODES) -> dict[str, tuple[int, ...]]:
    """``RVQVAE.state_dict()``: the conv VQ-VAE plus one (K, C) codebook buffer per residual level."""
    shapes = conv_vqvae_shapes(features, width, depth, down_t, dim)
    return shapes | {f"quantizer.layers.{i}.codebook": (codes, dim) for i in range(levels)}


def momask_state(x: torch.Tensor, seed: int = 0, **sizes) -> dict[str, torch.Tensor]:
    """Seeded weights; each level's codebook is drawn at the scale of what that level quantises on ``x``
    (B, D, T), so every level picks codes that matter."""
    shapes = momask_shapes(**sizes)
    state = seeded_convs({k: s for k, s in shapes.items() if not k.endswith("codebook")}, seed)
    g = torch.Generator().manual_seed(seed + 1)
    down_t, depth = sizes.get("down_t", DOWN_T), sizes.get("depth", DEPTH)
    residual = encode(x, state, "", down_t, depth)
    for i in range(sizes.get("levels", LEVELS)):
        codebook = torch.randn(shapes[f"quantizer.layers.{i}.codebook"], generator=g) * residual.std()
        state[f"quantizer.layers.{i}.codebook"] = codebook
        residual = residual - residual_quantize(residual, [codebook])[0]
    return state


def momask_reconstruction(x: torch.Tensor, state: dict, down_t=DOWN_T, depth=DEPTH, levels=LEVELS):
    """RVQVAE.forward in eval mode: (B, D, T) -> recon (B, T, D), indices (B, T', Q)."""
    codebooks = [state[f"quantizer.layers.{i}.codebook"] for i in range(levels)]
    quantized, indices = residual_quantize(encode(x, state, "", down_t, depth), codebooks)
    return decode(quantized, state, "", down_t, depth).permute(0, 2, 1), indices


def momask_checkpoint(path, state: dict) -> None:
    """What MoMask's VQ trainer saves: weights, AdamW and MultiStepLR state, epoch and iteration."""
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([weight], lr=2e-4, betas=(0.9, 0.99))
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[150000, 250000], gamma=0.05)
    torch.save({"vq_model": state, "opt_vq_model": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "ep": 3, "total_it": 5000}, path)


def imported_model(run) -> tuple[Tokenizer, dict]:
    saved = load_checkpoint(run / "checkpoints" / "last.pt")
    fmt = MotionFormat("statistics", (FEATURES,), 0.0).with_stats(saved["stats"]["mean"], saved["stats"]["std"])
    model = build_tokenizer(recipe_from_tree(saved["recipe"], "recipe.yaml"), fmt)
    model.load_state_dict(saved["model"])
    return model.eval(), saved


def import_with_stats(importer: str, checkpoint, recipe, folder, mean: np.ndarray, std: np.ndarray):
    """``motionhub import <importer>`` of ``checkpoint`` into ``folder/run`` without data, normalising
    with ``mean`` / ``std``; the imported model and its saved checkpoint."""
    np.save(folder / "mean.npy", mean)
    np.save(folder / "std.npy", std)
    run = folder / "run"
    assert main(["import", importer, str(checkpoint), "--recipe", str(recipe), "--out", str(run), "--no-data",
                 "--stats-mean", str(folder / "mean.npy"), "--stats-std", str(folder / "std.npy")]) == 0
    return imported_model(run)


# ---------------------------------------------------------------------------- the released configuration
@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """MoMask's released configuration imported through the CLI with the shipped recipe and the real
    clip's statistics."""
    folder = tmp_path_factory.mktemp("momask")
    clip, mean, std = humanml3d_clip()
    x = torch.from_numpy((clip - mean) / std)[None]
    state = momask_state(x.permute(0, 2, 1))
    momask_checkpoint(folder / "net_best_fid.tar", state)
    model, saved = import_with_stats("momask", folder / "net_best_fid.tar", SHIPPED, folder, mean, std)
    return {"clip": clip, "x": x, "state": state, "model": model, "saved": saved}


@pytest.mark.slow  # the released size: an 80 MB checkpoint written, imported and read back
def test_parameter_counts_equal_the_references(released):
    model, state = released["model"], released["state"]
    reference = parameters_in({k: tuple(v.shape) for k, v in state.items()})
    assert sum(p.numel() for p in model.parameters()) == reference == 19_436_807
    codebooks = sum(v.numel() for k, v in state.items() if k.endswith("codebook"))
    assert sum(layer.codebook.numel() for layer in model.quantizer.layers) == codebooks == LEVELS * CODES * CODE_DIM


@pytest.mark.slow  # the released size: an 80 MB checkpoint written, imported and read back
def test_reconstruction_of_the_humanml3d_clip_equals_the_references(released):
    model, x = released["model"], released["x"]
    expected, expected_indices = momask_reconstruction(x.permute(0, 2, 1), released["state"])
    normalised = torch.as_tensor(
        MotionFormat("s", (FEATURES,), 0.0).with_stats(released["saved"]["stats"]["mean"],
                                                      released["saved"]["stats"]["std"]).normalise(released["clip"]))
    torch.testing.assert_close(normalised[None], x, rtol=0, atol=1e-6)
    with torch.no_grad():
        out = model(x)
    assert torch.equal(out["indices"], expected_indices)
    assert (out["recon"] - expected).abs().max().item() <= 1e-5
    assert len(set(expected_indices[0, :, -1].tolist())) > 1  # the finest level picks more than one code
    with torch.no_grad():  # and it matters: five levels decode to something else
        coarser = model.decoder(model.quantizer.indices_to_codes(out["indices"], levels=LEVELS - 1))
    assert (coarser - expected).abs().max().item() > 1e-3


@pytest.mark.slow  # the released size: an 80 MB checkpoint written, imported and read back
def test_the_import_rebuilds_each_levels_ema_state_and_starts_fresh(released):
    saved, state = released["saved"], released["state"]
    for i in range(LEVELS):
        codebook = state[f"quantizer.layers.{i}.codebook"]
        assert torch.equal(saved["model"][f"quantizer.layers.{i}.codebook"], codebook)
        assert torch.equal(saved["model"][f"quantizer.layers.{i}.code_sum"], codebook)
        assert torch.equal(saved["model"][f"quantizer.layers.{i}.code_count"], torch.ones(CODES))
    assert saved["state"]["step"] == 0 and saved["state"]["imported"]["source"] == "momask"


# ---------------------------------------------------------------------------- what does not fit
SMALL = {"features": FEATURES, "width": 16, "depth": 2, "down_t": 2, "dim": 8, "levels": 3, "codes": 32}


def small_model(levels: int = 3, codes: int = 32, stride_t: int = 2) -> Tokenizer:
    fmt = MotionFormat("test", (FEATURES,), 20.0)
    enc = Conv1dEncoder(fmt, width=16, depth=2, down_t=2, stride_t=stride_t, output_emb_width=8)
    return Tokenizer(enc, ResidualEMAResetVQ(8, num_quantizers=levels, codebook_size=codes),
                     Conv1dDecoder(fmt, encoder=enc))


def small_state(seed: int = 0) -> dict[str, torch.Tensor]:
    return momask_state(torch.randn(1, FEATURES, 32, generator=torch.Generator().manual_seed(seed)), seed, **SMALL)


def test_a_small_checkpoint_reconstructs_as_the_reference_does():
    state, model = small_state(), small_model()
    model.load_state_dict(importing.convert_state_dict("momask", model, state))
    x = torch.randn(2, 40, FEATURES, generator=torch.Generator().manual_seed(3))
    expected, indices = momask_reconstruction(x.permute(0, 2, 1), state, down_t=2, depth=2, levels=3)
    with torch.no_grad():
        out = model.eval()(x)
    assert torch.equal(out["indices"], indices) and (out["recon"] - expected).abs().max().item() <= 1e-5


def test_fewer_levels_in_the_recipe_names_the_checkpoints_levels():
    with pytest.raises(MotionhubError) as info:
        importing.convert_state_dict("momask", small_model(levels=2), small_state(), "net_best_fid.tar")
    text = str(info.value)
    assert "net_best_fid.tar does not fit the recipe's model" in text
    assert "1 checkpoint tensors have no place in the model: quantizer.layers.2.codebook" in text
    assert "3 residual levels of 32 x 8 codes (rvq_ema_reset, num_quantizers 3, codebook_size 32)" in text
    assert "width 16" in text and "depth 2" in text and "down_t 2" in text


def test_another_codebook_size_names_the_shape_that_differs():
    with pytest.raises(MotionhubError, match=r"shapes differ; the first: quantizer\.layers\.0\.codebook is \(32, 8\) "
                                             r"in the checkpoint, quantizer\.layers\.0\.codebook is \(64, 8\)"):
        importing.convert_state_dict("momask", small_model(codes=64), small_state())


def test_a_single_codebook_quantizer_is_refused_with_the_one_to_use():
    fmt = MotionFormat("test", (FEATURES,), 20.0)
    enc = Conv1dEncoder(fmt, width=16, depth=2, down_t=2, output_emb_width=8)
    model = Tokenizer(enc, torch.nn.Identity(), Conv1dDecoder(fmt, encoder=enc))
    with pytest.raises(MotionhubError, match="use quantizer: rvq_ema_reset"):
        importing.convert_state_dict("momask", model, small_state())


def test_a_decoder_that_upsamples_by_four_is_refused():
    model = small_model(stride_t=4)  # kernels fit a stride-4 checkpoint, but MoMask's decoder up-samples by 2
    reference = {ref: torch.zeros(model.state_dict()[ours].shape)
                 for ours, ref in importing.key_map("momask", model, {}).items()}
    with pytest.raises(MotionhubError, match="up-samples by 2 at every stage.*set encoder.stride_t=2"):
        importing.convert_state_dict("momask", model, reference)


# ---------------------------------------------------------------------------- another model's checkpoint
def t2m_gpt_checkpoint(path) -> None:
    state = {f"vqvae.{k}": v for k, v in seeded_convs(conv_vqvae_shapes(FEATURES, 16, 2, 2, 8), 0).items()}
    torch.save({"net": state | {"vqvae.quantizer.codebook": torch.randn(32, 8)}}, path)


def test_a_t2m_gpt_checkpoint_given_to_momask_is_named_and_nothing_is_written(tmp_path, capsys):
    t2m_gpt_checkpoint(tmp_path / "net_last.pth")
    run = tmp_path / "run"
    assert main(["import", "momask", str(tmp_path / "net_last.pth"), "--recipe", str(SHIPPED), "--out", str(run),
                 "--no-data", "--stats-mean", "m.npy", "--stats-std", "s.npy"]) == 2
    err = capsys.readouterr().err
    assert "looks like a t2m-gpt checkpoint (T2M-GPT's VQ-VAE: 'net' with vqvae.* tensors" in err
    assert "not a momask one" in err and "motionhub import t2m-gpt" in err
    assert "Traceback" not in err and not run.exists()


def test_a_momask_checkpoint_given_to_t2m_gpt_is_named(tmp_path):
    momask_checkpoint(tmp_path / "net_best_fid.tar", small_state())
    with pytest.raises(MotionhubError, match=r"looks like a momask checkpoint \(MoMask's residual VQ-VAE: 'vq_model' "
                                             r"with per-level codebooks .*not a t2m-gpt one.*motionhub import momask"):
        importing.read_reference(tmp_path / "net_best_fid.tar", "t2m-gpt")
    torch.save(small_state(), tmp_path / "bare.pth")  # a bare state dict, read as T2M-GPT's fallback
    with pytest.raises(MotionhubError, match="looks like a momask checkpoint"):
        importing.read_reference(tmp_path / "bare.pth", "motionmillion")


def test_a_momask_checkpoint_reads_with_its_own_importer(tmp_path):
    state = small_state()
    momask_checkpoint(tmp_path / "latest.tar", {f"module.{k}": v for k, v in state.items()})
    read = importing.read_reference(tmp_path / "latest.tar", "momask")
    assert read.state_dict.keys() == state.keys() and read.iteration is None


def test_the_momask_and_motiongpt_importers_come_from_the_conv_plugin():
    from motionhub.plugins.manager import get_registry

    for name in ("momask", "motiongpt"):
        component = get_registry().get("importer", name)
        assert component.provider == "motionhub_conv" and issubclass(component.cls, importing.StateDictImporter)
