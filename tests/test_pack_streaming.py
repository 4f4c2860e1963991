"""Packing at scale: flat memory, a killed pack resumes, parts packed apart merge into the same store."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from motionhub_motionmillion import MotionMillion
from motionhub_synthetic.folders import write_motionmillion_folder

from motionhub.data import store as store_module
from motionhub.data.dataset import Clip, Dataset
from motionhub.data.formats import MotionFormat
from motionhub.data.store import Store, merge_parts, open_or_pack, pack_part, part_path, store_path
from motionhub.errors import DataError

FMT = MotionFormat("toy", (6,), 30.0, {"a": slice(0, 2), "b": slice(2, 6)})


class Listed(Dataset):
    """``count`` clips made on the fly (far from zero, as millimetre positions are), which knows its
    clip count and can start at any position; ``log`` records the positions it is asked for."""

    format = FMT

    def __init__(self, count: int = 23, log: Path | None = None, kill_at: int | None = None, frames: int = 40,
                 features: int = 6):
        self.count, self.log, self.kill_at, self.frames = count, log, kill_at, frames
        if features != 6:
            self.format = MotionFormat("wide", (features,), 30.0, {"all": slice(0, features)})

    def clip(self, position: int) -> Clip:
        rng = np.random.default_rng(position)
        length = 0 if position == 5 else int(rng.integers(1, self.frames))
        motion = (rng.standard_normal((length, *self.format.feature_shape)) * 3 + 1000).astype(np.float32)
        return Clip(f"seq/{position:04d}", motion, [f"caption {position}"] if position % 3 else [])

    def clips(self, split):
        return (clip for _, clip in self.clips_from(split))

    def clip_count(self, split):
        return self.count if split == "train" else 0

    def clips_from(self, split, start=0, stop=None):
        if self.log is not None:
            with open(self.log, "a") as f:
                f.write(f"{start}\n")
        for position in range(start, self.count if stop is None else stop):
            if position == self.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)  # as a machine going down would
            yield position, self.clip(position)

    def fingerprint(self):
        return f"listed-{self.count}"


def contents(path: Path) -> dict[str, bytes]:
    """The bytes of everything a store holds but its attributes' part record."""
    with h5py.File(path, "r") as f:
        out = {name: f[name][()].tobytes() for name in ("offsets", "clip_moments")}
        out.update({name: "\n".join(f[name].asstr()[()]).encode() for name in ("ids", "texts")})
        out.update({f"stats/{name}": f["stats"][name][()].tobytes() for name in f["stats"]})
        out.update({name: str(f.attrs[name]).encode() for name in f.attrs if name != "part"})
    out["frames"] = np.asarray(Store.open(path).frames).tobytes()
    return out


@pytest.fixture(autouse=True)
def small_checkpoints(monkeypatch):
    monkeypatch.setattr(store_module, "_CHECKPOINT_CLIPS", 4)


def test_statistics_are_exact_over_all_frames(tmp_path):
    store = open_or_pack(Listed(), "train", tmp_path)
    frames = np.concatenate([Listed().clip(i).motion for i in range(23)]).astype(np.float64)
    np.testing.assert_allclose(store.feature_mean(), frames.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(store.feature_std(), frames.std(axis=0), rtol=1e-10)
    assert store.texts[1] == "caption 1" and store.lengths[5] == 0


@pytest.mark.parametrize("count", [2, 3, 7])
def test_parts_packed_apart_merge_into_the_store_a_whole_pack_writes(tmp_path, count):
    whole = open_or_pack(Listed(), "train", tmp_path / "whole")
    for index in reversed(range(count)):  # any order, as separate processes finish
        pack_part(Listed(), "train", index, count, tmp_path / "parts")
    merged = open_or_pack(Listed(), "train", tmp_path / "parts")
    assert contents(merged.path) == contents(whole.path)
    assert sorted(p.name for p in merged.path.parent.iterdir()) == [
        "train.h5", "train.h5.lock", *sorted(f"train.part-{i}-of-{count}.h5.lock" for i in range(count))]


def test_a_folder_data_set_packs_in_parts_reading_only_its_part(tmp_path):
    root = write_motionmillion_folder(tmp_path / "MotionMillion", clips=30, seed=1)
    data = MotionMillion(str(root))
    listed = data.clip_count("train")
    read = []
    original = data._load_clip
    data._load_clip = lambda clip_id: read.append(clip_id) or original(clip_id)
    second = pack_part(data, "train", 1, 2, tmp_path / "parts")
    assert read == data.split_ids["train"][listed // 2:]  # the other part's files are not read
    assert second.part.first == listed // 2 and second.part.stop == listed == second.part.listed
    pack_part(MotionMillion(str(root)), "train", 0, 2, tmp_path / "parts")
    merged = open_or_pack(MotionMillion(str(root)), "train", tmp_path / "parts")
    whole = open_or_pack(MotionMillion(str(root)), "train", tmp_path / "whole")
    assert contents(merged.path) == contents(whole.path) and merged.ids == data.split_ids["train"]


def _pack_until_killed(cache: str, kill_at: int) -> None:
    store_module._CHECKPOINT_CLIPS = 4
    store_module._READ_AHEAD = 1  # the clips read ahead when the kill comes are known: two at most
    open_or_pack(Listed(kill_at=kill_at), "train", cache)


def test_a_killed_pack_resumes_from_its_last_checkpoint(tmp_path):
    child = multiprocessing.get_context("fork").Process(target=_pack_until_killed, args=(str(tmp_path), 14))
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    path, _ = store_path(Listed(), "train", tmp_path)
    assert not path.exists()  # nothing that looks like a store
    partial = path.with_name("train.h5.partial")
    assert partial.is_dir()
    with open(partial / "clips.jsonl", "a") as f:  # a checkpoint line cut off by the kill
        f.write('{"next": 99, "clips": [["seq/9')
    with open(partial / "frames.raw", "ab") as f:  # and frames written after the last checkpoint
        f.write(b"\0" * 1000)

    log = tmp_path / "log.txt"
    resumed = open_or_pack(Listed(log=log), "train", tmp_path)
    assert log.read_text().split() == ["12"]  # three checkpoints of four clips were kept
    fresh = open_or_pack(Listed(), "train", tmp_path / "fresh")
    assert contents(resumed.path) == contents(fresh.path)
    assert not partial.exists()


def test_a_partial_pack_of_other_data_is_not_resumed(tmp_path):
    child = multiprocessing.get_context("fork").Process(target=_pack_until_killed, args=(str(tmp_path), 10))
    child.start()
    child.join(60)
    path, _ = store_path(Listed(), "train", tmp_path)
    meta = path.with_name("train.h5.partial") / "meta.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "fingerprint": "other"}))
    log = tmp_path / "log.txt"
    store = open_or_pack(Listed(log=log), "train", tmp_path)
    assert log.read_text().split() == ["0"] and len(store) == 23


def test_parts_that_do_not_fit_together_are_explained(tmp_path):
    pack_part(Listed(), "train", 0, 3, tmp_path)
    pack_part(Listed(), "train", 2, 3, tmp_path)
    with pytest.raises(DataError, match=r"parts 1 of 3 are not packed yet \(run motionhub pack <recipe> --part 1/3\)"):
        open_or_pack(Listed(), "train", tmp_path)
    pack_part(Listed(), "train", 1, 2, tmp_path)
    with pytest.raises(DataError, match=r"parts of different splittings lie together \(--part i/2 and i/3\).*\(rm "):
        open_or_pack(Listed(), "train", tmp_path)

    path, _ = store_path(Listed(), "train", tmp_path)
    other = Listed(count=30)
    with pytest.raises(DataError, match="packed from other data or another recipe"):
        merge_parts([part_path(path, 0, 3)], path, fingerprint=store_path(other, "train", tmp_path)[1])
    with pytest.raises(DataError, match="23 parts|lists only 23 clips; use at most 23 parts"):
        pack_part(Listed(), "train", 0, 24, tmp_path)

    class Unlisted(Listed):
        def clip_count(self, split):
            return None

    with pytest.raises(DataError, match="cannot be packed in parts.*without --part"):
        pack_part(Unlisted(), "train", 0, 2, tmp_path)


_MEMORY_PROBE = textwrap.dedent("""
    import resource, sys
    import numpy as np
    sys.path.insert(0, sys.argv[2])
    from test_pack_streaming import Listed
    from motionhub.data.store import open_or_pack
    data = Listed(count=int(sys.argv[1]), frames=600, features=272)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    store = open_or_pack(data, "train", sys.argv[3])
    added = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(added // 1024, store.frames.nbytes // 2**20)
""")


def test_peak_memory_does_not_grow_with_the_data(tmp_path):
    added = {}
    for clips in (150, 600):
        result = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(clips), str(Path(__file__).parent),
                                 str(tmp_path / str(clips))], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        added[clips], size = (int(v) for v in result.stdout.split())
        assert size > 40 * clips / 150  # MiB: the data really grows
    # four times the data (~45 and ~180 MiB): the peak stays flat (the packer before grew with the data);
    # what it adds is a few clips read ahead and the float64 copy of the clip being packed
    assert added[600] < added[150] + 16, added
    assert added[600] < 80, added
