"""The ``synthetic`` data set: procedural skeleton motion in any layout motionhub knows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np

from motionhub.api import Clip, Dataset, SPLITS, humanml3d, layouts, representation272
from motionhub.motion.skeletons import KIT_SKELETON, T2M_SKELETON

from .motion import rest_offsets, synthesize

# KIT-ML is millimetre-scale; these bone lengths give about 1.5 m from floor to head joint.
KIT_BONE_LENGTHS = (0, 120, 140, 180, 110, 190, 280, 250, 190, 280, 250,
                    95, 430, 410, 90, 70, 95, 430, 410, 90, 70)  # fmt: skip

Layout = Literal["humanml3d_263", "kit_251", "motionmillion_272", "joints"]


class SyntheticMotion(Dataset):
    """Procedural walking / turning / waving skeletons in any skeleton layout, seeded.

    layout:                  features to emit: humanml3d_263, kit_251, motionmillion_272 or joints (22 x 3, 20 fps).
    clips:                   number of clips generated over all splits (>= 3, one per split at least).
    min_frames, max_frames:  inclusive range (2 <= min <= max) each clip's length in frames is drawn from.
    seed:                    seed of the generator; clip i is drawn from (seed, i), so a seed fixes every clip.
    val_fraction, test_fraction: shares of the clips (rounded, at least one each) put last in val and test.
    """

    def __init__(self, layout: Layout = "humanml3d_263", clips: int = 96, min_frames: int = 48,
                 max_frames: int = 160, seed: int = 0, val_fraction: float = 0.1,
                 test_fraction: float = 0.1):
        if not 2 <= min_frames <= max_frames:
            raise ValueError(f"need 2 <= min_frames <= max_frames, got {min_frames} and {max_frames}")
        if clips < 3:
            raise ValueError(f"clips must be at least 3 (one per split), got {clips}")
        self.layout, self.num_clips, self.seed = layout, clips, seed
        self.frame_range = (min_frames, max_frames)
        n_val = max(1, round(clips * val_fraction))
        n_test = max(1, round(clips * test_fraction))
        self.split_of = ["train"] * (clips - n_val - n_test) + ["val"] * n_val + ["test"] * n_test
        fmt = self._bare_format()
        self._all = self._generate(fmt)
        train = np.concatenate([c.motion for c in self._all if self._split(c) == "train"])
        self.format = fmt.with_stats(train.mean(axis=0), layouts.group_averaged_std(train, fmt))

    def _bare_format(self):
        if self.layout == "kit_251":
            return layouts.kit_251()
        if self.layout == "motionmillion_272":
            return layouts.motionmillion_272()
        if self.layout == "joints":
            return layouts.joint_positions(T2M_SKELETON, fps=20.0)
        return layouts.humanml3d_263()

    def _split(self, clip: Clip) -> str:
        return self.split_of[int(clip.id.rsplit("_", 1)[1])]

    def _generate(self, fmt) -> tuple[Clip, ...]:
        skeleton = KIT_SKELETON if self.layout == "kit_251" else T2M_SKELETON
        lengths = KIT_BONE_LENGTHS if self.layout == "kit_251" else humanml3d.T2M_TARGET_BONE_LENGTHS
        offsets = rest_offsets(skeleton, lengths)
        clips = []
        for index in range(self.num_clips):
            rng = np.random.default_rng([self.seed, index])
            # +1 frame: the HumanML3D layout loses one frame to velocities
            frames = int(rng.integers(self.frame_range[0], self.frame_range[1] + 1)) + 1
            motion = synthesize(rng, skeleton, offsets, frames, fmt.fps)
            if self.layout in ("humanml3d_263", "kit_251"):
                features = humanml3d.features_from_joints(motion.joints, skeleton, uniform=False)
            elif self.layout == "motionmillion_272":
                features = representation272.features_from_smpl(motion.rotations, motion.joints)[:-1]
            else:
                features = motion.joints[:-1].reshape(frames - 1, -1)
            clips.append(Clip(f"synthetic_{index:05d}", features.astype(np.float32), [motion.caption]))
        return tuple(clips)

    def clips(self, split: str) -> Iterator[Clip]:
        if split not in SPLITS:
            raise ValueError(f"unknown split '{split}'; splits: {', '.join(SPLITS)}")
        return (clip for clip in self._all if self._split(clip) == split)

    def describe(self) -> str:
        return f"synthetic {self.format.name}, {self.num_clips} clips (seed {self.seed})"
