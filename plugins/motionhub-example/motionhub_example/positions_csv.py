"""An exporter: the joint positions of every clip of a split as one CSV file."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

import numpy as np

from motionhub.api import Bounds, ExportResult, ExportSource, Exporter, MotionhubError


class PositionsCSV(Exporter):
    """Joint positions of every clip as one CSV file: a row per frame, x, y, z of each joint.

    The columns are clip, frame (its index in the clip), then <joint>_x, <joint>_y, <joint>_z for
    every joint, named after the data set's skeleton where it has one (joint0, joint1, ... if not).
    Positions are in the data set's units.

    every: keep every n-th frame of each clip (1: all of them)
    decimals: digits after the decimal point
    """

    output = "positions csv"

    def __init__(self, every: Annotated[int, Bounds(low=1)] = 1, decimals: Annotated[int, Bounds(low=0, high=9)] = 4):
        self.every, self.decimals = every, decimals

    def export(self, source: ExportSource, out_path: Path) -> ExportResult:
        out_path = Path(out_path)
        if out_path.suffix != ".csv":
            raise MotionhubError(f"positions_csv exporter: the output must be a .csv file, got {out_path}")
        out_path.parent.mkdir(parents=True, exist_ok=True)
        clips = rows = 0
        skipped: dict[str, list[str]] = {}
        with out_path.open("w", newline="") as file:
            writer = csv.writer(file)
            header_written = False
            for clip in source:
                positions = np.asarray(clip.positions)[:: self.every]
                if not np.isfinite(positions).all():
                    skipped.setdefault("non-finite positions", []).append(clip.id)
                    continue
                if not header_written:
                    writer.writerow(["clip", "frame", *columns(source, positions.shape[1])])
                    header_written = True
                for index, frame in zip(range(0, len(clip.positions), self.every), positions):
                    writer.writerow([clip.id, index, *(f"{value:.{self.decimals}f}" for value in frame.reshape(-1))])
                clips += 1
                rows += len(positions)
        if not clips:
            out_path.unlink(missing_ok=True)
            raise MotionhubError(f"positions_csv exporter: split '{source.split}' of {source.dataset.describe()} "
                                 f"has no clip to write")
        return ExportResult(files=[out_path], clips=clips, skipped=skipped,
                            details={"rows": rows, "frames kept": f"every {self.every}"})


def columns(source: ExportSource, joints: int) -> list[str]:
    skeleton = source.format.skeleton
    names = list(skeleton.joint_names) if skeleton is not None else [f"joint{j}" for j in range(joints)]
    return [f"{name}_{axis}" for name in names for axis in "xyz"]
