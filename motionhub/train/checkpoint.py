"""Checkpoints: written atomically, read without running code.

A checkpoint holds tensors and plain data only (dicts, lists, tuples, numbers, strings), so
``torch.load(weights_only=True)`` reads it: a checkpoint from someone else cannot run code
here. ``plain`` turns numpy arrays and scalars into tensors and numbers before saving and
``load_checkpoint`` turns the RNG state and statistics back. The trainer works with a typed
``CheckpointState`` (``motionhub.train.state``); it becomes the plain dict here, on the way to
disk, and back on the way in, so the file is the same as ever. A file that needs more (a
checkpoint of an older motionhub version, which kept numpy arrays, or a file that names
arbitrary Python objects) is refused unless ``MOTIONHUB_TRUST_CHECKPOINTS=1`` is set.

Writes go to a temporary file in the same folder, fsynced and renamed over the target: a
crash (or a full disk) mid-write never damages the last good checkpoint.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from motionhub.errors import MotionhubError
from motionhub.train.state import CheckpointState

TRUST_ENV = "MOTIONHUB_TRUST_CHECKPOINTS"
LISTED = 8  # tensors named in a mismatch message
logger = logging.getLogger("motionhub.train.checkpoint")


class CheckpointError(MotionhubError):
    """A checkpoint cannot be used: missing, damaged, unsafe to read, not motionhub's, or not fitting."""


class DamagedCheckpoint(CheckpointError):
    """The file is not a readable torch file (truncated, overwritten, empty)."""


class UnsafeCheckpoint(CheckpointError):
    """The file names Python objects that reading it would create (code would run)."""


# ---------------------------------------------------------------------------- writing
def plain(obj: Any) -> Any:
    """``obj`` with numpy arrays as tensors and numpy scalars as Python numbers (containers rebuilt only
    where something inside changed, so a state dict keeps its type and metadata)."""
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.array(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        items = {key: plain(value) for key, value in obj.items()}
        if all(items[key] is value for key, value in obj.items()):
            return obj
        return items
    if isinstance(obj, (list, tuple)):
        items = [plain(value) for value in obj]
        if all(new is old for new, old in zip(items, obj)):
            return obj
        return list(items) if isinstance(obj, list) else tuple(items)
    return obj


def save_checkpoint(payload: Mapping[str, Any] | CheckpointState, *paths: str | Path) -> None:
    """``payload`` as a weights-only checkpoint at each of ``paths``, in that order."""
    data = plain(payload.to_dict() if isinstance(payload, CheckpointState) else dict(payload))
    for path in paths:
        save_atomic(data, path)


def save_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``.

    A failed write (a full disk, no permission) removes the temporary file, leaves ``path`` as
    it was and raises ``CheckpointError`` naming the file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise CheckpointError(_write_failure(exc, path, obj)) from None
        raise
    return path


def _write_failure(exc: OSError, path: Path, obj: Any) -> str:
    kept = (f"The previous {path.name} is intact" if path.exists() else f"No earlier {path.name} existed")
    kept += "; the partial file was removed."
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        need = payload_bytes(obj)
        try:
            free = f"{shutil.disk_usage(path.parent).free / 2**20:,.1f} MiB are free"
        except OSError:
            free = "the free space is unknown"
        return (f"no space left on the device to write {path}: the checkpoint needs about "
                f"{need / 2**20:,.1f} MiB, {free} in {path.parent}. {kept} Free some space (or move run.out to "
                f"a larger disk) and continue the run with 'motionhub train RUN_DIR'.")
    return f"cannot write {path}: {exc.strerror or exc}. {kept}"


def payload_bytes(obj: Any) -> int:
    """Bytes of the tensors and arrays in ``obj`` (about the size of its checkpoint)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(payload_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(payload_bytes(v) for v in obj)
    return 8


# ---------------------------------------------------------------------------- reading
def trusted() -> bool:
    return os.environ.get(TRUST_ENV, "") not in ("", "0")


def read_torch_file(path: str | Path, what: str = "checkpoint") -> Any:
    """What ``torch.load(weights_only=True)`` reads from ``path``; ``CheckpointError`` saying why not.

    A file that needs full unpickling is read that way only with ``MOTIONHUB_TRUST_CHECKPOINTS=1``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}{_others(path)}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one message
        failure = exc
    unsafe = unsafe_globals(path)
    if not unsafe:
        raise DamagedCheckpoint(f"cannot read {what} {path}: {_reason(failure)}. The file is damaged (cut short "
                                f"by a killed process or a full disk?) or not a torch file.{_others(path)}")
    if not trusted():
        raise UnsafeCheckpoint(
            f"{path} holds Python objects beyond tensors and plain data ({', '.join(unsafe[:LISTED])}); reading "
            f"it would create them and could run any code the file names, so motionhub does not. Checkpoints "
            f"of motionhub itself hold only tensors and plain data; one written by an older version keeps "
            f"numpy arrays. Only if you trust where the file came from, read it anyway with "
            f"{TRUST_ENV}=1 (this lets the file run code on this machine); a resumed or re-imported run then "
            f"writes checkpoints that need no such trust.")
    logger.warning("%s: reading with full unpickling (%s=1); it names %s", path, TRUST_ENV, ", ".join(unsafe[:LISTED]))
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001
        raise DamagedCheckpoint(f"cannot read {what} {path}: {_reason(exc)}{_others(path)}") from None


def unsafe_globals(path: Path) -> list[str]:
    """The Python objects ``path`` names beyond those weights-only loading allows; empty if unreadable."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - not a readable torch file
        return []
    return sorted(names, key=lambda name: (name.startswith("numpy"), name))  # the surprising ones first


def _reason(exc: BaseException) -> str:
    """The first sentence of ``exc``'s message (torch's go on for a paragraph)."""
    text = re.split(r"\.(?:\s|$)", str(exc).strip(), maxsplit=1)[0].strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


CHECKPOINT_NAME = re.compile(r"(best|last|step_\d+)\.pt")


def checkpoints_in(folder: Path) -> list[Path]:
    """The checkpoints in ``folder``: last, best, then step_N from the newest."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_file() and CHECKPOINT_NAME.fullmatch(p.name)]
    order = {"last.pt": (0, 0), "best.pt": (1, 0)}
    return sorted(found, key=lambda p: order[p.name] if p.name in order else (2, -int(p.stem.split("_")[1])))


def _others(path: Path) -> str:
    others = [p.stem for p in checkpoints_in(path.parent) if p.name != path.name]
    if not others:
        return ""
    return (f"\nOther checkpoints in {path.parent}: {', '.join(others)}; choose one with --checkpoint NAME "
            f"(e.g. --checkpoint {others[0]}).")


MOTIONHUB_KEYS = ("model", "recipe")


def is_motionhub_checkpoint(data: Any) -> bool:
    return isinstance(data, dict) and all(isinstance(data.get(k), dict) for k in MOTIONHUB_KEYS) and "state" in data


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A motionhub checkpoint as it was saved (statistics and the numpy RNG state as numpy again).

    ``CheckpointError`` when the file is missing, damaged, unsafe to read or not a motionhub checkpoint.
    """
    path = Path(path)
    data = read_torch_file(path)
    if not is_motionhub_checkpoint(data):
        raise CheckpointError(_foreign(path, data))
    return restored(data)


def _foreign(path: Path, data: Any) -> str:
    if isinstance(data, dict) and data and all(isinstance(v, torch.Tensor) for v in data.values()):
        found = f"a bare state dict of {len(data)} tensors (e.g. {next(iter(data))})"
    elif isinstance(data, dict):
        found = f"a dict with keys {', '.join(map(str, list(data)[:LISTED])) or 'none'}"
    else:
        found = f"a {type(data).__name__}"
    return (f"{path} is not a motionhub checkpoint: it holds {found}, where motionhub's hold model, optimizer, "
            f"state and recipe. A checkpoint of another code base becomes a run directory with an importer: "
            f"'motionhub list importers' lists them, 'motionhub import IMPORTER --help' shows how.")


def restored(data: dict[str, Any]) -> dict[str, Any]:
    """A loaded payload with the numpy parts ``plain`` turned into tensors as numpy again."""
    stats = data.get("stats")
    if isinstance(stats, dict):
        data["stats"] = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in stats.items()}
    for state in data.get("rng") or []:
        numpy_state = state.get("numpy") if isinstance(state, dict) else None
        if isinstance(numpy_state, (tuple, list)) and isinstance(numpy_state[1], torch.Tensor):
            keys = numpy_state[1].numpy().astype(np.uint32)
            state["numpy"] = (numpy_state[0], keys, *numpy_state[2:])
    return data


def step_of(data: dict[str, Any]) -> int:
    state = data.get("state")
    return int(state.get("step", 0)) if isinstance(state, dict) else 0


def resume_checkpoint(folder: Path, say: Callable[[str], None] | None = None) -> tuple[dict[str, Any], Path]:
    """The checkpoint to resume from: ``last.pt``, or where it is missing or damaged the newest readable
    one of ``step_N.pt`` and ``best.pt`` (``say`` tells which). A file unsafe to read or not motionhub's
    stops the resume: it is not damage to work around."""
    last = folder / "last.pt"
    try:
        return load_checkpoint(last), last
    except DamagedCheckpoint as exc:
        problem = str(exc).split("\n")[0]
    except CheckpointError as exc:
        if last.exists() or isinstance(exc, UnsafeCheckpoint):
            raise
        problem = f"{last} is missing"
    readable = []
    for path in checkpoints_in(folder):
        if path.name == "last.pt":
            continue
        try:
            readable.append((load_checkpoint(path), path))
        except CheckpointError:  # damaged too, or nothing to trust: not a way to resume
            continue
    if not readable:
        raise CheckpointError(f"{problem}\nNo other checkpoint in {folder} can be read either; the run cannot "
                              f"be resumed. Start it anew (train without --resume, or with another run.out).")
    data, path = max(readable, key=lambda item: step_of(item[0]))
    if say is not None:
        say(f"{problem}\nResuming from {path.name} (step {step_of(data)}), the newest readable checkpoint.")
    return data, path


def resume_state(folder: Path, say: Callable[[str], None] | None = None, process_index: int = 0,
                 num_processes: int = 1) -> tuple[CheckpointState, Path]:
    """``resume_checkpoint`` as a ``CheckpointState``, with this process's part of what each process keeps."""
    data, path = resume_checkpoint(folder, say)
    return CheckpointState.from_dict(data, process_index, num_processes), path


def remove_debris(folder: Path) -> list[Path]:
    """Temporary checkpoint files a killed process left in ``folder``; removed, and returned."""
    removed = []
    for path in sorted(folder.glob(".*.tmp")) if folder.is_dir() else []:
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def check_model_fits(weights: Mapping[str, Any], model: torch.nn.Module, path: str | Path,
                     cause: str = "") -> None:
    """``CheckpointError`` naming the tensors unless ``weights`` fill ``model`` exactly, shape for shape."""
    ours = model.state_dict()
    missing = [k for k in ours if k not in weights]
    unused = [k for k in weights if k not in ours]
    shapes = [k for k in ours if k in weights and isinstance(weights[k], torch.Tensor)
              and tuple(weights[k].shape) != tuple(ours[k].shape)]
    if not (missing or unused or shapes):
        return
    lines = []
    for items, what in ((shapes, "tensors differ in shape"), (missing, "model tensors are missing from the checkpoint"),
                        (unused, "checkpoint tensors have no place in the model")):
        if not items:
            continue
        shown = [f"{k} {tuple(weights[k].shape)} in the checkpoint, {tuple(ours[k].shape)} in the model"
                 if what.startswith("tensors differ") else k for k in items[:LISTED]]
        more = f"\n    ... ({len(items) - LISTED} more)" if len(items) > LISTED else ""
        lines.append(f"  {len(items)} {what}:\n    " + "\n    ".join(shown) + more)
    raise CheckpointError(f"{path} does not fit the model the recipe builds:\n" + "\n".join(lines) + "\n"
                          + (cause or "The recipe describes another model than the one trained; drop the "
                                      "overrides that change the model's shape or the data layout."))
