"""First-party quantizers: FSQ, T2M-GPT's EMA-reset VQ (and MoMask's residual one over such codebooks), and
vector-quantize-pytorch's VQ, residual VQ and LFQ."""

import motionhub
from motionhub.api import lazy_exports

__all__ = ["EMAResetVQ", "FSQ", "LFQ", "RVQ", "ResidualEMAResetVQ", "VQ", "code_histogram", "codebook_usage",
           "usage_from_histogram"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "EMAResetVQ": ".ema_reset",
    "FSQ": ".fsq",
    "LFQ": ".library",
    "RVQ": ".library",
    "ResidualEMAResetVQ": ".residual_ema",
    "VQ": ".library",
    "code_histogram": "motionhub.model.codebook",
    "codebook_usage": "motionhub.model.codebook",
    "usage_from_histogram": "motionhub.model.codebook",
})


@motionhub.hookimpl
def register_quantizers(register):
    register("fsq", "motionhub_quantizers.fsq:FSQ")
    register("vq_ema_reset", "motionhub_quantizers.ema_reset:EMAResetVQ")
    register("vq", "motionhub_quantizers.library:VQ")
    register("rvq", "motionhub_quantizers.library:RVQ")
    register("rvq_ema_reset", "motionhub_quantizers.residual_ema:ResidualEMAResetVQ")
    register("lfq", "motionhub_quantizers.library:LFQ")
