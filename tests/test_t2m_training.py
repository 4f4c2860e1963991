"""An evaluator trained by motionhub's own trainer (the two stages of configs/t2m_evaluator/), the
captions batches carry for it, its export, and the t2m protocol through `motionhub eval` and the report.

Everything runs on a small synthetic HumanML3D folder with word vectors the tests write; the
evaluator's networks are shrunk (widths 16-32) so the whole file stays fast.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from rich.console import Console

from motionhub.cli import main
from motionhub.data.dataset import Clip
from motionhub.data.formats import MotionFormat
from motionhub.data.windows import ClipBank, EvalBatches, WindowSampler
from motionhub.errors import DataError, MotionhubError, RecipeError
from motionhub.recipes.validate import recipe_from_tree
from motionhub.train.trainer import train
from motionhub_synthetic.folders import write_humanml3d_folder
from motionhub_t2m.export import export_evaluator
from motionhub_t2m.files import load_evaluator_files
from motionhub_t2m.words import caption_words, lemma

QUIET = Console(stderr=True, quiet=True)
SMALL = {"encoder": {"hidden_dim": 32, "latent_dim": 16},
         "decoder": {"motion_hidden": 32, "text_hidden": 32, "embedding_dim": 16}}


def write_words(folder: Path, words: list[str]) -> Path:
    """GloVe-style word vectors in the published files' format: random 300-d vectors."""
    folder.mkdir(parents=True, exist_ok=True)
    vectors = np.random.default_rng(0).standard_normal((len(words), 300)).astype(np.float32)
    np.save(folder / "our_vab_data.npy", vectors)
    (folder / "our_vab_words.pkl").write_bytes(pickle.dumps(words))
    (folder / "our_vab_idx.pkl").write_bytes(pickle.dumps({w: i for i, w in enumerate(words)}))
    return folder


def stage_recipes(root: Path, data: Path, words: Path, movement_run: Path | None = None, iters: int = 4) -> dict:
    """The two stages of configs/t2m_evaluator/humanml3d_*.yaml, shrunk."""
    source = {"name": "humanml3d", "root": str(data), "stats": "dataset", "store": "memory"}
    movement = {
        "run": {"name": "movement", "out": str(root / "movement"), "seed": 0},
        "data": {**source, "window": 40},
        "encoder": {"name": "t2m_movement", **SMALL["encoder"]}, "quantizer": {"name": "t2m_identity"},
        "decoder": {"name": "t2m_movement_decoder", "hidden_dim": 32},
        "losses": [{"name": "recon", "kind": "l1"}, {"name": "t2m_sparsity", "weight": 0.001},
                   {"name": "t2m_smooth", "weight": 0.001}],
        "train": {"batch_size": 8, "iters": 2, "lr": 1e-3, "log_every": 1, "threads": 1},
        "eval": {"train_clips": 0, "train_codebook": False}}
    matching = {
        "run": {"name": "matching", "out": str(root / "matching"), "seed": 0},
        "data": {**source, "window": 64, "short": "pad", "captions": True},
        "encoder": {"name": "t2m_movement", **SMALL["encoder"], "init_from": str(movement_run), "freeze": True},
        "quantizer": {"name": "t2m_identity"},
        "decoder": {"name": "t2m_matching", "words_dir": str(words), **SMALL["decoder"]},
        "losses": [{"name": "t2m_contrastive"}],
        "train": {"batch_size": 8, "iters": iters, "lr": 3e-3, "log_every": 1, "threads": 1, "grad_clip": 0.5},
        "eval": {"metrics": [], "train_clips": 0, "train_codebook": False}}
    return {"movement": movement, "matching": matching}


def rows(run: Path, key: str = "loss") -> list[float]:
    return [row[key] for row in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if "split" not in row and key in row]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A synthetic HumanML3D folder, its word vectors, and both stages trained on it."""
    root = tmp_path_factory.mktemp("t2m_training")
    data = write_humanml3d_folder(root / "HumanML3D", clips=40, seed=1)
    captions = [line.split("#")[0] for f in (data / "texts").glob("*.txt") for line in f.read_text().splitlines()]
    seen = {token.split("/")[0] for caption in captions for token in caption_words(caption, {})}
    words = write_words(root / "glove", ["sos", "eos", "unk", *sorted(seen - {"sos", "eos", "unk"})])
    first = train(recipe_from_tree(stage_recipes(root, data, words)["movement"], "movement.yaml"), QUIET)
    recipes = stage_recipes(root, data, words, first, iters=24)
    second = train(recipe_from_tree(recipes["matching"], "matching.yaml"), QUIET)
    return {"root": root, "data": data, "words": words, "movement": first, "matching": second, "recipes": recipes}


# ---------------------------------------------------------------------------- captions in batches
def captioned_bank(texts: list[str]) -> ClipBank:
    """Clips whose frames hold (clip index, frame index, 0), so a window says where it came from."""
    def frames(i: int) -> np.ndarray:
        out = np.zeros((50 + i, 3), np.float32)
        out[:, 0], out[:, 1] = i, np.arange(50 + i)
        return out

    return ClipBank.from_clips([Clip(f"c{i}", frames(i), text.split("|") if text else [])
                                for i, text in enumerate(texts)])


def sampler(bank: ClipBank, **kw) -> WindowSampler:
    return WindowSampler(bank, MotionFormat("raw", (3,), 20.0), 40, 4, seed=7, captions=True, **kw)


def test_each_window_carries_one_of_its_own_clip_s_captions_drawn_from_seed_rank_and_step():
    texts = [f"clip {i} first|clip {i} second|clip {i} third" for i in range(10)]
    first, again = sampler(captioned_bank(texts)), sampler(captioned_bank(texts))
    drawn = set()
    for step in (0, 3, 11):
        batch = first.batch(step)
        assert batch["captions"] == again.batch(step)["captions"]  # a resumed run's fresh sampler draws the same
        for window, caption in zip(batch["motion"], batch["captions"]):
            assert caption.startswith(f"clip {int(window[0, 0])} ")  # the window's own clip
            drawn.add(caption.split()[-1])
    assert drawn == {"first", "second", "third"}  # uniform over the clip's captions, not always the first
    assert sampler(captioned_bank(texts), rank=1, world_size=2).batch(0)["captions"] != first.batch(0)["captions"]


def test_with_shards_one_process_and_two_draw_the_same_captions_for_the_same_windows():
    texts = [f"clip {i} first|clip {i} second|clip {i} third" for i in range(12)]
    fmt = MotionFormat("raw", (3,), 20.0)

    def pairs(batches):
        return sorted((float(w[0, 0]), float(w[0, 1]), c) for b in batches for w, c in zip(b["motion"], b["captions"]))

    one = WindowSampler(captioned_bank(texts), fmt, 40, 4, seed=7, captions=True, shards=2)
    two = [WindowSampler(captioned_bank(texts), fmt, 40, 2, seed=7, captions=True, shards=2, rank=r, world_size=2)
           for r in (0, 1)]
    for step in (0, 5):
        assert pairs([one.batch(step)]) == pairs([s.batch(step) for s in two])


def test_clips_without_captions_are_left_out_and_counted_and_none_at_all_is_one_clear_error():
    bank = captioned_bank(["a walk", "", "a run", ""])
    windows = sampler(bank)
    assert windows.uncaptioned == 2 and sorted(windows.clips.tolist()) == [0, 2]
    assert "2 clips without a caption left out" in windows.dropped_summary()
    with pytest.raises(DataError, match=r"data\.captions asks for one caption per training window, but none of the "
                                        r"4 train clips has a caption"):
        sampler(captioned_bank(["", "", "", ""]))
    batches = list(EvalBatches(bank, MotionFormat("raw", (3,), 20.0), unit=4, batch_size=8, captions=True))
    assert batches[0]["captions"] == ["a walk", "a run"] and batches[0]["ids"] == ["c0", "c2"]


def test_a_data_set_without_captions_stops_training_with_one_message(trained, tmp_path, capsys):
    import shutil

    data = tmp_path / "HumanML3D"
    shutil.copytree(trained["data"], data)
    shutil.rmtree(data / "texts")
    recipe = {**trained["recipes"]["matching"], "run": {"name": "none", "out": str(tmp_path / "run")},
              "data": {**trained["recipes"]["matching"]["data"], "root": str(data)}}
    path = tmp_path / "matching.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["train", str(path)]) != 0
    err = capsys.readouterr().err
    assert "data.captions asks for one caption per training window" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_the_contrastive_loss_needs_captions_and_the_matching_decoder():
    from motionhub_t2m.training_losses import ContrastiveMatching

    loss = ContrastiveMatching()
    with pytest.raises(MotionhubError, match="decoder t2m_matching"):
        loss({"motion": torch.zeros(2, 8, 3)}, {}, None)
    with pytest.raises(MotionhubError, match="data.captions: true"):
        loss({"motion": torch.zeros(2, 8, 3)}, {"matching": object()}, None)


def test_bare_captions_become_vocabulary_forms_tagged_other_and_tagged_lines_keep_their_tags():
    from motionhub_t2m.words import POS_INDEX, WordEmbedder
    from motionhub_t2m.files import Vocabulary

    index = {w: i for i, w in enumerate(["sos", "eos", "unk", "a", "person", "walk", "wave", "step", "carry"])}
    assert caption_words("A person walks, then WAVES!", index) == [
        "a/OTHER", "person/OTHER", "walk/OTHER", "then/OTHER", "wave/OTHER"]
    assert [lemma(w, index) for w in ("stepped", "waving", "carries", "walked", "unknown")] == [
        "step", "wave", "carry", "walk", "unknown"]
    assert caption_words("a man walks#a/DET man/NOUN walk/VERB#0.0#0.0", index) == ["a/DET", "man/NOUN", "walk/VERB"]
    vocabulary = Vocabulary(np.eye(len(index), 300, dtype=np.float32), list(index), index)
    _, pos, length = WordEmbedder(vocabulary).caption(caption_words("a person walks", index))
    assert length == 5  # sos, three words, eos
    assert pos[3].argmax() == POS_INDEX["Act_VIP"] and pos[2].argmax() == POS_INDEX["OTHER"]  # walk is an action word


def test_the_movement_encoder_leaves_out_the_contacts_its_format_has_and_freezing_needs_weights():
    from motionhub.data import layouts
    from motionhub_t2m.training import IdentityQuantizer, MovementFeatures

    assert MovementFeatures(layouts.humanml3d_263(), 32, 16).contacts == 4
    assert MovementFeatures(layouts.motionmillion_272(), 32, 16).contacts == 0
    encoder = MovementFeatures(layouts.humanml3d_263(), 32, 16)
    x = torch.randn(2, 40, 263)
    changed = x.clone()
    changed[..., -4:] = 5.0  # the contacts do not reach the movement features
    assert encoder.eval()(x).shape == (2, 10, 16) and torch.equal(encoder(x), encoder(changed))
    with pytest.raises(ValueError, match="init_from"):
        MovementFeatures(layouts.humanml3d_263(), freeze=True)
    out = IdentityQuantizer(16)(torch.randn(2, 10, 16))
    assert out.indices.shape == (2, 10) and not out.indices.any() and float(out.aux_loss) == 0


# ---------------------------------------------------------------------------- the two stages
def fixed_batches_loss(tree: dict, state: dict | None) -> float:
    """The contrastive loss of the matching model of ``tree`` (untrained, or with ``state``) over the
    same 6 train batches and negative shifts, in eval mode: a measure without the batch-to-batch noise."""
    from motionhub.model.build import build_dataset, build_tokenizer
    from motionhub_t2m.training_losses import ContrastiveMatching

    recipe = recipe_from_tree(tree, "m.yaml")
    dataset = build_dataset(recipe)
    torch.manual_seed(0)
    model = build_tokenizer(recipe, dataset.format)
    if state is not None:
        model.load_state_dict(state)
    model.eval()
    windows = WindowSampler(ClipBank.from_clips(dataset.clips("train")), dataset.format, 64, 8, seed=3,
                            short="pad", captions=True)
    loss, total = ContrastiveMatching(), 0.0
    torch.manual_seed(0)
    with torch.no_grad():
        for step in range(6):
            batch = windows.batch(step)
            total += float(loss(batch, model(batch["motion"]), dataset.format))
    return total / 6


def test_the_contrastive_loss_goes_down_and_the_movement_encoder_stays_as_stage_one_left_it(trained):
    losses = rows(trained["matching"])
    assert len(losses) == 24 and np.isfinite(losses).all()
    state = torch.load(trained["matching"] / "checkpoints" / "last.pt", weights_only=True)["model"]
    before = fixed_batches_loss(trained["recipes"]["matching"], None)
    after = fixed_batches_loss(trained["recipes"]["matching"], state)
    assert after < 0.95 * before, (before, after)  # measured: 51.7 -> 45.9
    assert len(rows(trained["matching"], "t2m_contrastive_batch_top1")) == 24
    first = torch.load(trained["movement"] / "checkpoints" / "last.pt", weights_only=True)["model"]
    second = torch.load(trained["matching"] / "checkpoints" / "last.pt", weights_only=True)["model"]
    frozen = [key for key in second if key.startswith("encoder.")]
    assert frozen and all(torch.equal(first[key], second[key]) for key in frozen)
    report = json.loads((trained["matching"] / "report.json").read_text())
    assert report["parameters"]["trainable"] == sum(v.numel() for k, v in second.items() if k.startswith("decoder."))


def test_a_resumed_matching_run_draws_the_same_captions_and_shifts(trained, tmp_path):
    recipe = {**trained["recipes"]["matching"], "train": {**trained["recipes"]["matching"]["train"], "iters": 4,
                                                          "checkpoint_every": 2}}
    whole = train(recipe_from_tree({**recipe, "run": {"name": "w", "out": str(tmp_path / "whole"), "seed": 0}},
                                   "w.yaml"), QUIET)
    parts = {**recipe, "run": {"name": "p", "out": str(tmp_path / "parts"), "seed": 0}}
    half = recipe_from_tree({**parts, "train": {**recipe["train"], "iters": 2}}, "p.yaml")
    train(half, QUIET)
    resumed = train(recipe_from_tree(parts, "p.yaml"), QUIET, resume=True)
    assert rows(resumed) == rows(whole)
    a = torch.load(whole / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(resumed / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_the_export_embeds_as_the_trained_networks_and_is_labelled_self_trained(trained, tmp_path):
    manifest = export_evaluator(trained["matching"], tmp_path / "evaluator")
    assert manifest["features"] == 263 and manifest["sizes"]["contacts"] == 4
    assert manifest["sizes"]["embedding_dim"] == 16 and "not comparable" in manifest["note"]
    files = load_evaluator_files(tmp_path / "evaluator", "t2m")
    assert files.dataset == "self" and files.self_trained["step"] == 24
    state = torch.load(trained["matching"] / "checkpoints" / "best.pt", weights_only=True)["model"]
    motion = torch.randn(2, 64, 263)
    lengths = torch.tensor([64, 40])
    from motionhub_t2m.modules import MotionEncoder, MovementEncoder

    movement, encoder = MovementEncoder(259, 32, 16).eval(), MotionEncoder(16, 32, 16).eval()
    movement.load_state_dict({k[len("encoder.net."):]: v for k, v in state.items() if k.startswith("encoder.net.")})
    encoder.load_state_dict({k[len("decoder.motion_encoder."):]: v for k, v in state.items()
                             if k.startswith("decoder.motion_encoder.")})
    with torch.no_grad():
        expected = encoder(movement(motion[..., :259]), lengths // 4)
    assert torch.allclose(files.evaluator.motion_embeddings(motion, lengths), expected, atol=1e-5)
    with pytest.raises(MotionhubError, match="not an empty folder"):
        export_evaluator(trained["matching"], tmp_path / "evaluator")
    with pytest.raises(MotionhubError, match="t2m_matching"):
        export_evaluator(trained["movement"], tmp_path / "other")
    assert not (tmp_path / "other").exists()


# ---------------------------------------------------------------------------- protocol and report
@pytest.fixture(scope="module")
def tokenizer_run(trained):
    """A tiny tokenizer on the same folder whose recipe names the t2m protocol with the evaluator trained above."""
    root = trained["root"]
    evaluator = root / "evaluator"
    if not evaluator.exists():
        export_evaluator(trained["matching"], evaluator)
    recipe = {"run": {"name": "tok", "out": str(root / "tok"), "seed": 0},
              "data": {"name": "humanml3d", "root": str(trained["data"]), "stats": "dataset", "window": 32,
                       "store": "memory", "splits": {"test": "all"}},
              "encoder": {"name": "conv1d", "width": 16, "depth": 1, "down_t": 2, "output_emb_width": 8},
              "quantizer": {"name": "fsq", "levels": [8, 5, 5]}, "decoder": {"name": "conv1d"},
              "losses": [{"name": "recon"}], "train": {"batch_size": 4, "iters": 2, "threads": 1},
              "eval": {"train_clips": 0, "train_codebook": False,
                       "protocols": [{"name": "t2m", "evaluator_dir": str(evaluator), "repeats": 2}]}}
    return train(recipe_from_tree(recipe, "tok.yaml"), QUIET), evaluator


def test_the_report_shows_the_protocol_table_with_its_units_split_repetitions_and_statistics(tokenizer_run):
    run, evaluator = tokenizer_run
    report = json.loads((run / "report.json").read_text())
    (entry,) = report["protocols"]
    assert entry["name"] == "t2m" and entry["split"] == "test" and entry["repeats"] == 2
    result = json.loads(Path(entry["path"]).read_text())
    assert len(result["repetitions"]) == 2 and result["comparable_with_published"] is False
    top1 = [rep["reconstruction"]["top1"] for rep in result["repetitions"]]
    assert result["table"]["reconstruction"]["top1"]["mean"] == pytest.approx(np.mean(top1))
    markdown = (run / "report.md").read_text()
    assert "## Protocol t2m" in markdown
    assert "text-to-motion evaluation: HumanML3D test split, 2 repetitions" in markdown
    assert "NOT comparable with published" in markdown and "Real (published)" not in markdown
    assert "units: R-precision Top-k" in markdown
    assert f"evaluator input: the evaluator's statistics ({evaluator.resolve() / 'mean.npy'}" in markdown


def test_eval_protocol_prints_the_table_and_writes_every_repetition(tokenizer_run, tmp_path, capsys):
    run, evaluator = tokenizer_run
    out = tmp_path / "t2m.json"
    code = main(["eval", str(run), "--protocol", "t2m", "--repeats", "3", "--seed", "4", "--set",
                 f"evaluator_dir={evaluator}", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "text-to-motion evaluation: HumanML3D test split, 3 repetitions (mean ± 1.96·σ/√3)" in printed
    assert "SELF-TRAINED evaluator" in printed
    result = json.loads(out.read_text())
    assert result["seed"] == 4 and result["split"] == "test" and len(result["repetitions"]) == 3


def test_eval_protocol_names_the_protocols_there_are_on_a_typo_and_checks_settings(tokenizer_run, capsys):
    run, _ = tokenizer_run
    assert main(["eval", str(run), "--protocol", "t2n"]) != 0
    err = capsys.readouterr().err
    assert "unknown protocol 't2n'" in err and "did you mean 't2m'" in err and "Traceback" not in err
    assert main(["eval", str(run), "--protocol", "t2m", "--set", "repeat=2"]) != 0
    assert "did you mean 'repeats'" in capsys.readouterr().err
    assert main(["eval", str(run), "--repeats", "2"]) != 0
    assert "--repeats only apply to a protocol" in capsys.readouterr().err


def test_a_recipe_naming_an_unknown_protocol_or_setting_is_refused_with_the_rest_of_it(trained):
    recipe = {**trained["recipes"]["movement"], "eval": {"protocols": [{"name": "t2n"}, {"name": "t2m", "repeat": 3}]}}
    with pytest.raises(RecipeError) as caught:
        recipe_from_tree(recipe, "r.yaml")
    assert "eval.protocols[0].name" in str(caught.value) and "did you mean 't2m'" in str(caught.value)
    assert "eval.protocols[1].repeat" in str(caught.value)


# ---------------------------------------------------------------------------- the shipped recipes
@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["humanml3d", "motionmillion"])
def test_the_shipped_evaluator_recipes_train_both_stages_at_full_size(dataset, tmp_path):
    from helpers import REPO

    from motionhub.recipes import load_recipe
    from motionhub_synthetic.folders import write_motionmillion_folder

    if dataset == "humanml3d":
        data = write_humanml3d_folder(tmp_path / "data", clips=12, seed=0)
    else:
        data = write_motionmillion_folder(tmp_path / "data", clips=48, seed=0)
    words = write_words(tmp_path / "glove", ["sos", "eos", "unk", "a", "person", "walk", "turn", "left", "wave"])
    short = ["train.iters=2", "train.epochs=null", "train.batch_size=2", "train.log_every=1", "train.eval_every=0",
             "train.checkpoint_every=0", "eval.batch_size=4", "eval.min_length=null", "eval.max_length=null",
             f"data.root={data}"]
    folder = REPO / "configs" / "t2m_evaluator"
    first = train(load_recipe(folder / f"{dataset}_movement.yaml", [*short, f"run.out={tmp_path / 'movement'}"]),
                  QUIET)
    second = train(load_recipe(folder / f"{dataset}_matching.yaml",
                               [*short, f"run.out={tmp_path / 'matching'}", f"encoder.init_from={first}",
                                f"decoder.words_dir={words}"]), QUIET)
    report = json.loads((second / "report.json").read_text())
    assert report["time"]["steps"] == 2 and report["losses"]["final"]["t2m_contrastive"] > 0
    manifest = export_evaluator(second, tmp_path / "evaluator")
    features = 263 if dataset == "humanml3d" else 272
    assert manifest["features"] == features and manifest["sizes"]["contacts"] == (4 if features == 263 else 0)
    files = load_evaluator_files(tmp_path / "evaluator", "t2m")
    if dataset == "humanml3d":  # the published architecture, to the parameter
        from motionhub_t2m.modules import parameter_counts

        assert parameter_counts(files.evaluator) == 21_690_560
        return
    # a data set without a published evaluator gets its table, bare captions and all, labelled
    from motionhub.api import load_run, protocol_run
    from motionhub_t2m.table import T2MProtocol

    tokenizer = train(recipe_from_tree({
        "run": {"name": "tok", "out": str(tmp_path / "tok")},
        "data": {"name": "motionmillion", "root": str(data), "window": 32, "store": "memory", "splits": {"test": "train"}},
        "encoder": {"name": "conv1d", "width": 16, "depth": 1, "down_t": 1, "output_emb_width": 6},
        "quantizer": {"name": "fsq", "levels": [8, 5, 5]}, "decoder": {"name": "conv1d"},
        "losses": [{"name": "recon"}], "train": {"batch_size": 4, "iters": 1, "threads": 1},
        "eval": {"train_clips": 0, "train_codebook": False}}, "tok.yaml"), QUIET)
    protocol = T2MProtocol(str(tmp_path / "evaluator"), repeats=1)
    result = protocol.evaluate(protocol_run(load_run(tokenizer, "last")))
    assert result["dataset"] == "MotionMillion" and result["comparable_with_published"] is False
    assert result["items"]["pairs_per_repetition"] >= 32 and "NOT comparable" in protocol.render(result)
