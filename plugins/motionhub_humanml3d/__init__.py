"""First-party plugin: the ``humanml3d`` (263-dim) and ``kit`` (251-dim) folder data sets."""

import motionhub
from motionhub.api import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "HumanML3D": ".dataset",
    "KIT": ".dataset",
})


@motionhub.hookimpl
def register_datasets(register):
    register("humanml3d", "motionhub_humanml3d.dataset:HumanML3D")
    register("kit", "motionhub_humanml3d.dataset:KIT")


@motionhub.hookimpl
def register_commands(register):
    register("prepare", "motionhub_humanml3d.commands:Prepare")
