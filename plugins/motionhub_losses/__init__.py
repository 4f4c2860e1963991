"""First-party loss plugins: reconstruction, named-slice feature and commitment losses."""

import motionhub

from .reconstruction import CommitLoss, FeatureLoss, ReconstructionLoss


@motionhub.hookimpl
def register_losses(register):
    register("recon", ReconstructionLoss)
    register("feature", FeatureLoss)
    register("commit", CommitLoss)
