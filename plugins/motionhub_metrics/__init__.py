"""First-party metrics for skeleton data: joint position errors through the format's ``to_joints``."""

import motionhub
from motionhub.api import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "MPJPE": ".joints",
})


@motionhub.hookimpl
def register_metrics(register):
    register("mpjpe", "motionhub_metrics.joints:MPJPE")
