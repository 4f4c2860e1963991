"""The text-to-motion evaluator plugin without its published weights: networks, files, inputs, metrics.

The networks are built with seeded random weights; figures are checked against values derived
independently (closed forms, constructed embeddings). Tests that need the published files run
when ``MOTIONHUB_EVALUATOR_DIR`` holds them and skip otherwise.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import REAL_DATA

from motionhub.plugins.manager import get_registry
from motionhub_t2m import metrics
from motionhub_t2m.files import (
    PUBLISHED_SHA256, EvaluatorFileError, Vocabulary, find_stats, load_evaluator, load_evaluator_files, read_plain_pickle,
    read_vocabulary,
)
from motionhub_t2m.modules import T2MEvaluator, padded_length, parameter_counts
from motionhub_t2m.protocol import Embedder, EvalSet, draw, run_protocol, tokenizer_reconstructor
from motionhub_t2m.words import POS_INDEX, TOKENS, WordEmbedder, caption_tokens

EVALUATOR_DIR = os.environ.get("MOTIONHUB_EVALUATOR_DIR")


# ---------------------------------------------------------------------------- the layout the note gives
def gru_keys(inputs: int, hidden: int) -> dict[str, tuple[int, ...]]:
    keys = {}
    for suffix in ("", "_reverse"):
        keys |= {f"gru.weight_ih_l0{suffix}": (3 * hidden, inputs), f"gru.weight_hh_l0{suffix}": (3 * hidden, hidden),
                 f"gru.bias_ih_l0{suffix}": (3 * hidden,), f"gru.bias_hh_l0{suffix}": (3 * hidden,)}
    return keys


def published_layout(features: int) -> dict[str, dict[str, tuple[int, ...]]]:
    """finest.tar's state dicts, key by key, as the published files store them."""
    movement = {"main.0.weight": (512, features - 4, 4), "main.0.bias": (512,), "main.3.weight": (512, 512, 4),
                "main.3.bias": (512,), "out_net.weight": (512, 512), "out_net.bias": (512,)}
    text = {"hidden": (2, 1, 512), "pos_emb.weight": (300, 15), "pos_emb.bias": (300,),
            "input_emb.weight": (512, 300), "input_emb.bias": (512,), **gru_keys(512, 512),
            "output_net.0.weight": (512, 1024), "output_net.0.bias": (512,), "output_net.1.weight": (512,),
            "output_net.1.bias": (512,), "output_net.3.weight": (512, 512), "output_net.3.bias": (512,)}
    motion = {"hidden": (2, 1, 1024), "input_emb.weight": (1024, 512), "input_emb.bias": (1024,),
              **gru_keys(1024, 1024), "output_net.0.weight": (1024, 2048), "output_net.0.bias": (1024,),
              "output_net.1.weight": (1024,), "output_net.1.bias": (1024,), "output_net.3.weight": (512, 1024),
              "output_net.3.bias": (512,)}
    return {"movement_encoder": movement, "motion_encoder": motion, "text_encoder": text}


@pytest.fixture(scope="module")
def evaluator() -> T2MEvaluator:
    torch.manual_seed(0)
    return T2MEvaluator("t2m")


@pytest.mark.parametrize("ds, features, movement, total", [("t2m", 263, 1_842_688, 21_690_560),
                                                            ("kit", 251, 1_818_112, 21_665_984)])
def test_parameter_counts_equal_the_published_evaluators(ds, features, movement, total):
    model = T2MEvaluator(ds)
    assert parameter_counts(model) == total
    counts = {name: parameter_counts(part) for name, part in model.parts().items()}
    assert counts == {"movement_encoder": movement, "motion_encoder": 15_747_584, "text_encoder": 4_100_288}
    # the published layout itself adds up to the same numbers
    layout = published_layout(features)
    assert sum(math.prod(shape) for part in layout.values() for shape in part.values()) == total


@pytest.mark.parametrize("ds, features", [("t2m", 263), ("kit", 251)])
def test_state_dict_keys_and_shapes_are_finest_tar_s(ds, features):
    model = T2MEvaluator(ds)
    ours = {name: {key: tuple(t.shape) for key, t in part.state_dict().items()} for name, part in model.parts().items()}
    assert ours == published_layout(features)


def test_the_evaluator_never_trains(evaluator):
    assert not evaluator.training
    with pytest.raises(RuntimeError, match="only evaluates"):
        evaluator.train()


# ---------------------------------------------------------------------------- networks: shapes, masking, order
def random_motions(batch: int, lengths, frames: int = 196, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, frames, 263, generator=g)
    for i, n in enumerate(lengths):
        x[i, n:] = 0
    return x


def test_movement_encoder_reads_without_contacts_and_quarters_time(evaluator):
    out = evaluator.movement_encoder(torch.randn(2, 196, 259))
    assert out.shape == (2, 49, 512)
    emb = evaluator.motion_embeddings(random_motions(3, [196, 120, 40]), torch.tensor([196, 120, 40]))
    assert emb.shape == (3, 512) and torch.isfinite(emb).all()


def test_the_foot_contacts_are_not_read(evaluator):
    x = random_motions(2, [120, 80])
    y = x.clone()
    y[..., -4:] = torch.randn_like(y[..., -4:]) * 10
    lengths = torch.tensor([120, 80])
    assert torch.equal(evaluator.motion_embeddings(x, lengths), evaluator.motion_embeddings(y, lengths))


def test_motion_padding_beyond_what_the_convolutions_read_does_not_change_the_embedding(evaluator):
    lengths = torch.tensor([100, 60, 196])
    x = random_motions(3, lengths.tolist())
    reference = evaluator.motion_embeddings(x, lengths)
    changed = x.clone()
    for i, n in enumerate(lengths.tolist()):
        changed[i, n + 3:] = torch.randn(196 - min(196, n + 3), 263)  # the last valid step reads up to n + 2
    assert torch.allclose(evaluator.motion_embeddings(changed, lengths), reference, atol=1e-5)
    # and the frames just past the length are read: the reference's zero padding is part of the input
    touched = x.clone()
    touched[1, 60:63] = 5.0
    assert not torch.allclose(evaluator.motion_embeddings(touched, lengths)[1], reference[1], atol=1e-4)
    # padding a batch only as far as its longest needs equals padding to 196
    short = x[1:2, :padded_length(60)]
    assert short.shape[1] == 64
    assert torch.allclose(evaluator.motion_embeddings(short, lengths[1:2]), reference[1:2], atol=1e-5)


def test_text_padding_beyond_the_caption_length_does_not_change_the_embedding(evaluator):
    g = torch.Generator().manual_seed(1)
    words, pos = torch.randn(2, 22, 300, generator=g), torch.zeros(2, 22, 15)
    pos[..., 14] = 1
    lengths = torch.tensor([9, 22])
    reference = evaluator.text_embeddings(words, pos, lengths)
    words2 = words.clone()
    words2[0, 9:] = torch.randn(13, 300, generator=g)
    assert torch.allclose(evaluator.text_embeddings(words2, pos, lengths), reference, atol=1e-6)
    words2[0, 8] += 1.0  # the last counted token matters
    assert not torch.allclose(evaluator.text_embeddings(words2, pos, lengths)[0], reference[0], atol=1e-4)


def test_rows_come_back_in_input_order_whatever_their_lengths(evaluator):
    lengths = torch.tensor([40, 196, 120, 120, 64, 180])  # unsorted, with a tie
    x = random_motions(6, lengths.tolist(), seed=3)
    batch = evaluator.motion_embeddings(x, lengths)
    alone = torch.cat([evaluator.motion_embeddings(x[i:i + 1], lengths[i:i + 1]) for i in range(6)])
    assert torch.allclose(batch, alone, atol=1e-5)
    # as the reference does it: sort by length (longest first), pack sorted, and the order restored
    order = torch.argsort(lengths, descending=True, stable=True)
    movements = evaluator.movement_encoder(x[order][..., :-4])
    packed = torch.nn.utils.rnn.pack_padded_sequence(evaluator.motion_encoder.input_emb(movements),
                                                     lengths[order] // 4, batch_first=True, enforce_sorted=True)
    _, last = evaluator.motion_encoder.gru(packed, evaluator.motion_encoder.hidden.repeat(1, 6, 1))
    sorted_emb = evaluator.motion_encoder.output_net(torch.cat([last[0], last[1]], -1))
    assert torch.allclose(sorted_emb, batch[order], atol=1e-5)
    assert not torch.allclose(batch, batch[order], atol=1e-3)  # the order really was restored


def test_text_rows_come_back_in_input_order(evaluator):
    g = torch.Generator().manual_seed(4)
    words, pos = torch.randn(5, 22, 300, generator=g), torch.zeros(5, 22, 15)
    pos[..., 2] = 1
    lengths = torch.tensor([5, 22, 12, 12, 8])
    batch = evaluator.text_embeddings(words, pos, lengths)
    alone = torch.cat([evaluator.text_embeddings(words[i:i + 1], pos[i:i + 1], lengths[i:i + 1]) for i in range(5)])
    assert torch.allclose(batch, alone, atol=1e-5)


# ---------------------------------------------------------------------------- metrics
def test_fid_of_two_gaussians_equals_the_closed_form():
    # diagonal covariances commute: FID = |mu1 - mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = 1 + 0 + 4 + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 1) ** 2
    assert metrics.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, abs=1e-10)
    # non-commuting 2x2: tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)) for M = S1 S2 (eigenvalues >= 0)
    a, b = np.array([[2.0, 0.8], [0.8, 1.0]]), np.array([[1.0, -0.3], [-0.3, 3.0]])
    m = a @ b
    cross = math.sqrt(np.trace(m) + 2 * math.sqrt(np.linalg.det(m)))
    expected = np.trace(a) + np.trace(b) - 2 * cross + 0.25
    assert metrics.frechet_distance(np.zeros(2), a, np.array([0.5, 0.0]), b) == pytest.approx(expected, abs=1e-10)


def test_fid_from_samples_approaches_the_closed_form_and_is_zero_for_one_set():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((200_000, 2)) @ np.linalg.cholesky(np.array([[2.0, 0.8], [0.8, 1.0]])).T
    b = rng.standard_normal((200_000, 2)) * np.array([1.0, 2.0]) + np.array([1.0, 0.0])
    closed = metrics.frechet_distance(np.zeros(2), np.array([[2.0, 0.8], [0.8, 1.0]]), np.array([1.0, 0.0]),
                                      np.diag([1.0, 4.0]))
    assert metrics.fid(a, b) == pytest.approx(closed, rel=0.02)
    x = rng.standard_normal((300, 16))
    assert abs(metrics.fid(x, x)) < 1e-8


def group_of(n: int = 32, dim: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)) * 10


def test_identical_pairs_are_all_found_first():
    t = group_of()
    figures = metrics.retrieval_figures(metrics.retrieval_sums(t, t.copy()))
    assert figures == {"top1": 1.0, "top2": 1.0, "top3": 1.0, "mm_dist": 0.0}


def test_a_known_permutation_gives_known_ranks():
    # captions on a line 10 apart; motion column j holds caption j's point except columns 0 and 1 swapped,
    # so captions 0 and 1 find their own motion second, every other caption first
    t = np.zeros((64, 4))
    t[:, 0] = np.tile(np.arange(32) * 10.0, 2)
    m = t.copy()
    for g in (0, 32):
        m[[g, g + 1]] = m[[g + 1, g]]
    figures = metrics.retrieval_figures(metrics.retrieval_sums(t, m))
    assert figures["top1"] == pytest.approx(60 / 64) and figures["top2"] == 1.0 and figures["top3"] == 1.0
    assert figures["mm_dist"] == pytest.approx(4 * 10 / 64)
    # a caption whose motion is the third nearest counts at top-3 only
    m3 = t[:32].copy()
    m3[[0, 1, 2]] = m3[[2, 0, 1]]  # own motion of caption 0 now sits 20 away, behind 0 and 10
    sums = metrics.retrieval_sums(t[:32], m3)
    ranks = metrics.own_ranks(t[None, :32], m3[None])[0]
    assert ranks[0] == 2 and sums["top1"] < sums["top2"] < sums["top3"] == 32


def test_ties_go_to_the_lower_column_and_groups_must_be_whole():
    t = np.zeros((32, 2))
    sums = metrics.retrieval_sums(t, t)  # all equally near: caption i finds its motion in place i
    assert (sums["top1"], sums["top2"], sums["top3"]) == (1, 2, 3)
    with pytest.raises(ValueError, match="whole groups of 32"):
        metrics.retrieval_sums(group_of(40), group_of(40))


def test_mm_dist_of_known_offsets():
    m = group_of(64)
    t = m + np.eye(8)[np.arange(64) % 8] * 3.0
    assert metrics.retrieval_figures(metrics.retrieval_sums(t, m))["mm_dist"] == pytest.approx(3.0)


def test_diversity_of_known_points():
    points = np.zeros((500, 3))
    points[:, 0] = np.arange(500)
    value = metrics.diversity(points, np.random.default_rng(7))
    rng = np.random.default_rng(7)  # the same draws: 300 of 500, twice, without replacement
    a, b = rng.choice(500, 300, replace=False), rng.choice(500, 300, replace=False)
    assert value == pytest.approx(np.abs(a - b).mean())
    assert metrics.diversity(np.ones((400, 5)), np.random.default_rng(0)) == 0.0
    assert metrics.diversity_times(301) == 300 and metrics.diversity_times(300) == 100
    assert metrics.diversity_times(64) == 64


def test_interval_is_1_96_population_std_over_sqrt_n():
    result = metrics.interval([1.0, 2.0, 3.0, 4.0])
    assert result["mean"] == 2.5 and result["ci95"] == pytest.approx(1.96 * math.sqrt(1.25) / 2)


# ---------------------------------------------------------------------------- captions
def small_vocabulary() -> Vocabulary:
    words = ["sos", "eos", "unk", "a", "person", "walk", "left", "quickly", "in"]
    vectors = np.arange(len(words) * 300, dtype=np.float32).reshape(len(words), 300)
    return Vocabulary(vectors, words, {w: i for i, w in enumerate(words)})


def test_captions_get_sos_eos_and_unk_padding_to_22():
    tokens, length = caption_tokens(["a/DET", "person/NOUN"])
    assert length == 4 and len(tokens) == TOKENS == 22
    assert tokens[:4] == ["sos/OTHER", "a/DET", "person/NOUN", "eos/OTHER"] and set(tokens[4:]) == {"unk/OTHER"}
    long = [f"w{i}/NOUN" for i in range(25)]
    tokens, length = caption_tokens(long)
    assert length == 22 and tokens[1:21] == long[:20] and tokens[-1] == "eos/OTHER"
    tokens, length = caption_tokens(long[:20])  # exactly 20: no room for padding
    assert length == 22


def test_words_get_their_vector_and_class():
    vocabulary = small_vocabulary()
    embed = WordEmbedder(vocabulary)
    words, pos, length = embed.caption(["a/DET", "person/NOUN", "walk/VERB", "left/ADV", "quickly/ADV",
                                        "in/SCONJ", "zebra/NOUN"])
    assert length == 9
    classes = pos.argmax(1)
    assert pos.sum(1).tolist() == [1.0] * 22
    assert classes[:9].tolist() == [POS_INDEX["OTHER"], POS_INDEX["DET"], POS_INDEX["NOUN"], POS_INDEX["Act_VIP"],
                                    POS_INDEX["Loc_VIP"], POS_INDEX["Desc_VIP"], POS_INDEX["OTHER"],
                                    POS_INDEX["OTHER"], POS_INDEX["OTHER"]]
    assert (classes[:9] == [14, 2, 1, 12, 9, 13, 14, 14, 14]).all()
    assert np.array_equal(words[0], vocabulary.vectors[0]) and np.array_equal(words[2], vocabulary.vectors[4])
    assert np.array_equal(words[7], vocabulary.vectors[2])  # zebra: unknown -> unk
    assert np.array_equal(words[8], vocabulary.vectors[1]) and np.array_equal(words[9], vocabulary.vectors[2])


# ---------------------------------------------------------------------------- files
class Planted:
    """Unpickling this creates a file: what a hostile word list could do instead."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_the_word_lists_are_read_without_building_any_object(tmp_path):
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"walk": 3, "words": ["a", "b"], "n": (1, 2)}))
    assert read_plain_pickle(plain) == {"walk": 3, "words": ["a", "b"], "n": (1, 2)}
    marker = tmp_path / "ran"
    planted = tmp_path / "our_vab_words.pkl"
    planted.write_bytes(pickle.dumps(["sos", Planted(marker)]))
    with pytest.raises(EvaluatorFileError, match=r"names \w+\.open.*could run code.*fac88da1"):
        read_plain_pickle(planted)
    assert not marker.exists()
    nested = tmp_path / "nested.pkl"
    nested.write_bytes(pickle.dumps({"x": np.zeros(2)}))
    with pytest.raises(EvaluatorFileError, match="numpy"):
        read_plain_pickle(nested)


def write_vocabulary(folder: Path, words: list[str], seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "our_vab_data.npy", np.random.default_rng(seed).standard_normal((len(words), 300)).astype(np.float32))
    (folder / "our_vab_words.pkl").write_bytes(pickle.dumps(words))
    (folder / "our_vab_idx.pkl").write_bytes(pickle.dumps({w: i for i, w in enumerate(words)}))


def write_evaluator_dir(root: Path, ds: str = "t2m", *, reference_layout: bool = False, seed: int = 0,
                        words: list[str] | None = None, stats=None) -> Path:
    """An evaluator folder with random weights, laid out flat or as the reference repositories unpack."""
    torch.manual_seed(seed)
    model = T2MEvaluator(ds)
    features = model.features
    model_dir = root / "checkpoints" / ds / "text_mot_match" / "model" if reference_layout else root
    meta_dir = root / "checkpoints" / ds / "Comp_v6_KLD005" / "meta" if reference_layout else root
    model_dir.mkdir(parents=True, exist_ok=True)
    meta_dir.mkdir(parents=True, exist_ok=True)
    torch.save({**{name: part.state_dict() for name, part in model.parts().items()}, "epoch": 1, "iter": 2},
               model_dir / "finest.tar")
    mean, std = stats if stats is not None else (np.zeros(features), np.ones(features))
    np.save(meta_dir / "mean.npy", np.asarray(mean, np.float64))
    np.save(meta_dir / "std.npy", np.asarray(std, np.float64))
    write_vocabulary(root / "glove" if reference_layout else root, words or ["sos", "eos", "unk", "a", "walk"], seed)
    return root


def test_an_evaluator_folder_in_the_reference_layout_is_read_and_every_file_hashed(tmp_path):
    root = write_evaluator_dir(tmp_path / "ev", reference_layout=True)
    files = load_evaluator_files(root, "t2m")
    assert [f.role for f in files.files] == ["finest.tar", "mean", "std", "our_vab_data.npy", "our_vab_words.pkl",
                                            "our_vab_idx.pkl"]
    for used in files.files:
        assert used.sha256 == hashlib.sha256(used.path.read_bytes()).hexdigest()
    assert "published_sha256" in files.checksums()["our_vab_words.pkl"]
    torch.manual_seed(0)
    expected = T2MEvaluator("t2m")
    assert torch.equal(files.evaluator.motion_encoder.gru.weight_hh_l0, expected.motion_encoder.gru.weight_hh_l0)


def test_a_missing_file_lists_where_it_was_looked_for(tmp_path, monkeypatch):
    root = write_evaluator_dir(tmp_path / "ev")
    (root / "our_vab_idx.pkl").unlink()
    with pytest.raises(EvaluatorFileError, match=r"our_vab_idx\.pkl not found.*glove/our_vab_idx\.pkl"):
        load_evaluator_files(root, "t2m")
    monkeypatch.delenv("MOTIONHUB_EVALUATOR_DIR", raising=False)
    with pytest.raises(EvaluatorFileError, match="--evaluator-dir DIR or set MOTIONHUB_EVALUATOR_DIR"):
        load_evaluator_files(None, "t2m")
    monkeypatch.setenv("MOTIONHUB_EVALUATOR_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(EvaluatorFileError, match="nowhere does not exist"):
        load_evaluator_files(None, "t2m")


def test_a_checkpoint_that_does_not_fit_is_refused_naming_the_key(tmp_path):
    state = {name: part.state_dict() for name, part in T2MEvaluator("t2m").parts().items()}
    state["motion_encoder"]["gru.weight_ih_l0"] = torch.zeros(3072, 512)
    del state["text_encoder"]["pos_emb.bias"]
    state["text_encoder"]["extra.weight"] = torch.zeros(1)
    path = tmp_path / "finest.tar"
    torch.save(state, path)
    with pytest.raises(EvaluatorFileError) as info:
        load_evaluator(path, "t2m")
    message = str(info.value)
    assert "motion_encoder.gru.weight_ih_l0 has shape (3072, 512), expected (3072, 1024)" in message
    assert "text_encoder.pos_emb.bias is missing (expected shape (300,))" in message
    assert "text_encoder.extra.weight is not part of the evaluator" in message


def test_the_other_data_set_s_evaluator_is_named(tmp_path):
    path = tmp_path / "finest.tar"
    torch.save({name: part.state_dict() for name, part in T2MEvaluator("kit").parts().items()}, path)
    with pytest.raises(EvaluatorFileError, match=r"main\.0\.weight has shape \(512, 247, 4\), expected \(512, 259, 4\)"
                                                 r".*looks like the KIT-ML evaluator"):
        load_evaluator(path, "t2m")


def test_a_checkpoint_that_needs_full_unpickling_is_refused_unless_trusted(tmp_path, monkeypatch):
    state = {name: part.state_dict() for name, part in T2MEvaluator("t2m").parts().items()}
    marker = tmp_path / "ran"
    path = tmp_path / "finest.tar"
    torch.save({**state, "opt": Planted(marker)}, path)
    monkeypatch.delenv("MOTIONHUB_TRUST_CHECKPOINTS", raising=False)
    with pytest.raises(EvaluatorFileError, match="MOTIONHUB_TRUST_CHECKPOINTS=1"):
        load_evaluator(path, "t2m")
    assert not marker.exists()
    monkeypatch.setenv("MOTIONHUB_TRUST_CHECKPOINTS", "1")
    assert isinstance(load_evaluator(path, "t2m"), T2MEvaluator)


def test_a_vocabulary_whose_files_disagree_is_refused(tmp_path):
    write_vocabulary(tmp_path, ["sos", "eos", "unk", "a"])
    (tmp_path / "our_vab_idx.pkl").write_bytes(pickle.dumps({"sos": 0, "eos": 1, "unk": 2, "a": 9}))
    with pytest.raises(EvaluatorFileError, match="points at row 9 but .* has 4 rows"):
        read_vocabulary(tmp_path / "our_vab_data.npy", tmp_path / "our_vab_words.pkl", tmp_path / "our_vab_idx.pkl")


# ---------------------------------------------------------------------------- the protocol
Record = SimpleNamespace


def synthetic_set(clips: int = 80, seed: int = 0) -> tuple[list, dict]:
    rng = np.random.default_rng(seed)
    out, records = [], {}
    for i in range(clips):
        n = int(rng.integers(40, 200))
        out.append(SimpleNamespace(id=f"c{i}", motion=rng.standard_normal((n, 263)).astype(np.float32)))
        records[f"c{i}"] = [Record(caption="a person walks", tokens=("a/DET", "person/NOUN", f"w{i}/VERB"),
                                   start=0.0, end=0.0),
                            Record(caption="walks", tokens=("walk/VERB",), start=0.0, end=0.0)]
    return out, records


def test_items_and_sub_clips_follow_the_length_bounds():
    motion = np.zeros((150, 263), np.float32)
    clips = [SimpleNamespace(id="a", motion=motion), SimpleNamespace(id="short", motion=motion[:39]),
             SimpleNamespace(id="long", motion=np.zeros((200, 263), np.float32))]
    records = {"a": [Record(caption="x", tokens=("x/X",), start=0.0, end=0.0),
                     Record(caption="y", tokens=("y/X",), start=1.0, end=4.0),  # frames 20:80
                     Record(caption="z", tokens=("z/X",), start=0.0, end=1.5)],  # 30 frames: too short
               "short": [Record(caption="x", tokens=("x/X",), start=0.0, end=0.0)],
               "long": [Record(caption="x", tokens=("x/X",), start=0.0, end=0.0)]}
    eval_set = EvalSet.build(clips, records.__getitem__, "t2m")
    assert [(item.id, len(item.motion)) for item in eval_set.items] == [("a@1-4", 60), ("a", 150)]
    assert eval_set.captions == [("x/X",), ("y/X",)] and eval_set.items[1].captions == [0]
    assert eval_set.skipped == {"sub-clip outside 40-199 frames": 1, "clip outside 40-199 frames": 2}
    kit = EvalSet.build([SimpleNamespace(id="k", motion=motion[:30])],
                        lambda _: [Record(caption="x", tokens=("x/X",), start=0.0, end=0.0)], "kit")
    assert len(kit.items) == 1  # KIT-ML's bound is 24 frames


def test_draws_crop_whole_units_within_the_clip_and_keep_whole_groups():
    clips, records = synthetic_set(100)
    eval_set = EvalSet.build(clips, records.__getitem__, "t2m")
    d = draw(eval_set, np.random.default_rng(0))
    assert len(d.items) == 96 and len(set(d.items.tolist())) == 96
    frames = np.array([len(eval_set.items[i].motion) for i in d.items])
    assert (d.lengths % 4 == 0).all() and (d.starts >= 0).all() and (d.starts + d.lengths <= frames).all()
    single = d.lengths == frames // 4 * 4
    assert ((d.lengths == (frames // 4 - 1) * 4) | single).all()
    many = [draw(eval_set, np.random.default_rng(s)) for s in range(30)]
    share = np.mean([np.mean(x.lengths == np.array([len(eval_set.items[i].motion) // 4 * 4 for i in x.items]))
                     for x in many])
    assert 0.6 < share < 0.73  # two times in three the whole units
    assert all(c in eval_set.items[i].captions for c, i in zip(d.captions, d.items))


def identity(raw: np.ndarray) -> np.ndarray:
    return raw.copy()


def protocol_parts(evaluator, clips=80, batch_size=256, stats=None):
    clips_, records = synthetic_set(clips)
    eval_set = EvalSet.build(clips_, records.__getitem__, "t2m")
    words = ["sos", "eos", "unk", "a", "person", "walk", *(f"w{i}" for i in range(0, clips, 2))]
    vocabulary = Vocabulary(np.random.default_rng(1).standard_normal((len(words), 300)).astype(np.float32), words,
                            {w: i for i, w in enumerate(words)})
    mean, std = stats if stats is not None else (np.zeros(263), np.ones(263))
    embedder = Embedder(evaluator, mean, std, torch.device("cpu"), batch_size)
    return eval_set, embedder, WordEmbedder(vocabulary)


def test_a_perfect_reconstruction_scores_as_the_real_motion(evaluator):
    eval_set, embedder, words = protocol_parts(evaluator)
    result = run_protocol(eval_set, identity, embedder, words, repeats=2, seed=3)
    assert len(result["repetitions"]) == 2 and result["pairs_per_repetition"] == 64
    for run in result["repetitions"]:
        real, recon = run["real"], run["reconstruction"]
        assert abs(recon["fid"]) < 1e-4  # 64 embeddings of 512 dims: a rank-deficient covariance
        assert {k: real[k] for k in ("top1", "top2", "top3")} == {k: recon[k] for k in ("top1", "top2", "top3")}
        assert recon["mm_dist"] == pytest.approx(real["mm_dist"], rel=1e-6)
    table = result["table"]
    assert set(table) == {"real", "reconstruction"} and "fid" not in table["real"]
    assert table["real"]["top1"]["mean"] == pytest.approx(np.mean([r["real"]["top1"] for r in result["repetitions"]]))


def test_the_figures_do_not_depend_on_the_batch_size_and_follow_the_seed(evaluator):
    noisy = lambda raw: raw + 0.5 * np.sin(raw)  # noqa: E731 - a deterministic imperfect reconstruction
    parts = protocol_parts(evaluator, batch_size=256)
    big = run_protocol(*parts[:1], noisy, *parts[1:], repeats=1, seed=5)
    small_parts = protocol_parts(evaluator, batch_size=7)
    small = run_protocol(*small_parts[:1], noisy, *small_parts[1:], repeats=1, seed=5, tokenizer_batch=3)
    for row in ("real", "reconstruction"):
        for key, value in big["repetitions"][0][row].items():
            assert small["repetitions"][0][row][key] == pytest.approx(value, rel=1e-5, abs=1e-6), (row, key)
    other = run_protocol(*parts[:1], noisy, *parts[1:], repeats=1, seed=6)
    assert other["repetitions"][0]["reconstruction"]["fid"] != big["repetitions"][0]["reconstruction"]["fid"]


def test_a_crop_drawn_again_is_embedded_once_and_gives_the_same_figures(evaluator):
    from motionhub_t2m.protocol import embed_captions, repetition

    noisy = lambda raw: raw + 0.5 * np.sin(raw)  # noqa: E731
    eval_set, embedder, words = protocol_parts(evaluator)
    cached = run_protocol(eval_set, noisy, embedder, words, repeats=4, seed=2)
    keys = {(i, s, m) for r in range(4) for d in [draw(eval_set, np.random.default_rng([2, r]))]
            for i, s, m in zip(d.items.tolist(), d.starts.tolist(), d.lengths.tolist())}
    assert cached["crops_embedded"] == len(keys) < 4 * cached["pairs_per_repetition"]
    captions = embed_captions(eval_set, words, embedder)
    for r in range(4):
        fresh = repetition(eval_set, draw(eval_set, np.random.default_rng([2, r])), captions, embedder, noisy,
                           np.random.default_rng([2, r, 1]))
        for row in fresh:
            for key, value in fresh[row].items():
                assert cached["repetitions"][r][row][key] == pytest.approx(value, rel=1e-5, abs=1e-6), (r, row, key)


def test_the_evaluator_statistics_normalise_what_it_embeds(evaluator):
    rng = np.random.default_rng(2)
    stats = (rng.standard_normal(263), rng.uniform(0.5, 2.0, 263))
    eval_set, embedder, _ = protocol_parts(evaluator, stats=stats)
    item = eval_set.items[0].motion[:80]
    padded = np.zeros((1, 196, 263), np.float32)  # the reference's input: normalised, then zero-padded to 196
    padded[0, :80] = (item - stats[0]) / stats[1]
    direct = evaluator.motion_embeddings(torch.from_numpy(padded), torch.tensor([80]))
    assert np.allclose(embedder.motions([embedder.normalise(item)]), direct.numpy(), atol=1e-5)


class ScaleModel(torch.nn.Module):
    """A stand-in tokenizer: doubles its normalised input; needs lengths divisible by 8."""

    downsample = 8

    def forward(self, x):
        assert x.shape[1] % 8 == 0
        return {"recon": 2 * x}

    def reconstruction(self, outputs, x):
        return outputs["recon"]


def test_the_tokenizer_reads_its_own_statistics_and_lengths_it_cannot_divide_are_padded():
    from motionhub.data import layouts

    fmt = layouts.humanml3d_263().with_stats(np.full(263, 1.0), np.full(263, 2.0))
    reconstruct = tokenizer_reconstructor(ScaleModel(), fmt, torch.device("cpu"))
    raw = np.random.default_rng(0).standard_normal((3, 44, 263)).astype(np.float32)  # 44 = 5.5 units of 8
    out = reconstruct(raw)
    assert out.shape == raw.shape
    assert np.allclose(out, 2 * raw - 1.0, atol=1e-5)  # (2 (raw - 1) / 2) * 2 + 1: normalised, doubled, back


# ---------------------------------------------------------------------------- plugin and command
def test_the_command_is_registered_by_the_plugin():
    assert get_registry().get("command", "t2m-eval").provider == "motionhub_t2m"


# ---------------------------------------------------------------------------- real files
def test_the_published_evaluator_statistics_are_found_in_mdm_s_layout(real_data):
    folder = real_data / "GuyTevet-motion-diffusion-model"
    from motionhub_t2m.files import read_stats_pair

    for ds, features, ric in (("t2m", 263, 0.122555), ("kit", 251, 93.620)):
        mean_path, std_path = find_stats(folder, ds)
        assert mean_path.name == f"{ds}_mean.npy" and mean_path.parent.name == "dataset"
        mean, std = read_stats_pair(mean_path, std_path, features)
        assert std[10] == pytest.approx(ric, rel=1e-3)  # a ric position feature: one value per group
    with pytest.raises(EvaluatorFileError, match=r"has shape \(251,\).*\(263,\)"):
        read_stats_pair(folder / "dataset" / "kit_mean.npy", folder / "dataset" / "kit_std.npy", 263)


def published_word_lists() -> tuple[Path, Path]:
    """The two word-list pickles in $MOTIONHUB_EVALUATOR_DIR (flat or under glove/), or skip."""
    for folder in (Path(EVALUATOR_DIR or "/nonexistent"), Path(EVALUATOR_DIR or "/nonexistent") / "glove"):
        words, index = folder / "our_vab_words.pkl", folder / "our_vab_idx.pkl"
        if words.is_file() and index.is_file():
            return words, index
    pytest.skip("set MOTIONHUB_EVALUATOR_DIR to a folder holding our_vab_words.pkl and our_vab_idx.pkl "
                "(glove/ of EricGuo5513/text-to-motion)")


def test_the_published_word_lists_read_as_plain_data():
    words_path, index_path = published_word_lists()
    words, index = read_plain_pickle(words_path), read_plain_pickle(index_path)
    assert hashlib.sha256(words_path.read_bytes()).hexdigest() == PUBLISHED_SHA256["our_vab_words.pkl"]
    assert hashlib.sha256(index_path.read_bytes()).hexdigest() == PUBLISHED_SHA256["our_vab_idx.pkl"]
    assert len(words) == len(index) == 4199 and words[:3] == ["sos", "eos", "unk"]
    assert all(index[word] == row for row, word in enumerate(words))


def published_evaluator_dir() -> Path:
    """$MOTIONHUB_EVALUATOR_DIR when it holds every file of the HumanML3D evaluator, else skip."""
    from motionhub_t2m.files import VOCABULARY, find_file

    if not EVALUATOR_DIR:
        pytest.skip("set MOTIONHUB_EVALUATOR_DIR to a folder with finest.tar, the evaluator's mean/std and the "
                    "our_vab_* word vectors to check the published files")
    root = Path(EVALUATOR_DIR)
    try:
        find_file(root, "checkpoint", "finest.tar", "t2m")
        find_stats(root, "t2m")
        for name in VOCABULARY:
            find_file(root, "vocabulary", name, "t2m")
    except EvaluatorFileError as exc:
        pytest.skip(f"MOTIONHUB_EVALUATOR_DIR lacks a file of the HumanML3D evaluator: {str(exc).split('. ')[0]}")
    return root


def test_the_published_files_load_and_embed_a_real_clip():
    files = load_evaluator_files(published_evaluator_dir(), "t2m")
    assert parameter_counts(files.evaluator) == 21_690_560
    assert len(files.vocabulary.words) == 4199 and files.vocabulary.words[:3] == ["sos", "eos", "unk"]
    sums = files.checksums()
    assert sums["our_vab_words.pkl"]["published_sha256"] == "same" and sums["our_vab_idx.pkl"]["published_sha256"] == "same"
    clip = REAL_DATA / "EricGuo5513-HumanML3D" / "HumanML3D" / "new_joint_vecs" / "012314.npy"
    if not clip.is_file():
        pytest.skip(f"real HumanML3D clip not found at {clip}")
    motion = np.load(clip)[:168]
    normalised = torch.from_numpy(((motion - files.mean) / files.std).astype(np.float32))[None]
    emb = files.evaluator.motion_embeddings(normalised, torch.tensor([168]))
    words, pos, length = WordEmbedder(files.vocabulary).caption(["a/DET", "person/NOUN", "walk/VERB", "forward/ADV"])
    text = files.evaluator.text_embeddings(torch.from_numpy(words)[None], torch.from_numpy(pos)[None],
                                           torch.tensor([length]))
    assert torch.isfinite(emb).all() and torch.isfinite(text).all()


# ---------------------------------------------------------------------------- the whole command
@pytest.mark.slow
def test_t2m_eval_prints_the_table_and_writes_every_repetition(tmp_path):
    import json

    import yaml
    from helpers import run_cli

    from motionhub.recipes import load_recipe
    from motionhub.train.trainer import train
    from motionhub_synthetic.folders import write_humanml3d_folder

    data = write_humanml3d_folder(tmp_path / "HumanML3D", clips=400, seed=1)
    recipe = {"run": {"name": "t2m", "out": str(tmp_path / "run"), "seed": 0},
              "data": {"name": "humanml3d", "root": str(data), "stats": "dataset", "window": 32},
              "encoder": {"name": "conv1d", "width": 32, "depth": 1, "down_t": 2, "output_emb_width": 16},
              "quantizer": {"name": "fsq", "levels": [8, 5, 5]}, "decoder": {"name": "conv1d"},
              "losses": [{"name": "recon"}], "train": {"batch_size": 4, "iters": 2, "lr": 1e-3, "threads": 1}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    run = train(load_recipe(tmp_path / "recipe.yaml"))
    mean, std = np.load(data / "Mean.npy"), np.load(data / "Std.npy").astype(np.float64)
    std[:4] /= 25  # as the published evaluator's statistics differ from the data set's
    std[-4:] /= 25
    texts = [line.split("#")[1] for f in (data / "texts").glob("*.txt") for line in f.read_text().splitlines()]
    words = ["sos", "eos", "unk", *sorted({token.rsplit("/", 1)[0] for text in texts for token in text.split()})]
    evaluator_dir = write_evaluator_dir(tmp_path / "evaluator", reference_layout=True, words=words,
                                        stats=(mean, std))
    result = run_cli("t2m-eval", str(run), "--repeats", "2", "--out", str(tmp_path / "t2m.json"),
                     env={"MOTIONHUB_EVALUATOR_DIR": str(evaluator_dir), "MOTIONHUB_TRUST_CHECKPOINTS": ""})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "text-to-motion evaluation: HumanML3D test split, 2 repetitions (mean ± 1.96·σ/√2), step 2"
    assert lines[1].split() == ["Top-1", "↑", "Top-2", "↑", "Top-3", "↑", "FID", "↓", "MM-Dist", "↓", "Diversity", "→"]
    assert lines[2].startswith("Real motion") and lines[2].split()[5] == "-"  # no FID for the real motion
    assert lines[3].startswith("Reconstruction") and len(lines[3].split()) == 7
    assert "Real (published)" in lines[4]
    assert "normalisation: tokenizer input: the run's own statistics" in result.stdout
    assert "evaluator input: the evaluator's statistics" in result.stdout and "Comp_v6_KLD005/meta/std.npy" in result.stdout
    out = json.loads((tmp_path / "t2m.json").read_text())
    assert out["split"] == "test" and out["repeats"] == 2 and len(out["repetitions"]) == 2
    assert set(out["files"]) == {"finest.tar", "mean", "std", "our_vab_data.npy", "our_vab_words.pkl",
                                 "our_vab_idx.pkl"}
    for entry in out["files"].values():
        assert entry["sha256"] == hashlib.sha256(Path(entry["path"]).read_bytes()).hexdigest()
        assert entry["sha256"] in result.stdout
    assert out["run"]["sha256"] == hashlib.sha256(Path(out["run"]["checkpoint"]).read_bytes()).hexdigest()
    top1 = [rep["reconstruction"]["top1"] for rep in out["repetitions"]]
    assert out["table"]["reconstruction"]["top1"]["mean"] == pytest.approx(np.mean(top1))
    assert out["table"]["reconstruction"]["top1"]["ci95"] == pytest.approx(1.96 * np.std(top1) / math.sqrt(2))
    assert out["normalisation"]["run_vs_evaluator"]["std_ratio_range"][1] == pytest.approx(25, rel=1e-4)
    assert out["items"]["pairs_per_repetition"] % 32 == 0 and out["items"]["sub_clips"] > 0


@pytest.mark.slow
def test_the_benchmark_times_both_ways_and_their_figures_agree():
    import re
    import subprocess
    import sys

    from helpers import REPO

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")])}
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "t2m_eval.py"), "--clips", "64", "--repeats",
                             "1", "--width", "16", "--depth", "1", "--batch-size", "24", "--threads", "1"],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    times = re.findall(r"([\d.]+) s", result.stdout)
    assert len(times) >= 2 and re.search(r"ratio: [\d.]+x", result.stdout)
    difference = re.search(r"largest difference between the two contenders' figures: ([\d.e+-]+)", result.stdout)
    assert difference and float(difference.group(1)) < 1e-3
