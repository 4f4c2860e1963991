"""Drawing clips and report figures (headless, Agg): files, frame counts, sizes, content."""

import numpy as np
import pytest
import torch
from helpers import TINY_RECIPE, track_recipe

pytest.importorskip("matplotlib")
from PIL import Image  # noqa: E402  (ships with matplotlib)

from motionhub.data import layouts
from motionhub.train import figures
from motionhub.use import render  # noqa: E402
from motionhub.cli import main  # noqa: E402
from motionhub.errors import MotionhubError  # noqa: E402
from motionhub.recipes import recipe_from_tree  # noqa: E402
from motionhub.use.trained_run import load_run  # noqa: E402
from motionhub.train.trainer import train  # noqa: E402

BLUE, ORANGE = (31, 119, 180), (255, 127, 14)  # ground truth, reconstruction


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("render") / "run"
    tree = {**TINY_RECIPE, "run": {"name": "r", "out": str(out), "seed": 0},
            "train": {**TINY_RECIPE["train"], "eval_every": 3}}
    return train(recipe_from_tree(tree, "tiny.yaml"))


@pytest.fixture(scope="module")
def clip_id(run_dir):
    return next(iter(load_run(run_dir).dataset.clips("val"))).id


def pixels_near(image: Image.Image, colour: tuple[int, int, int], tolerance: int = 40) -> int:
    rgb = np.asarray(image.convert("RGB"), dtype=np.int32)
    return int((np.abs(rgb - colour).max(axis=-1) <= tolerance).sum())


def assert_drawn(image: Image.Image) -> None:
    """Both panels have content: ground-truth and reconstruction colours each cover some pixels."""
    assert pixels_near(image, BLUE) > 50 and pixels_near(image, ORANGE) > 50


def test_gif_of_the_first_frames_side_by_side(run_dir, clip_id, tmp_path):
    out = tmp_path / "clip.gif"
    code = main(["render", str(run_dir), "--clip", clip_id, "--frames", "3", "--fps", "10", "--out", str(out)])
    assert code == 0
    assert out.read_bytes()[:6] == b"GIF89a"
    with Image.open(out) as gif:
        assert gif.n_frames == 3 and gif.size == (900, 480)
        assert gif.info["duration"] == 100
        gif.seek(2)
        assert_drawn(gif)


def test_png_of_one_frame(run_dir, clip_id, tmp_path):
    out = tmp_path / "frame.png"
    assert main(["render", str(run_dir), "--clip", clip_id, "--frame", "5", "--out", str(out)]) == 0
    with Image.open(out) as png:
        assert png.format == "PNG" and png.size == (900, 480)
        assert_drawn(png)


def test_a_frame_outside_the_clip_is_an_error(run_dir, clip_id, tmp_path, capsys):
    out = tmp_path / "frame.png"
    assert main(["render", str(run_dir), "--clip", clip_id, "--frame", "999", "--out", str(out)]) == 2
    assert "frame 999 is outside the clip's" in capsys.readouterr().err
    assert not out.exists()


def test_unknown_clip_id_suggests_the_closest_and_how_to_list_them(run_dir, clip_id, tmp_path, capsys):
    typo = clip_id[:-2] + clip_id[-1]
    assert main(["render", str(run_dir), "--clip", typo, "--out", str(tmp_path / "x.gif")]) == 2
    err = capsys.readouterr().err
    assert f"no clip '{typo}' in the val split; did you mean '{clip_id}'?" in err
    assert f"motionhub render {run_dir} --split val --list" in err
    assert main(["render", str(run_dir), "--list"]) == 0
    assert capsys.readouterr().out.split() == [clip_id]


def test_mp4_without_ffmpeg_names_the_fix_before_loading_anything(run_dir, clip_id, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(render, "ffmpeg_available", lambda: False)
    monkeypatch.setattr("motionhub.use.trained_run.load_run", lambda *a, **k: pytest.fail("loaded the run"))
    out = tmp_path / "clip.mp4"
    assert main(["render", str(run_dir), "--clip", clip_id, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "needs ffmpeg" in err and "install ffmpeg" in err and ".gif" in err
    assert not out.exists()


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setattr(render, "has_matplotlib", lambda: False)
    with pytest.raises(MotionhubError, match=r"pip install 'motionhub\[render\]'"):
        render.check_output(tmp_path / "clip.gif")
    with pytest.raises(MotionhubError, match="must end in .gif, .mp4, .png"):
        render.check_output(tmp_path / "clip.avi")


def spinning_tracks(frames: int = 6, views: int = 2, side: int = 5) -> np.ndarray:
    """(frames, views, side * side, 2) (row, col) points of a grid turning about the image centre."""
    g = np.linspace(-0.6, 0.6, side)
    grid = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
    angle = np.linspace(0.0, 0.6, frames)[:, None]
    row = grid[:, 0] * np.cos(angle) - grid[:, 1] * np.sin(angle)
    col = grid[:, 0] * np.sin(angle) + grid[:, 1] * np.cos(angle)
    points = np.stack([row, col], axis=-1)
    return np.stack([points * (1 - 0.2 * v) for v in range(views)], axis=1).astype(np.float32)


def test_point_tracks_with_trails_one_row_per_view(tmp_path):
    target = spinning_tracks()
    recon = target + np.random.default_rng(0).normal(0, 0.02, target.shape).astype(np.float32)
    fmt = layouts.point_tracks(views=2, tracks=25, fps=10.0)
    gif = render.render_clip(fmt, target, recon, tmp_path / "tracks.gif", clip_id="video/default/0")
    with Image.open(gif) as image:
        assert image.n_frames == len(target) and image.size == (800, 860)
        image.seek(len(target) - 1)
        drawn = np.asarray(image.convert("L")) < 200
        assert drawn[:, :400].sum() > 500 and drawn[:, 400:].sum() > 500  # both columns have points
    png = render.render_clip(fmt, target, recon, tmp_path / "tracks.png", clip_id="video/default/0", frame=3)
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (800, 860)


def test_report_figures_are_pngs_with_or_without_a_code_histogram(run_dir):
    written = figures.write_report_figures(run_dir)
    assert [p.name for p in written] == ["loss_curves.png", "codebook_usage.png"]
    codes = torch.from_numpy(np.random.default_rng(0).zipf(1.5, 2000) % 200)
    histogram = torch.bincount(codes, minlength=200)  # as the trainer's code_histogram_over returns it
    assert figures.write_report_figures(run_dir, histogram) == written
    for path in written:
        with Image.open(path) as image:
            image.verify()
            assert image.format == "PNG" and image.size == (700, 400)


def test_a_track_tokenizer_run_renders_its_decoded_tracks(tmp_path):
    from motionhub_amplify.tracks import decode_points

    tree = track_recipe(tmp_path, iters=2)
    run_dir = train(recipe_from_tree(tree, "tracks.yaml"))
    loaded = load_run(run_dir)
    clip = next(iter(loaded.dataset.clips("val")))
    motion = torch.from_numpy(clip.motion)[None]
    with torch.no_grad():
        outputs = loaded.model(motion)
    decoded = loaded.model.reconstruction(outputs, motion)
    assert torch.equal(decoded, decode_points(outputs["logits"], motion[:, :1], (64, 64)))
    assert torch.equal(decoded[:, 0], motion[:, 0])  # integrated from the true first frame

    # tokens decode the same way: the tokens file keeps each clip's first frame
    from motionhub.use.encoding import read_reconstruction

    tokens, recon_file = tmp_path / "tokens.h5", tmp_path / "recon.h5"
    assert main(["encode", str(run_dir), "--split", "val", "--out", str(tokens)]) == 0
    assert main(["decode", str(run_dir), str(tokens), "--out", str(recon_file)]) == 0
    recon, ids, _ = read_reconstruction(recon_file)
    i = ids.index(clip.id)
    np.testing.assert_allclose(recon.features[recon.offsets[i]:recon.offsets[i + 1]], decoded[0].numpy(), atol=1e-6)

    out = tmp_path / "tracks.gif"
    assert main(["render", str(run_dir), "--clip", clip.id, "--out", str(out)]) == 0
    with Image.open(out) as gif:
        assert gif.n_frames == 16
        gif.seek(15)
        rgb = np.asarray(gif.convert("RGB"), dtype=np.int32)
    coloured = (rgb.max(-1) - rgb.min(-1)) > 60  # track colours, not the grey axes or white paper
    half = rgb.shape[1] // 2
    assert coloured[:, :half].sum() > 20 and coloured[:, half:].sum() > 20  # ground truth | reconstruction


def walking_figure(distance: float, frames: int = 30) -> np.ndarray:
    """(T, 3, 3) y-up stick figure (pelvis, head, foot) 1.7 m tall walking ``distance`` m along x."""
    pelvis = np.stack([np.linspace(0, distance, frames), np.full(frames, 0.9), np.zeros(frames)], axis=-1)
    return np.stack([pelvis, pelvis + (0, 0.8, 0), pelvis + (0.1, -0.9, 0)], axis=1).astype(np.float32)


def blue_height(image: Image.Image) -> int:
    rows = np.flatnonzero((np.abs(np.asarray(image.convert("RGB"), dtype=np.int32) - BLUE).max(axis=-1) <= 40).any(1))
    return int(rows.max() - rows.min()) if len(rows) else 0


def test_the_view_follows_a_walk_so_the_body_stays_large(tmp_path):
    walk = walking_figure(distance=8.0)
    heights = []
    for frame in (0, len(walk) - 1):
        png = render.render_skeleton(walk, walk, [-1, 0, 0], tmp_path / f"{frame}.png", fps=20, title="walk",
                                     frame=frame)
        with Image.open(png) as image:
            heights.append(blue_height(image))
    # a 1.7 m body in a view sized to the 8 m path would be about 80 px tall
    assert min(heights) > 200 and abs(heights[0] - heights[1]) < 10

    z_up = walk[..., [0, 2, 1]] * (1, -1, 1)
    camera = render.SkeletonCamera.fit([z_up])
    assert camera.centre is None and camera.half == pytest.approx(0.85 * 1.1)
    for t in (0, 29):
        (x0, x1), (y0, y1) = camera.window(z_up, t)
        assert (x0 + x1) / 2 == pytest.approx(z_up[t, 0, 0]) and (y0 + y1) / 2 == pytest.approx(z_up[t, 0, 1])
        lines = camera.grid((x0, x1), (y0, y1))
        assert lines and all(np.allclose(line[:, 2], camera.floor) for line in lines)


def test_a_clip_that_stays_in_view_keeps_a_fixed_view():
    z_up = walking_figure(distance=0.3)[..., [0, 2, 1]] * (1, -1, 1)
    camera = render.SkeletonCamera.fit([z_up, z_up + (0.05, 0, 0)])
    assert camera.centre is not None
    assert camera.window(z_up, 0) == camera.window(z_up, 29)


@pytest.mark.parametrize("about, spacing", [(0.47, 0.2), (0.5, 0.5), (3.0, 2.0), (120.0, 100.0)])
def test_floor_grid_spacing_is_a_round_number(about, spacing):
    assert render._nice_spacing(about) == pytest.approx(spacing)
