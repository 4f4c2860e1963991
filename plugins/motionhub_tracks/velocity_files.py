"""The ``laps_velocities`` data set: the LAPS re-implementation's velocity windows (``.pt`` files).

Its preprocessing writes one file per 16-frame window into one flat folder, named
``<segment stem>_start<first frame, 6+ digits>.pt`` (``P01_cereals_start000042.pt``), each
holding a single float32 tensor (T - 1, N, 2) = (15, 400, 2): per step and point the
velocity (x, y) = clamp(displacement in pixels / r, -1, 1), r = 7 pixels for its 15 x 15
label grid, of N points tracked from a fresh grid of query points on the window's first
frame (CoTracker, grid size 20, frames resized to a shorter side of 480).

Positions are not stored, so each window becomes a clip motionhub can use by placing the
query grid and integrating: frame 0 is the grid, frame t + 1 = frame t + v_t r pixels.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from motionhub.api import BadDataPolicy, Clip, ClipError, DataError, Dataset, MotionFormat, OnBad, SPLITS, layouts
from motionhub.data.layouts import cotracker_grid

from .files import fingerprint, split_by_fraction
from .points import TrackLabels

DEFAULT_IMAGE_SIZE = (480, 853)  # a 16:9 frame at the preprocessing's shorter side of 480, width round(480 * 16 / 9)
NAME = re.compile(r"(?P<segment>.+)_start(?P<start>\d{6,})")
EXPECTED = ("expected one float tensor (steps, points, 2) per file: per step and point the velocity (x, y) = "
            "clamp(pixels / radius, -1, 1), as the LAPS preprocessing saves it with torch.save")
_LISTED = 10


@functools.lru_cache(maxsize=8)
def _grid(points: int, image_size: tuple[int, int]) -> np.ndarray:
    return cotracker_grid(points, image_size)


def positions(velocity: np.ndarray, image_size: Sequence[int], radius: float) -> np.ndarray:
    """(T - 1, N, 2) (x, y) radius velocities -> (T, 1, N, 2) float32 (row, col) points in [-1, 1] per axis
    (more where a point left the frame), from CoTracker's query grid."""
    steps = velocity.astype(np.float64) * radius
    pixels = _grid(velocity.shape[1], (int(image_size[0]), int(image_size[1]))) + np.concatenate(
        [np.zeros_like(steps[:1]), np.cumsum(steps, axis=0)])
    half = np.asarray(image_size, dtype=np.float64) / 2
    return (pixels[..., ::-1] / half - 1)[:, None].astype(np.float32)


class LapsVelocities(Dataset):
    """The LAPS re-implementation's velocity windows (.pt files) as point-track clips, split by segment.

    Every ``<segment>_start<NNNNNN>.pt`` file directly under ``root`` (not in subfolders, as
    the reference reads them) is one window: a float tensor (T - 1, N, 2) of velocities (x, y)
    in units of ``radius`` pixels per step, in [-1, 1]. It becomes one clip, id the file name
    without ``.pt``, with motion (T, 1, N, 2): one view of N tracks in (row, col) order,
    normalised to [-1, 1] by ``image_size`` (rows by the height, columns by the width). Frame 0
    is CoTracker's query grid (``cotracker_grid``: N = side^2 points, row-major with x
    varying fastest) and frame t + 1 adds v_t ``radius`` pixels, so the clip's radius
    velocities (``motionhub_amplify.tracks.radius_velocities``) give back the stored tensor
    to float precision. Points are not clamped to the frame: a track that leaves it keeps
    its position, since clamping would change its velocities.

    A clip is a whole sample: set the recipe's ``data.window`` to T (16 for the reference's files).

    Arguments:
        root:        the folder of .pt files.
        image_size:  [height, width] pixels of the tracked frames; default [480, 853], a 16:9
                     frame resized to the preprocessing's shorter side of 480 (its width
                     rounded as the preprocessing rounds it). The velocity labels do not
                     depend on it; pixel labels and track metrics do.
        radius:      pixels per unit of velocity: (W - 1) / 2 for the W x W label grid, 7
                     for the reference's 15 x 15.
        fps:         frame rate of the windows (the preprocessing samples at 20 fps).
        labels:      the format's ``track_labels``: ``velocity`` (default, the reference's
                     rule) or ``pixel`` (AMPLIFY's).
        val_fraction, test_fraction: share of *segments* held out for val / test (default
                     0.1 / 0), chosen by a hash of the seed and the segment name. Every window
                     of a segment goes to the same split: windows start one frame apart and
                     share most of their frames, so splitting windows at random would put the
                     same motion in train and val.
        seed:        seed of that choice.
        on_bad:      ``stop`` at the first unusable file, or ``skip`` such files (they are
                     counted, logged and repeated whenever the packed data is reused).
    """

    def __init__(
        self,
        root: str,
        image_size: Optional[list[int]] = None,
        radius: float = 7.0,
        fps: float = 20.0,
        labels: TrackLabels = "velocity",
        val_fraction: float = 0.1,
        test_fraction: float = 0.0,
        seed: int = 0,
        on_bad: OnBad = "stop",
    ):
        image_size = list(DEFAULT_IMAGE_SIZE) if image_size is None else image_size
        if len(image_size) != 2 or min(image_size) < 1:
            raise ValueError(f"image_size must be [height, width] in pixels; got {image_size}")
        if radius <= 0:
            raise ValueError(f"radius must be positive (pixels per unit of velocity); got {radius}")
        if fps <= 0:
            raise ValueError(f"fps must be positive; got {fps}")
        if labels not in layouts.TRACK_LABELS:
            raise ValueError(f"labels must be one of {', '.join(layouts.TRACK_LABELS)}; got {labels!r}")
        if min(val_fraction, test_fraction) < 0 or val_fraction + test_fraction >= 1:
            raise ValueError(f"val_fraction and test_fraction must be at least 0 and sum to less than 1; "
                             f"got {val_fraction} and {test_fraction}")
        self.root = Path(root)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.radius, self.fps, self.labels = float(radius), float(fps), labels
        self.fractions, self.seed = (float(val_fraction), float(test_fraction)), seed
        self.policy = BadDataPolicy(on_bad, "laps_velocities")
        self._first: Optional[Path] = None  # the file ``shape`` was read from

    # ---- files, segments and the split, found on first use
    @functools.cached_property
    def windows(self) -> dict[str, tuple[str, Path]]:
        """{clip id: (segment, path)} of every window file, by segment and start frame."""
        if not self.root.is_dir():
            raise DataError(f"velocity folder {self.root} does not exist; set data.root to the folder holding the "
                            f"LAPS preprocessing's <segment>_start<NNNNNN>.pt files")
        found, unnamed = [], []
        for path in self.root.glob("*.pt"):
            match = NAME.fullmatch(path.stem)
            if match is None:
                unnamed.append(path.name)
            else:
                found.append((match["segment"], int(match["start"]), path))
        if unnamed:
            listed = ", ".join(sorted(unnamed)[:_LISTED]) + (", …" if len(unnamed) > _LISTED else "")
            raise DataError(f"{len(unnamed)} file{'s' * (len(unnamed) != 1)} under {self.root} not named "
                            f"<segment>_start<NNNNNN>.pt: {listed}. The split keeps each segment's windows "
                            f"together, so it needs the names; rename them (e.g. clip7_start000012.pt) or move "
                            f"them out of the folder")
        if not found:
            raise DataError(f"no .pt files under {self.root}; expected one <segment>_start<NNNNNN>.pt per window, "
                            f"{EXPECTED}")
        return {path.stem: (segment, path) for segment, _, path in sorted(found, key=lambda f: (f[0], f[1]))}

    @functools.cached_property
    def split_of(self) -> dict[str, str]:
        """{segment: split}, in segment order."""
        segments = sorted({segment for segment, _ in self.windows.values()})
        return split_by_fraction(segments, *self.fractions, seed=self.seed, what="segments")

    @functools.cached_property
    def shape(self) -> tuple[int, int]:
        """(steps, points) of the first usable window file (the first file, with ``on_bad: stop``);
        every other must match."""
        for clip_id, (_, path) in self.windows.items():
            try:
                velocity = self._read(clip_id, path, None)
            except ClipError as exc:
                if self.policy.on_bad == "stop":
                    raise DataError(f"{exc} This is the first file, and the first file sets the data set's "
                                    f"shape; to leave bad files out instead, set data.on_bad: skip.") from None
                continue
            steps, points = velocity.shape[:2]
            if math.isqrt(points) ** 2 != points:
                raise DataError(f"{path}: {points} points per window, not a square number; clips start from "
                                f"CoTracker's side x side query grid (grid size 20: 400 points), so this folder "
                                f"was not written by the LAPS preprocessing")
            self._first = path
            return steps, points
        raise DataError(f"none of the {len(self.windows)} .pt files under {self.root} is usable; {EXPECTED}.")

    @functools.cached_property
    def format(self) -> MotionFormat:
        steps, points = self.shape
        fmt = layouts.point_tracks(1, points, self.fps, image_size=self.image_size, track_labels=self.labels)
        return fmt.with_stats(np.zeros(fmt.feature_shape), np.ones(fmt.feature_shape))

    # ---- clips
    def clips(self, split: str) -> Iterator[Clip]:
        if split not in SPLITS:
            raise ValueError(f"unknown split '{split}'; splits: {', '.join(SPLITS)}")
        shape = self.shape
        ids = [clip_id for clip_id, (segment, _) in self.windows.items() if self.split_of[segment] == split]
        return self.policy.read(split, ids, lambda clip_id: self._clip(clip_id, shape))

    def _clip(self, clip_id: str, shape: tuple[int, int]) -> Clip:
        velocity = self._read(clip_id, self.windows[clip_id][1], shape)
        return Clip(clip_id, positions(velocity, self.image_size, self.radius))

    def _read(self, clip_id: str, path: Path, shape: Optional[tuple[int, int]]) -> np.ndarray:
        """The (steps, points, 2) velocities in ``path``, checked; ClipError naming the file otherwise."""

        def fail(reason: str, detail: str) -> ClipError:
            return ClipError(clip_id, reason, f"{path}: {detail}")

        try:
            value = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle, zip and safety errors all mean: not a readable tensor file
            raise fail("unreadable", f"cannot be read by torch.load(weights_only=True) ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); {EXPECTED}. Re-run the "
                       f"preprocessing for this window or delete the file.") from None
        if not isinstance(value, torch.Tensor):
            raise fail("not a tensor", f"holds a {type(value).__name__}, not a tensor; {EXPECTED}.")
        if value.ndim != 3 or value.shape[-1] != 2:
            raise fail("wrong shape", f"holds a tensor of shape {tuple(value.shape)}; {EXPECTED}.")
        if shape is not None and tuple(value.shape[:2]) != shape:
            raise fail("wrong shape", f"holds {tuple(value.shape[:2])} (steps, points), but {self._first.name} "
                       f"holds {shape}; every window needs the same steps and points. Keep one preprocessing "
                       f"run's files in the folder.")
        if not value.is_floating_point():
            raise fail("not float", f"holds {value.dtype} values; {EXPECTED}.")
        velocity = value.detach().to(torch.float32).numpy()
        finite = np.isfinite(velocity)
        if not finite.all():
            step, point, _ = np.argwhere(~finite)[0]
            raise fail("non-finite values", f"holds {int((~finite).sum())} NaN or Inf values (first at step "
                       f"{step}, point {point}); the tracker failed on this window: re-run it or delete the file.")
        largest = float(np.abs(velocity).max(initial=0.0))
        if largest > 1.0:
            raise fail("values outside [-1, 1]", f"holds values up to {largest:g} in magnitude, outside [-1, 1]: "
                       f"not normalised velocities. Save clamp(pixels / radius, -1, 1) (radius "
                       f"{self.radius:g}), as the LAPS preprocessing does.")
        return velocity

    def packing_notes(self, split: str) -> list[str]:
        total = sum(1 for segment, _ in self.windows.values() if self.split_of[segment] == split)
        return self.policy.notes(split, total)

    # ---- bookkeeping
    def fingerprint(self) -> str:
        return fingerprint((path for _, path in self.windows.values()), self.root)

    def describe(self) -> str:
        steps, points = self.shape
        segments = {split: 0 for split in SPLITS}
        for split in self.split_of.values():
            segments[split] += 1
        windows = {split: 0 for split in SPLITS}
        for segment, _ in self.windows.values():
            windows[self.split_of[segment]] += 1
        per_split = " / ".join(f"{windows[s]} {s}" for s in SPLITS)
        per_segment = " / ".join(f"{segments[s]} {s}" for s in SPLITS)
        height, width = self.image_size
        return (f"laps_velocities from {self.root}: {len(self.windows)} windows ({per_split}) of "
                f"{len(self.split_of)} segments ({per_segment}), {points} points, {steps + 1} frames, "
                f"frame {height}x{width} (height x width), radius {self.radius:g} px, {self.labels} labels")
