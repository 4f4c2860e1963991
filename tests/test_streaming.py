"""Streaming encode: causal conv1d and transformer encoders fed chunk by chunk give the ids of the
whole sequence at once, their outputs never read later frames, ``bench --streaming`` times the
stream beside the sliding window, and bad chunks or models are one clear message."""

import functools
import json

import numpy as np
import pytest
import torch
from helpers import TINY_RECIPE

from motionhub.cli import main
from motionhub.data.dataset import Clip
from motionhub.errors import DataError, MotionhubError
from motionhub.model.build import build_dataset, build_tokenizer
from motionhub.recipes import recipe_from_tree
from motionhub.train.trainer import train
from motionhub.use.bench import stream_windows
from motionhub.use.streaming import StreamingEncoder, StreamingError
from motionhub.use.streaming_bench import first_tokens, stream_chunks, time_chunks

CONV = {"name": "conv1d", "width": 32, "depth": 3, "down_t": 2, "output_emb_width": 16, "causal": True}
ENCODERS = {
    "conv1d": CONV,
    "conv1d_ln_stride4": {**CONV, "down_t": 1, "stride_t": 4, "dilation_growth": 2, "norm": "LN"},
    "transformer": {"name": "transformer", "width": 32, "depth": 2, "heads": 4, "down_t": 2, "output_emb_width": 16,
                    "causal": True, "max_len": 128, "positional": "learned"},
}
FRAMES = 80


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one torch thread spares each op a hand-off between threads on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def _build(encoder: tuple):
    encoder = dict(encoder)
    tree = {**TINY_RECIPE, "data": {**TINY_RECIPE["data"], "clips": 4}, "encoder": encoder,
            "decoder": {"name": encoder["name"]}}
    recipe = recipe_from_tree(tree, "streaming.yaml")
    dataset = build_dataset(recipe)
    motion = np.concatenate([clip.motion for clip in dataset.clips("train")])[:FRAMES]
    fmt = dataset.format.with_stats(motion.mean(0), motion.std(0) + 1e-3)
    torch.manual_seed(0)
    model = build_tokenizer(recipe, fmt).eval()
    with torch.no_grad():  # spread the latents over FSQ's levels, so the ids vary from token to token
        model.encoder.proj_out.weight.mul_(20)
    return model, fmt, motion


def build(encoder: dict):
    """An untrained tokenizer with ``encoder`` (built once per encoder), its format normalised by
    synthetic clips' statistics, and their first FRAMES frames (raw)."""
    return _build(tuple(sorted((key, tuple(v) if isinstance(v, list) else v) for key, v in encoder.items())))


def offline(model, fmt, motion: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """Latents (T', C) and ids (T',) of the whole motion encoded at once."""
    with torch.no_grad():
        x = fmt.normalise(torch.from_numpy(motion))[None]
        latents = model.encoder(x)[0]
    return latents, model.encode(x)[0].numpy()


def chunk_sizes(kind, total: int) -> list[int]:
    if kind == "random":
        rng = np.random.default_rng(0)
        sizes = rng.integers(0, 9, size=total).tolist()  # 0: a push that brings no frame
    else:
        sizes = [kind] * (total // kind + 1)
    return sizes


@pytest.fixture(scope="module", params=sorted(ENCODERS))
def built(request):
    return request.param, *build(ENCODERS[request.param])


@pytest.mark.parametrize("chunk", [1, 3, 4, 7, 64, "random"])
def test_streamed_ids_equal_the_whole_sequence_encoded_at_once(built, chunk):
    _, model, fmt, motion = built
    latents, ids = offline(model, fmt, motion)
    assert len(np.unique(ids)) > 4  # a model emitting one id everywhere would pass vacuously

    stream = StreamingEncoder(model, fmt)
    pushed, got, start = [], [], 0
    for size in chunk_sizes(chunk, FRAMES):
        piece = motion[start:start + size]
        start += len(piece)
        out = stream.push(piece)
        assert isinstance(out, np.ndarray) and out.dtype == np.int64
        # a token is out as soon as its last frame is in, and not before
        assert stream.tokens == start // model.downsample
        got.append(out)
        pushed.append(len(piece))
    assert sum(pushed) == FRAMES == stream.frames_seen
    np.testing.assert_array_equal(np.concatenate(got), ids)

    # the encoder's own streaming form, on latents: equal up to float rounding (kernels differ with the length)
    inner = model.encoder.stream()
    x = fmt.normalise(torch.from_numpy(motion))[None]
    with torch.no_grad():
        streamed = torch.cat([inner.push(x[:, a:a + 5]) for a in range(0, FRAMES, 5)], dim=1)[0]
    torch.testing.assert_close(streamed, latents, rtol=1e-5, atol=1e-5)


def test_reset_starts_a_new_stream_and_batched_torch_streams_match(built):
    _, model, fmt, motion = built
    _, ids = offline(model, fmt, motion)
    stream = StreamingEncoder(model, fmt)
    stream.push(motion[:30][::-1].copy())  # an unrelated stream, then forgotten
    stream.reset()
    assert stream.frames_seen == stream.tokens == 0
    twice = torch.from_numpy(np.stack([motion, motion]))
    got = torch.cat([stream.push(twice[:, a:a + 6]) for a in range(0, FRAMES, 6)], dim=1)
    assert isinstance(got, torch.Tensor) and got.shape == (2, len(ids))
    np.testing.assert_array_equal(got[0].numpy(), ids)
    np.testing.assert_array_equal(got[1].numpy(), ids)


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_causal_outputs_never_read_later_frames(name):
    model, fmt, motion = build(ENCODERS[name])
    cut = 40  # frames >= cut change; the tokens made of frames < cut must not
    changed = motion.copy()
    changed[cut:] = np.random.default_rng(1).normal(size=changed[cut:].shape) * motion.std(0) + motion.mean(0)
    before, after = offline(model, fmt, motion)[0], offline(model, fmt, changed)[0]
    done = cut // model.downsample
    assert torch.equal(before[:done], after[:done])
    assert not torch.allclose(before[done:], after[done:])

    # the same encoder without the left padding reads ahead: the check above can fail
    model, fmt, motion = build({**ENCODERS[name], "causal": False})
    before, after = offline(model, fmt, motion)[0], offline(model, fmt, changed)[0]
    assert not torch.allclose(before[:done], after[:done])


def test_a_causal_conv_encoder_keeps_the_weights_and_keys_of_the_two_sided_one():
    causal, _, _ = build(CONV)
    two_sided, _, _ = build({**CONV, "causal": False})
    assert causal.encoder.state_dict().keys() == two_sided.encoder.state_dict().keys()
    for key, value in causal.encoder.state_dict().items():
        assert torch.equal(value, two_sided.encoder.state_dict()[key]), key
    assert not causal.decoder.state_dict().keys() - two_sided.decoder.state_dict().keys()


def test_chunks_of_the_wrong_width_or_batch_are_one_message_naming_both_shapes():
    model, fmt, motion = build(CONV)
    stream = StreamingEncoder(model, fmt)
    with pytest.raises(StreamingError, match=r"a chunk of shape \(5, 250\) does not fit this stream: its frames have "
                                             r"shape \(263,\) \(humanml3d_263 features\), so give \(n, 263\)"):
        stream.push(motion[:5, :250])
    with pytest.raises(StreamingError, match=r"shape \(263,\)"):
        stream.push(motion[:5, 0])  # frames without their feature axis
    stream.push(np.stack([motion[:4]] * 2))
    with pytest.raises(StreamingError, match=r"carries 2 sequence\(s\) side by side but a chunk of shape "
                                             r"\(3, 4, 263\) has 3; call reset\(\)"):
        stream.push(np.stack([motion[:4]] * 3))
    assert stream.frames_seen == 4  # the refused chunks changed nothing


@pytest.mark.parametrize("name", ["conv1d", "transformer"])
def test_a_non_causal_encoder_is_refused_with_the_recipe_key_to_set(name):
    model, fmt, _ = build({**ENCODERS[name], "causal": False})
    with pytest.raises(StreamingError, match="is not causal: .* train the run with encoder.causal: true"):
        StreamingEncoder(model, fmt)
    with pytest.raises(MotionhubError, match="train it with encoder.causal: true"):
        model.encoder.stream()


def test_group_norm_is_refused_for_a_causal_conv_encoder():
    with pytest.raises(MotionhubError, match="norm 'GN' pools each group over all frames, so a causal encoder "
                                             "cannot use it; use norm 'LN' or 'BN'"):
        build({**CONV, "norm": "GN"})


def test_a_transformer_stream_stops_where_its_positions_end():
    model, fmt, motion = build(ENCODERS["transformer"])  # max_len 128 frames
    stream = StreamingEncoder(model, fmt)
    assert stream.max_frames == 128
    stream.push(np.concatenate([motion, motion[:48]]))
    with pytest.raises(StreamingError, match="would reach 129 frames, more than the 128 the encoder holds .* "
                                             "call reset"):
        stream.push(motion[:1])
    stream.reset()
    assert len(stream.push(motion[:8])) == 2


def test_stream_chunks_restart_per_clip_and_where_the_context_is_full():
    clips = [Clip(f"c{i}", np.zeros((n, 3), np.float32)) for i, n in enumerate([10, 13, 9])]
    joined = stream_chunks(stream_windows(clips, window=8, stride=4, limit=None), max_frames=None)
    assert joined.starts.tolist() == list(range(0, 32, 4)) and joined.restart.tolist() == [True] + [False] * 7
    bounded = stream_chunks(stream_windows(clips, window=8, stride=4, limit=None), max_frames=12)
    assert np.flatnonzero(bounded.restart).tolist() == [0, 3, 6]  # 3 chunks of 4 frames fill 12
    per_clip = stream_chunks(stream_windows(clips, window=8, stride=4, limit=None, per_clip=True), max_frames=None)
    assert per_clip.starts.tolist() == [0, 4, 10, 14, 18, 23, 27]
    assert [r["clip_id"] for r in per_clip.rows() if r["restart"]] == ["c0", "c1", "c2"]
    with pytest.raises(DataError, match="the stream has no whole chunk of 40 frames .--stride. to stream; "
                                        "lower --stride"):
        stream_chunks(stream_windows(clips, window=8, stride=40, limit=None), max_frames=None)
    with pytest.raises(DataError, match="a chunk of 16 frames .--stride. is longer than the 12 frames the encoder "
                                        "holds .encoder.max_len.; lower --stride"):
        stream_chunks(stream_windows(clips, window=8, stride=16, limit=None), max_frames=12)


def test_a_timed_transformer_stream_restarts_where_its_context_is_full():
    model, fmt, motion = build(ENCODERS["transformer"])  # max_len 128 frames, a token per 4 frames
    stream = StreamingEncoder(model, fmt)
    clips = [Clip(f"c{i}", motion) for i in range(3)]  # 240 frames back to back
    chunks = stream_chunks(stream_windows(clips, window=8, stride=4, limit=None), stream.max_frames)
    assert len(chunks) == 60 and np.flatnonzero(chunks.restart).tolist() == [0, 32]
    timings = time_chunks(stream, chunks, warmup=40)  # the warm-up passes the context's end too
    assert (timings.latencies_ms > 0).all() and timings.tokens.tolist() == [1] * 60
    first = first_tokens(timings, chunks, fps=20.0)
    assert (first["streams"], first["frames"], first["wait_ms"]) == (2, 4.0, 200.0)
    assert first["compute_ms"] == pytest.approx(timings.latencies_ms[[0, 32]].mean())


@pytest.fixture(scope="module")
def causal_run(tmp_path_factory):
    """A tiny trained run with a causal conv encoder (down-sampling 2) and 5 val clips of 30-44 frames."""
    out = tmp_path_factory.mktemp("streaming") / "run"
    tree = {**TINY_RECIPE, "run": {"name": "streaming", "out": str(out), "seed": 0},
            "encoder": {**TINY_RECIPE["encoder"], "causal": True},
            "data": {**TINY_RECIPE["data"], "clips": 20, "val_fraction": 0.25, "min_frames": 30, "max_frames": 44},
            "train": {**TINY_RECIPE["train"], "iters": 2}, "eval": {"train_codebook": False}}
    return train(recipe_from_tree(tree, "streaming.yaml"))


def test_bench_streaming_times_each_chunk_beside_the_sliding_window(causal_run, tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["bench", str(causal_run), "--window", "8", "--stride", "4", "--windows", "20", "--warmup", "1",
            "--threads", "1", "--streaming", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "streaming (Conv1dEncoder, state kept between chunks) vs sliding window" in printed
    assert "streaming keeps up" in printed or "streaming LAGS" in printed
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "chunks.jsonl").read_text().splitlines()]
    s = summary["streaming"]

    # the 20 windows of 8 frames, 4 apart, cover 84 frames: 21 chunks of 4, one stream
    assert s["chunk"] == 4 and s["chunks"] == len(rows) == 21 and s["streams"] == 1
    assert [r["stream_frame"] for r in rows] == list(range(0, 84, 4))
    assert all(r["tokens"] == 2 for r in rows) and s["tokens"] == 42  # 4 frames, down-sampling 2
    assert all(r["latency_ms"] > 0 and r["slack_ms"] == pytest.approx(s["budget_ms"] - r["latency_ms"])
               for r in rows)
    latency = s["latency_ms"]
    assert 0 < latency["min"] <= latency["p50"] <= latency["p95"] <= latency["max"]
    assert latency["mean"] == pytest.approx(np.mean([r["latency_ms"] for r in rows]))
    assert s["budget_ms"] == summary["budget_ms"] == pytest.approx(4000 / summary["fps"])
    assert s["late_chunks"] == sum(r["status"] == "LAG" for r in rows)
    assert s["verdict"].split(":")[0] in ("keeps up", "LAGS") and "of 21 chunks" in s["verdict"]

    # the first id needs 2 frames, so it comes with the first chunk of 4; the window's after 8 frames
    first, window_first = s["first_token"], s["window_first_token"]
    assert first["frames"] == 4 and first["wait_ms"] == pytest.approx(4000 / summary["fps"])
    assert first["compute_ms"] == pytest.approx(rows[0]["latency_ms"])
    assert first["total_ms"] == pytest.approx(first["wait_ms"] + first["compute_ms"])
    assert window_first["frames"] == 8 and window_first["compute_ms"] == pytest.approx(summary["latency_ms"]["mean"])

    # a convolution's work is per output frame: a chunk of 4 new frames costs 4 / 8 of a window of 8
    saved = s["work_saved"]
    assert saved["window_flops"] > 0 and saved["flops_ratio"] == pytest.approx(8 / 4)
    assert saved["time_ratio"] == pytest.approx(summary["latency_ms"]["mean"] / latency["mean"])


def test_bench_streaming_refuses_a_non_causal_encoder(causal_run, tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", str(causal_run), "encoder.causal=false", "--streaming", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "the encoder Conv1dEncoder is not causal" in err and "encoder.causal: true" in err
    assert "Traceback" not in err and not out.exists()
