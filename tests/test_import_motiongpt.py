"""Importing MotionGPT's motion tokenizer: a Lightning checkpoint with MotionGPT's names and shapes
(its VQ-VAE under ``vae.`` beside a language model) becomes a run whose model has the reference's
parameter count and reconstructs the real HumanML3D clip as the reference's forward pass does.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import REAL_DATA, REPO
from reference_vqvae import conv_vqvae_shapes, decode, encode, parameters_in, residual_quantize, seeded_convs
from test_import_momask import humanml3d_clip, import_with_stats, momask_checkpoint, small_state

from motionhub.cli import main
from motionhub.errors import MotionhubError
from motionhub.model.tokenizer import Tokenizer
from motionhub.data.formats import MotionFormat
from motionhub.use import importing
from motionhub_conv import Conv1dDecoder, Conv1dEncoder
from motionhub_quantizers import EMAResetVQ

EVALUATOR = REAL_DATA / "GuyTevet-motion-diffusion-model" / "dataset"  # the statistics MotionGPT normalises with
SHIPPED = REPO / "configs" / "humanml3d" / "t2m_gpt_vq.yaml"
# MotionGPT's configs/vq/default.yaml
FEATURES, WIDTH, DEPTH, DOWN_T, CODE_DIM, CODES = 263, 512, 3, 2, 512, 512
STEPS = 777


def vae_state(x: torch.Tensor, seed: int = 0, features=FEATURES, width=WIDTH, depth=DEPTH, down_t=DOWN_T,
              dim=CODE_DIM, codes=CODES) -> dict[str, torch.Tensor]:
    """``VQVae.state_dict()`` with seeded weights; the codebook at the scale of the latents of ``x`` (B, D, T)."""
    state = seeded_convs(conv_vqvae_shapes(features, width, depth, down_t, dim), seed)
    latents = encode(x, state, "", down_t, depth)
    g = torch.Generator().manual_seed(seed + 1)
    return state | {"quantizer.codebook": torch.randn(codes, dim, generator=g) * latents.std()}


def motiongpt_reconstruction(x: torch.Tensor, vae: dict, down_t=DOWN_T, depth=DEPTH):
    """VQVae.forward in eval mode: (B, D, T) -> recon (B, T, D), indices (B, T')."""
    quantized, indices = residual_quantize(encode(x, vae, "", down_t, depth), [vae["quantizer.codebook"]])
    return decode(quantized, vae, "", down_t, depth).permute(0, 2, 1), indices[..., 0]


def lightning_checkpoint(path, vae: dict, prefix: str = "vae.") -> dict:
    """What Lightning saves for MotionGPT's module: the VQ-VAE beside a (here tiny) language model and
    the metrics, the step counters and the optimizer. Returns the state dict."""
    g = torch.Generator().manual_seed(5)
    state = {f"{prefix}{k}": v for k, v in vae.items()}
    state |= {"lm.language_model.shared.weight": torch.randn(10, 4, generator=g),
              "lm.language_model.lm_head.weight": torch.randn(10, 4, generator=g),
              "metrics.TM2TMetrics.t2m_textencoder.input_emb.weight": torch.randn(3, 2, generator=g)}
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([weight], lr=2e-4, betas=(0.9, 0.99))
    torch.save({"epoch": 5, "global_step": STEPS, "pytorch-lightning_version": "2.0.9", "state_dict": state,
                "optimizer_states": [optimizer.state_dict()], "lr_schedulers": []}, path)
    return state


# ---------------------------------------------------------------------------- the released configuration
@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """MotionGPT's tokenizer imported through the CLI with the shipped T2M-GPT recipe (the same model and
    statistics) and the evaluator statistics, on the real clip."""
    folder = tmp_path_factory.mktemp("motiongpt")
    clip, mean, std = humanml3d_clip()
    if (EVALUATOR / "t2m_mean.npy").is_file():
        mean, std = (np.load(EVALUATOR / f"t2m_{s}.npy").astype(np.float32) for s in ("mean", "std"))
    x = torch.from_numpy((clip - mean) / std)[None]
    vae = vae_state(x.permute(0, 2, 1))
    lightning_checkpoint(folder / "motiongpt_s1_h3d.ckpt", vae)
    model, saved = import_with_stats("motiongpt", folder / "motiongpt_s1_h3d.ckpt", SHIPPED, folder, mean, std)
    return {"x": x, "vae": vae, "model": model, "saved": saved}


@pytest.mark.slow  # the released size: an 80 MB checkpoint written, imported and read back
def test_parameter_counts_equal_the_references(released):
    model, vae = released["model"], released["vae"]
    reference = parameters_in({k: tuple(v.shape) for k, v in vae.items()})
    assert sum(p.numel() for p in model.parameters()) == reference == 19_436_807
    assert model.quantizer.codebook.numel() == vae["quantizer.codebook"].numel() == CODES * CODE_DIM


@pytest.mark.slow  # the released size: an 80 MB checkpoint written, imported and read back
def test_reconstruction_of_the_humanml3d_clip_equals_the_references(released):
    model, x = released["model"], released["x"]
    expected, indices = motiongpt_reconstruction(x.permute(0, 2, 1), released["vae"])
    with torch.no_grad():
        out = model(x)
    assert torch.equal(out["indices"], indices) and len(set(indices[0].tolist())) > 1
    assert (out["recon"] - expected).abs().max().item() <= 1e-5


@pytest.mark.slow  # the released size: an 80 MB checkpoint written, imported and read back
def test_only_the_tokenizer_is_read_and_the_step_continues(released):
    saved, vae = released["saved"], released["vae"]
    assert torch.equal(saved["model"]["quantizer.codebook"], vae["quantizer.codebook"])
    assert torch.equal(saved["model"]["quantizer.code_sum"], vae["quantizer.codebook"])
    assert not any(key.startswith(("lm.", "metrics.")) for key in saved["model"])
    warmup = saved["recipe"]["train"]["warmup_iters"]
    assert saved["state"]["step"] == warmup + STEPS and saved["state"]["imported"]["iteration"] == STEPS


# ---------------------------------------------------------------------------- other layouts and misfits
def small_vq_model() -> Tokenizer:
    fmt = MotionFormat("test", (FEATURES,), 20.0)
    enc = Conv1dEncoder(fmt, width=16, depth=2, down_t=2, output_emb_width=8)
    return Tokenizer(enc, EMAResetVQ(8, codebook_size=32), Conv1dDecoder(fmt, encoder=enc))


def small_vae() -> dict[str, torch.Tensor]:
    x = torch.randn(1, FEATURES, 32, generator=torch.Generator().manual_seed(0))
    return vae_state(x, width=16, depth=2, down_t=2, dim=8, codes=32)


def test_an_older_motion_vae_prefix_reads_the_same(tmp_path):
    vae = small_vae()
    lightning_checkpoint(tmp_path / "mld.ckpt", vae, prefix="motion_vae.")
    read = importing.read_reference(tmp_path / "mld.ckpt", "motiongpt")
    model = small_vq_model()
    model.load_state_dict(importing.convert_state_dict("motiongpt", model, read.state_dict))
    x = torch.randn(2, 40, FEATURES, generator=torch.Generator().manual_seed(3))
    expected, indices = motiongpt_reconstruction(x.permute(0, 2, 1), vae, down_t=2, depth=2)
    with torch.no_grad():
        out = model.eval()(x)
    assert torch.equal(out["indices"], indices) and (out["recon"] - expected).abs().max().item() <= 1e-5


def test_a_lightning_checkpoint_without_a_tokenizer_says_so():
    state = {"lm.language_model.shared.weight": torch.zeros(10, 4), "denoiser.proj.weight": torch.zeros(2, 2)}
    with pytest.raises(MotionhubError, match=r"holds no VQ-VAE \(vae\. or motion_vae\. tensors; its tensors begin "
                                             r"with denoiser, lm\): it is not a MotionGPT tokenizer checkpoint"):
        importing.convert_state_dict("motiongpt", small_vq_model(), state, "model.ckpt")


def test_a_wider_tokenizer_names_the_shape_that_differs():
    vae = {f"vae.{k}": v for k, v in small_vae().items()}
    vae["vae.quantizer.codebook"] = torch.zeros(64, 8)
    with pytest.raises(MotionhubError, match=r"(?s)the first: vae\.quantizer\.codebook is \(64, 8\) in the checkpoint, "
                                             r"quantizer\.codebook is \(32, 8\) in the model.*"
                                             r"an EMA codebook of 64 x 8 \(vq_ema_reset, codebook_size 64\)"):
        importing.convert_state_dict("motiongpt", small_vq_model(), vae)


def test_a_motiongpt_checkpoint_given_to_t2m_gpt_or_momask_is_named(tmp_path, capsys):
    lightning_checkpoint(tmp_path / "motiongpt.ckpt", small_vae())
    for importer in ("t2m-gpt", "momask"):
        with pytest.raises(MotionhubError, match=rf"looks like a motiongpt checkpoint \(MotionGPT's: a Lightning "
                                                 rf"'state_dict' with its VQ-VAE under vae\.\*\), not a {importer} "
                                                 rf"one.*motionhub import motiongpt"):
            importing.read_reference(tmp_path / "motiongpt.ckpt", importer)
    run = tmp_path / "run"
    assert main(["import", "t2m-gpt", str(tmp_path / "motiongpt.ckpt"), "--recipe", str(SHIPPED), "--out", str(run),
                 "--no-data", "--stats-mean", "m.npy", "--stats-std", "s.npy"]) == 2
    err = capsys.readouterr().err
    assert "looks like a motiongpt checkpoint" in err and "Traceback" not in err and not run.exists()


def test_a_momask_checkpoint_given_to_motiongpt_is_named(tmp_path):
    momask_checkpoint(tmp_path / "net_best_fid.tar", small_state())
    with pytest.raises(MotionhubError, match="looks like a momask checkpoint .*not a motiongpt one"):
        importing.read_reference(tmp_path / "net_best_fid.tar", "motiongpt")


def test_a_decoder_that_upsamples_by_four_is_refused():
    fmt = MotionFormat("test", (FEATURES,), 20.0)
    enc = Conv1dEncoder(fmt, width=16, depth=2, down_t=2, stride_t=4, output_emb_width=8)
    model = Tokenizer(enc, EMAResetVQ(8, codebook_size=32), Conv1dDecoder(fmt, encoder=enc))
    reference = {ref: torch.zeros(model.state_dict()[ours].shape)
                 for ours, ref in importing.key_map("motiongpt", model, {}).items()}
    with pytest.raises(MotionhubError, match="MotionGPT's decoder up-samples by 2 at every stage"):
        importing.convert_state_dict("motiongpt", model, reference)
