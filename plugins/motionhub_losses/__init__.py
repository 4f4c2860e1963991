"""First-party loss plugins: reconstruction, named-slice feature, commitment and codebook-entropy losses."""

import motionhub
from motionhub.api import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "CodebookEntropyLoss": ".codebook",
    "CommitLoss": ".reconstruction",
    "FeatureLoss": ".reconstruction",
    "ReconstructionLoss": ".reconstruction",
})


@motionhub.hookimpl
def register_losses(register):
    register("recon", "motionhub_losses.reconstruction:ReconstructionLoss")
    register("feature", "motionhub_losses.reconstruction:FeatureLoss")
    register("commit", "motionhub_losses.reconstruction:CommitLoss")
    register("codebook_entropy", "motionhub_losses.codebook:CodebookEntropyLoss")
