"""First-party plugin: point-track data sets read from AMPLIFY / LAPS HDF5 files (GTEA, LIBERO, ...) and
the LAPS re-implementation's velocity windows (.pt files)."""

import motionhub

from .dataset import GTEATracks
from .velocity_files import LapsVelocities


@motionhub.hookimpl
def register_datasets(register):
    register("gtea_tracks", GTEATracks)
    register("laps_velocities", LapsVelocities)
