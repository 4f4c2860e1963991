"""Training windows: random fixed-length crops, gathered a whole batch at a time.

Clips of a split are concatenated into one frame array with offsets, so a batch is one
fancy-index gather and one float32 normalisation, never a Python call per window. The
batch for a step depends only on (seed, rank, step): resuming at step s reproduces
exactly the batches an uninterrupted run would have drawn, with no sampler state to save.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
import torch

from .dataset import Clip
from .errors import DataError
from .formats import MotionFormat


@dataclasses.dataclass
class ClipBank:
    """Clips concatenated along time.

    frames:  (total_frames, *F) float32, not normalised.
    offsets: (n + 1,) int64; clip i is ``frames[offsets[i]:offsets[i + 1]]``.
    ids:     clip ids, in order.
    """

    frames: np.ndarray
    offsets: np.ndarray
    ids: list[str]

    @classmethod
    def from_clips(cls, clips: Iterable[Clip]) -> ClipBank:
        clips = list(clips)
        if not clips:
            raise DataError("no clips to sample from")
        lengths = np.array([len(c.motion) for c in clips], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        frames = np.concatenate([np.asarray(c.motion, dtype=np.float32) for c in clips])
        return cls(frames, offsets, [c.id for c in clips])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.ids)


class WindowSampler:
    """Random ``window``-frame crops from the clips long enough to hold one.

    ``batch(step)`` returns a normalised float32 tensor (batch_size, window, *F). Clips are
    visited in a fresh random order each epoch (like a shuffled DataLoader with drop_last);
    the crop start is uniform over the clip.
    """

    def __init__(self, bank: ClipBank, fmt: MotionFormat, window: int, batch_size: int,
                 seed: int = 0, rank: int = 0):
        self.bank, self.format, self.window, self.batch_size = bank, fmt, window, batch_size
        self.seed, self.rank = seed, rank
        self.eligible = np.flatnonzero(bank.lengths >= window)
        self.dropped = len(bank) - len(self.eligible)
        if len(self.eligible) == 0:
            raise DataError(
                f"no clip is at least {window} frames long (longest: {bank.lengths.max()}); "
                f"lower data.window or use longer clips"
            )
        self.batches_per_epoch = max(1, len(self.eligible) // batch_size)

    def batch(self, step: int) -> torch.Tensor:
        epoch, position = divmod(step, self.batches_per_epoch)
        order = np.random.default_rng([self.seed, self.rank, epoch]).permutation(len(self.eligible))
        if len(order) < self.batch_size:  # fewer clips than a batch: repeat the shuffled order
            order = np.resize(order, self.batch_size)
        clips = self.eligible[order[position * self.batch_size:(position + 1) * self.batch_size]]
        rng = np.random.default_rng([self.seed, self.rank, step, 1])
        room = self.bank.lengths[clips] - self.window + 1
        starts = self.bank.offsets[clips] + (rng.random(len(clips)) * room).astype(np.int64)
        index = starts[:, None] + np.arange(self.window)
        windows = torch.from_numpy(self.bank.frames[index])
        return self.format.normalise(windows)
