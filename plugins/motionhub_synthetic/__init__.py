"""First-party plugin: the ``synthetic`` data set (procedural motion, seeded)."""

import motionhub

from .dataset import SyntheticMotion


@motionhub.hookimpl
def register_datasets(register):
    register("synthetic", SyntheticMotion)
