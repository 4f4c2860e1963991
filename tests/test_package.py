"""``motionhub package``: a run as a checksummed folder that encode / decode / eval and ``load_tokenizer``
read with the run's own results, and that refuses missing plugins, altered files and other folders."""

import hashlib
import json
import shutil

import h5py
import numpy as np
import pytest
import torch
import yaml
from helpers import TINY_RECIPE, run_cli
from safetensors.torch import load_file

import motionhub
import motionhub.api
from motionhub.cli import main
from motionhub.errors import DataError, MotionhubError
from motionhub.recipes import recipe_from_tree
from motionhub.train.checkpoint import load_checkpoint
from motionhub.train import trainer
from motionhub.use import package
from motionhub.use.encoding import read_reconstruction, read_tokens
from motionhub.use.package import PackageError, compatible_range, load_package, load_tokenizer, version_problem

UNIT = 2  # TINY_RECIPE's conv1d encoder: down_t 1, stride 2
FILES = {"manifest.json", "model.safetensors", "stats.safetensors", "recipe.yaml", "format.json", "plugins.json",
         "README.md"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny trained run whose val split has 5 clips of 30-44 frames; its residual quantizer keeps EMA
    codebooks in buffers and gives two ids per token."""
    out = tmp_path_factory.mktemp("package") / "run"
    tree = {**TINY_RECIPE, "run": {"name": "packaged", "out": str(out), "seed": 0},
            "data": {**TINY_RECIPE["data"], "clips": 20, "val_fraction": 0.25, "min_frames": 30, "max_frames": 44},
            "quantizer": {"name": "rvq", "codebook_size": 64, "num_quantizers": 2},
            "train": {**TINY_RECIPE["train"], "iters": 2}, "eval": {"train_codebook": False, "train_clips": 0}}
    with pytest.MonkeyPatch.context() as patch:  # the report's figures take most of a tiny run's time; none is used
        patch.setattr(trainer, "draw_report_figures", lambda *args: {"drawn": []})
        return trainer.train(recipe_from_tree(tree, "packaged.yaml"))


@pytest.fixture(scope="module")
def package_dir(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("shared") / "tokenizer"
    assert main(["package", str(run_dir), "--out", str(out)]) == 0
    return out


def encode_and_decode(source, folder) -> tuple:
    """The tokens and reconstruction files of the val split, made by the commands from ``source``."""
    folder.mkdir()
    tokens, recon = folder / "tokens.h5", folder / "recon.h5"
    assert main(["encode", str(source), "--out", str(tokens), "--batch-size", "3"]) == 0
    assert main(["decode", str(source), str(tokens), "--out", str(recon)]) == 0
    return tokens, recon


@pytest.fixture(scope="module")
def from_run(run_dir, tmp_path_factory):
    return encode_and_decode(run_dir, tmp_path_factory.mktemp("from") / "run")


@pytest.fixture(scope="module")
def from_package(package_dir, tmp_path_factory):
    return encode_and_decode(package_dir, tmp_path_factory.mktemp("from") / "package")


def datasets(path) -> dict:
    with h5py.File(path) as f:
        return {key: f[key][()] for key in f if isinstance(f[key], h5py.Dataset)}


def copy_of(package_dir, tmp_path):
    return shutil.copytree(package_dir, tmp_path / "copy")


# ---------------------------------------------------------------------------- what a package holds
def test_package_holds_the_weights_statistics_recipe_and_a_checksum_of_every_file(run_dir, package_dir):
    assert {p.name for p in package_dir.iterdir()} == FILES
    manifest = json.loads((package_dir / "manifest.json").read_text())
    assert set(manifest["files"]) == FILES - {"manifest.json"}
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == hashlib.sha256((package_dir / name).read_bytes()).hexdigest()
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    assert manifest["run"]["checkpoint"] == "best" and manifest["run"]["step"] == checkpoint["state"]["step"]

    weights = load_file(package_dir / "model.safetensors")
    assert set(weights) == set(checkpoint["model"])
    assert any(key.startswith("quantizer.") and key.endswith("embed_avg") for key in weights)  # EMA buffers too
    for key, tensor in checkpoint["model"].items():
        assert torch.equal(weights[key], tensor), key
    stats = load_file(package_dir / "stats.safetensors")
    np.testing.assert_array_equal(stats["mean"].numpy(), checkpoint["stats"]["mean"].reshape(263))
    np.testing.assert_array_equal(stats["std"].numpy(), checkpoint["stats"]["std"].reshape(263))
    assert yaml.safe_load((package_dir / "recipe.yaml").read_text()) == checkpoint["recipe"]


def test_package_names_its_plugins_with_versions_and_carries_the_report(run_dir, package_dir):
    plugins = json.loads((package_dir / "plugins.json").read_text())["plugins"]
    assert plugins["motionhub_conv"] == {"distribution": "motionhub", "version": motionhub.__version__,
                                         "components": ["encoder conv1d", "decoder conv1d"]}
    assert plugins["motionhub_quantizers"]["components"] == ["quantizer rvq"]
    assert "data synthetic" in plugins["motionhub_synthetic"]["components"]
    fmt = json.loads((package_dir / "format.json").read_text())
    assert (fmt["name"], fmt["feature_shape"], fmt["fps"], fmt["slices"]["positions"]) == (
        "humanml3d_263", [263], 20.0, [4, 67])
    card = (package_dir / "README.md").read_text()
    report = json.loads((run_dir / "report.json").read_text())
    assert f"| total | {report['parameters']['total']:,} |" in card
    assert "| motionhub_conv | motionhub | 0.1.0 | encoder conv1d, decoder conv1d |" in card
    assert "from motionhub import load_tokenizer" in card


# ---------------------------------------------------------------------------- same results as the run
def test_encode_and_decode_of_a_package_equal_those_of_its_run(from_run, from_package):
    for run_file, package_file in zip(from_run, from_package):
        ours, theirs = datasets(package_file), datasets(run_file)
        assert set(ours) == set(theirs)
        for key in theirs:
            np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)
    recon, _, _ = read_reconstruction(from_package[1])
    assert recon.joints is not None and len(read_tokens(from_package[0]).encoded.ids) == 5


def test_eval_of_a_package_equals_that_of_its_run(run_dir, package_dir, capsys):
    figures = []
    for source in (run_dir, package_dir):
        assert main(["eval", str(source)]) == 0
        figures.append(json.loads((source / "eval_val.json").read_text()))
    assert figures[0] == figures[1] and "loss" in figures[0]


def test_a_protocol_on_a_package_or_a_run_names_the_weights_file_it_read(run_dir, package_dir):
    from motionhub.use.protocols import protocol_run
    from motionhub.use.trained_run import load_run

    assert protocol_run(load_run(package_dir)).checkpoint == package_dir / "model.safetensors"
    best = run_dir / "checkpoints" / "best.pt"
    assert best.is_file() and protocol_run(load_run(run_dir)).checkpoint == best
    assert protocol_run(load_run(run_dir, "last")).checkpoint.is_file()


def test_the_python_api_encodes_and_decodes_as_the_commands(package_dir, from_run):
    tokens, recon = read_tokens(from_run[0]).encoded, read_reconstruction(from_run[1])[0]
    clips = [clip.motion for clip in load_package(package_dir).dataset.clips("val")]
    tok = load_tokenizer(package_dir)
    assert (tok.downsample, tok.codebook_size, tok.id_shape) == (UNIT, 64, (2,))
    ids = tok.encode(clips)
    motion = tok.decode(ids)
    for i, clip in enumerate(clips):
        assert ids[i].dtype == np.int64 and ids[i].shape == (len(clip) // UNIT, 2)
        np.testing.assert_array_equal(ids[i], tokens.clip_tokens(i))
        part = slice(recon.offsets[i], recon.offsets[i + 1])
        assert motion[i].shape == (len(ids[i]) * UNIT, 263) and motion[i].dtype == np.float32
        # the command decodes clips of one length together: equal up to float32 rounding of batched convolutions
        np.testing.assert_allclose(motion[i], recon.features[part], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(tok.joints(motion[i]), recon.joints[part], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(tok.encode(clips[0]), ids[0])  # one clip alone, as in a list
    assert motionhub.load_tokenizer is load_tokenizer and motionhub.api.load_tokenizer is load_tokenizer


def test_the_python_api_refuses_motion_and_ids_that_do_not_fit(package_dir):
    tok = load_tokenizer(package_dir)
    with pytest.raises(MotionhubError, match=r"shape \(10, 251\); this tokenizer encodes \(T, 263\)"):
        tok.encode(np.zeros((10, 251), np.float32))
    with pytest.raises(MotionhubError, match="pass several clips as a list"):
        tok.encode(np.zeros((2, 10, 263), np.float32))
    with pytest.raises(MotionhubError, match="1 frames, fewer than the 2 frames of one token"):
        tok.encode(np.zeros((1, 263), np.float32))
    with pytest.raises(MotionhubError, match="outside the codebook of 64 codes"):
        tok.decode(np.array([[0, 1], [2, 64]]))
    with pytest.raises(MotionhubError, match=r"int64 of shape \(3,\); this tokenizer decodes integer ids of shape "
                                             r"\(tokens, 2\)"):
        tok.decode(np.zeros(3, np.int64))


def test_without_its_data_a_package_decodes_and_says_how_to_find_the_data(package_dir):
    loaded = load_package(package_dir, data=False)
    assert loaded.format.has_joints and loaded.format.mean is not None  # the layout and statistics, from the package
    with pytest.raises(DataError, match="cannot be read here.*data.root="):
        loaded.split("val")


# ---------------------------------------------------------------------------- refusals
def test_a_missing_or_altered_file_is_named(package_dir, tmp_path, capsys):
    copy = copy_of(package_dir, tmp_path)
    weights = bytearray((copy / "model.safetensors").read_bytes())
    weights[-1] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(weights))
    (copy / "stats.safetensors").unlink()
    out = tmp_path / "tokens.h5"
    assert main(["encode", str(copy), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is not intact" in err and "model.safetensors: altered or damaged" in err
    assert "stats.safetensors: missing" in err and "Traceback" not in err
    assert not out.exists()


def test_a_plugin_of_an_incompatible_version_is_refused(package_dir, tmp_path):
    copy = copy_of(package_dir, tmp_path)
    record = json.loads((copy / "plugins.json").read_text())
    record["plugins"]["motionhub_conv"]["version"] = "0.1.7"  # made where a newer plugin was installed
    (copy / "plugins.json").write_text(json.dumps(record))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["plugins.json"]["sha256"] = hashlib.sha256((copy / "plugins.json").read_bytes()).hexdigest()
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PackageError) as caught:
        load_tokenizer(copy)
    message = str(caught.value)
    assert ("plugin 'motionhub_conv' (encoder conv1d, decoder conv1d) version 0.1.0 is installed, older than the "
            "0.1.7 the package was made with; install it: pip install 'motionhub>=0.1.7,<0.2'") in message
    assert "motionhub_quantizers" not in message


@pytest.mark.slow
def test_a_switched_off_plugin_is_refused_in_one_message(package_dir, tmp_path):
    result = run_cli("encode", str(package_dir), "--out", str(tmp_path / "tokens.h5"),
                     env={"MOTIONHUB_DISABLE_PLUGINS": "motionhub_conv"})
    assert result.returncode == 2
    assert ("plugin 'motionhub_conv' (encoder conv1d, decoder conv1d) is switched off by MOTIONHUB_DISABLE_PLUGINS"
            in result.stderr)
    assert "Traceback" not in result.stderr


def test_version_rule():
    assert version_problem("0.1.0", "0.1.0") is None and version_problem("0.1.4", "0.1.2") is None
    assert version_problem("1.4.0", "1.2.3") is None and version_problem(None, "1.0") is None
    assert "older than the 0.1.3" in version_problem("0.1.2", "0.1.3")
    assert "another release series" in version_problem("0.2.0", "0.1.3")
    assert "another release series" in version_problem("2.0.0", "1.9.0")
    assert (compatible_range("0.1.3"), compatible_range("1.2.0")) == (">=0.1.3,<0.2", ">=1.2.0,<2")


def test_folders_that_are_not_packages_and_other_checkpoints_are_refused(run_dir, package_dir, tmp_path, capsys):
    with pytest.raises(PackageError, match="it is a run directory, not a package: package it with"):
        load_tokenizer(run_dir)
    with pytest.raises(PackageError, match="has no manifest.json: it is not a packaged tokenizer"):
        load_tokenizer(tmp_path)
    with pytest.raises(PackageError, match="does not exist"):
        load_tokenizer(tmp_path / "nowhere")
    assert main(["encode", str(tmp_path), "--out", str(tmp_path / "t.h5")]) == 2
    assert "nor a packaged tokenizer (no manifest.json)" in capsys.readouterr().err
    assert main(["encode", str(package_dir), "--checkpoint", "step_2", "--out", str(tmp_path / "t.h5")]) == 2
    assert "holds only checkpoint 'best' of its run, not 'step_2'" in capsys.readouterr().err


def test_a_failed_package_leaves_nothing_behind(run_dir, package_dir, tmp_path, monkeypatch, capsys):
    def broken_card(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(package, "model_card", broken_card)
    out = tmp_path / "shared" / "tokenizer"
    assert main(["package", str(run_dir), "--out", str(out)]) == 2
    assert "cannot write the package" in capsys.readouterr().err
    assert not out.exists() and list(out.parent.iterdir()) == []
    assert main(["package", str(run_dir), "--out", str(package_dir)]) == 2
    assert "already exists and is not an empty folder" in capsys.readouterr().err
