"""The standard text-to-motion evaluator (R-precision, FID, MM-Dist, Diversity), ``motionhub t2m-eval``,
and the components that train the evaluator's networks for a data set that has none."""

import motionhub
from motionhub.api import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "T2MEvaluator": ".modules",
    "MovementEncoder": ".modules",
    "MotionEncoder": ".modules",
    "TextEncoder": ".modules",
    "load_evaluator_files": ".files",
    "evaluate_t2m": ".evaluate",
    "T2MProtocol": ".table",
    "export_evaluator": ".export",
})


@motionhub.hookimpl
def register_commands(register):
    register("t2m-eval", "motionhub_t2m.commands:T2MEval")
    register("t2m-export-evaluator", "motionhub_t2m.commands:T2MExportEvaluator")


@motionhub.hookimpl
def register_protocols(register):
    register("t2m", "motionhub_t2m.table:T2MProtocol")


@motionhub.hookimpl
def register_encoders(register):
    register("t2m_movement", "motionhub_t2m.training:MovementFeatures")


@motionhub.hookimpl
def register_quantizers(register):
    register("t2m_identity", "motionhub_t2m.training:IdentityQuantizer")


@motionhub.hookimpl
def register_decoders(register):
    register("t2m_movement_decoder", "motionhub_t2m.training:MovementDecoder")
    register("t2m_matching", "motionhub_t2m.training:TextMotionMatching")


@motionhub.hookimpl
def register_losses(register):
    register("t2m_sparsity", "motionhub_t2m.training_losses:LatentSparsity")
    register("t2m_smooth", "motionhub_t2m.training_losses:LatentSmoothness")
    register("t2m_contrastive", "motionhub_t2m.training_losses:ContrastiveMatching")
