"""The ``motionmillion`` data set on a synthetic folder in the real layout, and on the real 272 sample."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from motionhub_motionmillion import MotionMillion, register_datasets
from motionhub_synthetic.folders import write_motionmillion_folder

from motionhub.data.files import ClipError, SkippedClip
from motionhub.errors import DataError

CLIPS = 10  # 8 train, 1 val, 1 test


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return write_motionmillion_folder(tmp_path_factory.mktemp("data") / "MotionMillion", clips=CLIPS, seed=5)


@pytest.fixture
def folder(pristine, tmp_path) -> Path:
    """A copy of the synthetic MotionMillion folder that a test may break."""
    return Path(shutil.copytree(pristine, tmp_path / "MotionMillion"))


def _motion_path(root: Path, name: str) -> Path:
    return root / "motion_data" / "vector_272" / f"{name}.npy"


# ---- reading a good folder


def test_registers_the_data_set():
    from motionhub.plugins.registry import resolve  # registrations may be 'module:Class' references

    registered = {}
    register_datasets(lambda name, cls: registered.setdefault(name, resolve(cls)))
    assert registered == {"motionmillion": MotionMillion}


def test_reads_names_with_slashes_texts_and_splits(pristine):
    data = MotionMillion(str(pristine))
    train = list(data.clips("train"))
    assert [c.id for c in train] == [f"synthetic/{i:06d}" for i in range(8)]
    assert [c.id for c in data.clips("val")] == ["synthetic/000008"]
    assert [c.id for c in data.clips("test")] == ["synthetic/000009"]
    for clip in train:
        stored = np.load(_motion_path(pristine, clip.id))
        assert stored.dtype == np.float64  # written like the published 272 sample
        assert clip.motion.dtype == np.float32 and clip.motion.shape == stored.shape
        assert 96 <= len(clip.motion) <= 160
        np.testing.assert_array_equal(clip.motion, stored.astype(np.float32))
        assert len(clip.texts) == 1 and clip.texts[0].startswith("a person ")
    (record,) = data.caption_records("synthetic/000000")
    assert record.caption == train[0].texts[0] and record.tokens == () and (record.start, record.end) == (0.0, 0.0)
    fmt = data.format
    assert (fmt.name, fmt.feature_shape, fmt.fps, fmt.skeleton.num_joints) == ("motionmillion_272", (272,), 30.0, 22)
    assert "(split/version1/tokenizer_96): train 8, val 1, test 1; stats: dataset" in data.describe()


def test_subset_version_splits_and_fps(pristine):
    data = MotionMillion(str(pristine), subset="t2m_60_300", splits={"train": "all"}, fps=60.0)
    assert len(list(data.clips("train"))) == CLIPS
    assert data.format.fps == 60.0
    with pytest.raises(DataError, match=r"split folder .*version2/tokenizer_96 does not exist\. "
                                        r"Found: version1/t2m_60_300, version1/tokenizer_96\. Set data\.version"):
        MotionMillion(str(pristine), version="version2")
    with pytest.raises(ValueError, match=r"fps must be positive"):
        MotionMillion(str(pristine), fps=0.0)


def test_stats_dataset_path_and_train(pristine, tmp_path):
    data = MotionMillion(str(pristine))
    shipped = pristine / "mean_std" / "vector_272"
    assert data.format.std.dtype == np.float32
    np.testing.assert_array_equal(data.format.std, np.load(shipped / "std.npy").astype(np.float32))
    # HumanML3D-272 statistics are shipped as Mean.npy / Std.npy
    other = tmp_path / "hml272"
    other.mkdir()
    np.save(other / "Mean.npy", np.zeros(272))
    np.save(other / "Std.npy", np.full(272, 2.0))
    assert MotionMillion(str(pristine), stats="path", stats_path=str(other)).format.std[0] == 2.0
    assert MotionMillion(str(pristine), stats="train").format.mean is None
    with pytest.raises(ValueError, match=r"stats: path needs stats_path"):
        MotionMillion(str(pristine), stats="path")
    with pytest.raises(ValueError, match=r"stats_path is only read with stats: path"):
        MotionMillion(str(pristine), stats_path=str(other))


def test_fingerprint_follows_files(folder):
    first = MotionMillion(str(folder)).fingerprint()
    assert MotionMillion(str(folder)).fingerprint() == first
    path = _motion_path(folder, "synthetic/000002")
    np.save(path, np.load(path)[:-1])
    assert MotionMillion(str(folder)).fingerprint() != first


# ---- bad data


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match=r"MotionMillion folder .*nowhere does not exist\. A MotionMillion folder "
                                        r"holds motion_data/vector_272/<name>\.npy .*Set data\.root"):
        MotionMillion(str(tmp_path / "nowhere"))


def test_missing_motion_folder(folder):
    shutil.rmtree(folder / "motion_data")
    with pytest.raises(DataError, match=r"has no motion_data/vector_272/ folder"):
        MotionMillion(str(folder))


def test_missing_split_file(folder):
    (folder / "split" / "version1" / "tokenizer_96" / "val.txt").unlink()
    with pytest.raises(DataError, match=r"motionmillion split file .*tokenizer_96/val\.txt is missing\. "
                                        r"A MotionMillion folder holds .*data\.splits"):
        MotionMillion(str(folder))


def test_missing_stats(folder):
    (folder / "mean_std" / "vector_272" / "mean.npy").unlink()
    with pytest.raises(DataError, match=r"MotionMillion statistics not found in .*vector_272: expected mean\.npy "
                                        r"and std\.npy\. .*data\.stats: train"):
        MotionMillion(str(folder))


def _add_to_train(folder: Path, name: str) -> None:
    with (folder / "split" / "version1" / "tokenizer_96" / "train.txt").open("a") as f:
        f.write(f"{name}\n")


def test_name_without_file_stops(folder):
    _add_to_train(folder, "aist/gBR_sBM_cAll_d04_mBR0_ch01")
    with pytest.raises(ClipError, match=r"^motionmillion train: clip 'aist/gBR_sBM_cAll_d04_mBR0_ch01': "
                                        r".*vector_272/aist/gBR_sBM_cAll_d04_mBR0_ch01\.npy is missing"):
        list(MotionMillion(str(folder)).clips("train"))


def test_name_without_file_skips_with_summary(folder, caplog):
    _add_to_train(folder, "aist/missing")
    data = MotionMillion(str(folder), on_bad="skip")
    with caplog.at_level(logging.WARNING, logger="motionhub.data.batches"):
        assert len(list(data.clips("train"))) == 8
    assert caplog.messages == ["motionmillion train: skipped 1 of 9 clips: aist/missing (missing file)"]
    assert data.skipped == [SkippedClip("train", "aist/missing", "missing file")]


def test_wrong_feature_size(folder):
    np.save(_motion_path(folder, "synthetic/000008"), np.zeros((100, 263), np.float32))
    with pytest.raises(ClipError, match=r"synthetic/000008\.npy has 263 values per frame \(looks like HumanML3D\), "
                                        r"expected MotionMillion \(272\)"):
        list(MotionMillion(str(folder)).clips("val"))


def test_non_finite_values_skipped(folder, caplog):
    path = _motion_path(folder, "synthetic/000001")
    motion = np.load(path)
    motion[5, :] = np.inf
    np.save(path, motion)
    data = MotionMillion(str(folder), on_bad="skip")
    with caplog.at_level(logging.WARNING, logger="motionhub.data.batches"):
        ids = [c.id for c in data.clips("train")]
    assert "synthetic/000001" not in ids and len(ids) == 7
    assert caplog.messages == ["motionmillion train: skipped 1 of 8 clips: synthetic/000001 (272 non-finite values)"]


def test_too_short_clip(folder):
    np.save(_motion_path(folder, "synthetic/000009"), np.zeros((40, 272)))
    with pytest.raises(ClipError, match=r"clip 'synthetic/000009': .*has 40 frames, fewer than min_frames=96"):
        list(MotionMillion(str(folder), min_frames=96).clips("test"))


def test_zero_std(folder):
    path = folder / "mean_std" / "vector_272" / "std.npy"
    std = np.load(path)
    std[0:2] = 0.0
    np.save(path, std)
    with pytest.raises(DataError, match=r"std\.npy has zero or negative std at indices 0-1"):
        MotionMillion(str(folder))


# ---- real data


def test_real_272_sample_with_motionmillion_stats(real_data, tmp_path):
    source = real_data / "Li-xingXiao-272-dim-Motion-Representation" / "output"
    stats = real_data / "VankouF-MotionMillion-Codes" / "dataset" / "MotionMillion" / "mean_std" / "vector_272"
    if not (source / "Representation_272" / "000000.npy").is_file() or not stats.is_dir():
        pytest.skip(f"272 sample or MotionMillion statistics not found under {real_data}")
    root = tmp_path / "MotionMillion"
    name = "humanml/000000"
    _motion_path(root, name).parent.mkdir(parents=True)
    shutil.copy(source / "Representation_272" / "000000.npy", _motion_path(root, name))
    shutil.copytree(stats, root / "mean_std" / "vector_272")
    for split in ("train", "val", "test"):
        path = root / "split" / "version1" / "tokenizer_96" / f"{split}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{name}\n")

    data = MotionMillion(str(root))
    (clip,) = data.clips("train")
    features = np.load(source / "Representation_272" / "000000.npy")
    assert features.dtype == np.float64
    assert clip.motion.dtype == np.float32 and clip.motion.shape == (1287, 272)
    np.testing.assert_array_equal(data.format.std, np.load(stats / "std.npy").astype(np.float32))

    joints = np.load(source / "smpl_85_face_z_transform_joints" / "000000.npy")[:, :22].astype(np.float64)
    # Recovery puts the floor (min Y) and frame 0's root XZ at 0; otherwise the motion is the source's.
    origin = np.array([joints[0, 0, 0], joints[..., 1].min(), joints[0, 0, 2]])
    recovered = data.format.to_joints(clip.motion)
    error = float(np.abs(recovered - (joints - origin)).max())
    drift = np.abs(recovered - (joints - origin)).max(axis=(1, 2))
    print(f"\n272 sample 000000 (float32) to_joints vs source joints - origin: max abs {error:.2e} m "
          f"(frame 0: {drift[0]:.1e} m, last frame: {drift[-1]:.1e} m)")
    assert error < 1e-4
