"""The gtea_tracks data set: AMPLIFY / LAPS track files -> (horizon, views, tracks, 2) samples."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from motionhub.errors import DataError
from motionhub.plugins.types import annotations_of
from motionhub_synthetic.tracks import query_grid, write_track_files
from motionhub_tracks import GTEATracks, LapsVelocities, register_datasets

SIZE = (64, 96)  # (height, width): not square, so rows and columns cannot be confused


def write_file(path: Path, tracks: dict[str, np.ndarray], size: tuple[int, int] | None = SIZE) -> Path:
    """A track file by hand: {view: (T, H, N, 2) (x, y) pixels}, size attributes on each view."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as file:
        for view, points in tracks.items():
            group = file.create_group(f"root/{view}")
            group.create_dataset("tracks", data=np.asarray(points, dtype=np.float32))
            group.create_dataset("vis", data=np.ones(np.shape(points)[:-1], dtype=np.float32))
            if size is not None:
                group.attrs["height"], group.attrs["width"] = size
    return path


def expected(points_xy: np.ndarray, size=SIZE) -> np.ndarray:
    """Reference conversion, written out: (x, y) pixels -> clamped (row, col) in [-1, 1]."""
    row = (points_xy[..., 1] - size[0] / 2) / (size[0] / 2)
    col = (points_xy[..., 0] - size[1] / 2) / (size[1] / 2)
    return np.clip(np.stack([row, col], axis=-1), -1, 1)


@pytest.fixture
def synthetic(tmp_path) -> Path:
    write_track_files(tmp_path / "tracks", videos=3, frames=12, tracks=16, horizon=8,
                      views=("agentview", "eye_in_hand"), image_size=SIZE, seed=1)
    return tmp_path / "tracks"


def message(root, **kwargs) -> str:
    """The DataError that building ``root``'s train clips raises (fractions default to no held-out files)."""
    if not any(key.endswith("_files") for key in kwargs):
        kwargs.setdefault("val_fraction", 0.0)
    with pytest.raises(DataError) as info:
        list(GTEATracks(str(root), **kwargs).clips("train"))
    return str(info.value)


# ---- samples


def test_one_sample_per_start_frame_with_ids_shapes_and_format(synthetic):
    dataset = GTEATracks(str(synthetic), val_fraction=0.0)
    clips = list(dataset.clips("train"))
    assert len(clips) == 3 * 12
    assert [c.id for c in clips[:2]] == ["video_000/agentview+eye_in_hand/0", "video_000/agentview+eye_in_hand/1"]
    assert clips[-1].id == "video_002/agentview+eye_in_hand/11"
    assert all(c.motion.shape == (8, 2, 16, 2) and c.motion.dtype == np.float32 for c in clips)
    fmt = dataset.format
    assert fmt.feature_shape == (2, 16, 2) and fmt.fps == 10.0
    assert np.all(fmt.mean == 0) and np.all(fmt.std == 1)  # already normalised: identity statistics
    assert list(dataset.clips("val")) == [] and list(dataset.clips("test")) == []


def test_row_col_swap_and_normalisation_by_height_and_width(tmp_path):
    # one point at x = 3/4 of the width, y = 1/4 of the height, then at the image's far corner
    points = np.array([[[[72.0, 16.0]], [[96.0, 64.0]]]])  # (T=1, H=2, N=1, 2)
    write_file(tmp_path / "a.h5", {"default": points})
    motion = next(GTEATracks(str(tmp_path), val_fraction=0.0).clips("train")).motion
    np.testing.assert_allclose(motion[:, 0, 0], [[-0.5, 0.5], [1.0, 1.0]])


def test_synthetic_tracks_match_the_reference_conversion_and_are_clamped(synthetic):
    dataset = GTEATracks(str(synthetic), val_fraction=0.0)
    motion = np.stack([c.motion for c in dataset.clips("train")])  # (36, 8, 2, 16, 2)
    with h5py.File(synthetic / "video_001.hdf5") as file:
        raw = np.stack([file[f"root/{v}/tracks"][()] for v in ("agentview", "eye_in_hand")], axis=2)
        invisible = file["root/agentview/vis"][()] == 0
    np.testing.assert_allclose(motion[12:24], expected(raw), atol=1e-6)
    assert invisible.any(), "the synthetic scene should carry some points out of the image"
    assert motion.min() == -1.0 or motion.max() == 1.0
    assert np.abs(motion).max() <= 1.0
    # every window starts on the query grid (tracking is re-initialised at each start frame)
    np.testing.assert_allclose(motion[:, 0, 0], np.broadcast_to(expected(query_grid(16, SIZE)), (36, 16, 2)),
                               atol=1e-5)


def test_non_finite_points_hold_the_last_finite_position_and_are_counted(tmp_path, caplog):
    track = np.array([[0.0, 0.0], [48.0, 32.0], [np.nan, 1.0], [np.inf, np.inf], [24.0, 16.0]])
    leading = np.array([[np.nan, np.nan], [48.0, 32.0], [48.0, 32.0], [48.0, 32.0], [48.0, 32.0]])
    lost = np.full((5, 2), np.nan)
    write_file(tmp_path / "a.h5", {"default": np.stack([track, leading, lost], axis=1)[None]})
    dataset = GTEATracks(str(tmp_path), val_fraction=0.0)
    [clip] = dataset.clips("train")
    motion = clip.motion[:, 0]  # (5, 3, 2)
    np.testing.assert_allclose(motion[:, 0], [[-1, -1], [0, 0], [0, 0], [0, 0], [-0.5, -0.5]])
    np.testing.assert_allclose(motion[:, 1], np.zeros((5, 2)))  # took the first finite position
    np.testing.assert_allclose(motion[:, 2], np.zeros((5, 2)))  # no finite position: image centre
    assert dataset.non_finite_points == {"train": 2 + 1 + 5}
    assert "non-finite points replaced (hold): train 8" in dataset.describe()
    assert (f"gtea_tracks train: replaced 8 points with NaN/Inf coordinates (15 coordinates; non_finite: hold) "
            f"in 1 of 1 files: a (8). The first is in {tmp_path / 'a.h5'} at root/default/tracks[0, 0, 1]: "
            f"view default, the window starting at frame 0, its frame 0, track 1 (x = nan, y = nan).") in caplog.text


@pytest.mark.parametrize("non_finite", ["hold", "clamp"])
def test_replaced_points_are_counted_as_points_and_coordinates(tmp_path, non_finite):
    points = np.full((2, 4, 6, 2), 10.0)  # (T, H, N, 2) (x, y)
    for window, frame, track in ((0, 1, 0), (1, 2, 1), (1, 3, 2)):
        points[window, frame, track, 0] = np.nan  # three points with a NaN x only
    points[1, 1, 3] = np.nan  # two with both coordinates NaN
    points[1, 2, 4] = [np.inf, -np.inf]
    write_file(tmp_path / "a.h5", {"default": points})
    dataset = GTEATracks(str(tmp_path), val_fraction=0.0, non_finite=non_finite)
    clips = list(dataset.clips("train"))
    assert all(np.isfinite(c.motion).all() for c in clips)
    assert dataset.non_finite_points == {"train": 5}
    [note] = dataset.packing_notes("train")
    assert note.startswith(f"gtea_tracks train: replaced 5 points with NaN/Inf coordinates (7 coordinates; "
                           f"non_finite: {non_finite}) in 1 of 1 files: a (5). ")
    assert "root/default/tracks[0, 1, 0]" in note and "track 0 (x = nan)." in note


def test_the_first_non_finite_point_is_located_by_file_view_window_frame_and_track(tmp_path, caplog):
    clean = np.full((3, 4, 5, 2), 20.0)
    write_file(tmp_path / "a.h5", {"agentview": clean, "wrist": clean})
    # b's agentview breaks in window 2, its wrist view in window 1: the first in storage order
    # (window, frame, view, track) is the wrist's, though agentview is the first view
    broken = clean.copy()
    broken[2, 3, 4, 1] = np.inf
    wrist = clean.copy()
    wrist[1, 2, 3, 1] = -np.inf
    write_file(tmp_path / "b.h5", {"agentview": broken, "wrist": wrist})
    dataset = GTEATracks(str(tmp_path), val_fraction=0.0)
    list(dataset.clips("train"))
    [note] = dataset.packing_notes("train")
    assert note == (f"gtea_tracks train: replaced 2 points with NaN/Inf coordinates (2 coordinates; non_finite: "
                    f"hold) in 1 of 2 files: b (2). The first is in {tmp_path / 'b.h5'} at "
                    f"root/wrist/tracks[1, 2, 3]: view wrist, the window starting at frame 1, its frame 2, "
                    f"track 3 (y = -inf).")
    assert note in caplog.text


def test_non_finite_clamp_follows_the_reference(tmp_path):
    track = np.array([[48.0, 32.0], [np.nan, 32.0], [np.inf, -np.inf]])[None, :, None]
    write_file(tmp_path / "a.h5", {"default": track})
    dataset = GTEATracks(str(tmp_path), val_fraction=0.0, non_finite="clamp")
    motion = next(dataset.clips("train")).motion[:, 0, 0]
    np.testing.assert_allclose(motion, [[0, 0], [0, -1], [-1, 1]])  # NaN is pixel 0; Inf the border
    assert dataset.non_finite_points == {"train": 2}


def test_view_selection_and_order(synthetic):
    def first(views):
        return next(GTEATracks(str(synthetic), views=views, val_fraction=0.0).clips("train"))

    both, eye = first(None), first(["eye_in_hand"])
    swapped = first(["eye_in_hand", "agentview"])
    assert eye.id == "video_000/eye_in_hand/0" and eye.motion.shape == (8, 1, 16, 2)
    np.testing.assert_array_equal(eye.motion[:, 0], both.motion[:, 1])
    np.testing.assert_array_equal(swapped.motion[:, ::-1], both.motion)
    assert GTEATracks(str(synthetic), views=["agentview"]).format.feature_shape == (1, 16, 2)


def test_horizon_resampling_is_linear_in_time_and_keeps_the_ends(tmp_path):
    steps = np.arange(5, dtype=np.float32)[:, None] * np.array([8.0, 4.0])  # x 0..32, y 0..16
    write_file(tmp_path / "a.h5", {"default": steps[None, :, None]})
    dataset = GTEATracks(str(tmp_path), horizon=9, val_fraction=0.0)
    motion = next(dataset.clips("train")).motion[:, 0, 0]
    halves = np.arange(9)[:, None] / 2 * np.array([4.0, 8.0])  # (y, x) at half steps
    np.testing.assert_allclose(motion, expected(halves[:, ::-1]), atol=1e-6)
    assert dataset.format.fps == pytest.approx(10.0 * 8 / 4)
    assert "horizon 9 (resampled from 5)" in dataset.describe()


# ---- splits


def test_fraction_split_is_by_file_seeded_and_honoured(tmp_path):
    write_track_files(tmp_path, videos=10, frames=3, tracks=4, horizon=4, seed=0)

    def files_of(dataset, split):
        return {c.id.split("/")[0] for c in dataset.clips(split)}

    dataset = GTEATracks(str(tmp_path), val_fraction=0.2, test_fraction=0.1, seed=3)
    train, val, test = (files_of(dataset, s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (7, 2, 1)
    assert train | val | test == {f"video_{i:03d}" for i in range(10)}
    assert not (train & val or train & test or val & test)
    again = GTEATracks(str(tmp_path), val_fraction=0.2, test_fraction=0.1, seed=3)
    assert files_of(again, "val") == val
    others = [files_of(GTEATracks(str(tmp_path), val_fraction=0.2, seed=s), "val") for s in range(4, 9)]
    assert any(o != val for o in others)
    assert len(files_of(GTEATracks(str(tmp_path)), "val")) == 1  # default: 10 % of the files
    assert "(7 train / 2 val / 1 test)" in dataset.describe()


def test_explicit_file_lists_are_honoured(tmp_path):
    write_track_files(tmp_path / "gtea", videos=4, frames=3, tracks=4, horizon=4, seed=0)
    dataset = GTEATracks(str(tmp_path), val_files=["gtea/video_001.hdf5"], test_files=["gtea/video_002"])
    ids = {s: sorted({c.id.rsplit("/", 2)[0] for c in dataset.clips(s)}) for s in ("train", "val", "test")}
    assert ids == {"train": ["gtea/video_000", "gtea/video_003"], "val": ["gtea/video_001"],
                   "test": ["gtea/video_002"]}
    listed = GTEATracks(str(tmp_path), train_files=["gtea/video_000"], val_files=["gtea/video_003"])
    assert len(list(listed.clips("train"))) == 3 and listed.split_of == {"gtea/video_000": "train",
                                                                          "gtea/video_003": "val"}
    assert "2 unused" in listed.describe()


def test_bad_split_settings(tmp_path):
    write_track_files(tmp_path, videos=2, frames=3, tracks=4, horizon=4, seed=0)
    text = message(tmp_path, val_files=["video_01"])
    assert "data.val_files names 'video_01', which is not a track file under" in text
    assert "did you mean 'video_001'?" in text
    text = message(tmp_path, val_files=["video_000"], test_files=["video_000.hdf5"])
    assert "'video_000.hdf5' is listed in both data.val_files and data.test_files" in text
    assert "leave no track file under" in message(tmp_path, val_files=["video_000"], test_files=["video_001"])
    text = message(tmp_path, val_fraction=0.5, test_fraction=0.4)
    assert "only 2 track files: holding out 1 for val and 1 for test leaves none to train on" in text
    with pytest.raises(ValueError, match="either as file lists .* or as fractions"):
        GTEATracks(str(tmp_path), val_files=["video_000"], val_fraction=0.5)
    with pytest.raises(ValueError, match="sum to less than 1"):
        GTEATracks(str(tmp_path), val_fraction=0.6, test_fraction=0.4)


def test_invalid_arguments(tmp_path):
    for kwargs, match in [({"horizon": 1}, "horizon must be at least 2"),
                          ({"views": []}, "at least one view"),
                          ({"views": ["a", "a"]}, "each once"),
                          ({"image_size": [128]}, r"\[height, width\]"),
                          ({"fps": 0.0}, "fps must be positive"),
                          ({"non_finite": "zero"}, "'hold' or 'clamp'")]:
        with pytest.raises(ValueError, match=match):
            GTEATracks(str(tmp_path), **kwargs)


# ---- bad data: each message names the file and what is expected


def test_missing_folder_and_no_track_files(tmp_path):
    text = message(tmp_path / "nowhere")
    assert f"track folder {tmp_path / 'nowhere'} does not exist; set data.root" in text
    (tmp_path / "notes.txt").write_text("not tracks")
    assert f"no .h5 or .hdf5 track files under {tmp_path}" in message(tmp_path)


def test_construction_reads_nothing_and_the_first_use_reads_the_folder(tmp_path):
    """A data set is built before its folder exists; the folder is read, and an error raised, on first use."""
    root = tmp_path / "later"
    missing = GTEATracks(str(root), val_fraction=0.0)
    dataset = GTEATracks(str(root), val_fraction=0.0, views=["agentview"])
    with pytest.raises(DataError, match=f"track folder {root} does not exist"):
        list(missing.clips("train"))
    write_track_files(root, videos=2, frames=5, tracks=4, horizon=3, views=("agentview",), image_size=SIZE, seed=2)
    clips = list(dataset.clips("train"))
    assert [c.id for c in clips[:2]] == ["video_000/agentview/0", "video_000/agentview/1"]
    assert len(clips) == 2 * 5 and clips[0].motion.shape == (3, 1, 4, 2)
    assert dataset.format.feature_shape == (1, 4, 2)


def test_files_missing_groups_views_or_datasets(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as file:
        file.create_dataset("tracks", data=np.zeros((2, 4, 3, 2)))
    text = message(tmp_path, views=["default"])
    assert f"{tmp_path / 'a.h5'}: no group 'root'; expected root/<view>/tracks of shape (T, horizon, tracks, 2)" in text

    write_file(tmp_path / "a.h5", {"agentview": np.zeros((2, 4, 3, 2))})
    text = message(tmp_path, views=["agentveiw"])
    assert f"{tmp_path / 'a.h5'}: no view 'agentveiw' (group root/agentveiw); did you mean 'agentview'?" in text
    assert "Views in the file: agentview; choose them with data.views" in text
    text = message(tmp_path, views=["wrist"])  # no view close to it: the sentence still ends
    assert f"{tmp_path / 'a.h5'}: no view 'wrist' (group root/wrist). Views in the file: agentview;" in text

    with h5py.File(tmp_path / "a.h5", "w") as file:
        file.create_group("root/default").create_dataset("vis", data=np.zeros((2, 4, 3)))
    assert f"{tmp_path / 'a.h5'}: no dataset root/default/tracks; expected" in message(tmp_path)

    with h5py.File(tmp_path / "a.h5", "w") as file:
        file.create_group("root")
    assert f"{tmp_path / 'a.h5'}: no view groups under root" in message(tmp_path)


@pytest.mark.parametrize("shape, why", [((2, 4, 3), "has shape (2, 4, 3)"), ((2, 4, 3, 3), "has shape (2, 4, 3, 3)"),
                                        ((0, 4, 3, 2), "at least one start frame"),
                                        ((2, 1, 3, 2), "a horizon of at least 2 frames")])
def test_wrong_track_shapes(tmp_path, shape, why):
    write_file(tmp_path / "a.h5", {"default": np.zeros(shape)})
    text = message(tmp_path)
    assert text.startswith(f"{tmp_path / 'a.h5'}: root/default/tracks has shape {shape}") and why in text


def test_views_and_files_must_agree(tmp_path):
    write_file(tmp_path / "a.h5", {"front": np.zeros((2, 4, 3, 2)), "wrist": np.zeros((2, 4, 5, 2))})
    assert "root/wrist/tracks has shape (2, 4, 5, 2) but root/front/tracks has (2, 4, 3, 2)" in message(tmp_path)
    write_file(tmp_path / "a.h5", {"default": np.zeros((2, 4, 3, 2))})
    write_file(tmp_path / "b.h5", {"default": np.zeros((2, 4, 5, 2))})
    text = message(tmp_path)
    assert (f"{tmp_path / 'b.h5'}: windows of 4 frames x 5 tracks, but {tmp_path / 'a.h5'} has 4 x 3; "
            "every file needs the same horizon and track count") in text


def test_image_size_from_attributes_or_the_recipe(tmp_path):
    points = np.array([[[[72.0, 16.0]], [[0.0, 0.0]]]])
    write_file(tmp_path / "a.h5", {"default": points}, size=None)
    text = message(tmp_path)
    assert f"{tmp_path / 'a.h5'}: no 'height' / 'width' attributes on root/default, root or the file" in text
    assert "set data.image_size: [height, width]" in text
    fallback = next(GTEATracks(str(tmp_path), image_size=list(SIZE), val_fraction=0.0).clips("train"))
    np.testing.assert_allclose(fallback.motion[0, 0, 0], [-0.5, 0.5])
    with h5py.File(tmp_path / "a.h5", "a") as file:  # file-level attributes win over the recipe
        file.attrs["height"], file.attrs["width"] = 32, 192
    motion = next(GTEATracks(str(tmp_path), image_size=list(SIZE), val_fraction=0.0).clips("train")).motion
    np.testing.assert_allclose(motion[0, 0, 0], [0.0, -0.25])
    with h5py.File(tmp_path / "a.h5", "a") as file:
        del file.attrs["width"]
    assert f"{tmp_path / 'a.h5'}: the file has a 'height' attribute but no 'width'" in message(tmp_path)
    with h5py.File(tmp_path / "a.h5", "a") as file:
        file["root/default"].attrs["height"], file["root/default"].attrs["width"] = 0, 96
    assert "root/default has height 0 and width 96; expected positive whole numbers" in message(tmp_path)


def test_corrupt_and_truncated_files(tmp_path):
    (tmp_path / "a.h5").write_bytes(b"this is not HDF5" * 64)
    text = message(tmp_path)
    assert text.startswith(f"{tmp_path / 'a.h5'}: cannot be read as HDF5 (") and "damaged or not a track file" in text
    path = write_file(tmp_path / "a.h5", {"default": np.zeros((64, 16, 50, 2))})
    os.truncate(path, path.stat().st_size // 2)
    assert message(tmp_path).startswith(f"{path}: cannot be read as HDF5 (")


def test_all_bad_files_are_reported_together(tmp_path):
    write_file(tmp_path / "a.h5", {"default": np.zeros((2, 4, 3, 2))})
    (tmp_path / "b.h5").write_bytes(b"junk")
    write_file(tmp_path / "c.h5", {"default": np.zeros((2, 4))})
    text = message(tmp_path)
    assert text.startswith(f"2 problems with the track files under {tmp_path}:")
    assert f"{tmp_path / 'b.h5'}: cannot be read" in text and f"{tmp_path / 'c.h5'}: root/default/tracks" in text


# ---- bookkeeping


def test_fingerprint_follows_names_sizes_and_times(synthetic):
    dataset = GTEATracks(str(synthetic))
    before = dataset.fingerprint()
    assert GTEATracks(str(synthetic)).fingerprint() == before
    stat = (synthetic / "video_001.hdf5").stat()
    os.utime(synthetic / "video_001.hdf5", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = GTEATracks(str(synthetic)).fingerprint()
    assert touched != before
    write_track_files(synthetic / "more", videos=1, frames=2, tracks=16, horizon=8, seed=5)
    assert GTEATracks(str(synthetic)).fingerprint() not in (before, touched)


def test_plugin_registers_a_documented_typed_dataset():
    from motionhub.plugins.registry import resolve  # registrations may be 'module:Class' references

    registered = {}
    register_datasets(lambda name, cls: registered.setdefault(name, resolve(cls)))
    assert registered == {"gtea_tracks": GTEATracks, "laps_velocities": LapsVelocities}
    hints = annotations_of(GTEATracks)
    assert {"root", "views", "image_size", "horizon", "val_fraction", "val_files", "non_finite", "labels"} <= set(hints)
    assert GTEATracks.__doc__.splitlines()[0].startswith("Point tracks from AMPLIFY / LAPS HDF5 files")
