"""Synthetic point-track files in the AMPLIFY / LAPS HDF5 layout, and velocity windows in the LAPS
re-implementation's ``.pt`` layout, deterministic from a seed.

Each video is a scene under a smooth random similarity motion (rotation, zoom and drift
about the image centre). As a tracker re-initialised at every frame reports it, start frame
``t`` places a fresh grid of query points at frame ``t`` and follows the scene for
``horizon`` frames. Per view the file holds

* ``root/<view>/tracks``: (T, horizon, N, 2) float32 (x, y) pixels,
* ``root/<view>/vis``:    (T, horizon, N) float32, 1 where the point lies inside the image,
* attributes ``height`` and ``width`` of ``root/<view>``: the frame size.

Frames past the end of a video repeat its last frame (the reference pads videos the same
way). Points that drift out of the image keep their out-of-image positions and turn invisible.

``write_velocity_files`` writes the same kind of scene as the LAPS re-implementation's training
data: one ``<segment>_start<NNNNNN>.pt`` per window, velocities clamp(pixels / radius, -1, 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np


def query_grid(tracks: int, image_size: Sequence[int]) -> np.ndarray:
    """(tracks, 2) (x, y) pixels of a grid over [-0.95, 0.95] of the image, column-major.

    Track n sits in grid row ``n % side`` and column ``n // side`` (the reference's order);
    a count that is not a square fills the grid column by column.
    """
    side = math.ceil(math.sqrt(tracks))
    axis = np.linspace(-0.95, 0.95, side)
    rows, cols = np.meshgrid(axis, axis, indexing="ij")
    height, width = image_size
    x = (cols.ravel(order="F")[:tracks] + 1) * width / 2
    y = (rows.ravel(order="F")[:tracks] + 1) * height / 2
    return np.stack([x, y], axis=-1)


def _scene_motion(rng: np.random.Generator, frames: int, image_size: Sequence[int]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame rotation (F,) radians, zoom (F,) and drift (F, 2) (x, y) pixels, all smooth."""
    f = np.arange(frames)

    def wave(amplitude: float) -> np.ndarray:
        period, phase = rng.uniform(20, 60), rng.uniform(0, 2 * np.pi)
        return amplitude * np.sin(2 * np.pi * f / period + phase)

    angle = wave(rng.uniform(0.1, 0.35))
    zoom = np.exp(wave(rng.uniform(0.0, 0.15)))
    height, width = image_size
    drift = np.stack([wave(rng.uniform(0.05, 0.2) * width), wave(rng.uniform(0.05, 0.2) * height)], axis=-1)
    return angle, zoom, drift


def _rotate(points: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate (..., N, 2) (x, y) vectors by (...,) radians."""
    c, s = np.cos(angle)[..., None], np.sin(angle)[..., None]
    x, y = points[..., 0], points[..., 1]
    return np.stack([c * x - s * y, s * x + c * y], axis=-1)


def view_tracks(rng: np.random.Generator, frames: int, tracks: int, horizon: int,
                image_size: Sequence[int], queries: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One view of one video: tracks (frames, horizon, N, 2) (x, y) pixels and vis (frames, horizon, N).

    ``queries``: the (N, 2) (x, y) pixels each window's points start at; None = ``query_grid``.
    """
    angle, zoom, drift = _scene_motion(rng, frames, image_size)
    centre = np.array([image_size[1], image_size[0]], dtype=np.float64) / 2
    grid = query_grid(tracks, image_size) if queries is None else np.asarray(queries, dtype=np.float64)
    # scene coordinates of the queries placed at each start frame: (frames, N, 2)
    scene = _rotate(grid - centre - drift[:, None], -angle) / zoom[:, None, None]
    # frame of each window step, the last frame repeated past the end: (frames, horizon)
    frame = np.minimum(np.arange(frames)[:, None] + np.arange(horizon), frames - 1)
    points = centre + zoom[frame][..., None, None] * _rotate(scene[:, None], angle[frame]) + drift[frame][:, :, None]
    inside = ((points >= 0) & (points < centre * 2)).all(axis=-1)
    return points.astype(np.float32), inside.astype(np.float32)


def write_track_files(root: str | Path, *, videos: int, frames: int, tracks: int = 400, horizon: int = 16,
                      views: Sequence[str] = ("agentview",), image_size: Sequence[int] = (128, 128),
                      seed: int) -> list[Path]:
    """Write ``videos`` files ``root/video_<i>.hdf5`` of ``frames`` start frames each; returns their paths.

    ``image_size`` is (height, width) in pixels.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for video in range(videos):
        path = root / f"video_{video:03d}.hdf5"
        with h5py.File(path, "w") as file:
            for index, view in enumerate(views):
                rng = np.random.default_rng([seed, video, index])
                points, vis = view_tracks(rng, frames, tracks, horizon, image_size)
                group = file.create_group(f"root/{view}")
                group.create_dataset("tracks", data=points)
                group.create_dataset("vis", data=vis)
                group.attrs["height"], group.attrs["width"] = int(image_size[0]), int(image_size[1])
        paths.append(path)
    return paths


def write_velocity_files(root: str | Path, *, segments: int, frames: int, tracks: int = 400, horizon: int = 16,
                         image_size: Sequence[int] = (480, 853), radius: float = 7.0, seed: int) -> list[Path]:
    """Write ``segments`` synthetic segments of ``frames`` windows each as the LAPS re-implementation's
    training files; returns their paths.

    Segment ``i`` is a scene as in ``write_track_files``, tracked from CoTracker's query grid
    (``motionhub.data.layouts.cotracker_grid``, so ``laps_velocities`` recovers the
    positions wherever no step saturates); window ``t`` is ``root/segment_<i>_start<t:06d>.pt``
    holding float32 (horizon - 1, tracks, 2) = clamp(step in (x, y) pixels / ``radius``, -1, 1),
    computed in float32 as the reference's preprocessing does. ``image_size`` is (height, width).
    """
    import torch

    from motionhub.data.layouts import cotracker_grid

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    queries = cotracker_grid(tracks, image_size)
    paths = []
    for segment in range(segments):
        rng = np.random.default_rng([seed, segment])
        points, _ = view_tracks(rng, frames, tracks, horizon, image_size, queries)
        pixels = torch.from_numpy(points)  # float32 (frames, horizon, N, 2) (x, y)
        velocity = ((pixels[:, 1:] - pixels[:, :-1]) / radius).clamp(-1.0, 1.0)
        for start in range(frames):
            path = root / f"segment_{segment:03d}_start{start:06d}.pt"
            torch.save(velocity[start].clone(), path)
            paths.append(path)
    return paths
