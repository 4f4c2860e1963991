"""The standard text-to-motion evaluator (R-precision, FID, MM-Dist, Diversity) and ``motionhub t2m-eval``."""

import motionhub
from motionhub.api import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "T2MEvaluator": ".modules",
    "MovementEncoder": ".modules",
    "MotionEncoder": ".modules",
    "TextEncoder": ".modules",
    "load_evaluator_files": ".files",
    "evaluate_t2m": ".evaluate",
})


@motionhub.hookimpl
def register_commands(register):
    register("t2m-eval", "motionhub_t2m.commands:T2MEval")
