"""First-party plugin: the ``motionmillion`` (272-dim) folder data set."""

import motionhub
from motionhub.api import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "MotionMillion": ".dataset",
})


@motionhub.hookimpl
def register_datasets(register):
    register("motionmillion", "motionhub_motionmillion.dataset:MotionMillion")

