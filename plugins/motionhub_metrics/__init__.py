"""First-party metrics for skeleton data: joint position errors through the format's ``to_joints``."""

import motionhub

from .joints import MPJPE


@motionhub.hookimpl
def register_metrics(register):
    register("mpjpe", MPJPE)
