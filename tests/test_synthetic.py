"""The synthetic data set: seeded, split, physically consistent in every skeleton layout."""

import numpy as np
import pytest

from motionhub.motion import humanml3d, representation272
from motionhub.motion.skeletons import KIT_SKELETON, T2M_SKELETON
from motionhub_synthetic.dataset import KIT_BONE_LENGTHS, SyntheticMotion
from motionhub_synthetic.motion import rest_offsets, synthesize

SMALL = dict(clips=6, min_frames=30, max_frames=50)


def test_same_seed_same_clips_other_seed_other_clips():
    a, b, c = (SyntheticMotion(seed=s, **SMALL) for s in (1, 1, 2))
    first = next(a.clips("train"))
    np.testing.assert_array_equal(first.motion, next(b.clips("train")).motion)
    assert not np.array_equal(first.motion[:20], next(c.clips("train")).motion[:20])


def test_splits_are_disjoint_and_cover_every_clip():
    data = SyntheticMotion(clips=20, min_frames=10, max_frames=12)
    ids = {split: [c.id for c in data.clips(split)] for split in ("train", "val", "test")}
    assert [len(v) for v in ids.values()] == [16, 2, 2]
    assert len(set(sum(ids.values(), []))) == 20
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        data.clips("dev")


@pytest.mark.parametrize("layout, dim", [("humanml3d_263", 263), ("kit_251", 251),
                                         ("motionmillion_272", 272), ("joints", 66)])
def test_every_layout_has_its_feature_size_frame_range_and_statistics(layout, dim):
    data = SyntheticMotion(layout=layout, **SMALL)
    clips = list(data.clips("train"))
    assert all(c.motion.shape[1] == dim and 30 <= len(c.motion) <= 50 for c in clips)
    assert all(c.motion.dtype == np.float32 and np.isfinite(c.motion).all() for c in clips)
    assert data.format.feature_shape == (dim,) and data.format.std.min() > 0
    assert clips[0].texts[0].startswith("a person ")


def test_263_features_recover_the_generated_skeleton():
    data = SyntheticMotion(layout="humanml3d_263", clips=4, min_frames=60, max_frames=60, seed=5)
    rng = np.random.default_rng([5, 0])
    frames = int(rng.integers(60, 61)) + 1
    motion = synthesize(rng, T2M_SKELETON, rest_offsets(T2M_SKELETON, humanml3d.T2M_TARGET_BONE_LENGTHS),
                        frames, 20.0)
    expected = humanml3d.canonical_positions(motion.joints, T2M_SKELETON, uniform=False)[:-1]
    clip = next(c for c in data.clips("train") if c.id == "synthetic_00000")
    np.testing.assert_allclose(data.format.to_joints(clip.motion), expected, atol=1e-4)
    # feet touch the floor and the figure is human-sized
    assert expected[..., 1].min() == pytest.approx(0, abs=1e-4)
    assert 1.4 < expected[..., 1].max() < 2.0


def test_kit_and_272_are_consistent_with_their_joints():
    kit = SyntheticMotion(layout="kit_251", **SMALL)
    joints = kit.format.to_joints(next(kit.clips("train")).motion)
    heights = joints[..., 1].max() - joints[..., 1].min()
    assert 1300 < heights < 2000  # millimetres, floor to head joint
    assert len(KIT_BONE_LENGTHS) == KIT_SKELETON.num_joints

    data = SyntheticMotion(layout="motionmillion_272", **SMALL)
    features = next(data.clips("train")).motion
    recovered = representation272.recover_from_local_position(features)
    # positions integrate to velocities within the layout
    steps = np.diff(features[:, data.format.slice("positions")], axis=0)
    np.testing.assert_allclose(steps, features[1:, data.format.slice("velocities")], atol=1e-5)
    assert recovered.shape == (len(features), 22, 3)


def test_walking_clips_actually_move_and_feet_make_contact():
    data = SyntheticMotion(layout="humanml3d_263", clips=10, min_frames=80, max_frames=80)
    clip = next(data.clips("train"))
    contacts = clip.motion[:, data.format.slice("contacts")]
    assert 0 < contacts.mean() < 1
    joints = data.format.to_joints(clip.motion)
    assert np.abs(joints[..., 0, :] - joints[0, 0]).max() > 0.05
