"""Tests of the example plugin: it registers through motionhub's hooks and its parts work."""

import numpy as np
import torch

import motionhub_example
from motionhub.plugins.manager import build_registry, pm


def test_registers_its_components_through_motionhub_hooks():
    pm.register(motionhub_example, name="example-under-test")
    try:
        registry = build_registry()
        assert registry.get("dataset", "pendulums").provider == "example-under-test"
        assert registry.get("loss", "smoothness").cls is motionhub_example.SmoothnessLoss
    finally:
        pm.unregister(name="example-under-test")


def test_pendulums_are_seeded_and_split():
    a, b = motionhub_example.Pendulums(seed=3), motionhub_example.Pendulums(seed=3)
    first = next(a.clips("train")).motion
    np.testing.assert_array_equal(first, next(b.clips("train")).motion)
    sizes = [len(list(a.clips(s))) for s in ("train", "val", "test")]
    assert sizes == [32, 4, 4]
    # every link is 0.3 m long
    joints = first.reshape(len(first), -1, 3)
    links = np.linalg.norm(np.diff(np.concatenate([np.zeros_like(joints[:, :1]), joints], 1), axis=1), axis=-1)
    np.testing.assert_allclose(links, 0.3, atol=1e-5)


def test_smoothness_is_zero_for_linear_motion_and_positive_otherwise():
    loss = motionhub_example.SmoothnessLoss()
    t = torch.linspace(0, 1, 10)[None, :, None].expand(2, 10, 6)
    assert loss({}, {"recon": 3 * t + 1}, None).item() < 1e-10
    assert loss({}, {"recon": t**2}, None).item() > 0


def test_registers_an_exporter_an_importer_and_a_command_by_reference():
    pm.register(motionhub_example, name="example-under-test")
    try:
        registry = build_registry()
        assert registry.get("exporter", "positions_csv").cls.__name__ == "PositionsCSV"
        assert registry.get("importer", "npz").cls.__name__ == "NpzWeights"
        assert registry.get("command", "pendulums").cls.help.startswith("describe a pendulums data set")
    finally:
        pm.unregister(name="example-under-test")
