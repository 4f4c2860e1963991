"""Pictures of a run: a reconstructed clip next to its ground truth, and the report figures.

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

from motionhub.model.codebook import usage_from_histogram
from motionhub.errors import MotionhubError
from motionhub.data.formats import MotionFormat
from motionhub.train.rundir import RunDir

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RENDER_EXTRA = "pip install 'motionhub[render]'"
SUFFIXES = (".gif", ".mp4", ".png")
DPI = 100
TRAIL = 12  # frames a point track's fading trail spans
COLOURS = {"ground truth": "tab:blue", "reconstruction": "tab:orange"}
# keys of train rows in metrics.jsonl that are no loss term (throughput, and the memory figures)
NOT_LOSSES = ("step", "lr", "samples_per_s", "memory_mib", "memory_peak_mib")

Update = Callable[[int], None]  # draws frame t onto the figure


# ---------------------------------------------------------------------------- set-up checks
def has_matplotlib() -> bool:
    """Whether the optional drawing dependency is installed."""
    return importlib.util.find_spec("matplotlib") is not None


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


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


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
        target, recon = _numpy(target), _numpy(recon)
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


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _joints(fmt: MotionFormat, features: Any) -> np.ndarray:
    """(T, J, 3) joint positions from (T, *F) de-normalised features."""
    return _numpy(fmt.to_joints(torch.as_tensor(_numpy(features), dtype=torch.float32)))


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

    figure = _figure(9.0, 4.8)
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
    figure = _figure(8.0, height)
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


# ---------------------------------------------------------------------------- report figures
def write_report_figures(run_dir: str | Path, histogram: Any = None, split: str = "train") -> list[Path]:
    """``loss_curves.png`` and ``codebook_usage.png`` in ``run_dir``; returns the files written.

    histogram: (codebook_size,) code counts over ``split`` (numpy or torch); without it the
    usage figure shows the codes used at each evaluation logged in ``metrics.jsonl``. A
    figure with nothing to show (no rows logged) is not written.
    """
    if not has_matplotlib():
        raise MotionhubError(f"drawing needs matplotlib, which is not installed: {RENDER_EXTRA}")
    run = RunDir(Path(run_dir))
    rows = run.rows()
    written = []
    loss_curves = run.path / "loss_curves.png"
    if _plot_loss_curves(rows, loss_curves):
        written.append(loss_curves)
    usage = run.path / "codebook_usage.png"
    if histogram is not None:
        _plot_code_counts(_numpy(histogram).astype(np.int64), split, usage)
        written.append(usage)
    elif _plot_codes_used(rows, usage):
        written.append(usage)
    return written


def _plot_loss_curves(rows: list[dict], out: Path) -> bool:
    """Every train loss term against the step, val figures of the same terms as points."""
    train = [row for row in rows if "split" not in row]
    val = [row for row in rows if row.get("split") == "val"]
    terms = sorted({k for row in train for k in row if k not in NOT_LOSSES}, key=lambda k: (k != "loss", k))
    if not terms:
        return False
    figure = _figure(7.0, 4.0)
    ax = figure.add_subplot()
    for index, term in enumerate(terms):
        colour = f"C{index % 10}"
        steps, values = _series(train, term)
        ax.plot(steps, values, color=colour, label=term)
        steps, values = _series(val, term)
        if steps:
            ax.plot(steps, values, "o", color=colour, markerfacecolor="white", label=f"val {term}")
    if all(v > 0 for term in terms for v in _series(rows, term)[1]):
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="loss", title="losses (lines: train, circles: val)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    figure.tight_layout()
    figure.savefig(out)
    return True


def _series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    pairs = [(row["step"], row[key]) for row in rows if isinstance(row.get(key), (int, float))]
    return [s for s, _ in pairs], [v for _, v in pairs]


def _plot_code_counts(counts: np.ndarray, split: str, out: Path) -> None:
    """Codes sorted by how often they occur (used ones as a filled curve, dead ones shaded)."""
    usage = usage_from_histogram(torch.from_numpy(counts))
    size, used = len(counts), int(usage["used"])
    ranked = np.sort(counts)[::-1][:used]
    figure = _figure(7.0, 4.0)
    ax = figure.add_subplot()
    if used:
        ax.fill_between(np.arange(used + 1), np.append(ranked, ranked[-1]), step="post", color="tab:blue",
                        alpha=0.8, label=f"used: {used:,} ({used / size:.1%})")
        ax.set_yscale("log")
    if used < size:
        ax.axvspan(used, size, color="tab:red", alpha=0.15, label=f"dead: {size - used:,}")
    ax.set(xlim=(0, size), xlabel="code rank (most used first)", ylabel="occurrences",
           title=f"codebook usage on {split}: {size:,} codes, perplexity {usage['perplexity']:.1f}")
    ax.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(out)


def _plot_codes_used(rows: list[dict], out: Path) -> bool:
    """Codes used at each val evaluation against the step, with the codebook size for scale."""
    val = [row for row in rows if row.get("split") == "val" and "codebook_used" in row]
    if not val:
        return False
    steps, used = _series(val, "codebook_used")
    size = val[-1]["codebook_used"] + val[-1].get("codebook_dead", 0)
    figure = _figure(7.0, 4.0)
    ax = figure.add_subplot()
    ax.plot(steps, used, "o-", color="tab:blue", label="codes used (val)")
    ax.axhline(size, color="0.4", linestyle="--", label=f"codebook size {size:,}")
    ax.set(xlabel="step", ylabel="codes", ylim=(0, size * 1.05), title="codebook usage per evaluation")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(out)
    return True
