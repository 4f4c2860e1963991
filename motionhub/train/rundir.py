"""The layout of a run directory, and the few operations on it."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from motionhub.errors import MotionhubError

logger = logging.getLogger("motionhub.run")


class RunDir:
    """``recipe.yaml``, ``metrics.jsonl``, ``checkpoints/{last,best,step_N}.pt``, ``report.{json,md}``,
    ``codebook_counts.json``."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def create(cls, out: str | Path, main: bool = True) -> RunDir:
        """``out`` if it holds no earlier run, else ``out-2``, ``out-3``... (never overwrite a run).

        The main process claims a folder by creating its ``checkpoints/`` (``os.mkdir`` fails when it
        exists), so two runs started at the same instant never share one."""
        out = Path(out)
        candidate, n = out, 1
        while True:
            if not main:
                if not (candidate / "checkpoints").exists():
                    return cls(candidate)
            else:
                try:
                    candidate.mkdir(parents=True, exist_ok=True)
                    os.mkdir(candidate / "checkpoints")
                    return cls(candidate)
                except FileExistsError:
                    pass
                except NotADirectoryError:
                    raise MotionhubError(f"run.out={out}: {candidate} cannot hold a run: it, or a folder above it, "
                                         f"is a file. Choose another run.out") from None
                except PermissionError:
                    raise MotionhubError(f"run.out={out}: cannot create {candidate}: permission denied. "
                                         f"Choose another run.out") from None
            n += 1
            candidate = out.with_name(f"{out.name}-{n}")

    def discard_if_unused(self) -> None:
        """Remove what starting this run wrote (``recipe.yaml``, an empty ``checkpoints/``) when it
        stopped before a checkpoint or a metrics row; the folder goes too when nothing else is in it."""
        checkpoints = self.path / "checkpoints"
        if self.metrics.exists() or (checkpoints.is_dir() and any(checkpoints.iterdir())):
            return
        for path in (checkpoints, self.path / "recipe.yaml", self.path):
            try:
                path.rmdir() if path.is_dir() else path.unlink()
            except OSError:  # not empty (something else lives there) or gone already
                pass

    @classmethod
    def resume(cls, out: str | Path) -> RunDir:
        run = cls(Path(out))
        if not run.last.is_file() and not any((run.path / "checkpoints").glob("*.pt")):
            raise MotionhubError(f"nothing to resume in {run.path}: no checkpoints/last.pt. "
                                 f"Train without --resume to start a new run.")
        return run

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def last(self) -> Path:
        return self.path / "checkpoints" / "last.pt"

    @property
    def best(self) -> Path:
        return self.path / "checkpoints" / "best.pt"

    @property
    def code_counts(self) -> Path:
        """How often each code occurred on train and val at the end: ``{"train": [...], "val": [...]}``."""
        return self.path / "codebook_counts.json"

    def write_code_counts(self, counts: dict[str, list[int]]) -> None:
        self.code_counts.write_text(json.dumps(counts) + "\n")

    def numbered(self, step: int) -> Path:
        return self.path / "checkpoints" / f"step_{step:08d}.pt"

    def log(self, row: dict) -> None:
        with self.metrics.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def rows(self, problems: list[str] | None = None) -> list[dict]:
        """Logged rows; a damaged line (cut short by a killed process, not JSON, not UTF-8, not an
        object with an integer ``step``) is skipped, and described in ``problems`` when given."""
        if not self.metrics.exists():
            return []
        rows = []
        data = self.metrics.read_bytes()
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            why = None
            try:
                row = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                why = "not UTF-8 text"
            except ValueError:
                why = ("cut short (a process killed while writing it)" if number == len(lines)
                       and not data.endswith(b"\n") else "not JSON")
            else:
                if not isinstance(row, dict):
                    why = f"a JSON {type(row).__name__}, not an object"
                elif "step" in row and (not isinstance(row["step"], int) or isinstance(row["step"], bool)):
                    why = f"its step is {row['step']!r}, not an integer"
                else:
                    rows.append(row)
            if why and problems is not None:
                problems.append(f"{self.metrics}:{number}: {why}; skipped")
        return rows

    def truncate_metrics(self, after_step: int) -> list[str]:
        """Drop rows logged after ``after_step`` (by a run killed after its last checkpoint) and damaged
        lines; returns a description of each damaged line."""
        problems: list[str] = []
        keep = [row for row in self.rows(problems) if row.get("step", 0) <= after_step]
        for problem in problems:
            logger.warning(problem)
        tmp = self.metrics.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(row) + "\n" for row in keep))
        os.replace(tmp, self.metrics)
        return problems
