"""First-party Conv1d encoder and decoder: the T2M-GPT / MotionMillion VQ-VAE backbone."""

import motionhub

from .conv1d import Conv1dDecoder, Conv1dEncoder

__all__ = ["Conv1dDecoder", "Conv1dEncoder"]


@motionhub.hookimpl
def register_encoders(register):
    register("conv1d", Conv1dEncoder)


@motionhub.hookimpl
def register_decoders(register):
    register("conv1d", Conv1dDecoder)
