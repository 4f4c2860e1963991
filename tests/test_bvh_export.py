"""263 / 272 features written as BVH and read back through the ``bvh`` data set: the joints land where
the features put them. Real-data tests skip when ``../shared/real_data`` is absent."""

import numpy as np
import pytest
from helpers import REAL_DATA, TINY_RECIPE

from motionhub.cli import main
from motionhub.data import layouts
from motionhub.errors import MotionhubError
from motionhub.motion import humanml3d, representation272
from motionhub.motion.rotations import cont6d_to_matrix, quat_to_matrix
from motionhub.motion.skeletons import T2M_SKELETON
from motionhub.use.bvh_output import bvh_of, check_bvh_format, write_bvh_folder
from motionhub_bvh import BVHFolder
from motionhub_bvh.bvh import parse_bvh

HUMANML3D = REAL_DATA / "EricGuo5513-HumanML3D" / "HumanML3D"
REP272 = REAL_DATA / "Li-xingXiao-272-dim-Motion-Representation" / "output" / "Representation_272" / "000000.npy"
TOLERANCE_M = 1e-5  # written at 1e-6 cm; the features' own rotations rebuild their positions to 1.6e-6 m


def needs(path):
    return pytest.mark.skipif(not path.exists(), reason=f"real data not found: {path}")


def by_name(motion, names):
    """Global positions (T, 22, 3) of a parsed BVH in SMPL joint order, metres (written in cm)."""
    return motion.global_positions()[:, [motion.joint_names.index(n) for n in names]] / 100.0


@needs(HUMANML3D)
def test_the_263_rotation_channels_rebuild_the_published_joints():
    """HumanML3D's rotations, chained from the root along each kinematic chain, turn each raw offset
    (scaled by the reference bone lengths) onto the bone into its joint: the published joints come back."""
    features = np.load(HUMANML3D / "new_joint_vecs" / "012314.npy").astype(np.float64)
    joints = np.load(HUMANML3D / "new_joints" / "012314.npy").astype(np.float64)
    root_quat, _ = humanml3d.recover_root(features)
    local = cont6d_to_matrix(features[:, 67:193].reshape(len(features), 21, 6))
    raw, lengths = T2M_SKELETON.raw_offsets_array(), np.asarray(humanml3d.T2M_TARGET_BONE_LENGTHS)
    rebuilt = joints.copy()
    for chain in T2M_SKELETON.chains:
        rotation = quat_to_matrix(root_quat)
        for parent, joint in zip(chain[:-1], chain[1:]):
            rotation = rotation @ local[:, joint - 1]
            rebuilt[:, joint] = rebuilt[:, parent] + rotation @ (raw[joint] * lengths[joint])
    np.testing.assert_allclose(rebuilt, joints, atol=1e-5)


@needs(HUMANML3D)
def test_a_real_263_clip_as_bvh_reads_back_to_its_recovered_joints(tmp_path):
    features = np.load(HUMANML3D / "new_joint_vecs" / "012314.npy")
    fmt = layouts.humanml3d_263()
    written = write_bvh_folder(tmp_path / "bvh", fmt, features, np.array([0, len(features)]), ["012314"])
    dataset = BVHFolder(str(written), unit="cm", val_fraction=0.0)
    clip = next(dataset.clips("train"))
    order = [dataset.header.joint_names.index(n) for n in T2M_SKELETON.joint_names]
    read = clip.motion.reshape(len(features), -1, 3)[:, order] / 100.0
    expected = humanml3d.recover_from_ric(features.astype(np.float64), 22)
    np.testing.assert_allclose(read, expected, atol=TOLERANCE_M)
    assert dataset.header.fps == pytest.approx(20.0)


@needs(HUMANML3D)
def test_the_twist_comes_from_the_rotation_features_not_from_positions_alone():
    features = np.load(HUMANML3D / "new_joint_vecs" / "012314.npy")
    fmt = layouts.humanml3d_263()
    with_twist, positions_only = parse_bvh(bvh_of(fmt, features)), parse_bvh(bvh_of(fmt, features, rotations=False))
    expected = humanml3d.recover_from_ric(features.astype(np.float64), 22)
    for motion in (with_twist, positions_only):  # both land on the joints ...
        np.testing.assert_allclose(by_name(motion, T2M_SKELETON.joint_names), expected, atol=TOLERANCE_M)
    # ... but only one carries the features' rotation about each bone
    relative = np.swapaxes(with_twist.local_rotations, -1, -2) @ positions_only.local_rotations
    angles = np.degrees(np.arccos(np.clip((np.trace(relative, axis1=-2, axis2=-1) - 1) / 2, -1, 1)))
    assert angles.max() > 30.0


@needs(REP272)
def test_a_real_272_clip_as_bvh_reads_back_to_its_recovered_joints():
    features = np.load(REP272)[:300]
    motion = parse_bvh(bvh_of(layouts.motionmillion_272(), features))
    expected = representation272.recover_from_local_position(features)
    np.testing.assert_allclose(by_name(motion, T2M_SKELETON.joint_names), expected, atol=TOLERANCE_M)
    assert motion.fps == pytest.approx(30.0)
    # SMPL rotations in, SMPL rotations out: the left knee's local rotation is the feature's
    knee = T2M_SKELETON.joint_names.index("left_knee")
    written = motion.local_rotations[:, motion.joint_names.index("left_knee")]
    from motionhub.motion.rotations import rotation_6d_to_matrix
    source = rotation_6d_to_matrix(features[:, 140 + 6 * knee:146 + 6 * knee])
    np.testing.assert_allclose(written, source, atol=1e-4)


def test_formats_without_the_smpl_body_are_refused_by_name():
    with pytest.raises(MotionhubError, match="kit_251.*cannot be written as BVH"):
        check_bvh_format(layouts.kit_251())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny 263 run, barely trained: its decoded bones change length from frame to frame."""
    from motionhub.recipes import recipe_from_tree
    from motionhub.train.trainer import train

    tree = {**TINY_RECIPE, "run": {"name": "bvh", "out": str(tmp_path_factory.mktemp("bvh") / "run"), "seed": 0},
            "data": {**TINY_RECIPE["data"], "clips": 6, "val_fraction": 0.5},
            "train": {**TINY_RECIPE["train"], "iters": 2}, "eval": {"train_codebook": False}}
    return train(recipe_from_tree(tree, "bvh.yaml"))


def assert_lands_on(read, decoded):
    """The root lands exactly; every bone from a one-child joint points where the decoded bone points.
    (A BVH's bones keep one length; an untrained decoder's do not, so positions further out differ.)"""
    parents = np.asarray(T2M_SKELETON.parents)
    np.testing.assert_allclose(read[:, 0], decoded[:, 0], atol=1e-5)
    one_child = [j for j in range(1, 22) if list(parents).count(parents[j]) == 1]
    bone_read = read[:, one_child] - read[:, parents[one_child]]
    bone_decoded = decoded[:, one_child] - decoded[:, parents[one_child]]
    cosine = (bone_read * bone_decoded).sum(-1) / np.linalg.norm(bone_read, axis=-1) / np.linalg.norm(
        bone_decoded, axis=-1)
    assert cosine.min() > 1 - 1e-6


@pytest.mark.slow
def test_decode_format_bvh_writes_one_file_per_clip_that_reads_back_to_the_decoded_joints(run_dir, tmp_path):
    from motionhub.use.encoding import read_reconstruction

    tokens, recon_file, folder = tmp_path / "tokens.h5", tmp_path / "recon.h5", tmp_path / "bvh"
    assert main(["encode", str(run_dir), "--out", str(tokens)]) == 0
    assert main(["decode", str(run_dir), str(tokens), "--out", str(recon_file)]) == 0
    assert main(["decode", str(run_dir), str(tokens), "--out", str(folder), "--format", "bvh"]) == 0
    recon, ids, _ = read_reconstruction(recon_file)
    assert sorted(p.stem for p in folder.glob("*.bvh")) == sorted(ids)
    dataset = BVHFolder(str(folder), unit="cm", unit_check=False, val_fraction=0.0)
    order = [dataset.header.joint_names.index(n) for n in T2M_SKELETON.joint_names]
    for clip in dataset.clips("train"):
        i = ids.index(clip.id)
        decoded = recon.joints[recon.offsets[i]:recon.offsets[i + 1]].astype(np.float64)
        assert_lands_on(clip.motion.reshape(len(decoded), -1, 3)[:, order] / 100.0, decoded)
    # a folder that is not empty is refused before any work, and left as it was
    assert main(["decode", str(run_dir), str(tokens), "--out", str(folder), "--format", "bvh"]) == 2
    assert len(list(folder.glob("*.bvh"))) == len(ids)


@pytest.mark.slow
def test_render_to_bvh_writes_the_reconstruction_and_the_clip_beside_it(run_dir, tmp_path, capsys):
    from motionhub.commands.render import reconstruct
    from motionhub.use.trained_run import load_run

    loaded = load_run(run_dir)
    clip = next(loaded.dataset.clips("val"))
    out = tmp_path / "clip.bvh"
    assert main(["render", str(run_dir), "--clip", clip.id, "--out", str(out)]) == 0
    assert capsys.readouterr().out.split() == [str(out), str(tmp_path / "clip.target.bvh")]
    target, recon = reconstruct(loaded.model, loaded.format, clip)
    for path, features in ((out, recon), (tmp_path / "clip.target.bvh", target)):
        motion = parse_bvh(path.read_text())
        assert_lands_on(by_name(motion, T2M_SKELETON.joint_names), loaded.format.to_joints(features).double().numpy())
    # nothing else is left beside them (no temporary files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.bvh", "clip.target.bvh"]


def test_euler_angles_written_rebuild_their_rotations_also_at_gimbal_lock():
    from motionhub.motion.rotations import axis_angle_to_matrix
    from motionhub.motion.smpl_bvh import matrix_to_euler_zyx
    from motionhub_bvh.bvh import euler_to_matrix

    rng = np.random.default_rng(0)
    matrices = axis_angle_to_matrix(rng.normal(size=(200, 3)) * 2.0)
    locked = euler_to_matrix(np.array([[30.0, 90.0, 10.0], [-70.0, -90.0, 45.0]]), "ZYX")
    matrices = np.concatenate((matrices, locked))
    np.testing.assert_allclose(euler_to_matrix(matrix_to_euler_zyx(matrices), "ZYX"), matrices, atol=1e-6)


def test_collapsed_or_random_features_still_give_a_finite_bvh():
    """A barely trained decoder can put joints on top of each other; the file stays readable."""
    rng = np.random.default_rng(0)
    for fmt, dim in ((layouts.humanml3d_263(), 263), (layouts.motionmillion_272(), 272)):
        for features in (np.zeros((4, dim)), rng.normal(size=(6, dim))):
            motion = parse_bvh(bvh_of(fmt, features))
            assert np.isfinite(motion.global_positions()).all()
