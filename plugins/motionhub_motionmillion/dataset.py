"""MotionMillion as its repository lays it out (``dataset/MotionMillion``).

```
<root>/motion_data/vector_272/<name>.npy        (T, 272) features; names contain '/'
<root>/texts/<name>.txt                         one caption per line (optional)
<root>/split/<version>/<subset>/train.txt ...   one name per line
<root>/mean_std/vector_272/mean.npy std.npy     the statistics MotionMillion trains with
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from motionhub.api import DataError, FolderDataset, find_stats, layouts, read_stats, split_files

LAYOUT_HELP = ("A MotionMillion folder holds motion_data/vector_272/<name>.npy ((T, 272) features), "
               "texts/<name>.txt, split/<version>/<subset>/{train,val,test}.txt and "
               "mean_std/vector_272/{mean,std}.npy.")


class MotionMillion(FolderDataset):
    """MotionMillion 272-dim features (22 joints, 30 fps) from the MotionMillion folder layout.

    root:       the MotionMillion folder holding motion_data/, texts/, split/ and mean_std/.
    version:    folder under split/ to read the split files from (MotionMillion ships version1).
    subset:     folder under split/<version>/ with train.txt, val.txt, test.txt, e.g. tokenizer_96.
    stats:      normalising statistics: dataset (mean_std/vector_272), path (stats_path), train (computed).
    stats_path: with stats: path, the folder holding mean.npy/std.npy (or Mean.npy/Std.npy).
    splits:     split file stem per split, replacing the default <split>.txt, e.g. {test: val}.
    fps:        frame rate of the features in frames per second (> 0); MotionMillion's is 30.
    on_bad:     a malformed or too short clip stops reading (stop), or is skipped and counted (skip).
    min_frames: fewest frames (>= 1) a clip must have; a shorter one is a bad clip (see on_bad).
    """

    def __init__(self, root: str, version: str = "version1", subset: str = "tokenizer_96",
                 stats: Literal["dataset", "path", "train"] = "dataset", stats_path: Optional[str] = None,
                 splits: Optional[dict[str, str]] = None, fps: float = 30.0,
                 on_bad: Literal["stop", "skip"] = "stop", min_frames: int = 1):
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.root = Path(root)
        self.stats_choice = stats
        self.motion_dir = self.root / "motion_data" / "vector_272"
        self.text_dir = self.root / "texts"
        self.split_dir = self.root / "split" / version / subset
        self._check_folder()
        fmt = layouts.motionmillion_272(fps=fps)
        stats_paths = self._stats_paths(stats, stats_path)
        if stats_paths:
            fmt = fmt.with_stats(*read_stats(*stats_paths, dim=fmt.feature_dim))
        super().__init__(
            label="motionmillion", fmt=fmt, on_bad=on_bad, min_frames=min_frames,
            split_paths={split: self.split_dir / f"{stem}.txt" for split, stem in split_files(splits).items()},
            stats_paths=stats_paths, layout_help=LAYOUT_HELP,
        )

    def _check_folder(self) -> None:
        if not self.root.is_dir():
            raise DataError(f"MotionMillion folder {self.root} does not exist. {LAYOUT_HELP} "
                            f"Set data.root to that folder.")
        if not self.motion_dir.is_dir():
            raise DataError(f"MotionMillion folder {self.root} has no motion_data/vector_272/ folder. {LAYOUT_HELP}")
        if not self.split_dir.is_dir():
            versions = sorted(p.relative_to(self.root / "split").as_posix()
                              for p in (self.root / "split").glob("*/*") if p.is_dir())
            found = f" Found: {', '.join(versions)}." if versions else ""
            raise DataError(f"MotionMillion split folder {self.split_dir} does not exist.{found} "
                            f"Set data.version and data.subset to one of them.")

    def _stats_paths(self, stats: str, stats_path: Optional[str]) -> tuple[Path, ...]:
        if stats_path is not None and stats != "path":
            raise ValueError(f"stats_path is only read with stats: path (stats is '{stats}'); "
                             f"remove stats_path or set stats: path")
        if stats == "dataset":
            return find_stats(self.root / "mean_std" / "vector_272", [("mean.npy", "std.npy")],
                              what="MotionMillion statistics",
                              fix="Restore them from the MotionMillion repository, or set data.stats: train "
                                  "to compute statistics from the train split.")
        if stats == "path":
            if stats_path is None:
                raise ValueError("stats: path needs stats_path, the folder holding mean.npy and std.npy")
            return find_stats(stats_path, [("mean.npy", "std.npy"), ("Mean.npy", "Std.npy")],
                              what="272-dim statistics",
                              fix="Set data.stats_path to that folder, or choose data.stats: dataset or train.")
        return ()

    def describe(self) -> str:
        counts = ", ".join(f"{split} {len(ids)}" for split, ids in self.split_ids.items())
        stats = self.stats_choice + (f" ({self.stats_paths[0].parent})" if self.stats_paths else "")
        return (f"MotionMillion {self.format.name} at {self.format.fps:g} fps from {self.root} "
                f"({self.split_dir.relative_to(self.root).as_posix()}): {counts}; stats: {stats}")
