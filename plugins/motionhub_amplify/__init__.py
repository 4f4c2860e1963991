"""AMPLIFY motion tokenizer for point tracks: encoder, decoder, relative-displacement losses, track metrics.

Recipe names: encoder ``amplify``, decoder ``amplify``, losses ``relative_ce``, ``focal`` and
``code_histogram_entropy``, metrics ``tracks`` and ``track_classes``.
Pair them with FSQ levels [8, 8, 6, 5] (the reference's "2048" codebook, 1920 codes).
LAPS's re-implementation of the tokenizer: encoder ``laps`` and decoder ``laps`` (FSQ [8, 8, 4, 4]).
"""

import motionhub
from motionhub.api import lazy_exports

__all__ = [
    "AmplifyDecoder",
    "AmplifyEncoder",
    "CodeHistogramEntropy",
    "FocalLoss",
    "LapsDecoder",
    "LapsEncoder",
    "RelativeCE",
    "TrackClassMetrics",
    "TrackMetrics",
    "load_reference_state_dict",
    "reference_key_map",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "AmplifyDecoder": ".model",
    "AmplifyEncoder": ".model",
    "CodeHistogramEntropy": ".codes",
    "FocalLoss": ".losses",
    "LapsDecoder": ".laps",
    "LapsEncoder": ".laps",
    "RelativeCE": ".losses",
    "TrackClassMetrics": ".metrics",
    "TrackMetrics": ".metrics",
    "load_reference_state_dict": ".model",
    "reference_key_map": ".model",
})


@motionhub.hookimpl
def register_encoders(register):
    register("amplify", "motionhub_amplify.model:AmplifyEncoder")
    register("laps", "motionhub_amplify.laps:LapsEncoder")


@motionhub.hookimpl
def register_decoders(register):
    register("amplify", "motionhub_amplify.model:AmplifyDecoder")
    register("laps", "motionhub_amplify.laps:LapsDecoder")


@motionhub.hookimpl
def register_losses(register):
    register("relative_ce", "motionhub_amplify.losses:RelativeCE")
    register("focal", "motionhub_amplify.losses:FocalLoss")
    register("code_histogram_entropy", "motionhub_amplify.codes:CodeHistogramEntropy")


@motionhub.hookimpl
def register_metrics(register):
    register("tracks", "motionhub_amplify.metrics:TrackMetrics")
    register("track_classes", "motionhub_amplify.metrics:TrackClassMetrics")


@motionhub.hookimpl
def register_importers(register):
    register("amplify", "motionhub_amplify.importers:AmplifyImporter")
    register("laps", "motionhub_amplify.importers:LapsImporter")
