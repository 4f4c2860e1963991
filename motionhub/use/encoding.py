"""Token ids of whole splits, and features decoded back from them (``motionhub encode`` / ``decode``).

Every clip is encoded at its true length, cropped to a multiple of the model's temporal
down-sampling by keeping its first ``(length // downsample) * downsample`` frames (clips
shorter than one unit are skipped and named). A conv or attention encoder sees what it would
see encoding the clip alone:

- an encoder that ``pads_exactly`` (the conv encoders: ``motionhub.model.padding``) takes full
  batches of neighbouring lengths, padded on the right, every conv reading zeros past each
  clip's end, as its own zero padding would;
- any other encoder takes batches of clips of one cropped length only, with no padding at all.

Decoding batches clips of the same token count. What batching can still change is
floating-point rounding: a kernel may sum in another order for a batch than for one clip
(about 1e-7 relative for oneDNN convolutions on the CPU), which alters an id only for a latent
lying on a quantisation boundary.

A tokens file (HDF5) holds

    tokens          (N_tokens, *Q) int32, every clip's ids concatenated along time
                    (Q: the quantizer's code axes, e.g. residual levels; none for one codebook)
    offsets         (n + 1,) int64; clip i is ``tokens[offsets[i]:offsets[i + 1]]``
    ids, texts      (n,) utf-8; texts are each clip's captions joined by "\\n"
    frame_lengths   (n,) int64 frames encoded (the cropped length)
    token_lengths   (n,) int64 tokens per clip
    source_lengths  (n,) int64 frames in the data set before cropping
    skipped_ids     (k,) utf-8 clips shorter than one down-sampling unit
    split_index     (n,) int64 position of each clip in the split

with attributes ``motionhub_file = "tokens"``, run dir, checkpoint, step, split, codebook
size, down-sampling, format name, feature shape and fps. A reconstruction file holds
``features`` (N_frames, *F) float32 de-normalised, ``offsets``, ``ids``, ``texts`` and, where
the format recovers joints, ``joints`` (N_frames, J, 3) float32.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from motionhub.errors import DataError, MotionhubError
from motionhub.data.folders import atomic_folder, check_clip_file_names, check_new_folder as new_folder
from motionhub.data.formats import MotionFormat
from motionhub.data.store import atomic_h5
from motionhub.model.padding import pads_exactly, zeros_past_ends
from motionhub.model.tokenizer import Tokenizer
from motionhub.data.windows import ClipSource

FILE_VERSION = 1
TOKENS = "tokens"
RECONSTRUCTION = "reconstruction"

Progress = Callable[[int], None]  # called with the number of clips done so far


@dataclasses.dataclass
class EncodedClips:
    """Token ids of the clips of a source, in source order.

    tokens:         (N_tokens, *Q) int32.
    offsets:        (n + 1,) int64; clip i is ``tokens[offsets[i]:offsets[i + 1]]``.
    clips:          (n,) int64 source index of each encoded clip.
    ids:            n clip ids.
    frame_lengths:  (n,) int64 frames encoded, a multiple of ``downsample``.
    source_lengths: (n,) int64 frames before cropping.
    skipped_ids:    clips shorter than ``downsample`` frames, not encoded.
    downsample:     the model's temporal down-sampling.
    first_frames:   (n, *F) float32 first frame of each clip, not normalised: decoders that
                    predict motion relative to the start (AMPLIFY's tracks) decode from it.
    """

    tokens: np.ndarray
    offsets: np.ndarray
    clips: np.ndarray
    ids: list[str]
    frame_lengths: np.ndarray
    source_lengths: np.ndarray
    skipped_ids: list[str]
    downsample: int
    first_frames: np.ndarray | None = None

    @property
    def token_lengths(self) -> np.ndarray:
        """(n,) int64 tokens per clip."""
        return np.diff(self.offsets)

    def clip_tokens(self, i: int) -> np.ndarray:
        """(T'_i, *Q) ids of clip ``i``."""
        return self.tokens[self.offsets[i]:self.offsets[i + 1]]


@dataclasses.dataclass
class TokenFile:
    """What a tokens file holds: the encoded clips, their captions and where they came from."""

    encoded: EncodedClips
    texts: list[str]  # one per encoded clip, captions joined by "\n"
    attrs: dict[str, Any]  # run_dir, checkpoint, step, split, codebook_size, downsample, format, ...


@dataclasses.dataclass
class Reconstruction:
    """De-normalised decoder output of every clip, concatenated along time.

    features: (N_frames, *F) float32.
    offsets:  (n + 1,) int64; clip i is ``features[offsets[i]:offsets[i + 1]]``.
    joints:   (N_frames, J, 3) float32 where the format recovers joint positions, else None.
    """

    features: np.ndarray
    offsets: np.ndarray
    joints: np.ndarray | None


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Positions into ``lengths`` (n,) in batches of ``batch_size`` neighbours by length, shortest
    first (the last batch may be smaller): the least padding for a right-padded batch."""
    order = np.argsort(lengths, kind="stable")
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def length_buckets(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Positions into ``lengths`` (n,) grouped by identical length, shortest first, at most
    ``batch_size`` per group."""
    order = np.argsort(lengths, kind="stable")
    same_length = np.split(order, np.flatnonzero(np.diff(lengths[order])) + 1)
    return [group[start:start + batch_size] for group in same_length if len(group)
            for start in range(0, len(group), batch_size)]


def resolve_device(name: str | None) -> torch.device:
    """``cuda`` when asked for (or by default when there is a GPU), else ``cpu``."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise MotionhubError("--device cuda was asked for, but torch finds no CUDA GPU here; "
                             "use --device cpu, or install a CUDA build of torch")
    return torch.device(name)


# ---------------------------------------------------------------------------- encode / decode
ENCODE_PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def autocast_for(device: torch.device | str, precision: str):
    """The context the forward passes of ``precision`` run in: nothing for fp32, autocast on
    ``device`` for bf16 (the quantizer and the losses keep to fp32 inside it,
    ``motionhub.model.precision``)."""
    if precision not in ENCODE_PRECISIONS:
        raise MotionhubError(f"unknown precision {precision!r}; choose one of {', '.join(ENCODE_PRECISIONS)}")
    dtype = ENCODE_PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


@torch.inference_mode()
def encode_clips(model: Tokenizer, fmt: MotionFormat, source: ClipSource, *, batch_size: int,
                 device: torch.device | str = "cpu", progress: Progress | None = None,
                 precision: str = "fp32") -> EncodedClips:
    """Token ids of every clip of ``source`` at its cropped length (see the module docstring).

    ``model`` must already be on ``device`` and in eval mode; ``fmt`` carries the statistics
    it was trained with. ``precision`` ``bf16`` runs the encoder under autocast (``autocast_for``).
    """
    autocast = autocast_for(device, precision)
    unit = model.downsample
    lengths = np.asarray(source.lengths, dtype=np.int64)
    kept = np.flatnonzero(lengths >= unit)
    if len(kept) == 0:
        raise DataError(f"no clip is at least {unit} frames long (the model's down-sampling), so none "
                        f"can be encoded; the longest has {lengths.max(initial=0)} frames")
    cropped = lengths[kept] // unit * unit
    per_clip: list[np.ndarray] = [np.empty(0)] * len(kept)
    padded = pads_exactly(model.encoder)
    done = 0
    for bucket in (sorted_batches if padded else length_buckets)(cropped, batch_size):
        clip_lengths = cropped[bucket]
        total = int(clip_lengths.max())
        motion = gather_clips(source, kept[bucket], total, fmt, clip_lengths)
        masking = (zeros_past_ends(model.encoder, torch.from_numpy(clip_lengths), total)
                   if padded else contextlib.nullcontext())
        with autocast, masking:
            indices = model.encode(motion.to(device)).cpu().numpy()  # (B, T', *Q)
        for position, clip_indices, length in zip(bucket, indices, clip_lengths):
            per_clip[position] = clip_indices[:length // unit]
        done += len(bucket)
        if progress is not None:
            progress(done)
    ids = source.ids
    skipped = np.flatnonzero(lengths < unit)
    return EncodedClips(
        tokens=_concatenate(per_clip, np.int32), offsets=_offsets([len(t) for t in per_clip]), clips=kept,
        ids=[ids[i] for i in kept], frame_lengths=cropped, source_lengths=lengths[kept],
        skipped_ids=[ids[i] for i in skipped], downsample=unit,
        first_frames=np.asarray(source.frames[source.offsets[kept]], dtype=np.float32))


def gather_clips(source: ClipSource, clips: np.ndarray, length: int, fmt: MotionFormat,
                 lengths: np.ndarray | None = None) -> torch.Tensor:
    """The first ``length`` frames of each of ``clips`` (source indices): (B, length, *F) float32,
    normalised element by element, so a clip's values do not depend on its batch. With
    ``lengths`` (B,), clip b keeps its first ``lengths[b]`` frames and zeros follow."""
    index = source.offsets[clips][:, None] + np.arange(length)
    if lengths is not None:  # past its end a clip reads its own first frame, zeroed below
        index = np.where(np.arange(length) < lengths[:, None], index, source.offsets[clips][:, None])
    frames = fmt.normalise(torch.from_numpy(np.take(source.frames, index, axis=0)).float())
    if lengths is not None:
        inside = torch.from_numpy(np.arange(length) < lengths[:, None])
        frames = frames * inside.reshape(*inside.shape, *([1] * (frames.dim() - 2)))
    return frames


@torch.inference_mode()
def decode_tokens(model: Tokenizer, fmt: MotionFormat, encoded: EncodedClips, *, batch_size: int,
                  device: torch.device | str = "cpu", progress: Progress | None = None) -> Reconstruction:
    """Features (and joints, where the format has them) of every clip's tokens, de-normalised.

    Clips with the same number of tokens are decoded together; ``model`` must be on ``device``.
    """
    counts = encoded.token_lengths
    features: list[np.ndarray] = [np.empty(0)] * len(counts)
    joints: list[np.ndarray] = [np.empty(0)] * len(counts)
    done = 0
    for bucket in length_buckets(counts, batch_size):
        index = encoded.offsets[bucket][:, None] + np.arange(counts[bucket[0]])
        indices = torch.from_numpy(encoded.tokens[index]).long().to(device)  # (B, T', *Q)
        recon = fmt.denormalise(_features_of(model, model.decode(indices), encoded, bucket, fmt, device)).float()
        batch_joints = fmt.to_joints(recon).float().cpu().numpy() if fmt.has_joints else None  # (B, T, J, 3)
        for k, (position, clip_features) in enumerate(zip(bucket, recon.cpu().numpy())):
            features[position] = clip_features
            if batch_joints is not None:
                joints[position] = batch_joints[k]
        done += len(bucket)
        if progress is not None:
            progress(done)
    return Reconstruction(features=_concatenate(features, np.float32),
                          offsets=_offsets([len(f) for f in features]),
                          joints=_concatenate(joints, np.float32) if fmt.has_joints else None)


def _features_of(model: Tokenizer, decoded, encoded: EncodedClips, bucket: np.ndarray, fmt: MotionFormat,
                 device) -> torch.Tensor:
    """Normalised features (B, T, *F) of a decoder's output for the clips at ``bucket``."""
    if not isinstance(decoded, dict):
        return decoded
    if "recon" in decoded:
        return decoded["recon"]
    if encoded.first_frames is None:
        raise MotionhubError("this run's decoder predicts motion from each clip's first frame, which this "
                             "tokens file does not hold; encode the split again with this version")
    first = fmt.normalise(torch.from_numpy(encoded.first_frames[bucket]).float())[:, None].to(device)
    return model.reconstruction(decoded, first)


def _concatenate(parts: Sequence[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False)


def _offsets(lengths: Sequence[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)


# ---------------------------------------------------------------------------- files


def write_tokens(path: str | Path, content: TokenFile) -> Path:
    """Write ``content`` as a tokens file at ``path``; the file appears only once complete."""
    encoded = content.encoded
    with atomic_h5(Path(path)) as f:
        f.create_dataset("tokens", data=encoded.tokens)
        f.create_dataset("offsets", data=encoded.offsets)
        _strings(f, "ids", encoded.ids)
        _strings(f, "texts", content.texts)
        f.create_dataset("frame_lengths", data=encoded.frame_lengths.astype(np.int64))
        f.create_dataset("token_lengths", data=encoded.token_lengths)
        f.create_dataset("source_lengths", data=encoded.source_lengths.astype(np.int64))
        _strings(f, "skipped_ids", encoded.skipped_ids)
        f.create_dataset("split_index", data=encoded.clips.astype(np.int64))
        if encoded.first_frames is not None:
            f.create_dataset("first_frames", data=encoded.first_frames)
        f.attrs.update({**content.attrs, "motionhub_file": TOKENS, "version": FILE_VERSION,
                        "downsample": encoded.downsample})
    return Path(path)


def check_output_file(path: Path) -> None:
    """``MotionhubError`` unless a file can be written at ``path`` (checked before any long work)."""
    path = Path(path)
    if path.is_dir():
        raise MotionhubError(f"--out '{path}' is a directory; name a file to write, e.g. {path / 'tokens.h5'}")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise MotionhubError(f"--out '{path}' cannot be written: '{parent}' is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise MotionhubError(f"--out '{path}' cannot be written: no permission to write in '{parent}'; "
                             f"name a file in a folder you can write to")


def check_new_folder(folder: Path) -> None:
    """``MotionhubError`` unless ``folder`` is absent or empty (checked before any long work)."""
    new_folder(folder, "the token files")


def write_npy_folder(encoded: EncodedClips, folder: str | Path) -> Path:
    """One ``<clip id>.npy`` per clip in ``folder``: int64 ids of shape (1, T'[, Q]).

    The layout the text-to-motion stages of T2M-GPT and MotionMillion read (their
    ``dataset/HumanML3D/<vq_name>/<id>.npy``, written there one clip at a time by
    ``net.encode`` with a batch of one). Ids with ``/`` make sub-folders. ``folder`` must
    not exist or be empty; it is filled beside itself and renamed into place once complete.
    """
    folder = Path(folder)
    check_new_folder(folder)
    check_clip_file_names(encoded.ids, folder)
    with atomic_folder(folder) as partial:
        for i, clip_id in enumerate(encoded.ids):
            target = partial / f"{clip_id}.npy"
            target.parent.mkdir(parents=True, exist_ok=True)
            np.save(target, encoded.clip_tokens(i).astype(np.int64)[None])
    return folder


def read_tokens(path: str | Path) -> TokenFile:
    """A tokens file written by ``write_tokens``; ``MotionhubError`` naming the problem otherwise."""
    path = Path(path)
    with _open_h5(path, TOKENS, "motionhub encode RUN_DIR --out") as f:
        attrs = {key: _plain(value) for key, value in f.attrs.items()}
        offsets = np.asarray(f["offsets"][()], dtype=np.int64)
        encoded = EncodedClips(
            tokens=np.asarray(f["tokens"][()]), offsets=offsets, clips=np.asarray(f["split_index"][()]),
            ids=f["ids"].asstr()[()].tolist(), frame_lengths=np.asarray(f["frame_lengths"][()]),
            source_lengths=np.asarray(f["source_lengths"][()]), skipped_ids=f["skipped_ids"].asstr()[()].tolist(),
            downsample=int(attrs["downsample"]),
            first_frames=np.asarray(f["first_frames"][()]) if "first_frames" in f else None)
        texts = f["texts"].asstr()[()].tolist()
    return TokenFile(encoded, texts, attrs)


def write_reconstruction(path: str | Path, recon: Reconstruction, ids: Sequence[str], texts: Sequence[str],
                         attrs: dict[str, Any]) -> Path:
    """Write decoded features (and joints) as a reconstruction file at ``path``, atomically."""
    with atomic_h5(Path(path)) as f:
        f.create_dataset("features", data=recon.features)
        f.create_dataset("offsets", data=recon.offsets)
        _strings(f, "ids", ids)
        _strings(f, "texts", texts)
        if recon.joints is not None:
            f.create_dataset("joints", data=recon.joints)
        f.attrs.update({**attrs, "motionhub_file": RECONSTRUCTION, "version": FILE_VERSION})
    return Path(path)


def read_reconstruction(path: str | Path) -> tuple[Reconstruction, list[str], dict[str, Any]]:
    """(features / offsets / joints, clip ids, attributes) of a reconstruction file."""
    with _open_h5(Path(path), RECONSTRUCTION, "motionhub decode RUN_DIR TOKENS --out") as f:
        recon = Reconstruction(features=f["features"][()], offsets=f["offsets"][()],
                               joints=f["joints"][()] if "joints" in f else None)
        return recon, f["ids"].asstr()[()].tolist(), {k: _plain(v) for k, v in f.attrs.items()}


def check_tokens_match(tokens: TokenFile, model: Tokenizer, run_dir: Path) -> None:
    """``MotionhubError`` unless ``model`` has the codebook and down-sampling the tokens were made with."""
    attrs = tokens.attrs
    made = (int(attrs["codebook_size"]), int(attrs["downsample"]))
    here = (model.quantizer.codebook_size, model.downsample)
    if made != here:
        raise MotionhubError(
            f"the tokens were encoded by the run in {attrs.get('run_dir')} (codebook of {made[0]} codes, "
            f"down-sampling {made[1]}), but {run_dir} has {here[0]} codes and down-sampling {here[1]}; "
            f"decode them with the run that encoded them")


def check_token_ids(tokens: TokenFile, model: Tokenizer, path: str | Path) -> None:
    """``MotionhubError`` naming the clip unless every id is in ``model``'s codebook and the tokens are
    shaped as its quantizer reads them (checked before decoding: an id out of range decodes to garbage
    or fails deep inside the decoder)."""
    encoded = tokens.encoded
    ids, offsets, size = encoded.tokens, encoded.offsets, model.quantizer.codebook_size
    if ids.ndim == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise MotionhubError(f"{path}: tokens are {ids.dtype} of shape {ids.shape}, not integer ids of shape "
                             f"(tokens, ...); the file is damaged, or not written by 'motionhub encode'")
    if (len(offsets) != len(encoded.ids) + 1 or (len(offsets) and (offsets[0] != 0 or offsets[-1] != len(ids)))
            or np.any(np.diff(offsets) < 0)):
        raise MotionhubError(f"{path}: offsets do not divide the {len(ids)} tokens into the {len(encoded.ids)} clips "
                             f"the file lists; the file is damaged")
    bad = np.flatnonzero(((ids < 0) | (ids >= size)).reshape(len(ids), -1).any(axis=1))
    if len(bad):
        first = int(bad[0])
        clip = int(np.searchsorted(offsets, first, side="right") - 1)
        value = ids[first].reshape(-1)
        value = int(value[(value < 0) | (value >= size)][0])
        raise MotionhubError(f"{path}: clip '{encoded.ids[clip]}' holds token id {value} (its token "
                             f"{first - int(offsets[clip])}), outside the codebook of {size} codes (ids 0..{size - 1}); "
                             f"{len(bad)} token(s) are out of range. The file is damaged or was made by another model: "
                             f"decode it with the run that encoded it")
    if len(ids):
        # the quantizer maps ids (B, N[, Q]) to codes (B, N, C): one position must give (1, 1, C)
        try:
            with torch.no_grad():
                codes = model.quantizer.indices_to_codes(torch.from_numpy(ids[:1][None].astype(np.int64)))
            problem = None if codes.ndim == 3 and tuple(codes.shape[:2]) == (1, 1) else f"codes of shape {tuple(codes.shape)}"
        except Exception as exc:  # noqa: BLE001 - any failure means the shape does not fit
            problem = f"{type(exc).__name__}: {exc}"
        if problem:
            raise MotionhubError(f"{path}: tokens of shape {tuple(ids.shape[1:])} per position do not fit the run's "
                                 f"quantizer {type(model.quantizer).__name__} ({problem}, not (1, 1, C) for one "
                                 f"position); decode them with the run that encoded them")


def _strings(f: h5py.File, name: str, values: Sequence[str]) -> None:
    f.create_dataset(name, data=np.array(list(values), dtype=object), dtype=h5py.string_dtype("utf-8"))


def _plain(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value (numpy scalars and arrays become int / float / list)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value.item() if isinstance(value, np.generic) else value


@contextlib.contextmanager
def _open_h5(path: Path, kind: str, writer: str) -> Iterator[h5py.File]:
    """``path`` opened read-only if it is a motionhub ``kind`` file; a clear error otherwise."""
    if not path.is_file():
        raise MotionhubError(f"no {kind} file at {path}; write one with '{writer} {path.name}'")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise MotionhubError(f"{path} is not an HDF5 file ({exc}); pass the file '{writer}' wrote") from None
    with f:
        found = f.attrs.get("motionhub_file")
        if found != kind:
            what = f"a motionhub {found} file" if found else f"an HDF5 file with {', '.join(f) or 'nothing'} in it"
            raise MotionhubError(f"{path} is {what}, not a motionhub {kind} file; pass the file '{writer}' wrote")
        if f.attrs.get("version") != FILE_VERSION:
            raise MotionhubError(f"{path} is a version {f.attrs.get('version')} {kind} file; this motionhub "
                                 f"reads version {FILE_VERSION}. Write it again with '{writer}'")
        yield f


@contextlib.contextmanager
def clip_progress(console, label: str, total: int) -> Iterator[Progress]:
    """A rich progress bar over ``total`` clips on ``console``; yields the ``progress`` callback."""
    from rich.progress import (BarColumn, MofNCompleteColumn, TaskProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from rich.progress import Progress as Bar

    with Bar(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TextColumn("clips"),
             TaskProgressColumn(), TimeElapsedColumn(), TimeRemainingColumn(), console=console) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.update(task, completed=done)
