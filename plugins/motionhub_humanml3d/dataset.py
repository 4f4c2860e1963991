"""HumanML3D and KIT-ML as their repositories ship them (and T2M-GPT reads them).

```
<root>/new_joint_vecs/<id>.npy   (T, 263) or (T, 251) features
<root>/texts/<id>.txt            caption#tok/POS ...#start#end, one caption per line
<root>/train.txt val.txt test.txt train_val.txt all.txt   one id per line
<root>/Mean.npy Std.npy          the data set's statistics
```

Which statistics normalise the features is the recipe's explicit choice: the data set's
``Mean.npy``/``Std.npy``, the text-to-motion evaluator's (what T2M-GPT uses; its root and
contact std are about 25 times smaller, which weights those features up), or statistics
computed from the packed train split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from motionhub.api import DataError, FolderDataset, find_stats, layouts, read_stats, split_files


class HumanML3D(FolderDataset):
    """HumanML3D 263-dim features (22 joints, 20 fps) from the standard HumanML3D folder.

    root:       the folder holding new_joint_vecs/, texts/, the split files and Mean.npy/Std.npy.
    stats:      normalising statistics: dataset (Mean/Std.npy), evaluator (T2M-GPT's), train (computed).
    stats_path: with stats: evaluator, the folder of mean.npy/std.npy (or <prefix>_mean.npy/_std.npy).
    splits:     split file stem per split, replacing the default <split>.txt, e.g. {train: train_val}.
    on_bad:     a malformed or too short clip stops reading (stop), or is skipped and counted (skip).
    min_frames: fewest frames (>= 1) a clip must have; a shorter one is a bad clip (see on_bad).
    """

    title, key, evaluator_prefix = "HumanML3D", "humanml3d", "t2m"
    layout = staticmethod(layouts.humanml3d_263)

    def __init__(self, root: str, stats: Literal["dataset", "evaluator", "train"],
                 stats_path: Optional[str] = None, splits: Optional[dict[str, str]] = None,
                 on_bad: Literal["stop", "skip"] = "stop", min_frames: int = 1):
        self.root = Path(root)
        self.stats_choice = stats
        self.motion_dir = self.root / "new_joint_vecs"
        self.text_dir = self.root / "texts"
        self._check_folder()
        fmt = self.layout()
        stats_paths = self._stats_paths(stats, stats_path)
        if stats_paths:
            fmt = fmt.with_stats(*read_stats(*stats_paths, dim=fmt.feature_dim))
        super().__init__(
            label=self.key, fmt=fmt, on_bad=on_bad, min_frames=min_frames,
            split_paths={split: self.root / f"{stem}.txt" for split, stem in split_files(splits).items()},
            stats_paths=stats_paths, layout_help=self._layout_help(),
        )

    def _layout_help(self) -> str:
        dim = self.layout().feature_dim
        return (f"A {self.title} folder holds new_joint_vecs/<id>.npy ((T, {dim}) features), texts/<id>.txt, "
                f"train.txt, val.txt, test.txt (also train_val.txt, all.txt) and Mean.npy, Std.npy.")

    def _check_folder(self) -> None:
        if not self.root.is_dir():
            raise DataError(f"{self.title} folder {self.root} does not exist. {self._layout_help()} "
                            f"Set data.root to that folder.")
        if not self.motion_dir.is_dir():
            raise DataError(f"{self.title} folder {self.root} has no new_joint_vecs/ folder. {self._layout_help()}")

    def _stats_paths(self, stats: str, stats_path: Optional[str]) -> tuple[Path, ...]:
        if stats_path is not None and stats != "evaluator":
            raise ValueError(f"stats_path is only read with stats: evaluator (stats is '{stats}'); "
                             f"remove stats_path or set stats: evaluator")
        if stats == "dataset":
            return find_stats(self.root, [("Mean.npy", "Std.npy")], what=f"{self.title} statistics",
                              fix="Restore them, or set data.stats: train to compute statistics "
                                  "from the train split.")
        if stats == "evaluator":
            if stats_path is None:
                raise ValueError(
                    f"stats: evaluator needs stats_path, the folder of the evaluator's mean.npy/std.npy "
                    f"(T2M-GPT: checkpoints/{self.evaluator_prefix}/VQVAEV3_CB1024_CMT_H1024_NRES3/meta) "
                    f"or of {self.evaluator_prefix}_mean.npy/{self.evaluator_prefix}_std.npy")
            prefix = self.evaluator_prefix
            return find_stats(stats_path, [("mean.npy", "std.npy"), (f"{prefix}_mean.npy", f"{prefix}_std.npy")],
                              what="evaluator statistics",
                              fix=f"Set data.stats_path to T2M-GPT's checkpoints/{prefix}/"
                                  f"VQVAEV3_CB1024_CMT_H1024_NRES3/meta folder (or the folder of "
                                  f"{prefix}_mean.npy), or choose data.stats: dataset or train.")
        return ()

    def describe(self) -> str:
        counts = ", ".join(f"{split} {len(ids)} ({path.name})" for (split, ids), path
                           in zip(self.split_ids.items(), self.split_paths.values()))
        stats = self.stats_choice + (f" ({self.stats_paths[0].parent})" if self.stats_paths else "")
        texts = "" if self.text_dir.is_dir() else ", no texts/"
        return f"{self.title} {self.format.name} from {self.root}: {counts}; stats: {stats}{texts}"


class KIT(HumanML3D):
    """KIT-ML 251-dim features (21 joints, 12.5 fps) from the standard KIT-ML folder."""

    title, key, evaluator_prefix = "KIT-ML", "kit", "kit"
    layout = staticmethod(layouts.kit_251)
