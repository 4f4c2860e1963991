"""motionhub.data.files: every way a motion, split, caption or statistics file can be bad."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest

from motionhub.data.files import (
    BadDataPolicy,
    CaptionRecord,
    ClipError,
    SkippedClip,
    find_stats,
    load_motion,
    read_captions,
    read_split_file,
    read_stats,
    split_files,
)
from motionhub.errors import DataError


def _save(path, array):
    np.save(path, array)
    return path


def _motion(frames=20, dim=263, dtype=np.float32):
    return np.random.default_rng(0).normal(size=(frames, dim)).astype(dtype)


def _load(path, **kwargs):
    return load_motion(path, expected_shape_tail=kwargs.pop("tail", (263,)), name="000001", **kwargs)


# ---- load_motion


def test_load_motion_reads_float32(tmp_path):
    motion = _motion()
    out = _load(_save(tmp_path / "a.npy", motion))
    assert out.dtype == np.float32 and out.shape == (20, 263)
    np.testing.assert_array_equal(out, motion)


def test_load_motion_accepts_and_casts_float64(tmp_path):
    motion = _motion(dtype=np.float64)
    out = _load(_save(tmp_path / "a.npy", motion))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, motion, rtol=1e-6)


def test_missing_file(tmp_path):
    with pytest.raises(ClipError, match=r"clip '000001': .*missing\.npy is missing.*split file") as info:
        _load(tmp_path / "missing.npy")
    assert info.value.clip_id == "000001" and info.value.reason == "missing file"


def test_empty_file(tmp_path):
    (tmp_path / "a.npy").write_bytes(b"")
    with pytest.raises(ClipError, match=r"a\.npy is empty \(0 bytes\)"):
        _load(tmp_path / "a.npy")


def test_not_an_npy_file(tmp_path):
    (tmp_path / "a.npy").write_text("012314 walks\n")
    with pytest.raises(ClipError, match=r"is not a \.npy file .*numpy\.save"):
        _load(tmp_path / "a.npy")


@pytest.mark.parametrize("keep", [60, 1000])
def test_truncated_npy(tmp_path, keep):
    data = _save(tmp_path / "full.npy", _motion()).read_bytes()
    (tmp_path / "a.npy").write_bytes(data[:keep])
    with pytest.raises(ClipError, match=r"a\.npy is corrupt or truncated \(.+\); re-create it") as info:
        _load(tmp_path / "a.npy")
    assert info.value.reason == "corrupt .npy"
    assert "\n" not in str(info.value)


def test_pickled_object_array_is_refused(tmp_path):
    np.save(tmp_path / "a.npy", np.array([{"motion": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ClipError, match=r"pickled object array.*does not load.*astype\(numpy\.float32\)"):
        _load(tmp_path / "a.npy")


def test_non_float_values(tmp_path):
    with pytest.raises(ClipError, match=r"holds int64 values; motion features must be floating point"):
        _load(_save(tmp_path / "a.npy", np.zeros((20, 263), dtype=np.int64)))


@pytest.mark.parametrize(("dim", "looks"), [(251, "KIT-ML"), (272, "MotionMillion"), (100, None)])
def test_wrong_feature_size_names_the_layout(tmp_path, dim, looks):
    path = _save(tmp_path / "a.npy", _motion(dim=dim))
    with pytest.raises(ClipError, match=rf"has {dim} values per frame.*expected HumanML3D \(263\)") as info:
        _load(path)
    assert (f"looks like {looks}" in str(info.value)) == (looks is not None)
    assert info.value.reason == f"{dim} features, expected 263"


def test_wrong_feature_size_for_272(tmp_path):
    path = _save(tmp_path / "a.npy", _motion(dim=263))
    with pytest.raises(ClipError, match=r"263 values per frame \(looks like HumanML3D\), expected MotionMillion \(272\)"):
        _load(path, tail=(272,))


def test_wrong_frame_shape_of_a_multi_axis_layout(tmp_path):
    path = _save(tmp_path / "a.npy", np.zeros((20, 2, 5, 2), np.float32))
    with pytest.raises(ClipError, match=r"has shape \(20, 2, 5, 2\), expected \(T, 2, 4, 2\)\. Use the data set"):
        _load(path, tail=(2, 4, 2))


def test_wrong_ndim(tmp_path):
    with pytest.raises(ClipError, match=r"has shape \(263,\), expected \(T, 263\)"):
        _load(_save(tmp_path / "a.npy", np.zeros(263, np.float32)))


def test_joint_positions_instead_of_features(tmp_path):
    with pytest.raises(ClipError, match=r"shape \(20, 22, 3\).*looks like joint positions"):
        _load(_save(tmp_path / "a.npy", np.zeros((20, 22, 3), np.float32)))


def test_non_finite_values_counted_with_first_frame(tmp_path):
    motion = _motion()
    motion[7, 3] = np.nan
    motion[7, 4] = np.inf
    motion[12, 0] = -np.inf
    with pytest.raises(ClipError, match=r"holds 3 NaN/Inf values \(first at frame 7 of 20\)") as info:
        _load(_save(tmp_path / "a.npy", motion))
    assert info.value.reason == "3 non-finite values"


def test_empty_clip(tmp_path):
    with pytest.raises(ClipError, match=r"holds no frames \(shape \(0, 263\)\)") as info:
        _load(_save(tmp_path / "a.npy", np.zeros((0, 263), np.float32)))
    assert info.value.reason == "empty clip"


def test_too_short_clip(tmp_path):
    path = _save(tmp_path / "a.npy", _motion(frames=5))
    with pytest.raises(ClipError, match=r"has 5 frames, fewer than min_frames=8; lower data\.min_frames") as info:
        _load(path, min_frames=8)
    assert info.value.reason == "5 frames < 8"
    assert _load(path, min_frames=5).shape == (5, 263)


# ---- split files and captions


def test_read_split_file(tmp_path):
    (tmp_path / "train.txt").write_text("000001\n  M000001 \n\nhumanml/000002\n")
    assert read_split_file(tmp_path / "train.txt") == ["000001", "M000001", "humanml/000002"]


def test_read_split_file_missing_or_empty(tmp_path):
    with pytest.raises(DataError, match=r"split file .*train\.txt is missing; it should list one clip id per line"):
        read_split_file(tmp_path / "train.txt")
    (tmp_path / "train.txt").write_text("\n \n")
    with pytest.raises(DataError, match=r"lists no clip ids"):
        read_split_file(tmp_path / "train.txt")
    (tmp_path / "train.txt").write_bytes(b"\xff\xfe\x00\x93")
    with pytest.raises(DataError, match=r"is not UTF-8 text"):
        read_split_file(tmp_path / "train.txt")


def test_read_captions_humanml3d_and_bare_lines(tmp_path):
    path = tmp_path / "000001.txt"
    path.write_text("a man kicks something.#a/DET man/NOUN kick/VERB something/PRON#0.0#0.0\n"
                    "he then jumps.#he/PRON then/ADV jump/VERB#1.5#3.0\n"
                    "nan tags read as zero.#nan/NOUN#nan#nan\n\n"
                    "a bare MotionMillion caption\n")
    records = read_captions(path, clip_id="000001")
    assert records == [
        CaptionRecord("a man kicks something.", ("a/DET", "man/NOUN", "kick/VERB", "something/PRON"), 0.0, 0.0),
        CaptionRecord("he then jumps.", ("he/PRON", "then/ADV", "jump/VERB"), 1.5, 3.0),
        CaptionRecord("nan tags read as zero.", ("nan/NOUN",), 0.0, 0.0),
        CaptionRecord("a bare MotionMillion caption"),
    ]
    assert read_captions(tmp_path / "absent.txt", clip_id="x") == []


def test_read_captions_malformed(tmp_path):
    path = tmp_path / "000001.txt"
    path.write_text("fine.#fine/ADJ#0.0#0.0\nbroken#a/DET\n")
    with pytest.raises(ClipError, match=r"line 2 has 2 '#'-separated fields, expected 4"):
        read_captions(path, clip_id="000001")
    path.write_text("bad tags.#bad/ADJ#start#end\n")
    with pytest.raises(ClipError, match=r"line 1: start/end 'start#end' are not numbers"):
        read_captions(path, clip_id="000001")


# ---- statistics


def test_read_stats_casts_float64(tmp_path):
    mean, std = np.arange(263, dtype=np.float64), np.full(263, 0.5)
    out_mean, out_std = read_stats(_save(tmp_path / "m.npy", mean), _save(tmp_path / "s.npy", std), dim=263)
    assert out_mean.dtype == out_std.dtype == np.float32
    np.testing.assert_array_equal(out_mean, mean)


def test_zero_std_names_indices(tmp_path):
    std = np.ones(263)
    std[[0, 1, 2, 3, 100, 262]] = 0.0
    std[50] = -1.0
    mean = _save(tmp_path / "m.npy", np.zeros(263))
    with pytest.raises(DataError, match=r"s\.npy has zero or negative std at indices 0-3, 50, 100, 262; .*divide by zero"):
        read_stats(mean, _save(tmp_path / "s.npy", std), dim=263)


def test_non_finite_stats_name_indices(tmp_path):
    mean = np.zeros(263)
    mean[[5, 6]] = np.nan
    with pytest.raises(DataError, match=r"m\.npy has non-finite values at indices 5-6"):
        read_stats(_save(tmp_path / "m.npy", mean), _save(tmp_path / "s.npy", np.ones(263)), dim=263)


def test_stats_of_another_layout(tmp_path):
    with pytest.raises(DataError, match=r"holds 251 float64 values \(looks like KIT-ML\), expected HumanML3D \(263\)"):
        read_stats(_save(tmp_path / "m.npy", np.zeros(251)), _save(tmp_path / "s.npy", np.ones(251)), dim=263)


def test_missing_or_corrupt_stats(tmp_path):
    with pytest.raises(DataError, match=r"statistics file .*m\.npy is missing"):
        read_stats(tmp_path / "m.npy", tmp_path / "s.npy", dim=263)
    (tmp_path / "m.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match=r"m\.npy is not a readable \.npy file"):
        read_stats(tmp_path / "m.npy", tmp_path / "s.npy", dim=263)


def test_find_stats_accepts_either_naming(tmp_path):
    _save(tmp_path / "t2m_mean.npy", np.zeros(3))
    _save(tmp_path / "t2m_std.npy", np.ones(3))
    namings = [("mean.npy", "std.npy"), ("t2m_mean.npy", "t2m_std.npy")]
    assert find_stats(tmp_path, namings, what="stats", fix="") == (tmp_path / "t2m_mean.npy", tmp_path / "t2m_std.npy")
    with pytest.raises(DataError, match=r"stats not found in .*: expected mean\.npy and std\.npy\. Do this\."):
        find_stats(tmp_path, namings[:1], what="stats", fix="Do this.")
    with pytest.raises(DataError, match=r"stats folder .*nope does not exist"):
        find_stats(tmp_path / "nope", namings, what="stats", fix="")


# ---- splits and the bad-data policy


def test_split_files_mapping():
    assert split_files(None) == {"train": "train", "val": "val", "test": "test"}
    assert split_files({"train": "train_val.txt", "test": "all"}) == {"train": "train_val", "val": "val", "test": "all"}
    with pytest.raises(ValueError, match=r"unknown split 'tran'; did you mean 'train'"):
        split_files({"tran": "train_val"})
    with pytest.raises(ValueError, match=r"splits\.val: expected a split file name"):
        split_files({"val": ""})


def _clip_error(clip_id):
    return ClipError(clip_id, "missing file", f"clip '{clip_id}': missing")


def test_policy_stop_raises_with_hint():
    policy = BadDataPolicy("stop", "humanml3d")
    with pytest.raises(ClipError, match=r"^humanml3d train: clip '7': missing\. To leave bad clips out .*on_bad: skip"):
        policy.handle("train", _clip_error("7"))


@pytest.mark.parametrize("detail, joined", [
    ("expected 93 channel values, found 94", "found 94. To leave"),  # no full stop: one is added
    ("is empty; re-create it.", "re-create it. To leave"),  # already a sentence: kept as it is
    ("does it hold motion?", "motion? To leave"),
])  # fmt: skip
def test_policy_stop_hint_is_a_sentence_of_its_own(detail, joined):
    policy = BadDataPolicy("stop", "bvh")
    with pytest.raises(ClipError) as info:
        policy.handle("train", ClipError("walk", "malformed BVH", f"clip 'walk': {detail}"))
    assert joined in str(info.value)
    assert not re.search(r"[^.?!] To leave", str(info.value))


def test_unknown_split_without_a_close_name_ends_its_sentence():
    with pytest.raises(ValueError, match=r"^splits: unknown split 'dev'\. Map one of train, val, test"):
        split_files({"dev": "dev"})


def test_policy_skip_summary_lists_ten_then_ellipsis(caplog):
    policy = BadDataPolicy("skip", "humanml3d")
    policy.begin("train")
    for i in range(12):
        policy.handle("train", _clip_error(f"{i:03d}"))
    with caplog.at_level(logging.WARNING, logger="motionhub.data.batches"):
        summary = policy.finish("train", total=40)
    listed = ", ".join(f"{i:03d} (missing file)" for i in range(10))
    assert summary == f"humanml3d train: skipped 12 of 40 clips: {listed}, …"
    assert caplog.messages == [summary]
    assert policy.skipped[0] == SkippedClip("train", "000", "missing file")
    assert policy.finish("val", total=3) is None
    policy.begin("train")  # a second pass over the split starts afresh
    assert policy.skipped == []


def test_policy_rejects_unknown_mode():
    with pytest.raises(ValueError, match=r"on_bad must be 'stop' or 'skip'"):
        BadDataPolicy("ignore", "x")

