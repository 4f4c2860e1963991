"""The ``humanml3d`` and ``kit`` data sets on synthetic folders in the real layout, and on real data."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from motionhub_humanml3d import KIT, HumanML3D, register_datasets
from motionhub_synthetic.folders import write_humanml3d_folder

from motionhub.data.files import CaptionRecord, ClipError, SkippedClip
from motionhub.errors import DataError

CLIPS = 10  # 8 train, 1 val, 1 test


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return write_humanml3d_folder(tmp_path_factory.mktemp("data") / "HumanML3D", clips=CLIPS, seed=3)


@pytest.fixture(scope="module")
def pristine_kit(tmp_path_factory) -> Path:
    return write_humanml3d_folder(tmp_path_factory.mktemp("data") / "KIT-ML", clips=CLIPS, seed=3, kit=True)


@pytest.fixture
def folder(pristine, tmp_path) -> Path:
    """A copy of the synthetic HumanML3D folder that a test may break."""
    return Path(shutil.copytree(pristine, tmp_path / "HumanML3D"))


def _evaluator_stats(folder: Path, root: Path, naming: tuple[str, str] = ("mean.npy", "std.npy")) -> Path:
    """Evaluator-like statistics, float64: Std with the root and contact groups 25 times smaller,
    as in the published t2m evaluator files."""
    folder.mkdir(parents=True)
    std = np.load(root / "Std.npy").astype(np.float64)
    std[:4] /= 25
    std[-4:] /= 25
    np.save(folder / naming[0], np.load(root / "Mean.npy").astype(np.float64))
    np.save(folder / naming[1], std)
    return folder


# ---- reading a good folder


def test_registers_both_data_sets():
    from motionhub.plugins.registry import resolve  # registrations may be 'module:Class' references

    registered = {}
    register_datasets(lambda name, cls: registered.setdefault(name, resolve(cls)))
    assert registered == {"humanml3d": HumanML3D, "kit": KIT}
    assert HumanML3D.__doc__.splitlines()[0].startswith("HumanML3D 263-dim")


def test_reads_clips_texts_and_splits(pristine):
    data = HumanML3D(str(pristine), stats="dataset")
    train = list(data.clips("train"))
    assert [c.id for c in train] == [f"{i:06d}" for i in range(8)]
    assert [c.id for c in data.clips("val")] == ["000008"]
    assert [c.id for c in data.clips("test")] == ["000009"]
    for clip in train:
        assert clip.motion.dtype == np.float32 and clip.motion.ndim == 2 and clip.motion.shape[1] == 263
        np.testing.assert_array_equal(clip.motion, np.load(pristine / "new_joint_vecs" / f"{clip.id}.npy"))
        assert len(clip.texts) == 2 and clip.texts[0].startswith("a person ") and clip.texts[1] == "the person moves."
    records = data.caption_records("000000")
    assert records[0].tokens[:2] == ("a/DET", "person/NOUN") and (records[0].start, records[0].end) == (0.0, 0.0)
    assert records[1] == CaptionRecord("the person moves.", ("the/DET", "person/NOUN", "move/VERB"), 0.0,
                                       round(len(train[0].motion) / 20 / 2, 1))
    fmt = data.format
    assert (fmt.name, fmt.feature_shape, fmt.fps, fmt.skeleton.num_joints) == ("humanml3d_263", (263,), 20.0, 22)
    assert "train 8 (train.txt), val 1 (val.txt), test 1 (test.txt); stats: dataset" in data.describe()
    assert data.skipped == []


def test_splits_mapping_selects_train_val_and_all(pristine):
    data = HumanML3D(str(pristine), stats="train", splits={"train": "train_val", "test": "all.txt"})
    assert len(list(data.clips("train"))) == 9
    assert len(list(data.clips("test"))) == CLIPS
    assert "train 9 (train_val.txt)" in data.describe()
    with pytest.raises(ValueError, match=r"unknown split 'validation'"):
        data.clips("validation")
    with pytest.raises(ValueError, match=r"unknown split 'eval'"):
        HumanML3D(str(pristine), stats="train", splits={"eval": "test"})


def test_stats_dataset(pristine):
    data = HumanML3D(str(pristine), stats="dataset")
    np.testing.assert_array_equal(data.format.mean, np.load(pristine / "Mean.npy"))
    np.testing.assert_array_equal(data.format.std, np.load(pristine / "Std.npy"))


@pytest.mark.parametrize("naming", [("mean.npy", "std.npy"), ("t2m_mean.npy", "t2m_std.npy")])
def test_stats_evaluator_either_naming(pristine, tmp_path, naming):
    meta = _evaluator_stats(tmp_path / "meta", pristine, naming)
    data = HumanML3D(str(pristine), stats="evaluator", stats_path=str(meta))
    assert data.format.std.dtype == np.float32
    np.testing.assert_allclose(data.format.std[:4], np.load(pristine / "Std.npy")[:4] / 25, rtol=1e-6)
    assert f"stats: evaluator ({meta})" in data.describe()


def test_stats_train_leaves_format_without_stats(pristine):
    data = HumanML3D(str(pristine), stats="train")
    assert data.format.mean is None and data.format.std is None


def test_stats_options_are_checked(pristine, tmp_path):
    with pytest.raises(ValueError, match=r"stats: evaluator needs stats_path.*checkpoints/t2m/VQVAEV3"):
        HumanML3D(str(pristine), stats="evaluator")
    with pytest.raises(ValueError, match=r"stats_path is only read with stats: evaluator"):
        HumanML3D(str(pristine), stats="dataset", stats_path=str(tmp_path))
    with pytest.raises(DataError, match=r"evaluator statistics not found in .*: expected mean\.npy and std\.npy "
                                        r"or t2m_mean\.npy and t2m_std\.npy\. Set data\.stats_path"):
        HumanML3D(str(pristine), stats="evaluator", stats_path=str(tmp_path))


def test_kit(pristine_kit, tmp_path):
    data = KIT(str(pristine_kit), stats="dataset")
    clip = next(iter(data.clips("train")))
    assert clip.id == "00000" and clip.motion.shape[1] == 251
    assert (data.format.name, data.format.fps, data.format.skeleton.num_joints) == ("kit_251", 12.5, 21)
    meta = _evaluator_stats(tmp_path / "meta", pristine_kit, ("kit_mean.npy", "kit_std.npy"))
    assert KIT(str(pristine_kit), stats="evaluator", stats_path=str(meta)).format.std.shape == (251,)
    with pytest.raises(ClipError, match=r"has 251 values per frame \(looks like KIT-ML\), expected HumanML3D \(263\)"):
        next(iter(HumanML3D(str(pristine_kit), stats="train").clips("train")))


def test_synthetic_folder_is_deterministic(pristine, tmp_path):
    again = write_humanml3d_folder(tmp_path / "again", clips=CLIPS, seed=3)
    for name in ("train.txt", "texts/000004.txt", "new_joint_vecs/000004.npy", "Std.npy"):
        assert (again / name).read_bytes() == (pristine / name).read_bytes()


# ---- fingerprint


def test_fingerprint_follows_files(folder):
    def fingerprint():
        return HumanML3D(str(folder), stats="dataset").fingerprint()

    first = fingerprint()
    assert fingerprint() == first
    motion = folder / "new_joint_vecs" / "000003.npy"
    np.save(motion, np.load(motion)[:-1])
    second = fingerprint()
    assert second != first
    (folder / "texts" / "000003.txt").write_text("a new caption.#a/DET new/ADJ caption/NOUN#0.0#0.0\n")
    third = fingerprint()
    assert third != second
    (folder / "val.txt").write_text("000008\n000007\n")
    fourth = fingerprint()
    assert fourth != third
    std = np.load(folder / "Std.npy")
    np.save(folder / "Std.npy", std * 2)
    assert fingerprint() != fourth


# ---- bad data: every case ends in a message naming the file and the fix


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match=r"HumanML3D folder .*nowhere does not exist\. A HumanML3D folder holds "
                                        r"new_joint_vecs/<id>\.npy .*Mean\.npy, Std\.npy\. Set data\.root"):
        HumanML3D(str(tmp_path / "nowhere"), stats="dataset")


def test_missing_motion_folder(folder):
    shutil.rmtree(folder / "new_joint_vecs")
    with pytest.raises(DataError, match=r"has no new_joint_vecs/ folder\. A HumanML3D folder holds"):
        HumanML3D(str(folder), stats="dataset")


def test_missing_split_file(folder):
    (folder / "test.txt").unlink()
    with pytest.raises(DataError, match=r"humanml3d split file .*test\.txt is missing\. A HumanML3D folder holds .*"
                                        r"map it with data\.splits"):
        HumanML3D(str(folder), stats="dataset")
    assert len(HumanML3D(str(folder), stats="dataset", splits={"test": "val"}).split_ids["test"]) == 1


def test_missing_dataset_stats(folder):
    (folder / "Std.npy").unlink()
    with pytest.raises(DataError, match=r"HumanML3D statistics not found in .*: expected Mean\.npy and Std\.npy\. "
                                        r".*data\.stats: train"):
        HumanML3D(str(folder), stats="dataset")
    assert HumanML3D(str(folder), stats="train").format.std is None


def _add_to_train(folder: Path, clip_id: str) -> None:
    with (folder / "train.txt").open("a") as f:
        f.write(f"{clip_id}\n")


def test_id_without_file_stops(folder):
    _add_to_train(folder, "999999")
    data = HumanML3D(str(folder), stats="dataset")
    with pytest.raises(ClipError, match=r"^humanml3d train: clip '999999': .*999999\.npy is missing; .*"
                                        r"set data\.on_bad: skip\.$"):
        list(data.clips("train"))


def test_id_without_file_skips_with_summary(folder, caplog):
    _add_to_train(folder, "999999")
    _add_to_train(folder, "999998")
    data = HumanML3D(str(folder), stats="dataset", on_bad="skip")
    with caplog.at_level(logging.WARNING, logger="motionhub.data.batches"):
        clips = list(data.clips("train"))
    assert len(clips) == 8
    summary = "humanml3d train: skipped 2 of 10 clips: 999999 (missing file), 999998 (missing file)"
    assert caplog.messages == [summary]
    assert data.skipped == [SkippedClip("train", "999999", "missing file"), SkippedClip("train", "999998", "missing file")]
    assert data.policy.summary("train", 10) == summary


def _replace_motion(folder: Path, clip_id: str, array: np.ndarray) -> HumanML3D:
    np.save(folder / "new_joint_vecs" / f"{clip_id}.npy", array)
    return HumanML3D(str(folder), stats="dataset")


def test_wrong_feature_size(folder):
    data = _replace_motion(folder, "000002", np.zeros((40, 272), np.float32))
    with pytest.raises(ClipError, match=r"clip '000002': .*000002\.npy has 272 values per frame "
                                        r"\(looks like MotionMillion\), expected HumanML3D \(263\)"):
        list(data.clips("train"))


def test_non_finite_values(folder):
    motion = np.load(folder / "new_joint_vecs" / "000008.npy")
    motion[30:32, 100] = np.nan
    data = _replace_motion(folder, "000008", motion)
    with pytest.raises(ClipError, match=r"^humanml3d val: clip '000008': .* holds 2 NaN/Inf values \(first at frame 30"):
        list(data.clips("val"))


def test_empty_clip(folder):
    data = _replace_motion(folder, "000009", np.zeros((0, 263), np.float32))
    with pytest.raises(ClipError, match=r"clip '000009': .*holds no frames"):
        list(data.clips("test"))


def test_too_short_clip_stops_or_skips(folder, caplog):
    lengths = {c.id: len(c.motion) for c in HumanML3D(str(folder), stats="train").clips("train")}
    limit = sorted(lengths.values())[2]  # the two shortest clips fall below it
    short = [i for i, n in lengths.items() if n < limit]
    with pytest.raises(ClipError, match=rf"clip '{short[0]}': .* fewer than min_frames={limit}"):
        list(HumanML3D(str(folder), stats="train", min_frames=limit).clips("train"))
    data = HumanML3D(str(folder), stats="train", min_frames=limit, on_bad="skip")
    with caplog.at_level(logging.WARNING, logger="motionhub.data.batches"):
        kept = [c.id for c in data.clips("train")]
    assert kept == [i for i in lengths if i not in short]
    assert caplog.messages == [
        f"humanml3d train: skipped {len(short)} of 8 clips: "
        + ", ".join(f"{i} ({lengths[i]} frames < {limit})" for i in short)
    ]


def test_corrupt_npy(folder):
    path = folder / "new_joint_vecs" / "000001.npy"
    path.write_bytes(path.read_bytes()[:500])
    data = HumanML3D(str(folder), stats="dataset")
    with pytest.raises(ClipError, match=r"clip '000001': .*000001\.npy is corrupt or truncated \(.*\); re-create it"):
        list(data.clips("train"))


def test_zero_std(folder):
    std = np.load(folder / "Std.npy")
    std[259:263] = 0.0
    np.save(folder / "Std.npy", std)
    with pytest.raises(DataError, match=r"Std\.npy has zero or negative std at indices 259-262"):
        HumanML3D(str(folder), stats="dataset")


def test_float64_clip_accepted_and_cast(folder):
    motion = np.load(folder / "new_joint_vecs" / "000000.npy").astype(np.float64)
    data = _replace_motion(folder, "000000", motion)
    clip = next(iter(data.clips("train")))
    assert clip.motion.dtype == np.float32
    np.testing.assert_array_equal(clip.motion, motion.astype(np.float32))


def test_malformed_caption(folder):
    (folder / "texts" / "000005.txt").write_text("a caption#with/ADP#too#many#fields\n")
    data = HumanML3D(str(folder), stats="dataset")
    with pytest.raises(ClipError, match=r"clip '000005': .*000005\.txt line 1 has 5 '#'-separated fields"):
        list(data.clips("train"))


def test_missing_text_file_gives_no_texts(folder):
    (folder / "texts" / "000005.txt").unlink()
    clips = {c.id: c for c in HumanML3D(str(folder), stats="dataset").clips("train")}
    assert clips["000005"].texts == [] and len(clips["000004"].texts) == 2


# ---- real data


def test_real_012314_with_dataset_and_evaluator_stats(real_data, tmp_path):
    h3d = real_data / "EricGuo5513-HumanML3D" / "HumanML3D"
    evaluator = real_data / "GuyTevet-motion-diffusion-model" / "dataset"
    if not (h3d / "new_joint_vecs" / "012314.npy").is_file():
        pytest.skip(f"HumanML3D sample not found in {h3d}")
    root = tmp_path / "HumanML3D"
    (root / "new_joint_vecs").mkdir(parents=True)
    shutil.copy(h3d / "new_joint_vecs" / "012314.npy", root / "new_joint_vecs")
    shutil.copy(h3d / "Mean.npy", root)
    shutil.copy(h3d / "Std.npy", root)
    for split in ("train", "val", "test"):
        (root / f"{split}.txt").write_text("012314\n")
    reference = np.load(h3d / "new_joints" / "012314.npy")

    dataset_stats = HumanML3D(str(root), stats="dataset")
    evaluator_stats = HumanML3D(str(root), stats="evaluator", stats_path=str(evaluator))
    assert np.load(evaluator / "t2m_std.npy").dtype == np.float64
    for data in (dataset_stats, evaluator_stats):
        (clip,) = data.clips("train")
        assert clip.id == "012314" and clip.motion.shape == (170, 263) and clip.texts == []
        direct = float(np.abs(data.format.to_joints(clip.motion) - reference).max())
        normalised = data.format.normalise(clip.motion)
        round_trip = float(np.abs(data.format.to_joints(normalised, normalised=True) - reference).max())
        print(f"\n012314 to_joints vs new_joints ({data.stats_choice} stats): max abs {direct:.2e} m, "
              f"after normalise/denormalise {round_trip:.2e} m")
        assert direct < 1e-5 and round_trip < 1e-5
    np.testing.assert_array_equal(dataset_stats.format.std, np.load(h3d / "Std.npy"))
    evaluator_std = np.load(evaluator / "t2m_std.npy").astype(np.float32)
    np.testing.assert_array_equal(evaluator_stats.format.std, evaluator_std)
    # The two choices really differ: the evaluator's root and contact std are about 25 times smaller.
    ratio = dataset_stats.format.std / evaluator_stats.format.std
    np.testing.assert_allclose(ratio[[0, 1, 2, 3, -4, -3, -2, -1]], 25.0, rtol=0.02)
    np.testing.assert_allclose(ratio[4:-4], 1.0, rtol=0.01)


def test_skipped_clips_are_reported_again_when_a_packed_store_is_reused(folder, tmp_path, caplog):
    from motionhub.data.batches import open_split
    from motionhub.recipes import recipe_from_tree

    (folder / "new_joint_vecs" / "000001.npy").unlink()
    tree = {"data": {"name": "humanml3d", "root": str(folder), "stats": "dataset", "on_bad": "skip",
                     "cache_dir": str(tmp_path / "cache")},
            "encoder": {"name": "conv1d"}, "quantizer": {"name": "fsq", "levels": [8, 5, 5]},
            "decoder": {"name": "conv1d"}, "losses": [{"name": "recon"}]}
    recipe = recipe_from_tree(tree, "r.yaml")
    first = open_split(HumanML3D(**recipe.data.kwargs), "train", recipe, None)
    assert len(first.notes) == 1 and "000001 (missing file)" in first.notes[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="motionhub.data.batches"):
        again = open_split(HumanML3D(**recipe.data.kwargs), "train", recipe, None)  # reused, not packed
    assert again.path == first.path and len(again.notes) == 1
    assert any("000001 (missing file)" in r.message and "recorded when" in r.message for r in caplog.records)
