"""The evaluator's published files, read as a user has them on disk (nothing is downloaded).

One evaluator folder (``--evaluator-dir`` or ``$MOTIONHUB_EVALUATOR_DIR``) holds, in any of
the layouts the reference repositories unpack to (see ``CANDIDATES``):

* ``finest.tar``: the torch checkpoint with the ``movement_encoder``, ``motion_encoder`` and
  ``text_encoder`` state dicts, read with ``torch.load(weights_only=True)``;
* the evaluator's ``mean.npy`` / ``std.npy`` (or MDM's copies ``t2m_mean.npy`` ...);
* the word vectors ``our_vab_data.npy`` (4,199 x 300), ``our_vab_words.pkl`` (the words) and
  ``our_vab_idx.pkl`` (word -> row). The two pickles are read by an unpickler that builds
  only lists, dicts, strings and numbers, so a planted object cannot run code.

Every file used is hashed (sha256) for the output.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from motionhub.api import MotionhubError, read_torch_file, sha256_of

from .modules import FEATURES, T2MEvaluator

DIR_ENV = "MOTIONHUB_EVALUATOR_DIR"
MANIFEST = "evaluator.json"  # beside an evaluator trained here: its architecture and provenance
VOCABULARY = ("our_vab_data.npy", "our_vab_words.pkl", "our_vab_idx.pkl")
PARTS = ("movement_encoder", "motion_encoder", "text_encoder")
# Checksums of the files the reference repositories publish, where known (glove/ in
# EricGuo5513/text-to-motion); a different file is used but flagged in the output.
PUBLISHED_SHA256 = {
    "our_vab_words.pkl": "fac88da1be6f00d36b72b88c9745c8ac35a94a7bd6ccf1fa3bab380faf8c2e0d",
    "our_vab_idx.pkl": "d85dce83d2c27a92bb94bb51dc1f55a04fcaa328c359d23eccf648e296c16493",
}
# The folders under the evaluator folder where each file may lie, first match wins ({ds}: t2m or kit). The
# statistics folders are those of text-to-motion / MoMask (Comp_v6_KLD005/KLD01) and T2M-GPT (VQVAEV3...).
CANDIDATES = {
    "checkpoint": ["", "{ds}", "{ds}/text_mot_match/model", "checkpoints/{ds}/text_mot_match/model"],
    "stats": ["", "{ds}", "{ds}/meta", *(f"{root}{{ds}}/{name}/meta" for root in ("", "checkpoints/")
                                         for name in ("Comp_v6_KLD005", "Comp_v6_KLD01",
                                                      "VQVAEV3_CB1024_CMT_H1024_NRES3")), "dataset"],
    "vocabulary": ["", "glove"],
}


class EvaluatorFileError(MotionhubError):
    """An evaluator file is missing, unsafe or does not fit the evaluator."""


@dataclasses.dataclass(frozen=True)
class UsedFile:
    """One file the evaluation read, with its checksum."""

    role: str
    path: Path
    sha256: str

    def as_dict(self) -> dict[str, str]:
        out = {"path": str(self.path), "sha256": self.sha256}
        published = PUBLISHED_SHA256.get(self.path.name)
        if published is not None:
            out["published_sha256"] = "same" if published == self.sha256 else f"differs (published {published})"
        return out


@dataclasses.dataclass
class Vocabulary:
    """Word vectors by word: ``vectors[index[word]]``; ``words`` in file order (sos, eos, unk first)."""

    vectors: np.ndarray  # (V, 300) float32
    words: list[str]
    index: dict[str, int]

    def __post_init__(self):
        for word in ("sos", "eos", "unk"):
            if word not in self.index:
                raise ValueError(f"the vocabulary has no '{word}', which every caption uses")


@dataclasses.dataclass
class EvaluatorFiles:
    """Everything read from an evaluator folder."""

    dataset: str
    evaluator: T2MEvaluator
    mean: np.ndarray
    std: np.ndarray
    vocabulary: Vocabulary
    files: list[UsedFile]
    self_trained: dict[str, Any] | None = None  # evaluator.json of an evaluator trained here; None: published

    def checksums(self) -> dict[str, dict[str, str]]:
        return {used.role: used.as_dict() for used in self.files}


def evaluator_dir(given: str | os.PathLike | None) -> Path:
    """``given``, else ``$MOTIONHUB_EVALUATOR_DIR``; a missing folder says where the files come from."""
    if given is None:
        given = os.environ.get(DIR_ENV) or None
    if given is None:
        raise EvaluatorFileError(
            f"no evaluator folder: pass --evaluator-dir DIR or set {DIR_ENV}. {layout_help('t2m')}")
    path = Path(given).expanduser()
    if not path.is_dir():
        raise EvaluatorFileError(f"evaluator folder {path} does not exist. {layout_help('t2m')}")
    return path


def layout_help(ds: str) -> str:
    return (f"It must hold finest.tar (the text-to-motion evaluator's {ds}/text_mot_match/model/finest.tar), "
            f"the evaluator's mean.npy and std.npy ({ds}/Comp_v6_KLD005/meta/ or MDM's {ds}_mean.npy, "
            f"{ds}_std.npy) and the word vectors our_vab_data.npy, our_vab_words.pkl, our_vab_idx.pkl "
            f"(glove/); the reference repositories' checkpoints/ and glove/ folders work as they unpack.")


def find_file(root: Path, role: str, name: str, ds: str) -> Path:
    """The first ``CANDIDATES[role]`` folder under ``root`` holding ``name``; the error lists every place looked."""
    tried = []
    for pattern in CANDIDATES[role]:
        folder = pattern.format(ds=ds)
        path = root / folder / name if folder else root / name
        if path.is_file():
            return path
        tried.append(str(path.relative_to(root)))
    raise EvaluatorFileError(f"{name} not found in the evaluator folder {root}; looked for {', '.join(tried)}. "
                             f"{layout_help(ds)}")


def find_stats(root: Path, ds: str) -> tuple[Path, Path]:
    """The evaluator's (mean, std) files: ``mean.npy``/``std.npy`` or ``<ds>_mean.npy``/``<ds>_std.npy``."""
    tried = []
    for pattern in CANDIDATES["stats"]:
        folder = root / pattern.format(ds=ds) if pattern else root
        for mean, std in (("mean.npy", "std.npy"), (f"{ds}_mean.npy", f"{ds}_std.npy")):
            if (folder / mean).is_file() and (folder / std).is_file():
                return folder / mean, folder / std
            tried.append(str((folder / mean).relative_to(root)))
    raise EvaluatorFileError(f"the evaluator's normalisation statistics were not found in {root}; looked for "
                             f"{', '.join(tried)} (each with its std file). {layout_help(ds)}")


# ---------------------------------------------------------------------------- pickles
PLAIN_GLOBALS = {("builtins", name) for name in ("list", "dict", "str", "int", "tuple", "set", "frozenset")}
PLAIN_GLOBALS |= {("__builtin__", name) for name in ("list", "dict", "unicode", "str", "int", "long")}


class PlainUnpickler(pickle.Unpickler):
    """Builds only what pickle's own opcodes make (lists, dicts, strings, numbers) and the builtin
    container types; any other name in the file is refused before anything is created."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in PLAIN_GLOBALS:
            return {"unicode": str, "long": int}.get(name) or getattr(__import__("builtins"), name)
        raise pickle.UnpicklingError(f"names {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("holds a persistent reference")


def read_plain_pickle(path: Path) -> Any:
    """The lists, dicts, strings and numbers pickled in ``path``; a file naming anything else is refused."""
    try:
        return PlainUnpickler(io.BytesIO(path.read_bytes()), encoding="utf-8").load()
    except pickle.UnpicklingError as exc:
        raise EvaluatorFileError(
            f"{path} {exc}: the word-list files hold only lists and dicts of words and numbers, and "
            f"reading anything else could run code, so it is refused. Replace the file with the "
            f"published one (sha256 {PUBLISHED_SHA256.get(path.name, 'see README')}).") from None
    except Exception as exc:  # noqa: BLE001 - truncated or not a pickle
        raise EvaluatorFileError(f"cannot read {path} ({type(exc).__name__}: {exc}); it should be the "
                                 f"published pickle (sha256 {PUBLISHED_SHA256.get(path.name, 'see README')}).") from None


def read_vocabulary(data: Path, words_path: Path, index_path: Path) -> Vocabulary:
    """The word vectors, checked against each other: every word has a row, rows match the vectors."""
    words = read_plain_pickle(words_path)
    index = read_plain_pickle(index_path)
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise EvaluatorFileError(f"{words_path} should hold a list of words; it holds {_kind(words)}")
    if not isinstance(index, dict) or not all(isinstance(k, str) and isinstance(v, int) for k, v in index.items()):
        raise EvaluatorFileError(f"{index_path} should hold a dict of word -> row; it holds {_kind(index)}")
    try:
        vectors = np.load(data, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise EvaluatorFileError(f"cannot read {data} as a plain .npy array ({type(exc).__name__}: {exc})") from None
    if vectors.ndim != 2 or vectors.shape[1] != 300:
        raise EvaluatorFileError(f"{data} holds an array of shape {vectors.shape}; the word vectors are "
                                 f"(words, 300)")
    missing = [w for w in words if w not in index]
    if missing:
        raise EvaluatorFileError(f"{index_path} has no row for {len(missing)} words of {words_path}, "
                                 f"e.g. {missing[:5]}; the two files come from different vocabularies")
    rows = [index[w] for w in words]
    if rows and (min(rows) < 0 or max(rows) >= len(vectors)):
        raise EvaluatorFileError(f"{index_path} points at row {max(rows)} but {data} has {len(vectors)} rows; "
                                 f"the files come from different vocabularies")
    try:
        return Vocabulary(np.asarray(vectors, dtype=np.float32), words, {w: index[w] for w in words})
    except ValueError as exc:
        raise EvaluatorFileError(f"{words_path}: {exc}") from None


def _kind(value: Any) -> str:
    return type(value).__name__ + (f" of {len(value)}" if hasattr(value, "__len__") else "")


# ---------------------------------------------------------------------------- checkpoint
def expected_layout(ds: str, sizes: Mapping[str, int] | None = None) -> dict[str, dict[str, tuple[int, ...]]]:
    """Each part's state-dict keys and shapes for evaluator ``ds`` (``sizes``: a self-trained one's)."""
    evaluator = T2MEvaluator(ds, **(sizes or {}))
    return {name: {key: tuple(t.shape) for key, t in part.state_dict().items()}
            for name, part in evaluator.parts().items()}


def fit_problems(state: Mapping[str, Any], ds: str, sizes: Mapping[str, int] | None = None) -> list[str]:
    """What in a loaded ``finest.tar`` dict does not fit the evaluator of ``ds``, key by key."""
    problems = []
    layout = expected_layout(ds, sizes)
    for part, keys in layout.items():
        given = state.get(part)
        if not isinstance(given, Mapping):
            problems.append(f"'{part}' is missing" if given is None else f"'{part}' is not a state dict")
            continue
        for key, shape in keys.items():
            if key not in given:
                problems.append(f"{part}.{key} is missing (expected shape {shape})")
            elif not hasattr(given[key], "shape"):
                problems.append(f"{part}.{key} is not a tensor")
            elif tuple(given[key].shape) != shape:
                problems.append(f"{part}.{key} has shape {tuple(given[key].shape)}, expected {shape}")
        problems += [f"{part}.{key} is not part of the evaluator" for key in given if key not in keys]
    return problems


def likely_dataset(state: Mapping[str, Any]) -> str | None:
    """t2m or kit, from the movement encoder's first convolution, where that fits one of them."""
    weight = (state.get("movement_encoder") or {}).get("main.0.weight") if isinstance(state, Mapping) else None
    shape = tuple(getattr(weight, "shape", ()))
    for ds, features in FEATURES.items():
        if len(shape) == 3 and shape[1] == features - 4:
            return ds
    return None


def load_evaluator(path: Path, ds: str, sizes: Mapping[str, int] | None = None) -> T2MEvaluator:
    """The evaluator of ``ds`` with the weights of ``path`` (``finest.tar``), in eval mode on the CPU.

    The file is read with ``torch.load(weights_only=True)``; one that needs full unpickling is
    refused unless ``MOTIONHUB_TRUST_CHECKPOINTS=1``. A file that does not fit is refused naming
    each key that is missing, unexpected or of another shape.
    """
    try:
        state = read_torch_file(path, what="evaluator checkpoint")
    except MotionhubError as exc:
        raise EvaluatorFileError(str(exc)) from None
    if not isinstance(state, Mapping):
        raise EvaluatorFileError(f"{path} holds a {type(state).__name__}, not the evaluator checkpoint's dict of "
                                 f"{', '.join(PARTS)}")
    problems = fit_problems(state, ds, sizes)
    if problems:
        other = likely_dataset(state)
        hint = ""
        if other is not None and other != ds:
            hint = (f" It looks like the {'KIT-ML' if other == 'kit' else 'HumanML3D'} evaluator ({other}); "
                    f"the run's data needs the {ds} one.")
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise EvaluatorFileError(f"{path} does not fit the {ds} evaluator: {shown}.{hint}")
    evaluator = T2MEvaluator(ds, **(sizes or {}))
    for name, part in evaluator.parts().items():
        part.load_state_dict({key: value.float() for key, value in state[name].items()})
    return evaluator.eval()


def read_stats_pair(mean_path: Path, std_path: Path, features: int) -> tuple[np.ndarray, np.ndarray]:
    out = []
    for path in (mean_path, std_path):
        try:
            array = np.load(path, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001
            raise EvaluatorFileError(f"cannot read {path} as a plain .npy array ({type(exc).__name__}: {exc})") from None
        if array.shape != (features,):
            raise EvaluatorFileError(f"{path} has shape {array.shape}; the evaluator's statistics for this data set "
                                     f"have shape ({features},)")
        if not np.all(np.isfinite(array)):
            raise EvaluatorFileError(f"{path} holds non-finite values")
        out.append(array.astype(np.float64))
    if np.any(out[1] <= 0):
        raise EvaluatorFileError(f"{std_path} holds a standard deviation of 0 or less at feature "
                                 f"{int(np.argmin(out[1]))}")
    return out[0], out[1]


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """``evaluator.json`` of an evaluator trained here (``motionhub t2m-export-evaluator``), else None."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EvaluatorFileError(f"cannot read {path} ({exc}); export the evaluator again") from None
    missing = [key for key in ("features", "sizes", "run") if key not in manifest]
    if missing:
        raise EvaluatorFileError(f"{path} lacks {', '.join(missing)}; export the evaluator again")
    return manifest


def load_evaluator_files(root: str | os.PathLike | None, ds: str) -> EvaluatorFiles:
    """Every file the protocol needs for data set ``ds`` from the evaluator folder ``root``.

    A folder with ``evaluator.json`` holds an evaluator trained here: ``ds`` is then ``self`` and
    the architecture comes from that file.
    """
    folder = evaluator_dir(root)
    manifest = read_manifest(folder)
    if manifest is not None:
        ds = "self"
    elif ds not in FEATURES:
        raise EvaluatorFileError(f"no text-to-motion evaluator for {ds!r}; there are {', '.join(FEATURES)}")
    sizes = {"features": manifest["features"], **manifest["sizes"]} if manifest else None
    checkpoint = find_file(folder, "checkpoint", "finest.tar", ds)
    mean_path, std_path = find_stats(folder, ds)
    vocabulary_paths = [find_file(folder, "vocabulary", name, ds) for name in VOCABULARY]
    evaluator = load_evaluator(checkpoint, ds, sizes)
    mean, std = read_stats_pair(mean_path, std_path, evaluator.features)
    vocabulary = read_vocabulary(*vocabulary_paths)
    roles = [("finest.tar", checkpoint), ("mean", mean_path), ("std", std_path),
             *zip(VOCABULARY, vocabulary_paths)]
    files = [UsedFile(role, path.resolve(), sha256_of(path)) for role, path in roles]
    return EvaluatorFiles(ds, evaluator, mean, std, vocabulary, files, manifest)
