"""motionhub-example: a pendulum data set and a smoothness loss, registered through motionhub's hooks."""

import motionhub

from .pendulums import Pendulums
from .smoothness import SmoothnessLoss


@motionhub.hookimpl
def register_datasets(register):
    register("pendulums", Pendulums)


@motionhub.hookimpl
def register_losses(register):
    register("smoothness", SmoothnessLoss)
