"""Clips of different lengths share a batch through a conv encoder and encode exactly as alone."""

import pytest
import torch

from motionhub.data.layouts import humanml3d_263
from motionhub.model.padding import pads_exactly, zeros_past_ends
from motionhub_conv.conv1d import Conv1dEncoder

LENGTHS = [8, 20, 36, 64]  # multiples of the down-sampling (4)


def encoder(**settings) -> Conv1dEncoder:
    torch.manual_seed(0)
    model = Conv1dEncoder(humanml3d_263(), width=32, depth=2, down_t=2, output_emb_width=16, **settings).eval()
    for module in model.modules():  # random running statistics, so BN is not the identity
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
    return model


def padded_batch() -> tuple[list[torch.Tensor], torch.Tensor]:
    torch.manual_seed(1)
    clips = [torch.randn(length, 263) for length in LENGTHS]
    batch = torch.zeros(len(clips), max(LENGTHS), 263)
    for i, clip in enumerate(clips):
        batch[i, :len(clip)] = clip
    return clips, batch


@pytest.mark.parametrize("settings", [{}, {"norm": "LN"}, {"norm": "BN"}, {"causal": True},
                                      {"activation": "gelu", "reverse_dilation": False}])
@torch.no_grad()
def test_a_padded_batch_encodes_each_clip_as_alone(settings):
    model, (clips, batch) = encoder(**settings), padded_batch()
    assert pads_exactly(model)
    with zeros_past_ends(model, torch.tensor(LENGTHS), max(LENGTHS)):
        latents = model(batch)
    for i, clip in enumerate(clips):
        alone = model(clip[None])[0]
        torch.testing.assert_close(latents[i, :len(alone)], alone, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_without_the_zeros_the_padding_leaks_into_the_last_latents_and_the_hooks_are_removed():
    model, (clips, batch) = encoder(), padded_batch()
    for i in range(len(clips)):
        batch[i, len(clips[i]):] = 1.0  # what a batch holds past a clip's end is not zero here
    with zeros_past_ends(model, torch.tensor(LENGTHS), max(LENGTHS)):
        masked = model(batch)
    unmasked = model(batch)  # hooks gone: the frames past the end now reach the clip's latents
    short = model(clips[0][None])[0]
    torch.testing.assert_close(masked[0, :len(short)], short, atol=1e-5, rtol=1e-5)
    assert (unmasked[0, :len(short)] - short).abs().max() > 1e-3


def test_encoders_that_pool_over_time_do_not_claim_exact_padding():
    assert not pads_exactly(encoder(norm="GN"))
    assert not pads_exactly(torch.nn.Linear(2, 2))
