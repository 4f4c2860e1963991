"""First-party plugin: point-track data sets read from AMPLIFY / LAPS HDF5 files (GTEA, LIBERO, ...) and
the LAPS re-implementation's velocity windows (.pt files)."""

import motionhub
from motionhub.api import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "GTEATracks": ".dataset",
    "LapsVelocities": ".velocity_files",
})


@motionhub.hookimpl
def register_datasets(register):
    register("gtea_tracks", "motionhub_tracks.dataset:GTEATracks")
    register("laps_velocities", "motionhub_tracks.velocity_files:LapsVelocities")
