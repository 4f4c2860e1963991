"""An importer: a model's weights saved as a NumPy .npz archive, as a motionhub run directory.

Tools without PyTorch (NumPy scripts, other frameworks) can hand over weights this way: one
array per tensor of the recipe's model, named by its state-dict key, e.g. written with
``numpy.savez(path, **{k: v.numpy() for k, v in model.state_dict().items()})``.
Everything else (building the recipe's model, checking that every tensor fits, writing a run
that ``motionhub train RUN_DIR`` continues) is motionhub's ``StateDictImporter``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from motionhub.api import ForeignCheckpoint, MotionhubError, StateDictImporter


class NpzWeights(StateDictImporter):
    """Weights saved as a NumPy .npz archive, one array per tensor of the recipe's model.

    Array names are the model's state-dict keys ("encoder.stem.weight"); "/" may stand for ".",
    as tools that name parameters by path write them.

    prefix: a prefix every array name carries (e.g. "model/"), removed before matching
    """

    source = "npz"

    def __init__(self, recipe: Path, prefix: str = "", no_data: bool = False, stats_mean: Path | None = None,
                 stats_std: Path | None = None, overrides: Sequence[str] = ()):
        super().__init__(recipe, no_data, stats_mean, stats_std, overrides)
        self.prefix = prefix

    def read(self, path: Path) -> ForeignCheckpoint:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except (OSError, ValueError) as exc:  # missing, not an archive, or arrays that need pickle
            raise MotionhubError(f"cannot read {path} as a .npz archive of arrays: {exc}") from None
        outside = [name for name in arrays if not name.startswith(self.prefix)]
        if outside:
            raise MotionhubError(f"{path}: {len(outside)} arrays do not start with the prefix '{self.prefix}' "
                                 f"(e.g. {outside[0]}); give the prefix they share with --prefix")
        state = {name.removeprefix(self.prefix).replace("/", "."): torch.from_numpy(np.ascontiguousarray(array))
                 for name, array in arrays.items()}
        return ForeignCheckpoint(self.source, path, state, iteration=None, samples=None, config={})

    @classmethod
    def key_map(cls, model, reference) -> dict[str, str]:
        return {key: key for key in model.state_dict()}
