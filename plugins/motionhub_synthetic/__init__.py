"""First-party plugin: the ``synthetic`` data set (procedural motion, seeded)."""

import motionhub
from motionhub.api import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "SyntheticMotion": ".dataset",
})


@motionhub.hookimpl
def register_datasets(register):
    register("synthetic", "motionhub_synthetic.dataset:SyntheticMotion")
