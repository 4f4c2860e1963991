"""First-party loss plugins: reconstruction, named-slice feature, commitment and codebook-entropy losses."""

import motionhub

from .codebook import CodebookEntropyLoss
from .reconstruction import CommitLoss, FeatureLoss, ReconstructionLoss


@motionhub.hookimpl
def register_losses(register):
    register("recon", ReconstructionLoss)
    register("feature", FeatureLoss)
    register("commit", CommitLoss)
    register("codebook_entropy", CodebookEntropyLoss)
