"""The synthetic data set: seeded, split, physically consistent in every skeleton layout."""

import numpy as np
import pytest

from motionhub.motion import humanml3d, representation272
from motionhub.motion.rotations import yaw_to_matrix
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


def test_kit_features_recover_the_generated_bone_lengths():
    kit = SyntheticMotion(layout="kit_251", **SMALL)
    joints = kit.format.to_joints(next(kit.clips("train")).motion)
    lengths = humanml3d.bone_lengths(joints, KIT_SKELETON.parents)  # millimetres, every frame
    np.testing.assert_allclose(lengths, np.broadcast_to(KIT_BONE_LENGTHS, lengths.shape), atol=1e-3)
    heights = joints[..., 1].max() - joints[..., 1].min()
    assert 1300 < heights < 2000  # floor to head joint


def test_272_features_recover_the_generated_skeleton_up_to_heading_and_place():
    """The 272 layout starts each clip at the origin facing +z: its joints are the generated ones
    turned once about the vertical and moved, and its positions integrate to its velocities."""
    data = SyntheticMotion(layout="motionmillion_272", clips=4, min_frames=60, max_frames=60, seed=5)
    clip = next(c for c in data.clips("train") if c.id == "synthetic_00000")
    recovered = representation272.recover_from_local_position(clip.motion)
    rng = np.random.default_rng([5, 0])
    frames = int(rng.integers(60, 61)) + 1
    motion = synthesize(rng, T2M_SKELETON, rest_offsets(T2M_SKELETON, humanml3d.T2M_TARGET_BONE_LENGTHS),
                        frames, data.format.fps)
    generated = (motion.joints[:-1] - motion.joints[0, 0]).reshape(-1, 3)
    ours = (recovered - recovered[0, 0]).reshape(-1, 3)
    # the one yaw that best turns the generated joints onto the recovered ones
    yaw = np.arctan2((generated[:, 2] * ours[:, 0] - generated[:, 0] * ours[:, 2]).sum(),
                     (generated[:, 0] * ours[:, 0] + generated[:, 2] * ours[:, 2]).sum())
    np.testing.assert_allclose(generated @ yaw_to_matrix(np.array(yaw)).T, ours, atol=1e-5)
    features = clip.motion
    steps = np.diff(features[:, data.format.slice("positions")], axis=0)
    np.testing.assert_allclose(steps, features[1:, data.format.slice("velocities")], atol=1e-5)


def test_walking_clips_actually_move_and_feet_make_contact():
    data = SyntheticMotion(layout="humanml3d_263", clips=10, min_frames=80, max_frames=80)
    clip = next(data.clips("train"))
    contacts = clip.motion[:, data.format.slice("contacts")]
    assert 0 < contacts.mean() < 1
    joints = data.format.to_joints(clip.motion)
    assert np.abs(joints[..., 0, :] - joints[0, 0]).max() > 0.05
