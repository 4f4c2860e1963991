"""``motionhub encode --precision``: bf16 autocast for the encoder, the quantizer in fp32, said in the output."""

import pytest
import torch
from helpers import TINY_RECIPE

from motionhub.cli import main
from motionhub.errors import MotionhubError
from motionhub.recipes import recipe_from_tree
from motionhub.train.trainer import train
from motionhub.use.encoding import encode_clips, read_tokens
from motionhub.use.trained_run import load_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("precision") / "run"
    tree = {**TINY_RECIPE, "run": {"name": "precision", "out": str(out), "seed": 0},
            "train": {**TINY_RECIPE["train"], "iters": 2}, "eval": {"train_codebook": False}}
    return train(recipe_from_tree(tree, "precision.yaml"))


def seen_in_forward(model):
    """Record, per part, whether autocast was on and the input's dtype."""
    seen = {}
    for name in ("encoder", "quantizer"):
        def hook(module, args, output, name=name):
            seen.setdefault(name, set()).add((torch.is_autocast_enabled("cpu"), args[0].dtype))
        getattr(model, name).register_forward_hook(hook)
    return seen


@pytest.mark.parametrize("precision, encoder", [("fp32", (False, torch.float32)), ("bf16", (True, torch.float32))])
def test_encode_clips_runs_the_encoder_under_autocast_and_the_quantizer_in_fp32(run_dir, precision, encoder):
    loaded = load_run(run_dir)
    model = loaded.model
    seen = seen_in_forward(model)
    encoded = encode_clips(model, loaded.format, loaded.split("val"), batch_size=4, precision=precision)
    assert len(encoded.tokens) > 0
    assert seen["encoder"] == {encoder}
    # the hook runs outside the quantizer's forward; its input reached it in the encoder's output dtype,
    # and its forward turns autocast off and casts to float32 (test_precision checks the indices)
    quantizer_inputs = {dtype for _, dtype in seen["quantizer"]}
    assert quantizer_inputs == ({torch.bfloat16} if precision == "bf16" else {torch.float32})


def test_encode_takes_precision_and_says_it(run_dir, tmp_path, capsys):
    out = tmp_path / "tokens.h5"
    assert main(["encode", str(run_dir), "--out", str(out), "--precision", "bf16"]) == 0
    err = capsys.readouterr().err
    assert "precision bf16 autocast: encoder convs in bf16; quantizer in fp32" in " ".join(err.split())
    assert read_tokens(out).attrs["precision"] == "bf16"


def test_an_unknown_precision_is_refused_with_the_choices(run_dir):
    loaded = load_run(run_dir)
    with pytest.raises(MotionhubError, match="unknown precision 'fp8'; choose one of fp32, bf16"):
        encode_clips(loaded.model, loaded.format, loaded.split("val"), batch_size=4, precision="fp8")
