"""BVH motion capture files: a reader for any skeleton, forward kinematics, and the ``bvh`` data set."""

import motionhub
from motionhub.api import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "BVHFolder": ".dataset",
    "BVHSMPLFolder": ".smpl",
})


@motionhub.hookimpl
def register_datasets(register):
    register("bvh", "motionhub_bvh.dataset:BVHFolder")
    register("bvh_smpl", "motionhub_bvh.smpl:BVHSMPLFolder")
