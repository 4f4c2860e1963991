"""First-party quantizers: FSQ, T2M-GPT's EMA-reset VQ, and vector-quantize-pytorch's VQ, residual VQ and LFQ."""

import motionhub

from .ema_reset import EMAResetVQ
from .fsq import FSQ
from .library import LFQ, RVQ, VQ
from motionhub.model.codebook import code_histogram, codebook_usage, usage_from_histogram

__all__ = ["EMAResetVQ", "FSQ", "LFQ", "RVQ", "VQ", "code_histogram", "codebook_usage", "usage_from_histogram"]


@motionhub.hookimpl
def register_quantizers(register):
    register("fsq", FSQ)
    register("vq_ema_reset", EMAResetVQ)
    register("vq", VQ)
    register("rvq", RVQ)
    register("lfq", LFQ)
