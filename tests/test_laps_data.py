"""The laps_velocities data set: the LAPS re-implementation's .pt velocity windows -> point-track clips."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from motionhub.errors import DataError
from motionhub.recipes import recipe_from_tree
from motionhub.train.trainer import train
from motionhub.plugins.types import annotations_of
from motionhub_amplify.tracks import radius_velocities, velocity_labels
from motionhub_synthetic.tracks import view_tracks, write_velocity_files
from motionhub_tracks import LapsVelocities
from motionhub_tracks.files import split_by_fraction
from motionhub_tracks.velocity_files import cotracker_grid

SIZE = (48, 80)  # (height, width): small, so the synthetic scene moves a few pixels per frame


@pytest.fixture
def folder(tmp_path) -> Path:
    write_velocity_files(tmp_path / "pt", segments=4, frames=3, tracks=16, image_size=SIZE, seed=2)
    return tmp_path / "pt"


def velocity_file(path: Path, value) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(value, path)
    return path


def good(steps=15, points=16, seed=0) -> torch.Tensor:
    return (torch.rand(steps, points, 2, generator=torch.Generator().manual_seed(seed)) * 2 - 1) * 0.5


def message(root, **kwargs) -> str:
    """The DataError that reading every split of ``root`` raises."""
    kwargs.setdefault("val_fraction", 0.0)
    with pytest.raises(DataError) as info:
        dataset = LapsVelocities(str(root), image_size=list(SIZE), **kwargs)
        for split in ("train", "val", "test"):
            list(dataset.clips(split))
    return str(info.value)


# ---- clips


def test_query_grid_is_cotrackers_row_major_layout():
    # on CoTracker3's own 384 x 512 resolution: a margin of 512 / 64 = 8 px, x varying fastest
    np.testing.assert_allclose(cotracker_grid(4, (384, 512)), [[8, 8], [504, 8], [8, 376], [504, 376]])
    grid = cotracker_grid(400, (480, 853))
    assert grid.shape == (400, 2)
    np.testing.assert_allclose(grid[0], [8 * 852 / 511, 8 * 479 / 383])
    assert (np.diff(grid[:20, 0]) > 0).all() and (grid[:20, 1] == grid[0, 1]).all()  # first row: x grows
    assert (grid[20:40, 1] > grid[0, 1]).all()  # then the next row down
    np.testing.assert_allclose(cotracker_grid(1, (480, 853)), [[426.5, 240]])
    with pytest.raises(ValueError, match="square"):
        cotracker_grid(10, (480, 853))


def test_round_trip_gives_back_the_stored_velocities_and_the_scene(folder):
    dataset = LapsVelocities(str(folder), image_size=list(SIZE), val_fraction=0.0)
    clips = list(dataset.clips("train"))
    assert len(clips) == 4 * 3
    assert [c.id for c in clips[:4]] == ["segment_000_start000000", "segment_000_start000001",
                                         "segment_000_start000002", "segment_001_start000000"]
    assert all(c.motion.shape == (16, 1, 16, 2) and c.motion.dtype == np.float32 for c in clips)
    fmt = dataset.format
    assert (fmt.name, fmt.feature_shape, fmt.fps, fmt.image_size, fmt.track_labels) == (
        "point_tracks", (1, 16, 2), 20.0, SIZE, "velocity")
    assert np.all(fmt.mean == 0) and np.all(fmt.std == 1)

    motion = torch.from_numpy(np.stack([c.motion for c in clips]))  # (12, 16, 1, 16, 2)
    stored = torch.stack([torch.load(folder / f"{c.id}.pt", weights_only=True) for c in clips])
    torch.testing.assert_close(radius_velocities(motion, SIZE)[:, :, 0], stored, rtol=0, atol=1e-5)
    # every window starts on the query grid, in (row, col) normalised by height and width
    grid = cotracker_grid(16, SIZE)
    expected_start = np.stack([grid[:, 1] / (SIZE[0] / 2) - 1, grid[:, 0] / (SIZE[1] / 2) - 1], axis=-1)
    np.testing.assert_allclose(motion[:, 0, 0].numpy(), np.broadcast_to(expected_start, (12, 16, 2)), atol=1e-6)

    # where no step saturates, the integrated positions are the synthetic scene's own tracks
    points, _ = view_tracks(np.random.default_rng([2, 1]), 3, 16, 16, SIZE, grid)  # segment 1
    scene = np.stack([points[..., 1] / (SIZE[0] / 2) - 1, points[..., 0] / (SIZE[1] / 2) - 1], axis=-1)
    unsaturated = (np.abs(np.diff(points, axis=1)) < 7).all(axis=(1, 3))  # (windows, N)
    assert unsaturated.mean() > 0.5
    got = motion[3:6, :, 0].numpy()
    np.testing.assert_allclose(got.transpose(0, 2, 1, 3)[unsaturated], scene.transpose(0, 2, 1, 3)[unsaturated],
                               atol=1e-5)
    # and the velocity labels of the clips are the reference's labels of the stored tensors
    reference = torch.round(stored * 14 / 2.0 + 7).long().clamp(0, 14)
    near_tie = ((stored * 7).abs() % 1 - 0.5).abs() < 1e-3
    agree = (velocity_labels(motion, SIZE)[:, :, 0] == reference[..., 1] * 15 + reference[..., 0]) | near_tie.any(-1)
    assert agree.all()


def test_labels_image_size_and_radius_settings(folder, tmp_path):
    pixel = LapsVelocities(str(folder), image_size=list(SIZE), labels="pixel")
    assert pixel.format.track_labels == "pixel" and "pixel labels" in pixel.describe()
    default = LapsVelocities(str(folder))
    assert default.format.image_size == (480, 853)
    assert "frame 480x853 (height x width), radius 7 px, velocity labels" in default.describe()
    # the radius scales the integration: radius 3.5 halves every step in pixels
    half = LapsVelocities(str(folder), image_size=list(SIZE), radius=3.5, val_fraction=0.0)
    full = LapsVelocities(str(folder), image_size=list(SIZE), val_fraction=0.0)
    a, b = next(half.clips("train")).motion, next(full.clips("train")).motion
    np.testing.assert_allclose(np.diff(a, axis=0), np.diff(b, axis=0) / 2, atol=1e-6)
    for kwargs, match in [({"image_size": [480]}, "image_size"), ({"radius": 0.0}, "radius"),
                          ({"fps": 0.0}, "fps"), ({"labels": "polar"}, "labels"),
                          ({"val_fraction": 0.6, "test_fraction": 0.4}, "sum to less than 1")]:
        with pytest.raises(ValueError, match=match):
            LapsVelocities(str(folder), **kwargs)


# ---- the split


def test_split_is_by_segment_seeded_and_never_splits_a_segment(tmp_path):
    for segment in range(12):
        for start in (0, 1, 2):
            velocity_file(tmp_path / f"video{segment}_part_start{start:06d}.pt", good(points=4, seed=start))
    dataset = LapsVelocities(str(tmp_path), val_fraction=0.25, test_fraction=0.2, seed=3)
    owner = {}
    for split in ("train", "val", "test"):
        for clip in dataset.clips(split):
            segment = clip.id.rsplit("_start", 1)[0]
            assert owner.setdefault(segment, split) == split, f"{segment} is in {owner[segment]} and {split}"
    assert len(owner) == 12 and sum(1 for s in owner.values() if s == "val") == 3
    assert sum(1 for s in owner.values() if s == "test") == 2
    segments = sorted(owner)
    assert owner == split_by_fraction(segments, 0.25, 0.2, seed=3)
    assert LapsVelocities(str(tmp_path), val_fraction=0.25, seed=4).split_of != dataset.split_of
    assert "36 windows (21 train / 9 val / 6 test) of 12 segments (7 train / 3 val / 2 test)" in dataset.describe()
    with pytest.raises(DataError, match="only 12 segments"):
        LapsVelocities(str(tmp_path), val_fraction=0.5, test_fraction=0.49).split_of


# ---- bad input


def test_missing_empty_and_badly_named_folders(tmp_path):
    assert "does not exist; set data.root" in message(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    assert "no .pt files under" in message(tmp_path / "empty")
    velocity_file(tmp_path / "named" / "clip_start000001.pt", good())
    velocity_file(tmp_path / "named" / "clip_000002.pt", good())
    text = message(tmp_path / "named")
    assert "1 file under" in text and "clip_000002.pt" in text and "rename them" in text


@pytest.mark.parametrize("value, expected", [
    ({"velocities": good()}, "holds a dict, not a tensor"),
    (good()[:, :, 0], "holds a tensor of shape (15, 16)"),
    (torch.zeros(15, 16, 3), "holds a tensor of shape (15, 16, 3)"),
    (torch.zeros(15, 16, 2, dtype=torch.int64), "holds torch.int64 values"),
    (good() * 3, "outside [-1, 1]: not normalised velocities"),
    (torch.where(torch.arange(16)[None, :, None] == 5, float("nan"), good()),
     "NaN or Inf values (first at step 0, point 5)"),
])  # fmt: skip
def test_every_bad_file_is_named_with_the_fix(tmp_path, value, expected):
    velocity_file(tmp_path / "a_start000000.pt", good())
    bad = velocity_file(tmp_path / "b_start000000.pt", value)
    text = message(tmp_path)
    assert str(bad) in text and expected in text and "data.on_bad: skip" in text


def test_unreadable_files_and_shapes_that_differ(tmp_path):
    velocity_file(tmp_path / "a_start000000.pt", good())
    (tmp_path / "b_start000000.pt").write_bytes(b"not a torch file")
    text = message(tmp_path)
    assert str(tmp_path / "b_start000000.pt") in text and "cannot be read by torch.load(weights_only=True)" in text
    (tmp_path / "b_start000000.pt").unlink()
    velocity_file(tmp_path / "b_start000000.pt", good(points=9))
    text = message(tmp_path)
    assert "holds (15, 9) (steps, points), but a_start000000.pt holds (15, 16)" in text
    # the first file sets the shape: a bad first file says so
    velocity_file(tmp_path / "0_start000000.pt", torch.zeros(4))
    assert "the first file sets the data set's shape" in message(tmp_path)


def test_non_square_point_counts_are_refused(tmp_path):
    velocity_file(tmp_path / "a_start000000.pt", good(points=10))
    assert "10 points per window, not a square number" in message(tmp_path)


def test_bad_files_can_be_skipped_and_are_reported(tmp_path, caplog):
    velocity_file(tmp_path / "a_start000000.pt", good())
    velocity_file(tmp_path / "a_start000001.pt", good() * 3)
    velocity_file(tmp_path / "a_start000002.pt", torch.zeros(15, 16))
    dataset = LapsVelocities(str(tmp_path), val_fraction=0.0, on_bad="skip")
    with caplog.at_level(logging.WARNING, logger="motionhub.data.batches"):
        assert [c.id for c in dataset.clips("train")] == ["a_start000000"]
    note = ("laps_velocities train: skipped 2 of 3 clips: a_start000001 (values outside [-1, 1]), "
            "a_start000002 (wrong shape)")
    assert note in caplog.text and dataset.packing_notes("train") == [note]


def test_fingerprint_follows_the_files(folder):
    before = LapsVelocities(str(folder)).fingerprint()
    assert LapsVelocities(str(folder)).fingerprint() == before
    velocity_file(folder / "extra_start000000.pt", good())
    assert LapsVelocities(str(folder)).fingerprint() != before


def test_the_plugin_documents_and_types_its_arguments():
    hints = annotations_of(LapsVelocities)
    assert {"root", "image_size", "radius", "fps", "labels", "val_fraction", "test_fraction", "seed",
            "on_bad"} <= set(hints)
    assert LapsVelocities.__doc__.splitlines()[0].startswith("The LAPS re-implementation's velocity windows")


# ---- training


def test_the_amplify_tokenizer_trains_on_the_velocity_windows(folder, tmp_path):
    tree = {"run": {"name": "laps", "out": str(tmp_path / "run"), "seed": 0},
            "data": {"name": "laps_velocities", "root": str(folder), "image_size": list(SIZE),
                     "val_fraction": 0.25, "window": 16},
            "encoder": {"name": "amplify", "hidden_dim": 32, "num_heads": 4, "num_layers": 1},
            "quantizer": {"name": "fsq", "levels": [8, 5, 5]},
            "decoder": {"name": "amplify", "num_heads": 4, "mlp_hidden_dim": 16},
            "losses": [{"name": "focal", "gamma": 2.0, "alpha": 1.0, "center_weight": 0.25, "static_threshold": 0.1},
                       {"name": "code_histogram_entropy", "codebook_size": 200, "weight": 0.05}],
            "train": {"batch_size": 4, "iters": 3, "log_every": 1},
            "eval": {"train_codebook": False, "metrics": ["tracks", "track_classes"]}}
    run_dir = train(recipe_from_tree(tree, "laps.yaml"))
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "split" not in r]
    assert len(steps) == 3 and all(np.isfinite(r["focal"]) and -1 <= r["code_histogram_entropy"] < 0 for r in steps)
    assert all(0 < r["focal_mask_ratio"] <= 1 for r in steps)  # the static-point mask's share, logged per term
    report = json.loads((run_dir / "report.json").read_text())
    assert report["losses"]["without_gradient"] == ["code_histogram_entropy"]
    final = rows[-1]
    assert final["split"] == "val"
    for figure in ("track_mse", "class_accuracy", "moving_class_accuracy", "dynamic_point_ratio",
                   "unique_codes_per_batch", "code_entropy_nats_per_batch", "normalised_perplexity_per_batch"):
        assert np.isfinite(final[figure]), figure
    assert 0 < final["dynamic_point_ratio"] <= 1 and final["unique_codes_per_batch"] >= 1
