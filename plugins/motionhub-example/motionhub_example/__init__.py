"""motionhub-example: a pendulum data set, a smoothness loss, a CSV exporter, an .npz importer and a
``motionhub pendulums`` command, registered through motionhub's hooks."""

import motionhub

from .pendulums import Pendulums
from .smoothness import SmoothnessLoss


@motionhub.hookimpl
def register_datasets(register):
    register("pendulums", Pendulums)


@motionhub.hookimpl
def register_losses(register):
    register("smoothness", SmoothnessLoss)


# References ("module:Class"): imported only when used, so `motionhub --help` stays fast.
@motionhub.hookimpl
def register_exporters(register):
    register("positions_csv", "motionhub_example.positions_csv:PositionsCSV")


@motionhub.hookimpl
def register_importers(register):
    register("npz", "motionhub_example.npz_weights:NpzWeights")


@motionhub.hookimpl
def register_commands(register):
    register("pendulums", "motionhub_example.commands:DescribePendulums")
