"""AMPLIFY's track metrics, accumulated exactly over batches."""

import torch
import torch.nn.functional as F

from motionhub.data import layouts
from motionhub_amplify.metrics import TrackMetrics
from motionhub_amplify.tracks import pixel_positions, relative_labels

SIZE = (64, 64)


def tracks_on_pixels(batch=2, steps=6, tracks=5, seed=0):
    """Tracks that sit exactly on pixel centres, so perfect labels decode to them exactly."""
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(10, 50, (batch, 1, 1, tracks, 2), generator=g).float()
    moves = torch.randint(-3, 4, (batch, steps - 1, 1, tracks, 2), generator=g).float()
    pixels = torch.cat([start, start + moves.cumsum(1)], dim=1)
    return (pixels - 32) / 32  # (B, T, V, N, 2) normalised


def perfect_logits(points):
    labels = relative_labels(points, SIZE)
    return F.one_hot(labels, 225).float() * 10


def run(metric, batches):
    fmt = layouts.point_tracks(1, 5, 10.0, image_size=SIZE)
    sums = {}
    for points, logits in batches:
        for key, value in metric.update({"motion": points}, {"logits": logits}, fmt).items():
            sums[key] = sums.get(key, 0.0) + float(value)
    return metric.compute(sums)


def test_perfect_logits_give_perfect_scores():
    points = tracks_on_pixels()
    assert torch.equal(pixel_positions(points, SIZE), points * 32 + 32)
    result = run(TrackMetrics(), [(points, perfect_logits(points))])
    assert result["track_mse"] == 0 and result["track_l1"] == 0 and result["cross_track_l2"] == 0
    assert result["pixel_accuracy"] == 1 and result["delta_auc"] == 1 and result["nonzero_f1"] == 1


def test_a_one_pixel_error_counts_as_amplify_defines_it():
    points = tracks_on_pixels()
    logits = perfect_logits(points)
    labels = logits.argmax(-1)
    labels[0, 0, 0, 0] += 1  # one column further at step 1 for one track: every later frame is 1 px off
    result = run(TrackMetrics(), [(points, F.one_hot(labels, 225).float())])
    wrong = 5  # frames 1..5 of that track, one coordinate each
    coords = points.numel()
    assert result["pixel_accuracy"] == 1 - wrong / coords
    assert result["track_l1"] == (wrong * (2 / 64)) / coords
    # within 1 px fails for those coordinates (|d| < 1 px is strict), within 2..10 px succeeds
    assert abs(result["delta_auc"] - (1 - wrong / coords / 10)) < 1e-9


def test_sums_over_batches_equal_one_big_batch():
    a, b = tracks_on_pixels(seed=1), tracks_on_pixels(seed=2)
    noisy = lambda p: perfect_logits(p) + torch.randn(perfect_logits(p).shape, generator=torch.Generator().manual_seed(3)) * 8
    split = run(TrackMetrics(), [(a, noisy(a)), (b, noisy(b))])
    whole = run(TrackMetrics(), [(torch.cat([a, b]), torch.cat([noisy(a), noisy(b)]))])
    for key in split:
        assert abs(split[key] - whole[key]) < 1e-6, key
