"""A data set of swinging pendulum chains, generated from a seed."""

from __future__ import annotations

import numpy as np

from motionhub.data.dataset import SPLITS, Clip, Dataset
from motionhub.data.formats import MotionFormat

LINK_LENGTH = 0.3  # metres, every link of the chain


class Pendulums(Dataset):
    """Chains of pendulums swinging in a plane: joint positions, seeded."""

    def __init__(self, links: int = 4, clips: int = 40, frames: int = 90, fps: float = 30.0, seed: int = 0):
        if links < 1 or clips < 3 or frames < 2:
            raise ValueError("need links >= 1, clips >= 3 and frames >= 2")
        self.links, self.num_clips, self.frames, self.seed = links, clips, frames, seed
        size = links * 3
        fmt = MotionFormat(name="pendulum_positions", feature_shape=(size,), fps=fps,
                           slices={"positions": slice(0, size)},
                           joints_fn=lambda x: x.reshape(*x.shape[:-1], links, 3))
        self._clips = [self._clip(i, fps) for i in range(clips)]
        train = np.concatenate([c.motion for c in self.clips("train")])
        self.format = fmt.with_stats(train.mean(0), train.std(0) + 1e-3)

    def _clip(self, index: int, fps: float) -> Clip:
        rng = np.random.default_rng([self.seed, index])
        t = np.arange(self.frames)[:, None] / fps
        amplitude = rng.uniform(0.1, 0.8, self.links)
        frequency = rng.uniform(0.3, 1.5, self.links)
        angles = np.cumsum(amplitude * np.sin(2 * np.pi * frequency * t + rng.uniform(0, 6.3, self.links)), axis=1)
        # positions accumulate down the chain in the x-y plane
        xy = np.cumsum(LINK_LENGTH * np.stack([np.sin(angles), -np.cos(angles)], axis=-1), axis=1)
        positions = np.concatenate([xy, np.zeros_like(xy[..., :1])], axis=-1)
        return Clip(f"pendulum_{index:04d}", positions.reshape(self.frames, -1).astype(np.float32))

    def clips(self, split: str):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}")
        position = {"train": (0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0)}[split]
        start, stop = (round(f * self.num_clips) for f in position)
        return iter(self._clips[start:stop])
