"""The ``motionmillion`` importer: MotionMillion's VQ-VAE checkpoints as motionhub runs.

MotionMillion trains T2M-GPT's ``HumanVQVAE`` layout (``motionhub_conv.importers``), usually with
FSQ, LayerNorm and, with ``--use_patcher``, a parameter-free wavelet patcher in the encoder's
``model.0``; its DDP saves carry ``module.`` prefixes, which are removed.
"""

from __future__ import annotations

from motionhub_conv.importers import VQVAEImporter


class MotionMillionImporter(VQVAEImporter):
    """MotionMillion's VQ-VAE (net_latest.pth) as a run: conv1d encoder and decoder, fsq (or vq_ema_reset).

    Its ``nb_iter`` counts the optimizer steps after its warm-up: the run continues at warm-up plus
    that many steps.
    """

    source = "motionmillion"
