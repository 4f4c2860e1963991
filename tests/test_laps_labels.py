"""The LAPS re-implementation's rules as motionhub options: velocity labels, the static-point mask,
its focal loss, the histogram entropy term and the class / code metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from motionhub.data import layouts
from motionhub.errors import MotionhubError
from motionhub.model.losses import LossSet, LossTerm
from motionhub_amplify import (
    CodeHistogramEntropy,
    FocalLoss,
    RelativeCE,
    TrackClassMetrics,
    TrackMetrics,
    register_losses,
    register_metrics,
)
from motionhub_amplify.tracks import (
    decode_points,
    displacement_labels,
    moving_points,
    relative_labels,
    velocity_labels,
)
from motionhub_synthetic.tracks import write_track_files
from motionhub_tracks import GTEATracks

SIZE = (128, 128)  # half a side is 64: pixel offsets survive normalisation exactly


def track(pixels) -> torch.Tensor:
    """(B=1, T, V=1, N=1, 2) normalised points from (T, 2) (row, col) pixels."""
    return ((torch.tensor(pixels, dtype=torch.float32) - 64) / 64).view(1, -1, 1, 1, 2)


def reference_label(dy: float, dx: float) -> int:
    """The closed form: cell = round(d + 7) with ties to even (Python's round) in window coordinates,
    clipped to [0, 14]; label = cell_y * 15 + cell_x."""
    cell = lambda d: min(max(round(d + 7), 0), 14)  # noqa: E731
    return cell(dy) * 15 + cell(dx)


# ---- labels ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dx, label", [
    (0.0, 112), (0.49, 112), (-0.49, 112), (0.5, 113), (-0.5, 111), (1.5, 113), (-1.5, 111),
    (6.5, 119), (-6.5, 105), (8.0, 119), (-8.0, 105), (3.2, 115),
])  # fmt: skip
def test_velocity_labels_follow_the_probe_table(dx, label):
    points = track([[64.0, 64.0], [64.0, 64.0 + dx]])
    assert velocity_labels(points, SIZE).item() == label == reference_label(0.0, dx)
    # rows are the outer index and follow y: the same step downwards
    down = track([[64.0, 64.0], [64.0 + dx, 64.0]])
    assert velocity_labels(down, SIZE).item() == reference_label(dx, 0.0)


def test_pixel_and_velocity_labels_differ_where_rounding_positions_differs():
    half = track([[64.0, 64.25], [64.0, 64.75]])  # 0.5 px right: positions 64 and 65 after rounding
    assert relative_labels(half, SIZE).item() == 113 and velocity_labels(half, SIZE).item() == 113
    small = track([[64.0, 64.4], [64.0, 64.6]])  # 0.2 px: a pixel boundary crossed, velocity ~ 0
    assert relative_labels(small, SIZE).item() == 113 and velocity_labels(small, SIZE).item() == 112
    assert displacement_labels(small, SIZE, (15, 15), "pixel").item() == 113
    assert displacement_labels(small, SIZE, (15, 15), "velocity").item() == 112
    with pytest.raises(MotionhubError, match="unknown track label kind"):
        displacement_labels(small, SIZE, (15, 15), "polar")


def test_velocity_labels_need_a_square_grid_and_scale_with_it():
    points = track([[64.0, 64.0], [65.0, 62.0]])
    with pytest.raises(MotionhubError, match="square grid"):
        velocity_labels(points, SIZE, (15, 9))
    # a 5 x 5 grid has radius 2: +1 row, -2 columns -> (1 + 2) * 5 + (-2 + 2)
    assert velocity_labels(points, SIZE, (5, 5)).item() == 15


def test_both_label_kinds_on_the_same_track_files(tmp_path):
    size = (64, 96)
    write_track_files(tmp_path, videos=2, frames=6, tracks=9, horizon=8, image_size=size, seed=3)
    pixel, velocity = GTEATracks(str(tmp_path), val_fraction=0.0), GTEATracks(str(tmp_path), val_fraction=0.0,
                                                                              labels="velocity")
    assert pixel.format.track_labels == "pixel" and velocity.format.track_labels == "velocity"
    assert "velocity labels" in velocity.describe()
    with pytest.raises(ValueError, match="labels must be one of"):
        GTEATracks(str(tmp_path), labels="polar")
    motion = torch.from_numpy(np.stack([c.motion for c in pixel.clips("train")]))  # (12, 8, 1, 9, 2)
    assert torch.equal(motion, torch.from_numpy(np.stack([c.motion for c in velocity.clips("train")])))

    # independently: pixel steps in float64 from the normalised points, each rule written out
    px = motion.double() * torch.tensor(size, dtype=torch.float64) / 2 + torch.tensor(size) / 2
    step = px[:, 1:] - px[:, :-1]
    by_rule = {
        "velocity": np.vectorize(reference_label)(step[..., 0].numpy(), step[..., 1].numpy()),
        "pixel": None,
    }
    near_half = (((step.abs() % 1) - 0.5).abs() < 1e-3).any(-1).numpy()  # float32 ties: not compared
    rounded = torch.minimum(px.clamp(min=0), torch.tensor(size, dtype=torch.float64) - 1).round()
    moves = (rounded[:, 1:] - rounded[:, :-1]).clamp(-7, 7).long() + 7
    by_rule["pixel"] = (moves[..., 0] * 15 + moves[..., 1]).numpy()
    for dataset in (pixel, velocity):
        labels = displacement_labels(motion, size, (15, 15), dataset.format.track_labels).numpy()
        expected = by_rule[dataset.format.track_labels]
        assert (labels[~near_half] == expected[~near_half]).all()
    assert (by_rule["pixel"] != by_rule["velocity"]).any()  # the rules do differ on these tracks

    # the losses follow the format: relative_ce is the plain CE against that format's labels
    logits = torch.randn(*motion.shape[:1], 7, 1, 9, 225, generator=torch.Generator().manual_seed(0))
    for dataset in (pixel, velocity):
        labels = displacement_labels(motion, size, (15, 15), dataset.format.track_labels)
        value = RelativeCE()({"motion": motion}, {"logits": logits}, dataset.format)
        torch.testing.assert_close(value, F.cross_entropy(logits.flatten(0, -2), labels.flatten()))


def pixel_tracks(batch=2, steps=6, tracks=5, seed=0, size=SIZE):
    """Integer-pixel tracks with steps of at most 3 px: both label rules agree on them."""
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(20, 100, (batch, 1, 1, tracks, 2), generator=g).float()
    moves = torch.randint(-3, 4, (batch, steps - 1, 1, tracks, 2), generator=g).float()
    return (torch.cat([start, start + moves.cumsum(1)], dim=1) - 64) / 64


@pytest.mark.parametrize("kind", ["pixel", "velocity"])
def test_track_metrics_work_for_both_label_kinds(kind):
    fmt = layouts.point_tracks(1, 5, 10.0, image_size=SIZE, track_labels=kind)
    points = pixel_tracks()
    labels = displacement_labels(points, SIZE, (15, 15), kind)
    assert torch.equal(labels, relative_labels(points, SIZE))  # integer steps: the same classes
    metric = TrackMetrics()
    sums = metric.update({"motion": points}, {"logits": F.one_hot(labels, 225).float()}, fmt)
    perfect = metric.compute({k: float(v) for k, v in sums.items()})
    assert perfect["track_mse"] == 0 and perfect["pixel_accuracy"] == 1 and perfect["nonzero_f1"] == 1

    # sub-pixel motion: the class of each step decodes to its integer displacement either way
    g = torch.Generator().manual_seed(1)
    smooth = points + torch.cat([torch.zeros(2, 1, 1, 5, 2), torch.rand(2, 5, 1, 5, 2, generator=g).cumsum(1)], 1) / 64
    labels = displacement_labels(smooth, SIZE, (15, 15), kind)
    decoded = decode_points(F.one_hot(labels, 225).float(), smooth[:, :1], SIZE)
    sums = metric.update({"motion": smooth}, {"logits": F.one_hot(labels, 225).float()}, fmt)
    figures = metric.compute({k: float(v) for k, v in sums.items()})
    assert figures["track_mse"] == pytest.approx(float((decoded - smooth).square().mean()), rel=1e-5)
    assert figures["track_l1"] == pytest.approx(float((decoded - smooth).abs().mean()), rel=1e-5)


# ---- the static-point mask ---------------------------------------------------------------------


def reference_mask(points: torch.Tensor, threshold: float, metric: str, min_keep: int, radius: float = 7.0,
                   steps: int | None = None) -> np.ndarray:
    """(B, T, V, N, 2) normalised points -> (B, V, N) kept, written out from the formulas in numpy."""
    px = points.double().numpy() * 64  # pixel steps for SIZE
    velocity = np.clip(np.diff(px, axis=1)[..., ::-1] / radius, -1, 1)
    if steps is not None:
        velocity = velocity[:, :steps]
    speed = np.sqrt((velocity ** 2).sum(-1))  # (B, S, V, N)
    score = {"p95": lambda s: np.quantile(s, 0.95, axis=1), "mean": lambda s: s.mean(axis=1),
             "max": lambda s: s.max(axis=1)}[metric](speed)
    keep = score >= threshold
    for b, v in np.ndindex(*keep.shape[:2]):
        if keep[b, v].sum() < min_keep:
            keep[b, v] = False
            keep[b, v, np.argsort(-score[b, v])[:min(min_keep, score.shape[-1])]] = True
    return keep


def mixed_tracks(batch=3, frames=16, views=1, tracks=40, seed=0) -> torch.Tensor:
    """Tracks whose points move at very different speeds; the last sample is almost still."""
    g = torch.Generator().manual_seed(seed)
    speed = torch.rand(batch, 1, views, tracks, 1, generator=g) ** 3 * 3  # px per step
    speed[-1] *= 0.02
    steps = torch.randn(batch, frames - 1, views, tracks, 2, generator=g) * speed
    start = torch.rand(batch, 1, views, tracks, 2, generator=g) * 60 + 34
    return (torch.cat([start, start + steps.cumsum(1)], dim=1) - 64) / 64


@pytest.mark.parametrize("metric", ["p95", "mean", "max"])
def test_static_mask_matches_the_formulas_with_the_min_keep_fallback(metric):
    points = mixed_tracks()
    expected = reference_mask(points, 0.10, metric, 16)
    got = moving_points(points, SIZE, 7.0, 0.10, metric, 16).numpy()
    assert (got == expected).all()
    assert got[-1].sum() == 16  # the still sample keeps exactly its 16 fastest points
    assert got.sum(-1).min() >= 16 and got.sum() > 3 * 16  # the others keep what passes the threshold
    assert (moving_points(points, SIZE, 7.0, 0.10, metric, 0).numpy() == reference_mask(points, 0.10, metric, 0)).all()
    assert moving_points(points, SIZE, 7.0, 0.10, metric, 100).all()  # min_keep beyond N keeps every point


def test_p95_is_the_interpolated_quantile():
    # one point, 15 steps of 0..14 px to the right: sorted[13] + 0.3 (sorted[14] - sorted[13]) in radius units
    cols = np.concatenate([[0.0], np.cumsum(np.arange(15.0) / 3)])  # steps of 0, 1/3, ..., 14/3 px
    points = track(np.stack([np.full(16, 64.0), 64 + cols], axis=-1))
    p95 = (13 / 3 + 0.3 / 3) / 7
    assert moving_points(points, SIZE, 7.0, p95 - 1e-6, "p95", 0).item()
    assert not moving_points(points, SIZE, 7.0, p95 + 1e-6, "p95", 0).item()


def test_static_mask_scores_only_real_steps():
    points = mixed_tracks(batch=2)
    steps = torch.ones(2, 15, dtype=torch.bool)
    steps[1, 10:] = False  # sample 1 has 11 real frames
    got = moving_points(points, SIZE, 7.0, 0.10, "p95", 16, steps).numpy()
    assert (got[0] == reference_mask(points[:1], 0.10, "p95", 16)[0]).all()
    assert (got[1] == reference_mask(points[1:], 0.10, "p95", 16, steps=10)[0]).all()


def reference_focal(logits: torch.Tensor, labels: torch.Tensor, gamma=2.0, alpha_center=0.25, alpha_other=1.0):
    """The LAPS re-implementation's focal loss per element, written out."""
    log_p = torch.log_softmax(logits.double(), dim=-1).gather(-1, labels[..., None]).squeeze(-1)
    alpha = torch.where(labels == 112, alpha_center, alpha_other).double()
    return -alpha * (1 - log_p.exp()).clamp(min=0) ** gamma * log_p


def test_focal_loss_with_the_reference_settings_is_its_masked_mean():
    points = mixed_tracks()
    logits = torch.randn(3, 15, 1, 40, 225, generator=torch.Generator().manual_seed(1)) * 3
    logits[..., 112] += 2  # many targets are the centre class: alpha 0.25 matters
    labels = velocity_labels(points, SIZE)
    fmt = layouts.point_tracks(1, 40, 20.0, image_size=SIZE, track_labels="velocity")
    focal = FocalLoss(gamma=2.0, alpha=1.0, center_weight=0.25, static_threshold=0.10)
    assert focal.figures() == {}
    value = focal({"motion": points}, {"logits": logits}, fmt)

    mask = torch.from_numpy(reference_mask(points, 0.10, "p95", 16))[:, None].expand(labels.shape).double()
    elements = reference_focal(logits, labels)
    expected = (mask * elements).sum() / mask.sum().clamp(min=1)
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    assert (labels == 112).any() and (labels != 112).any()
    ratio = focal.figures()["mask_ratio"]
    assert not ratio.requires_grad and ratio.item() == pytest.approx(mask.mean().item())

    off = FocalLoss(gamma=2.0, alpha=1.0, center_weight=0.25)
    assert off({"motion": points}, {"logits": logits}, fmt).item() == pytest.approx(elements.mean().item(), rel=1e-5)
    assert off.figures() == {}


def test_static_mask_combines_with_padding_and_view_weights():
    points = mixed_tracks(batch=2, views=2, tracks=20)
    logits = torch.randn(2, 15, 2, 20, 225, generator=torch.Generator().manual_seed(2))
    frames = torch.ones(2, 16, dtype=torch.bool)
    frames[1, 12:] = False
    loss = RelativeCE(view_weights=[0.9, 0.1], image_size=list(SIZE), static_threshold=0.10, static_min_keep=4)
    value = loss({"motion": points, "mask": frames}, {"logits": logits}, None)

    labels = relative_labels(points, SIZE)
    ce = F.cross_entropy(logits.flatten(0, -2).double(), labels.flatten(), reduction="none").view(labels.shape)
    steps = torch.ones(2, 15, 1, 1, dtype=torch.float64)
    steps[1, 11:] = 0
    kept = torch.stack([torch.from_numpy(reference_mask(points[b:b + 1], 0.10, "p95", 4, steps=11 if b else None)[0])
                        for b in range(2)])[:, None].double()  # (B, 1, V, N)
    weight = steps * kept
    per_view = (ce * weight).sum(dim=(0, 1, 3)) / weight.expand_as(ce).sum(dim=(0, 1, 3))
    assert value.item() == pytest.approx(float(0.9 * per_view[0] + 0.1 * per_view[1]), rel=1e-5)
    counted = steps.expand_as(ce)
    assert loss.figures()["mask_ratio"].item() == pytest.approx(float((weight.expand_as(ce)).sum() / counted.sum()))


def test_static_mask_settings_are_checked():
    with pytest.raises(ValueError, match="static_metric"):
        RelativeCE(static_metric="median")
    with pytest.raises(ValueError, match="static_min_keep"):
        FocalLoss(static_min_keep=-1)
    points = mixed_tracks(batch=1, tracks=5)
    with pytest.raises(MotionhubError, match="square grid"):
        RelativeCE(image_size=list(SIZE), grid=[5, 9], static_threshold=0.1)({"motion": points},
                                                                              {"logits": torch.zeros(1, 15, 1, 5, 45)})


# ---- focal loss --------------------------------------------------------------------------------


def test_focal_equals_the_reference_formula_elementwise():
    g = torch.Generator().manual_seed(3)
    points = pixel_tracks(batch=3, steps=5, tracks=7)
    logits = torch.randn(3, 4, 1, 7, 225, generator=g) * 4
    labels = relative_labels(points, SIZE)
    logits.view(-1, 225)[torch.arange(0, 84, 5), labels.flatten()[::5]] += 40  # some targets certain: p = 1
    batch = {"motion": points, "image_size": SIZE}
    value = FocalLoss(gamma=2.0, alpha=1.0, center_weight=0.25)(batch, {"logits": logits}, None)
    assert value.item() == pytest.approx(reference_focal(logits, labels).mean().item(), rel=1e-5)
    other = FocalLoss(gamma=0.5, alpha=0.5, center_weight=0.5)(batch, {"logits": logits}, None)
    expected = reference_focal(logits, labels, gamma=0.5, alpha_center=0.25, alpha_other=0.5).mean()
    assert torch.isfinite(other) and other.item() == pytest.approx(expected.item(), rel=1e-5)


# ---- the histogram entropy term ----------------------------------------------------------------


def test_histogram_entropy_value():
    term = CodeHistogramEntropy(codebook_size=16)
    even = {"indices": torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0]])}
    assert term({}, even).item() == pytest.approx(-math.log(4) / math.log(16))
    one_code = {"indices": torch.full((2, 5), 7)}
    assert term({}, one_code).item() == 0
    skewed = {"indices": torch.tensor([5, 5, 5, 9])}
    p = np.array([0.75, 0.25])
    assert term({}, skewed).item() == pytest.approx(float((p * np.log(p)).sum() / math.log(16)), rel=1e-6)
    # K below 2 normalises by ln 2, as the reference does
    assert CodeHistogramEntropy(codebook_size=1)({}, even).item() == pytest.approx(-math.log(4) / math.log(2))
    # a batch of 4 is flattened like any other (the reference misreads it as FSQ digits)
    four = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]])
    assert term({}, {"indices": four}).item() == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="codebook_size"):
        CodeHistogramEntropy(codebook_size=0)


def test_histogram_entropy_has_no_gradient_and_never_changes_an_update():
    torch.manual_seed(0)
    weight = torch.randn(4, 6, requires_grad=True)
    z = torch.randn(3, 4) @ weight
    outputs = {"logits": z, "indices": z.detach().argmax(-1)}

    class Linear:
        def __call__(self, batch, outputs, format):
            return outputs["logits"].square().mean()

    plain = LossSet([LossTerm("fit", Linear())])
    with_term = LossSet([LossTerm("fit", Linear()), LossTerm("codes", CodeHistogramEntropy(6), weight=0.05)])
    total, terms = with_term({}, outputs, None, step=0)
    assert not terms["codes"].requires_grad and terms["codes"].item() < 0
    reference, _ = plain({}, outputs, None, step=0)
    assert total.item() == pytest.approx(reference.item() + 0.05 * terms["codes"].item())
    (grad_with,) = torch.autograd.grad(total, weight, retain_graph=True)
    (grad_plain,) = torch.autograd.grad(reference, weight)
    assert torch.equal(grad_with, grad_plain)


# ---- the class and code metrics ----------------------------------------------------------------


def evaluate(metric, fmt, batches):
    sums = {}
    for batch, outputs in batches:
        for key, value in metric.update(batch, outputs, fmt).items():
            sums[key] = sums.get(key, 0.0) + float(value)
    return metric.compute(sums)


def test_track_class_metrics_hand_checked():
    # one sample, one view, 4 points over 2 steps: points 0 and 1 move 3 px per step, 2 and 3 stand still
    start = torch.tensor([[40.0, 40.0], [60.0, 60.0], [80.0, 80.0], [90.0, 30.0]])
    move = torch.tensor([[0.0, 3.0], [3.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    points = ((torch.stack([start, start + move, start + 2 * move]) - 64) / 64).view(1, 3, 1, 4, 2)
    labels = velocity_labels(points, SIZE)  # right: 115, down: 157, still: 112
    assert labels[0, :, 0].tolist() == [[115, 157, 112, 112]] * 2
    predicted = labels.clone()
    predicted[0, 0, 0, 0] = 112  # one miss on a moving point
    predicted[0, 1, 0, 3] = 113  # one miss on a still point
    fmt = layouts.point_tracks(1, 4, 20.0, image_size=SIZE, track_labels="velocity")
    metric = TrackClassMetrics(static_min_keep=1, codebook_size=8)
    codes = [torch.tensor([[0, 0, 1, 1]]), torch.tensor([[2, 2, 2, 2]])]
    figures = evaluate(metric, fmt, [({"motion": points}, {"logits": F.one_hot(predicted, 225).float(),
                                                          "indices": code}) for code in codes])
    assert figures["class_accuracy"] == pytest.approx(2 * 6 / 16)  # 6 of 8 right in each batch
    assert figures["moving_class_accuracy"] == pytest.approx(3 / 4)
    assert figures["dynamic_point_ratio"] == pytest.approx(0.5)
    assert figures["unique_codes_per_batch"] == pytest.approx((2 + 1) / 2)
    assert figures["code_entropy_nats_per_batch"] == pytest.approx((math.log(2) + 0) / 2)
    assert figures["normalised_perplexity_per_batch"] == pytest.approx((2 / 4 + 1 / 4) / 2)  # min(K, 4) = 4
    # without K, each batch is normalised by its number of codes; a larger K than the batch changes nothing
    assert evaluate(TrackClassMetrics(), fmt, [({"motion": points}, {"logits": F.one_hot(predicted, 225).float(),
                                                                      "indices": codes[0]})])[
        "normalised_perplexity_per_batch"] == pytest.approx(2 / 4)
    assert evaluate(TrackClassMetrics(codebook_size=3), fmt, [({"motion": points}, {
        "logits": F.one_hot(predicted, 225).float(), "indices": codes[0]})])[
        "normalised_perplexity_per_batch"] == pytest.approx(2 / 3)


def test_track_class_metrics_follow_the_format_frames_and_defaults():
    points = track([[64.0, 64.4], [64.0, 64.6], [64.0, 64.6]])  # a pixel boundary crossed without velocity
    logits = F.one_hot(torch.full((1, 2, 1, 1), 112), 225).float()
    outputs = {"logits": logits, "indices": torch.zeros(1, 2, dtype=torch.long)}
    pixel = layouts.point_tracks(1, 1, 20.0, image_size=SIZE)
    velocity = layouts.point_tracks(1, 1, 20.0, image_size=SIZE, track_labels="velocity")
    assert evaluate(TrackClassMetrics(), velocity, [({"motion": points}, outputs)])["class_accuracy"] == 1
    assert evaluate(TrackClassMetrics(), pixel, [({"motion": points}, outputs)])["class_accuracy"] == 0.5
    frames = torch.tensor([[True, True, False]])  # the second step is padding
    assert evaluate(TrackClassMetrics(), pixel, [({"motion": points, "mask": frames}, outputs)])["class_accuracy"] == 0
    metric = TrackClassMetrics()
    assert (metric.static_threshold, metric.static_metric, metric.static_min_keep) == (0.10, "p95", 16)
    assert TrackClassMetrics.applies_to(pixel) and not TrackClassMetrics.applies_to(layouts.humanml3d_263())
    assert {"class_accuracy", "moving_class_accuracy"} <= TrackClassMetrics.higher_is_better
    with pytest.raises(MotionhubError, match="frame size"):
        metric.update({"motion": points}, outputs, layouts.point_tracks(1, 1, 20.0))


def test_hooks_register_the_laps_components():
    from motionhub.plugins.registry import resolve  # registrations may be 'module:Class' references

    registered = {}
    for hook in (register_losses, register_metrics):
        hook(lambda name, cls, kind=hook.__name__: registered.setdefault(kind, {}).update({name: resolve(cls)}))
    assert registered["register_losses"]["code_histogram_entropy"] is CodeHistogramEntropy
    assert registered["register_metrics"]["track_classes"] is TrackClassMetrics
