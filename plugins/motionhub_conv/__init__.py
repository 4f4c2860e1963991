"""First-party Conv1d encoder and decoder: the T2M-GPT / MotionMillion VQ-VAE backbone."""

import motionhub
from motionhub.api import lazy_exports

__all__ = ["Conv1dDecoder", "Conv1dEncoder"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "Conv1dDecoder": ".conv1d",
    "Conv1dEncoder": ".conv1d",
})


@motionhub.hookimpl
def register_encoders(register):
    register("conv1d", "motionhub_conv.conv1d:Conv1dEncoder")


@motionhub.hookimpl
def register_decoders(register):
    register("conv1d", "motionhub_conv.conv1d:Conv1dDecoder")


@motionhub.hookimpl
def register_importers(register):
    register("t2m-gpt", "motionhub_conv.importers:T2MGPTImporter")
    register("motionmillion", "motionhub_conv.importers:MotionMillionImporter")
    register("momask", "motionhub_conv.momask:MoMaskImporter")
    register("motiongpt", "motionhub_conv.motiongpt:MotionGPTImporter")
