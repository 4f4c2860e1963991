"""First-party plugin: point-track data sets read from AMPLIFY / LAPS HDF5 files (GTEA, LIBERO, ...)."""

import motionhub

from .dataset import GTEATracks


@motionhub.hookimpl
def register_datasets(register):
    register("gtea_tracks", GTEATracks)
