"""Foot skating: how often a foot that touches the ground slides along it."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

import torch

from motionhub.api import Bounds, Metric, MotionFormat, MotionhubError
from motionhub.motion.skeletons import joint_indices
from motionhub_metrics.joints import joint_positions

UP = 1  # every joint layout motionhub reads is Y up: height is the second coordinate
HORIZONTAL = [0, 2]


class FootSkating(Metric):
    """Foot skating ratio: the share of frame steps in which a foot on the ground slides.

    height:    metres; a foot joint lower than this above the ground touches it.
    speed:     metres per second; a touching foot joint moving faster than this horizontally slides.
    joints:    foot joints checked, by name; None = the last (lowest) joint of each foot of the skeleton, the toes.
    floor:     the ground: zero (height 0, as the data sets place clips) or lowest (the truth's lowest foot joint).
    reference: also report the ground truth's own ratio (``gt_foot_skating_ratio``).

    ``joints`` None takes the last joint of the skeleton's ``feet_left`` and of its ``feet_right``.
    ``floor: zero`` suits HumanML3D, KIT-ML and MotionMillion, whose clips stand on height 0;
    ``lowest`` puts the ground at the lowest height the ground truth's foot joints reach over the
    clip's valid frames, for data whose floor lies elsewhere (both motions are measured from it).

    ``foot_skating_ratio``: a step is a pair of consecutive valid frames (t - 1, t). A foot joint
    touches the ground in that step when its height (Y, up) is below ``height`` in both frames;
    it slides when, touching, its horizontal (X-Z) displacement between the two frames exceeds
    ``speed`` / fps (at 20 fps the default 0.5 m/s is 2.5 cm per frame). The figure is the share of
    steps in which at least one of the foot joints slides, over every valid step of the split (a
    clip of L frames has L - 1). Thresholds are given in metres and converted to the data's units
    through the format's ``mm_per_unit``; positions are global (``to_joints``, no alignment).
    """

    def __init__(self, height: Annotated[float, Bounds(low=0, low_open=True)] = 0.05,
                 speed: Annotated[float, Bounds(low=0, low_open=True)] = 0.5,
                 joints: Optional[list[str]] = None, floor: Literal["zero", "lowest"] = "zero",
                 reference: bool = True):
        self.height, self.speed, self.joints, self.floor, self.reference = height, speed, joints, floor, reference

    @classmethod
    def applies_to(cls, fmt: MotionFormat) -> bool:
        skeleton = fmt.skeleton
        return fmt.has_joints and bool(getattr(skeleton, "feet_left", None) or getattr(skeleton, "feet_right", None))

    def foot_joints(self, fmt: MotionFormat) -> list[int]:
        """Indices of the foot joints this metric checks in ``fmt``'s skeleton."""
        skeleton = fmt.skeleton
        if self.joints:
            if skeleton is None:
                raise MotionhubError(f"foot_skating joints: format '{fmt.name}' has no skeleton to name joints of")
            try:
                return joint_indices(skeleton.joint_names, self.joints, "foot_skating joints")
            except ValueError as exc:
                raise MotionhubError(str(exc)) from None
        feet = [side[-1] for side in (getattr(skeleton, "feet_left", ()), getattr(skeleton, "feet_right", ())) if side]
        if not feet:
            raise MotionhubError(f"foot_skating: the skeleton of format '{fmt.name}' names no feet; "
                                 f"give the foot joints with joints: [name, ...]")
        return feet

    def update(self, batch, outputs, fmt: MotionFormat):
        target, recon, mask = joint_positions(batch, outputs, fmt)
        feet = self.foot_joints(fmt)
        unit = 1000.0 / fmt.mm_per_unit  # data units per metre
        floor = torch.zeros(target.shape[0], 1, 1, device=target.device)
        if self.floor == "lowest":
            heights = target[..., feet, UP]
            lowest = torch.where(mask[..., None], heights, torch.inf).amin((1, 2))
            floor = torch.where(lowest.isfinite(), lowest, 0.0)[:, None, None]
        steps = mask[:, 1:] & mask[:, :-1]
        sums = {"skating": self._sliding(recon[..., feet, :], floor, unit, fmt.fps)[steps].sum().float(),
                "steps": steps.sum().float()}
        if self.reference:
            sums["gt_skating"] = self._sliding(target[..., feet, :], floor, unit, fmt.fps)[steps].sum().float()
        return sums

    def _sliding(self, feet: torch.Tensor, floor: torch.Tensor, unit: float, fps: float) -> torch.Tensor:
        """(B, T, F, 3) foot joints -> (B, T - 1) bool: whether some foot joint slides from frame t - 1 to t."""
        low = feet[..., UP] - floor < self.height * unit  # (B, T, F)
        touching = low[:, 1:] & low[:, :-1]
        moved = (feet[:, 1:, :, HORIZONTAL] - feet[:, :-1, :, HORIZONTAL]).norm(dim=-1)
        return (touching & (moved > self.speed * unit / fps)).any(-1)

    def compute(self, sums):
        steps = max(sums["steps"], 1.0)
        figures = {"foot_skating_ratio": sums["skating"] / steps}
        if "gt_skating" in sums:
            figures["gt_foot_skating_ratio"] = sums["gt_skating"] / steps
        return figures
