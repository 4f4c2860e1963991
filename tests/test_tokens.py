"""``motionhub encode`` / ``decode``: batched ids equal one-at-a-time ids, file contents, round trip, errors."""

import re

import h5py
import numpy as np
import pytest
import torch
from helpers import TINY_RECIPE

from motionhub.cli import main
from motionhub.data.dataset import Clip
from motionhub.errors import MotionhubError
from motionhub.recipes import recipe_from_tree
from motionhub.use.trained_run import load_run
from motionhub.use.encoding import (EncodedClips, TokenFile, encode_clips, length_buckets, read_reconstruction,
                              read_tokens, write_npy_folder, write_tokens)
from motionhub.train.trainer import train
from motionhub.data.windows import ClipBank

UNIT = 2  # TINY_RECIPE's conv1d encoder: down_t 1, stride 2


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny trained run whose val split has 12 clips of 31-45 frames (several share a cropped length)."""
    out = tmp_path_factory.mktemp("tokens") / "run"
    tree = {**TINY_RECIPE, "run": {"name": "tokens", "out": str(out), "seed": 0},
            "data": {**TINY_RECIPE["data"], "clips": 30, "val_fraction": 0.4, "min_frames": 30, "max_frames": 44},
            "train": {**TINY_RECIPE["train"], "iters": 4}, "eval": {"train_codebook": False}}
    return train(recipe_from_tree(tree, "tokens.yaml"))


@pytest.fixture(scope="module")
def loaded(run_dir):
    return load_run(run_dir)


@pytest.fixture(scope="module")
def val_clips(loaded):
    return list(loaded.dataset.clips("val"))


@pytest.fixture(scope="module")
def tokens_file(run_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("encoded") / "tokens.h5"
    assert main(["encode", str(run_dir), "--out", str(path), "--batch-size", "2"]) == 0
    return path


@pytest.fixture(scope="module")
def recon_file(run_dir, tokens_file, tmp_path_factory):
    path = tmp_path_factory.mktemp("decoded") / "recon.h5"
    assert main(["decode", str(run_dir), str(tokens_file), "--out", str(path), "--batch-size", "3"]) == 0
    return path


def alone(clip: Clip, loaded) -> torch.Tensor:
    """(1, T, *F) normalised first frames of ``clip``, cropped to a multiple of the down-sampling."""
    length = len(clip.motion) // UNIT * UNIT
    return loaded.format.normalise(torch.from_numpy(clip.motion[:length]))[None]


def test_length_buckets_group_identical_lengths_shortest_first_and_split_full_ones():
    lengths = np.array([6, 4, 6, 8, 6, 4])
    buckets = length_buckets(lengths, batch_size=2)
    assert [b.tolist() for b in buckets] == [[1, 5], [0, 2], [4], [3]]


def test_batched_ids_equal_encoding_each_clip_alone(loaded, val_clips):
    cropped = [len(c.motion) // UNIT * UNIT for c in val_clips]
    assert len(set(cropped)) < len(cropped), "the split must have clips of equal length to batch together"
    short = Clip("one_frame", val_clips[0].motion[:1])
    source = ClipBank.from_clips([*val_clips, short])
    reference = [loaded.model.encode(alone(c, loaded))[0].numpy() for c in val_clips]
    for batch_size in (64, 2):
        encoded = encode_clips(loaded.model, loaded.format, source, batch_size=batch_size)
        assert encoded.ids == [c.id for c in val_clips] and encoded.skipped_ids == ["one_frame"]
        for i, expected in enumerate(reference):
            np.testing.assert_array_equal(encoded.clip_tokens(i), expected)


def test_the_tokens_file_holds_ids_texts_lengths_and_offsets(tokens_file, loaded, val_clips, run_dir):
    content = read_tokens(tokens_file)
    encoded, attrs = content.encoded, content.attrs
    lengths = np.array([len(c.motion) for c in val_clips])
    assert encoded.ids == [c.id for c in val_clips]
    assert content.texts == ["\n".join(c.texts) for c in val_clips] and all(content.texts)
    np.testing.assert_array_equal(encoded.source_lengths, lengths)
    np.testing.assert_array_equal(encoded.frame_lengths, lengths // UNIT * UNIT)
    np.testing.assert_array_equal(encoded.token_lengths, lengths // UNIT)
    np.testing.assert_array_equal(encoded.offsets, np.concatenate([[0], np.cumsum(lengths // UNIT)]))
    np.testing.assert_array_equal(encoded.clips, np.arange(len(val_clips)))
    assert encoded.tokens.dtype == np.int32 and encoded.tokens.shape == (encoded.offsets[-1],)
    assert 0 <= encoded.tokens.min() and encoded.tokens.max() < 200
    for i, clip in enumerate(val_clips):
        np.testing.assert_array_equal(encoded.clip_tokens(i), loaded.model.encode(alone(clip, loaded))[0].numpy())
    assert attrs["run_dir"] == str(run_dir.resolve()) and attrs["step"] == loaded.step == 4
    assert (attrs["codebook_size"], attrs["downsample"], attrs["split"]) == (200, UNIT, "val")
    assert (attrs["format"], attrs["feature_shape"], attrs["fps"]) == ("humanml3d_263", [263], 20.0)
    with h5py.File(tokens_file) as f:
        np.testing.assert_array_equal(f["token_lengths"][()], lengths // UNIT)


def test_encode_reports_the_crop_and_prints_the_file(run_dir, tmp_path, capsys):
    out = tmp_path / "test_tokens.h5"
    assert main(["encode", str(run_dir), "--split", "test", "--checkpoint", "last", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert "cropped to a multiple of the down-sampling (2 frames)" in captured.err
    assert re.search(r"in [\d.]+ s: [\d,]+ clips/s,\s+[\d,]+\s+frames/s\s+on\s+cpu", captured.err)
    assert read_tokens(out).attrs["split"] == "test"


def test_decode_of_encode_equals_the_tokenizers_own_reconstruction(recon_file, loaded, val_clips):
    recon, ids, attrs = read_reconstruction(recon_file)
    fmt = loaded.format
    assert ids == [c.id for c in val_clips] and attrs["format"] == "humanml3d_263"
    assert recon.features.dtype == np.float32 and recon.joints.dtype == np.float32
    assert recon.joints.shape == (len(recon.features), 22, 3)
    for i, clip in enumerate(val_clips):
        with torch.no_grad():
            expected = fmt.denormalise(loaded.model(alone(clip, loaded))["recon"][0])
        features = recon.features[recon.offsets[i]:recon.offsets[i + 1]]
        torch.testing.assert_close(torch.from_numpy(features), expected)
        joints = recon.joints[recon.offsets[i]:recon.offsets[i + 1]]
        torch.testing.assert_close(torch.from_numpy(joints), fmt.to_joints(expected))


def test_missing_run_dir_tokens_file_and_wrong_files_are_clear_errors(run_dir, tokens_file, recon_file, tmp_path,
                                                                      capsys):
    missing_run = tmp_path / "no_run"
    assert main(["encode", str(missing_run), "--out", str(tmp_path / "t.h5")]) == 2
    assert f"{missing_run} is not a run directory (no recipe.yaml)" in capsys.readouterr().err

    missing = tmp_path / "missing.h5"
    assert main(["decode", str(run_dir), str(missing), "--out", str(tmp_path / "r.h5")]) == 2
    assert f"no tokens file at {missing}; write one with 'motionhub encode" in capsys.readouterr().err

    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    assert main(["decode", str(run_dir), str(text), "--out", str(tmp_path / "r.h5")]) == 2
    assert f"{text} is not an HDF5 file" in capsys.readouterr().err

    assert main(["decode", str(run_dir), str(recon_file), "--out", str(tmp_path / "again.h5")]) == 2
    assert "is a motionhub reconstruction file, not a motionhub tokens file" in capsys.readouterr().err
    assert not (tmp_path / "again.h5").exists()

    other = read_tokens(tokens_file)
    other = TokenFile(other.encoded, other.texts, {**other.attrs, "codebook_size": 512})
    foreign = write_tokens(tmp_path / "foreign.h5", other)
    assert main(["decode", str(run_dir), str(foreign), "--out", str(tmp_path / "r.h5")]) == 2
    err = capsys.readouterr().err
    assert "(codebook of 512 codes, down-sampling 2)" in err and "has 200 codes" in err


def test_npy_folder_in_the_layout_t2m_gpt_reads(run_dir, tmp_path, capsys):
    out, folder = tmp_path / "tokens.h5", tmp_path / "HumanML3D" / "VQVAE"
    assert main(["encode", str(run_dir), "--out", str(out), "--npy-dir", str(folder)]) == 0
    encoded = read_tokens(out).encoded
    files = sorted(folder.rglob("*.npy"))
    assert [f.stem for f in files] == sorted(encoded.ids)
    for i, clip_id in enumerate(encoded.ids):
        token_list = np.load(folder / f"{clip_id}.npy")  # T2M-GPT: m_token_list, one row per crop
        assert token_list.dtype == np.int64 and token_list.shape == (1, encoded.token_lengths[i])
        np.testing.assert_array_equal(token_list[0], encoded.clip_tokens(i))
    assert not [p for p in tmp_path.rglob(".VQVAE*")]  # no partial folder left

    # an existing folder with files is refused before anything is encoded
    again = tmp_path / "again.h5"
    assert main(["encode", str(run_dir), "--out", str(again), "--npy-dir", str(folder)]) == 2
    assert "already exists and is not an empty folder" in capsys.readouterr().err and not again.exists()


def test_npy_folder_ids_with_slashes_make_subfolders_and_unsafe_ids_are_refused(tmp_path):
    encoded = EncodedClips(tokens=np.arange(5, dtype=np.int32), offsets=np.array([0, 2, 5]), clips=np.arange(2),
                           ids=["humanml/000001", "aist/gBR_01"], frame_lengths=np.array([8, 12]),
                           source_lengths=np.array([9, 12]), skipped_ids=[], downsample=4)
    folder = write_npy_folder(encoded, tmp_path / "codes")
    np.testing.assert_array_equal(np.load(folder / "aist" / "gBR_01.npy"), [[2, 3, 4]])
    encoded.ids = ["../escape", "ok"]
    with pytest.raises(MotionhubError, match="cannot be a file name"):
        write_npy_folder(encoded, tmp_path / "other")
    assert not (tmp_path / "other").exists() and not (tmp_path / "escape.npy").exists()
