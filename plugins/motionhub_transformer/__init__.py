"""First-party Transformer encoder and decoder over time: recipe names ``transformer`` (encoder and decoder)."""

import motionhub
from motionhub.api import lazy_exports

__all__ = ["TransformerDecoder", "TransformerEncoder"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "TransformerDecoder": ".model",
    "TransformerEncoder": ".model",
})


@motionhub.hookimpl
def register_encoders(register):
    register("transformer", "motionhub_transformer.model:TransformerEncoder")


@motionhub.hookimpl
def register_decoders(register):
    register("transformer", "motionhub_transformer.model:TransformerDecoder")
