"""AMPLIFY motion tokenizer for point tracks: encoder, decoder, relative-displacement losses, track metrics.

Recipe names: encoder ``amplify``, decoder ``amplify``, losses ``relative_ce``, ``focal`` and
``code_histogram_entropy``, metrics ``tracks`` and ``track_classes``.
Pair them with FSQ levels [8, 8, 6, 5] (the reference's "2048" codebook, 1920 codes).
LAPS's re-implementation of the tokenizer: encoder ``laps`` and decoder ``laps`` (FSQ [8, 8, 4, 4]).
"""

import motionhub

from .codes import CodeHistogramEntropy
from .laps import LapsDecoder, LapsEncoder
from .losses import FocalLoss, RelativeCE
from .metrics import TrackClassMetrics, TrackMetrics
from .model import AmplifyDecoder, AmplifyEncoder, load_reference_state_dict, reference_key_map

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


@motionhub.hookimpl
def register_encoders(register):
    register("amplify", AmplifyEncoder)
    register("laps", LapsEncoder)


@motionhub.hookimpl
def register_decoders(register):
    register("amplify", AmplifyDecoder)
    register("laps", LapsDecoder)


@motionhub.hookimpl
def register_losses(register):
    register("relative_ce", RelativeCE)
    register("focal", FocalLoss)
    register("code_histogram_entropy", CodeHistogramEntropy)


@motionhub.hookimpl
def register_metrics(register):
    register("tracks", TrackMetrics)
    register("track_classes", TrackClassMetrics)
