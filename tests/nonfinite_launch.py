"""``motionhub`` with one more loss, ``nan_once``: NaN on process 1 at its third call, else 0.

The two-process tests launch this with torchrun to give one process alone a non-finite loss.
"""

import os
import sys

import motionhub
from motionhub.cli import main
from motionhub.model.losses import Loss
from motionhub.plugins.manager import pm


class NaNOnce(Loss):
    calls = 0

    def __call__(self, batch, outputs, format):
        NaNOnce.calls += 1
        zero = outputs["recon"].float().mean() * 0
        return zero + float("nan") if os.environ.get("RANK") == "1" and NaNOnce.calls == 3 else zero


class Plugin:
    @motionhub.hookimpl
    def register_losses(self, register):
        register("nan_once", NaNOnce)


if __name__ == "__main__":
    pm.register(Plugin(), name="nan_once")
    sys.exit(main(sys.argv[1:]))
