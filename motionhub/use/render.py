"""Pictures of a run: a reconstructed clip next to its ground truth (the report figures are
``motionhub.train.figures``).

matplotlib is an optional extra (``pip install 'motionhub[render]'``), imported on first use.
Figures are drawn on an Agg canvas of their own, never through pyplot, so drawing needs no
display and leaves the backend of an interactive session alone.

Clips are written as ``.gif`` (Pillow, which ships with matplotlib), ``.mp4`` (ffmpeg) or, one
frame, ``.png``. Joint positions are y-up (the HumanML3D convention); point tracks are
(row, col) normalised to [-1, 1] and drawn as an image (x = col, y = row downwards).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import track

from motionhub.errors import MotionhubError
from motionhub.data.formats import MotionFormat
from motionhub.train.figures import RENDER_EXTRA, as_numpy, has_matplotlib, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SUFFIXES = (".gif", ".mp4", ".png")
DPI = 100
TRAIL = 12  # frames a point track's fading trail spans
COLOURS = {"ground truth": "tab:blue", "reconstruction": "tab:orange"}

Update = Callable[[int], None]  # draws frame t onto the figure


# ---------------------------------------------------------------------------- set-up checks
def ffmpeg_available() -> bool:
    """Whether matplotlib finds ffmpeg to write ``.mp4`` files."""
    from matplotlib import animation

    return animation.writers.is_available("ffmpeg")


def check_output(path: Path) -> None:
    """Raise MotionhubError unless a clip can be written to ``path`` (checked before any heavy work)."""
    if path.suffix.lower() not in SUFFIXES:
        raise MotionhubError(f"cannot write '{path}': the file name must end in {', '.join(SUFFIXES)}")
    if not has_matplotlib():
        raise MotionhubError(f"drawing needs matplotlib, which is not installed: {RENDER_EXTRA}")
    if path.suffix.lower() == ".mp4" and not ffmpeg_available():
        raise MotionhubError(f"writing '{path}' needs ffmpeg, which is not on PATH; install it "
                             f"(apt install ffmpeg, brew install ffmpeg or conda install ffmpeg) "
                             f"or write a .gif instead")


# ---------------------------------------------------------------------------- clips
def render_clip(fmt: MotionFormat, target: Any, recon: Any, out: str | Path, *, clip_id: str,
                fps: float | None = None, frames: int | None = None, frame: int = 0) -> Path:
    """Draw ground truth and reconstruction of one clip side by side into ``out``.

    target, recon: (T, *F) de-normalised features (numpy or torch). Formats with joints
    are drawn as skeletons, point tracks (feature shape (views, tracks, 2)) as points with
    trails. ``fps`` defaults to the format's; ``frames`` keeps the first N frames of an
    animation; ``frame`` is the frame of a ``.png``.
    """
    fps = fps or fmt.fps
    if fmt.has_joints:
        if fmt.skeleton is None:
            raise MotionhubError(f"format '{fmt.name}' recovers joints but has no skeleton to draw bones from")
        target_joints, recon_joints = _joints(fmt, target), _joints(fmt, recon)
        title = f"{clip_id}  ·  MPJPE {mpjpe_mm(target_joints, recon_joints, fmt.mm_per_unit):.1f} mm"
        return render_skeleton(target_joints, recon_joints, fmt.skeleton.parents, out, fps=fps, title=title,
                               frames=frames, frame=frame)
    if is_point_tracks(fmt):
        target, recon = as_numpy(target), as_numpy(recon)
        error = float(np.linalg.norm(recon - target, axis=-1).mean())
        title = f"{clip_id}  ·  mean point error {error:.3f} (normalised image units)"
        return render_tracks(target, recon, out, fps=fps, title=title, frames=frames, frame=frame)
    raise MotionhubError(f"format '{fmt.name}' has neither joint positions nor point tracks to draw")


def is_point_tracks(fmt: MotionFormat) -> bool:
    """Whether frames of ``fmt`` are (views, tracks, 2) image points."""
    return len(fmt.feature_shape) == 3 and fmt.feature_shape[-1] == 2


def mpjpe_mm(target: np.ndarray, recon: np.ndarray, mm_per_unit: float) -> float:
    """Mean per-joint error after aligning the root joints, as the evaluation metric: (T, J, 3) twice."""
    aligned = (recon - recon[:, :1]) - (target - target[:, :1])
    return float(np.linalg.norm(aligned, axis=-1).mean() * mm_per_unit)


def _joints(fmt: MotionFormat, features: Any) -> np.ndarray:
    """(T, J, 3) joint positions from (T, *F) de-normalised features."""
    return as_numpy(fmt.to_joints(torch.as_tensor(as_numpy(features), dtype=torch.float32)))


def render_skeleton(target: np.ndarray, recon: np.ndarray, parents: Sequence[int], out: str | Path, *,
                    fps: float, title: str, frames: int | None = None, frame: int = 0) -> Path:
    """Two 3-D skeleton animations side by side: target and recon are (T, J, 3), y-up."""
    figure, update = _skeleton_scene(target, recon, parents, title)
    return _write(figure, update, len(target), out, fps, frames, frame)


def render_tracks(target: np.ndarray, recon: np.ndarray, out: str | Path, *, fps: float, title: str,
                  frames: int | None = None, frame: int = 0) -> Path:
    """Point tracks with fading trails, one row per view: target and recon are (T, V, N, 2) (row, col)."""
    figure, update = _tracks_scene(target, recon, title)
    return _write(figure, update, len(target), out, fps, frames, frame)


def _write(figure: Figure, update: Update, length: int, out: str | Path, fps: float, frames: int | None,
           frame: int) -> Path:
    """Frame ``frame`` as a PNG, or the first ``frames`` (default all) of ``length`` as an animation."""
    from matplotlib import animation

    out = Path(out)
    check_output(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".png":
        if not 0 <= frame < length:
            raise MotionhubError(f"frame {frame} is outside the clip's {length} frames (0 to {length - 1})")
        update(frame)
        figure.savefig(out)
        return out
    count = length if frames is None else min(frames, length)
    if count < 1 or fps <= 0:
        raise MotionhubError(f"need at least 1 frame and a positive frame rate, got {frames} frames at {fps} fps")
    writer = animation.PillowWriter(fps=fps) if out.suffix.lower() == ".gif" else animation.FFMpegWriter(fps=fps)
    with writer.saving(figure, str(out), dpi=DPI):
        for t in track(range(count), description=f"drawing {out.name}", console=Console(stderr=True),
                       transient=True):
            update(t)
            writer.grab_frame()
    return out


def _skeleton_scene(target: np.ndarray, recon: np.ndarray, parents: Sequence[int], title: str
                    ) -> tuple[Figure, Update]:
    from mpl_toolkits.mplot3d.art3d import Line3DCollection, Poly3DCollection

    # Data are y-up; matplotlib's 3-D axes are z-up: (x, y, z) -> (x, -z, y) keeps them right-handed.
    poses = {name: np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)
             for name, p in (("ground truth", target), ("reconstruction", recon))}
    camera = SkeletonCamera.fit(list(poses.values()))
    children = np.array([j for j, p in enumerate(parents) if p >= 0])
    bone_parents = np.array(parents)[children]
    length = len(target)

    def segments(pose: np.ndarray) -> np.ndarray:
        """(J, 3) -> (bones, 2, 3): each bone from its joint to the joint's parent."""
        return np.stack([pose[children], pose[bone_parents]], axis=1)

    figure = new_figure(9.0, 4.8)
    figure.subplots_adjust(left=0, right=1, bottom=0.02, top=0.86, wspace=0)
    figure.suptitle(title)
    counter = figure.text(0.5, 0.02, "", ha="center")
    panels = []
    for column, (name, points) in enumerate(poses.items()):
        ax = figure.add_subplot(1, 2, column + 1, projection="3d")
        ax.set_title(name)
        ax.set_box_aspect((1, 1, 1), zoom=1.15)
        ax.view_init(elev=15, azim=-60)
        ax.set_axis_off()
        # Everything stands on the ground plane, seen from above it: draw in a fixed order
        # instead of matplotlib's depth sort, which can hide the trail under the plane.
        ax.computed_zorder = False
        ground = Poly3DCollection([], facecolor="0.9", edgecolor="0.6", zorder=0)
        grid = Line3DCollection([], colors="0.78", linewidths=0.6, zorder=0.5)
        ax.add_collection3d(ground, autolim=False)  # empty until the first frame is drawn
        ax.add_collection3d(grid, autolim=False)
        (trail,) = ax.plot([], [], [], "-", color="0.3", linewidth=1.2, zorder=1)
        bones = Line3DCollection(segments(points[0]), colors=COLOURS[name], linewidths=2.5, zorder=2)
        ax.add_collection3d(bones)
        (joints,) = ax.plot([], [], [], "o", color=COLOURS[name], markersize=2.5, zorder=3)
        panels.append((ax, points, ground, grid, bones, joints, trail))

    def update(t: int) -> None:
        for ax, points, ground, grid, bones, joints, trail in panels:
            (x0, x1), (y0, y1) = camera.window(points, t)
            ax.set(xlim=(x0, x1), ylim=(y0, y1), zlim=(camera.floor, camera.floor + 2 * camera.half))
            ground.set_verts([[(x0, y0, camera.floor), (x1, y0, camera.floor), (x1, y1, camera.floor),
                               (x0, y1, camera.floor)]])
            grid.set_segments(camera.grid((x0, x1), (y0, y1)))
            pose = points[t]
            bones.set_segments(segments(pose))
            joints.set_data_3d(pose[:, 0], pose[:, 1], pose[:, 2])
            path = points[: t + 1, 0, :2].copy()
            outside = (path[:, 0] < x0) | (path[:, 0] > x1) | (path[:, 1] < y0) | (path[:, 1] > y1)
            path[outside] = np.nan  # 3-D axes do not clip: end the trail at the ground's edge
            trail.set_data_3d(path[:, 0], path[:, 1], np.full(len(path), camera.floor))
        counter.set_text(f"frame {t + 1} / {length}")

    return figure, update


class SkeletonCamera:
    """Where a skeleton panel looks: a cube of side ``2 * half`` standing on the floor.

    The cube is sized to the body (its height, and its reach away from the root), not to the
    whole trajectory, so a walking skeleton stays large. When the root's path fits in the
    cube the view stays put on its centre; otherwise it follows each panel's own root, and
    floor grid lines at fixed places show the ground moving past.
    """

    def __init__(self, half: float, floor: float, centre: np.ndarray | None, spacing: float):
        self.half, self.floor, self.centre, self.spacing = half, floor, centre, spacing

    @classmethod
    def fit(cls, sequences: Sequence[np.ndarray]) -> SkeletonCamera:
        """The camera for z-up (T, J, 3) ``sequences`` drawn side by side (joint 0 is the root)."""
        points = np.concatenate([p.reshape(-1, 3) for p in sequences])
        floor = float(points[:, 2].min())
        reach = max(float(np.abs(p[..., :2] - p[:, :1, :2]).max()) for p in sequences)
        height = float(points[:, 2].max()) - floor
        half = max(reach, height / 2, 1e-6) * 1.1
        roots = np.concatenate([p[:, 0, :2] for p in sequences])
        low, high = roots.min(axis=0), roots.max(axis=0)
        # Fixed when the path, with every pose's reach around it, fits in the cube.
        centre = (low + high) / 2 if float((high - low).max()) / 2 + reach <= half else None
        return cls(half, floor, centre, _nice_spacing(half / 2))

    def window(self, points: np.ndarray, t: int) -> tuple[tuple[float, float], tuple[float, float]]:
        """(x, y) limits of frame ``t`` of ``points`` (T, J, 3)."""
        cx, cy = self.centre if self.centre is not None else points[t, 0, :2]
        return (cx - self.half, cx + self.half), (cy - self.half, cy + self.half)

    def grid(self, xs: tuple[float, float], ys: tuple[float, float]) -> list[np.ndarray]:
        """Floor lines at multiples of ``spacing`` inside the window, as (2, 3) segments."""
        z = self.floor
        return ([np.array([(x, ys[0], z), (x, ys[1], z)]) for x in self._multiples(*xs)]
                + [np.array([(xs[0], y, z), (xs[1], y, z)]) for y in self._multiples(*ys)])

    def _multiples(self, low: float, high: float) -> np.ndarray:
        """Multiples of ``spacing`` in [low, high]."""
        return np.arange(np.ceil(low / self.spacing), np.floor(high / self.spacing) + 1) * self.spacing


def _nice_spacing(about: float) -> float:
    """1, 2 or 5 times a power of ten, the largest not above ``about``."""
    power = 10.0 ** np.floor(np.log10(about))
    return float(max(step * power for step in (1, 2, 5) if step * power <= about * (1 + 1e-9)))


def _tracks_scene(target: np.ndarray, recon: np.ndarray, title: str) -> tuple[Figure, Update]:
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection

    length, views, tracks = target.shape[:3]
    # (row, col) -> (x, y) = (col, row); each track keeps the colour of its first target column.
    xy = {"ground truth": target[..., ::-1], "reconstruction": recon[..., ::-1]}
    colours = colormaps["turbo"]((target[0, :, :, 1] + 1) / 2)  # (V, N, 4)

    height = 3.8 * views + 1.0
    figure = new_figure(8.0, height)
    figure.subplots_adjust(left=0.03, right=0.97, bottom=0.4 / height, top=1 - 0.7 / height, wspace=0.08,
                           hspace=0.12)
    figure.suptitle(title)
    counter = figure.text(0.5, 0.01, "", ha="center")
    panels = []
    for view in range(views):
        for column, (name, points) in enumerate(xy.items()):
            ax = figure.add_subplot(views, 2, 2 * view + column + 1)
            ax.set(xlim=(-1.03, 1.03), ylim=(1.03, -1.03), xticks=[], yticks=[], aspect="equal",
                   title=name if views == 1 else f"{name}, view {view}")
            trails = LineCollection([], linewidths=1.2)
            ax.add_collection(trails)
            heads = ax.scatter(points[0, view, :, 0], points[0, view, :, 1], s=8, c=colours[view], zorder=3)
            panels.append((points[:, view], colours[view], trails, heads))

    def update(t: int) -> None:
        start = max(0, t - TRAIL)
        steps = t - start  # trail segments per track
        for points, colour, trails, heads in panels:
            if steps:
                span = points[start : t + 1]  # (steps + 1, N, 2)
                segments = np.stack([span[:-1], span[1:]], axis=2).reshape(-1, 2, 2)
                rgba = np.repeat(colour[None], steps, axis=0)  # (steps, N, 4)
                rgba[..., 3] = np.linspace(0.1, 0.9, steps)[:, None]  # older segments fade out
                trails.set_segments(segments)
                trails.set_color(rgba.reshape(-1, 4))
            else:
                trails.set_segments([])
            heads.set_offsets(points[t])
        counter.set_text(f"frame {t + 1} / {length}")

    return figure, update


