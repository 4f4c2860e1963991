"""BVH motion capture files: a reader for any skeleton, forward kinematics, and the ``bvh`` data set."""

import motionhub

from .dataset import BVHFolder


@motionhub.hookimpl
def register_datasets(register):
    register("bvh", BVHFolder)
