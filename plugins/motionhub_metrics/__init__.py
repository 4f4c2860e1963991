"""First-party metrics for skeleton data, through the format's ``to_joints``: MPJPE (root-aligned
and global), PA-MPJPE, acceleration error, jitter, foot skating, and these per number of residual
levels of an RVQ. Each class's docstring states its exact definition and units.

They score whole clips at their true lengths: evaluation batches every clip from its first frame to
its last, cropped only to a multiple of the model's down-sampling (fewer than that many frames come
off the end), and every figure sums over valid frames only. ``eval.min_length`` / ``eval.max_length``
skip clips outside the bounds, never crop them; to score every test clip whatever the recipe's
bounds: ``motionhub eval RUN --split test eval.min_length=null eval.max_length=null``.
"""

import motionhub
from motionhub.api import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "MPJPE": ".joints",
    "PAMPJPE": ".joints",
    "AccelerationError": ".smoothness",
    "Jitter": ".smoothness",
    "FootSkating": ".feet",
    "ResidualLevels": ".levels",
})


@motionhub.hookimpl
def register_metrics(register):
    register("mpjpe", "motionhub_metrics.joints:MPJPE")
    register("pa_mpjpe", "motionhub_metrics.joints:PAMPJPE")
    register("accel_error", "motionhub_metrics.smoothness:AccelerationError")
    register("jitter", "motionhub_metrics.smoothness:Jitter")
    register("foot_skating", "motionhub_metrics.feet:FootSkating")
    register("residual_levels", "motionhub_metrics.levels:ResidualLevels")
