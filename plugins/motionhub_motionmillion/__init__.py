"""First-party plugin: the ``motionmillion`` (272-dim) folder data set."""

import motionhub

from .dataset import MotionMillion


@motionhub.hookimpl
def register_datasets(register):
    register("motionmillion", MotionMillion)
