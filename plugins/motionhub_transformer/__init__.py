"""First-party Transformer encoder and decoder over time: recipe names ``transformer`` (encoder and decoder)."""

import motionhub

from .model import TransformerDecoder, TransformerEncoder

__all__ = ["TransformerDecoder", "TransformerEncoder"]


@motionhub.hookimpl
def register_encoders(register):
    register("transformer", TransformerEncoder)


@motionhub.hookimpl
def register_decoders(register):
    register("transformer", TransformerDecoder)
