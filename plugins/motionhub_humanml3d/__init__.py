"""First-party plugin: the ``humanml3d`` (263-dim) and ``kit`` (251-dim) folder data sets."""

import motionhub

from .dataset import KIT, HumanML3D


@motionhub.hookimpl
def register_datasets(register):
    register("humanml3d", HumanML3D)
    register("kit", KIT)
