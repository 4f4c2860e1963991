"""Packaged tokenizers: a trained run as one self-contained, checksummed folder, and loading it back.

``motionhub package RUN_DIR --out DIR`` (``write_package``) writes::

    DIR/model.safetensors  the tokenizer's state dict: encoder, quantizer and decoder parameters and buffers
    DIR/stats.safetensors  normalisation ``mean`` and ``std``, float32 of shape feature_shape (absent when
                           the run trained on features that are not normalised)
    DIR/recipe.yaml        the resolved recipe the run trained with
    DIR/format.json        the MotionFormat: name, feature_shape, fps, named slices, skeleton, units
    DIR/plugins.json       the plugins that provide the recipe's components, with their versions
    DIR/README.md          a model card: what the tokenizer is, how to use it, the run's report
    DIR/manifest.json      what the package holds (run, step, checkpoint, tokenizer) and the sha256 of
                           every other file

safetensors holds tensors only (no pickle: loading a package never runs code it names) and is
memory-mapped on load. The folder is filled beside ``DIR`` and renamed into place once complete,
so a failure leaves nothing behind.

Loading (``load_package`` for the commands, ``load_tokenizer`` for Python code) checks, in order,
that the folder is a package, that every file the manifest lists is there with its sha256, and
that every plugin it needs is loaded in a compatible version (``version_problem``); each failure
is one ``PackageError`` naming the file or plugin and the fix. ``motionhub encode / decode / eval``
accept a package wherever they take a run directory (``load_run`` hands a package to
``load_package``); they read the recipe's data set as the run did, so where its data is not here
encode and eval say so (``data.root=...`` points them at it) and decode works without it.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from motionhub.data.dataset import Dataset
from motionhub.data.files import sha256_of
from motionhub.data.folders import atomic_folder
from motionhub.data.formats import MotionFormat
from motionhub.errors import DataError, MotionhubError, did_you_mean
from motionhub.model.tokenizer import Tokenizer
from motionhub.motion.skeletons import Skeleton
from motionhub.recipes import Recipe

PACKAGE_LAYOUT = 1  # manifest.json's "motionhub_package": bumped when the folder's layout changes
MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
STATS = "stats.safetensors"
RECIPE = "recipe.yaml"
FORMAT = "format.json"
PLUGINS = "plugins.json"
CARD = "README.md"
REQUIRED = (WEIGHTS, RECIPE, FORMAT, PLUGINS)
VERSION_POLICY = (
    "a plugin is compatible when the installed version is the packaged one or newer within the same "
    "release series: the same major version (for 0.x versions the same minor version, as a 0.x minor "
    "release may change a component's arguments or weights)")

log = logging.getLogger("motionhub.package")


class PackageError(MotionhubError):
    """A package cannot be written or loaded: not a package, a file missing or altered, a plugin missing."""


# ---------------------------------------------------------------------------- the format
def format_record(fmt: MotionFormat) -> dict[str, Any]:
    """``fmt`` as JSON-ready data, statistics and ``joints_fn`` aside."""
    slices = {}
    for name, part in fmt.slices.items():
        if not isinstance(part, slice) or part.step not in (None, 1):
            raise PackageError(f"format '{fmt.name}': slice '{name}' is {part!r}, not a range; it cannot be "
                               f"written to {FORMAT}")
        slices[name] = [part.start, part.stop]
    return {"name": fmt.name, "feature_shape": list(fmt.feature_shape), "fps": float(fmt.fps), "slices": slices,
            "skeleton": dataclasses.asdict(fmt.skeleton) if isinstance(fmt.skeleton, Skeleton) else None,
            "mm_per_unit": float(fmt.mm_per_unit),
            "image_size": list(fmt.image_size) if fmt.image_size is not None else None,
            "track_labels": fmt.track_labels, "joints": fmt.has_joints, "normalised": fmt.mean is not None}


def format_from_record(record: dict[str, Any]) -> MotionFormat:
    """The packaged format (no statistics): where it is one of motionhub's layouts, that layout, so
    joint positions come back without the data set; otherwise the record alone, without joints."""
    skeleton = Skeleton(**_tuples(record["skeleton"])) if record.get("skeleton") else None
    fmt = MotionFormat(
        name=record["name"], feature_shape=tuple(record["feature_shape"]), fps=float(record["fps"]),
        slices={name: slice(*bounds) for name, bounds in record["slices"].items()}, skeleton=skeleton,
        mm_per_unit=float(record["mm_per_unit"]),
        image_size=tuple(record["image_size"]) if record.get("image_size") is not None else None,
        track_labels=record.get("track_labels", "pixel"))
    for layout in _layouts(fmt):
        if {**json.loads(json.dumps(format_record(layout))), "normalised": None} == {**record, "normalised": None}:
            return layout
    return fmt


def _layouts(fmt: MotionFormat) -> list[MotionFormat]:
    from motionhub.data import layouts

    candidates = [layouts.humanml3d_263(fmt.fps), layouts.kit_251(fmt.fps), layouts.motionmillion_272(fmt.fps)]
    if fmt.skeleton is not None:
        candidates.append(layouts.joint_positions(fmt.skeleton, fmt.fps))
    return [dataclasses.replace(c, mm_per_unit=fmt.mm_per_unit) for c in candidates]


def _tuples(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _tuples(item) for key, item in value.items()}
    if isinstance(value, list):
        return tuple(_tuples(item) for item in value)
    return value


# ---------------------------------------------------------------------------- plugins
def required_plugins(recipe: Recipe) -> dict[str, dict[str, Any]]:
    """``{plugin: {"distribution", "version", "components"}}`` for the plugins that registered the
    recipe's components (data set, encoder, quantizer, decoder, losses, metrics)."""
    from motionhub.plugins.manager import plugin_infos
    from motionhub.train.report import plugins_used

    infos = {info.name: info for info in plugin_infos()}
    out = {}
    for name, used in plugins_used(recipe).items():
        info = infos.get(name)
        out[name] = {"distribution": info.distribution if info else None, "version": info.version if info else None,
                     "components": used["components"]}
    return out


def _release(version: str) -> tuple[int, int, int] | None:
    match = re.match(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", version.strip())
    return None if match is None else tuple(int(part or 0) for part in match.groups())  # type: ignore[return-value]


def _series(release: tuple[int, int, int]) -> tuple[int, ...]:
    return release[:1] if release[0] >= 1 else release[:2]


def compatible_range(version: str) -> str:
    """The versions ``version_problem`` accepts for a package made with ``version``, as a pip specifier."""
    release = _release(version)
    if release is None:
        return f"=={version}"
    upper = f"{release[0] + 1}" if release[0] >= 1 else f"0.{release[1] + 1}"
    return f">={version},<{upper}"


def version_problem(installed: str | None, packaged: str | None) -> str | None:
    """Why ``installed`` cannot load what ``packaged`` wrote, or None (see ``VERSION_POLICY``).

    Versions that are unknown (a plugin registered in-process) are not compared; ones that do not
    start with a number must be equal."""
    if installed is None or packaged is None or installed == packaged:
        return None
    have, need = _release(installed), _release(packaged)
    if have is None or need is None:
        return f"version {installed} is installed; the package was made with {packaged}"
    if _series(have) != _series(need):
        return f"version {installed} is installed, another release series than the {packaged} the package was made with"
    if have < need:
        return f"version {installed} is installed, older than the {packaged} the package was made with"
    return None


def check_plugins(path: Path, needed: dict[str, dict[str, Any]]) -> None:
    """``PackageError`` listing every plugin of ``needed`` that is missing, switched off, broken or of an
    incompatible version, each with how to get a fitting one."""
    from motionhub.plugins.manager import DISABLE_ENV, LOAD_ENV, disabled_plugins, load_failures, plugin_infos

    loaded = {info.name: info for info in plugin_infos()}
    disabled = {info.name for info in disabled_plugins()}
    broken = {failure.name: failure for failure in load_failures()}
    problems = []
    for name, need in needed.items():
        provides = ", ".join(need.get("components") or ()) or "components"
        version, dist = need.get("version"), need.get("distribution")
        wanted = f"{dist}{compatible_range(version)}" if dist and version else (dist or name)
        install = f"install it: pip install '{wanted}'"
        if name in broken:
            problem = f"is installed but broken ({broken[name].error}); fix or reinstall it: pip install '{wanted}'"
        elif name in disabled:
            problem = f"is switched off by {DISABLE_ENV}; take it out of that list"
        elif name not in loaded:
            where = f" (or left out by {LOAD_ENV})" if os.environ.get(LOAD_ENV) is not None else ""
            problem = f"is not installed{where}{did_you_mean(name, loaded) or ''}; {install}"
        else:
            why = version_problem(loaded[name].version, version)
            if why is None:
                continue
            problem = f"{why}; {install}"
        problems.append(f"plugin '{name}' ({provides}) {problem}")
    if problems:
        raise PackageError(f"{path} needs plugins that are not available here:\n  " + "\n  ".join(problems)
                           + f"\nRule: {VERSION_POLICY}. 'motionhub plugins' lists what is installed.")


# ---------------------------------------------------------------------------- checksums
def is_package(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def read_manifest(path: Path) -> dict[str, Any]:
    """The package's manifest; ``PackageError`` when ``path`` is not a package folder."""
    make = f"make one with 'motionhub package RUN_DIR --out {path}'"
    if not path.exists():
        raise PackageError(f"{path} does not exist; a packaged tokenizer is a folder ({make})")
    if not path.is_dir():
        raise PackageError(f"{path} is a file, not a packaged tokenizer folder ({make})")
    if not (path / MANIFEST).is_file():
        what = ("a run directory, not a package: package it with 'motionhub package "
                f"{path} --out DIR', or use it directly with the commands" if (path / "recipe.yaml").is_file()
                else f"not a packaged tokenizer: {make}")
        raise PackageError(f"{path} has no {MANIFEST}: it is {what}")
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackageError(f"{path / MANIFEST} cannot be read ({exc}); the package is damaged: package the run "
                           f"again") from None
    layout = manifest.get("motionhub_package") if isinstance(manifest, dict) else None
    if not isinstance(layout, int) or not isinstance(manifest.get("files"), dict):
        raise PackageError(f"{path / MANIFEST} is not a motionhub package manifest (no 'motionhub_package' and "
                           f"'files'); {make}")
    if layout > PACKAGE_LAYOUT:
        raise PackageError(f"{path} was written by a newer motionhub ({manifest.get('created_with')}, package "
                           f"layout {layout}; this one reads layout {PACKAGE_LAYOUT}); upgrade motionhub")
    return manifest


def verify_files(path: Path, manifest: dict[str, Any]) -> None:
    """``PackageError`` naming every file that the manifest lists and is missing or altered (sha256),
    and every file a package needs that the manifest does not list."""
    files = manifest["files"]
    problems = [f"{name}: not listed in {MANIFEST}, which every package lists" for name in REQUIRED
                if name not in files]
    for name, entry in files.items():
        file = path / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            problems.append(f"{name}: not a file inside the package")
        elif not file.is_file():
            problems.append(f"{name}: missing")
        elif (found := sha256_of(file)) != (expected := entry.get("sha256") if isinstance(entry, dict) else None):
            problems.append(f"{name}: altered or damaged: its sha256 is {found[:16]}..., the manifest's is "
                            f"{str(expected)[:16]}...")
    if problems:
        raise PackageError(f"{path} is not intact:\n  " + "\n  ".join(problems)
                           + "\nCopy the package again from where it was made (or package the run again).")


# ---------------------------------------------------------------------------- writing
def write_package(run_dir: str | Path, out: str | Path, checkpoint: str = "best",
                  overrides: list[str] | None = None) -> dict[str, Any]:
    """Package ``run_dir``'s ``checkpoint`` as the folder ``out``; returns the manifest.

    ``out`` must not exist or be an empty folder. It is filled beside itself and renamed into
    place once every file is written and synced; any failure removes the partial folder.
    """
    from motionhub.use.trained_run import load_run

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PackageError(f"--out {out} already exists and is not an empty folder; name a new folder for the "
                           f"package, or remove the old one")
    if is_package(run_dir):
        raise PackageError(f"{run_dir} is already a package; copy the folder to share it")
    loaded = load_run(run_dir, checkpoint, overrides)
    used = "best" if checkpoint == "best" and (loaded.run.path / "checkpoints" / "best.pt").is_file() else (
        "last" if checkpoint == "best" else checkpoint)
    needed = required_plugins(loaded.recipe)
    try:
        with atomic_folder(out) as partial:
            manifest = _fill(partial, loaded, used, needed)
    except OSError as exc:
        raise PackageError(f"cannot write the package {out}: {exc.strerror or exc}; nothing was left "
                           f"behind") from None
    return manifest


def _fill(folder: Path, loaded, checkpoint: str, needed: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every file of the package in ``folder``; the manifest last, with the others' sha256."""
    from safetensors.torch import save_file

    from motionhub import __version__

    model, fmt = loaded.model, loaded.format
    # Contiguous copies that share no memory: safetensors refuses tied or strided tensors.
    weights = {key: value.detach().cpu().contiguous().clone() for key, value in model.state_dict().items()}
    save_file(weights, folder / WEIGHTS, metadata={"format": "pt"})
    if fmt.mean is not None:
        stats = {"mean": torch.from_numpy(np.asarray(fmt.mean, np.float32).copy()),
                 "std": torch.from_numpy(np.asarray(fmt.std, np.float32).copy())}
        save_file(stats, folder / STATS)
    (folder / RECIPE).write_text(loaded.recipe.to_yaml())
    (folder / FORMAT).write_text(json.dumps(format_record(fmt), indent=2) + "\n")
    (folder / PLUGINS).write_text(json.dumps({"policy": VERSION_POLICY, "plugins": needed}, indent=2) + "\n")
    recipe = loaded.recipe
    manifest = {
        "motionhub_package": PACKAGE_LAYOUT, "created_with": f"motionhub {__version__}",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run": {"name": recipe.run.name, "source": str(loaded.run.path.resolve()), "checkpoint": checkpoint,
                "step": loaded.step},
        "tokenizer": {"encoder": recipe.encoder.name, "quantizer": recipe.quantizer.name,
                      "decoder": recipe.decoder.name, "codebook_size": int(model.quantizer.codebook_size),
                      "downsample": int(model.downsample), "id_shape": list(id_shape(model, fmt)),
                      "parameters": sum(p.numel() for p in model.parameters()),
                      "format": fmt.name, "feature_shape": list(fmt.feature_shape), "fps": float(fmt.fps)},
    }
    (folder / CARD).write_text(model_card(loaded, manifest, needed))
    names = sorted(p.name for p in folder.iterdir())
    manifest["files"] = {name: {"sha256": sha256_of(folder / name), "bytes": (folder / name).stat().st_size}
                         for name in names}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    umask = os.umask(0)
    os.umask(umask)
    for name in [*names, MANIFEST]:
        (folder / name).chmod(0o666 & ~umask)  # shared as any other file (safetensors and mkdtemp make them private)
        with open(folder / name, "rb") as f:
            os.fsync(f.fileno())
    folder.chmod(0o777 & ~umask)
    return manifest


@torch.inference_mode()
def id_shape(model: Tokenizer, fmt: MotionFormat) -> tuple[int, ...]:
    """The shape of one token's ids: ``()`` for one code, ``(q,)`` for a residual quantizer's q levels."""
    device = next(model.parameters()).device
    probe = torch.zeros(1, model.downsample, *fmt.feature_shape, device=device)
    return tuple(model.encode(probe).shape[2:])


def model_card(loaded, manifest: dict[str, Any], needed: dict[str, dict[str, Any]]) -> str:
    """README.md of a package: what the tokenizer is, how to load it, the plugins it needs, the run's report."""
    from motionhub.train.report import load_report, render_markdown

    tok, run = manifest["tokenizer"], manifest["run"]
    shape = "(T, " + ", ".join(map(str, tok["feature_shape"])) + ")"
    parts = [f"T // {tok['downsample']}", *map(str, tok["id_shape"])]
    ids = "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
    lines = [
        f"# {run['name']}: a motionhub motion tokenizer", "",
        f"{tok['encoder']} encoder -> {tok['quantizer']} quantizer ({tok['codebook_size']:,} codes) -> "
        f"{tok['decoder']} decoder, {tok['parameters']:,} parameters. One token per {tok['downsample']} frames "
        f"of `{tok['format']}` motion {shape} at {tok['fps']:g} fps. Weights of checkpoint `{run['checkpoint']}` "
        f"(step {run['step']}) of the run `{run['source']}`, packaged by {manifest['created_with']}.", "",
        "## Use", "", "```python", "from motionhub import load_tokenizer", "",
        "tok = load_tokenizer(\"path/to/this/folder\")",
        f"ids = tok.encode(motion)      # {shape} float32 features, not normalised -> {ids} int64 ids",
        "recon = tok.decode(ids)       # -> de-normalised features, (len(ids) * "
        f"{tok['downsample']}, {', '.join(map(str, tok['feature_shape']))})", "```", "",
        "```bash", "motionhub encode path/to/this/folder --split val --out tokens.h5   # data.root=... where the data is",
        "motionhub decode path/to/this/folder tokens.h5 --out recon.h5", "```", "",
        "## Plugins it needs", "", f"Rule: {VERSION_POLICY}.", "",
        "| plugin | distribution | version | components |", "| --- | --- | --- | --- |",
        *[f"| {name} | {need['distribution'] or 'in-process'} | {need['version'] or '-'} | "
          f"{', '.join(need['components'])} |" for name, need in needed.items()], "",
        f"`{MANIFEST}` lists the sha256 of every file; loading refuses a missing or altered one.", "",
    ]
    report_path = loaded.run.path / "report.json"
    if report_path.is_file():
        report = load_report(loaded.run.path)
        # Figures stay with the run; the card carries the tables.
        here = {**report, "run": {**report["run"], "directory": str(loaded.run.path / "-")}, "figures": None}
        body = render_markdown(here).split("\n", 1)[1]
        lines += ["## Training report", "", *[f"#{line}" if line.startswith("## ") else line
                                              for line in body.strip().splitlines()], ""]
    else:
        lines += ["## Training report", "", "The run has no report.json (imported, or stopped before the end).", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- loading
class DataNotHere(Dataset):
    """A package's data set where it cannot be built: the package's format; reading clips says why."""

    def __init__(self, fmt: MotionFormat, reason: str, package: Path):
        self.format, self.reason, self.package = fmt, reason, package

    def _refuse(self):
        raise DataError(f"the data set of the package {self.package} cannot be read here: {self.reason} Point its "
                        f"recipe at the data with an override, e.g. data.root=/path/to/data")

    def clips(self, split: str):
        self._refuse()

    def fingerprint(self) -> str:
        self._refuse()
        return ""

    def describe(self) -> str:
        return f"{self.format.name} data (not available here)"


@dataclasses.dataclass
class PackageContents:
    """A package read and checked: its manifest, recipe, format (with statistics) and weights."""

    path: Path
    manifest: dict[str, Any]
    recipe: Recipe
    format: MotionFormat
    weights: dict[str, torch.Tensor]


def read_package(path: str | Path, checkpoint: str | None = None, overrides: list[str] | None = None
                 ) -> PackageContents:
    """Check ``path`` (manifest, sha256 of every file, plugins) and read it; ``PackageError`` saying what is wrong.

    A package holds one checkpoint of its run: ``checkpoint`` ``None`` or ``best`` (the commands'
    default) means it, another name must be the one packaged.
    """
    from safetensors.torch import load_file

    from motionhub.recipes import recipe_from_tree

    path = Path(path)
    manifest = read_manifest(path)
    verify_files(path, manifest)
    packaged = (manifest.get("run") or {}).get("checkpoint")
    if checkpoint not in (None, "best", packaged):
        raise PackageError(f"{path} holds only checkpoint '{packaged}' of its run, not '{checkpoint}'; drop "
                           f"--checkpoint, or package the run again with --checkpoint {checkpoint}")
    check_plugins(path, _read(path / PLUGINS, json.loads).get("plugins", {}))
    recipe = recipe_from_tree(_read(path / RECIPE, yaml.safe_load), str(path / RECIPE), overrides)
    try:
        fmt = format_from_record(_read(path / FORMAT, json.loads))
    except (KeyError, TypeError, ValueError) as exc:
        raise PackageError(f"{path / FORMAT} does not describe a motion format ({type(exc).__name__}: {exc}); "
                           f"package the run again") from None
    if (path / STATS).is_file():
        stats = load_file(path / STATS)
        fmt = fmt.with_stats(stats["mean"].numpy(), stats["std"].numpy())
    return PackageContents(path, manifest, recipe, fmt, load_file(path / WEIGHTS))


def _read(path: Path, parse) -> dict[str, Any]:
    """``parse`` of the text of ``path``, a mapping; ``PackageError`` naming the file otherwise."""
    try:
        value = parse(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise PackageError(f"{path} cannot be read ({type(exc).__name__}: {exc}); package the run again") from None
    if not isinstance(value, dict):
        raise PackageError(f"{path} holds a {type(value).__name__}, not a mapping; package the run again")
    return value


def load_package(path: str | Path, checkpoint: str | None = None, overrides: list[str] | None = None,
                 data: bool = True):
    """A package as a ``LoadedRun``, as ``load_run`` loads a run directory.

    With ``data`` the recipe's data set is built (for encode and eval) and its format, checked
    against the package's, used; where it cannot be built here, the package's own format stands in
    and reading clips raises why. Without ``data`` nothing outside the package is read.
    """
    from motionhub.model.build import build_dataset
    from motionhub.train.rundir import RunDir
    from motionhub.use.trained_run import LoadedRun

    contents = read_package(path, checkpoint, overrides)
    fmt, dataset = contents.format, DataNotHere(contents.format, "the package was loaded without its data set.",
                                                   contents.path)
    if data:
        try:
            dataset = build_dataset(contents.recipe)
        except MotionhubError as exc:
            log.info("%s: its data set is not available here (%s); using the packaged format", path, exc)
            dataset = DataNotHere(contents.format, str(exc), contents.path)
        else:
            fmt = _data_format(dataset, contents, overrides)
    model = build_packaged_tokenizer(contents, fmt, overrides)
    return LoadedRun(RunDir(contents.path), contents.recipe, dataset, fmt, model,
                     int((contents.manifest.get("run") or {}).get("step", 0)), contents.path / WEIGHTS)


def _data_format(dataset: Dataset, contents: PackageContents, overrides: list[str] | None) -> MotionFormat:
    """The data set's format with the package's statistics, once it is the format the package was trained on."""
    here, packaged = dataset.format, contents.format
    if (here.name, tuple(here.feature_shape)) != (packaged.name, tuple(packaged.feature_shape)):
        changed = f" (overrides: {' '.join(overrides)})" if overrides else ""
        raise PackageError(f"{contents.path} was trained on '{packaged.name}' frames of shape "
                           f"{tuple(packaged.feature_shape)}, but its recipe's data{changed}, {dataset.describe()}, "
                           f"has '{here.name}' frames of shape {tuple(here.feature_shape)}; use the data the "
                           f"tokenizer was trained on")
    if packaged.mean is None:
        return dataclasses.replace(here, mean=None, std=None)
    return here.with_stats(packaged.mean, packaged.std)


def build_packaged_tokenizer(contents: PackageContents, fmt: MotionFormat, overrides: list[str] | None = None
                             ) -> Tokenizer:
    """The recipe's tokenizer with the package's weights, in eval mode on the CPU."""
    from motionhub.model.build import build_tokenizer
    from motionhub.train.checkpoint import check_model_fits

    model = build_tokenizer(contents.recipe, fmt)
    check_model_fits(contents.weights, model, contents.path / WEIGHTS,
                     "The package's recipe builds another model than the one packaged"
                     + ("; drop the overrides that change its shape." if overrides else
                        "; the package was written by another version of a plugin."))
    model.load_state_dict(contents.weights)
    return model.eval()


# ---------------------------------------------------------------------------- the Python API
class PackagedTokenizer:
    """A packaged tokenizer for numpy arrays: ``encode`` motion to token ids, ``decode`` ids to motion.

    Motion is one clip ``(T, *F)`` of features as the data set stores them (not normalised; ``F`` is
    ``format.feature_shape``, e.g. ``(263,)``), or a list of such clips. ``encode`` crops a clip to
    its first ``(T // downsample) * downsample`` frames, as ``motionhub encode`` does, and returns
    int64 ids ``(T // downsample, *Q)`` (``Q`` = ``id_shape``: ``()`` for one code per token, ``(q,)``
    for a residual quantizer's q levels). ``decode`` returns float32 features
    ``(len(ids) * downsample, *F)``, de-normalised; ``joints`` recovers joint positions ``(T, J, 3)``
    from features where the format can. Normalisation uses the statistics the run trained with.
    """

    def __init__(self, loaded, device: torch.device | str = "cpu"):
        self.path: Path = loaded.run.path
        self.recipe: Recipe = loaded.recipe
        self.format: MotionFormat = loaded.format
        self.step: int = loaded.step
        self.device = torch.device(device)
        self.model: Tokenizer = loaded.model.to(self.device)
        self.downsample: int = int(self.model.downsample)
        self.codebook_size: int = int(self.model.quantizer.codebook_size)
        self.id_shape: tuple[int, ...] = id_shape(self.model, self.format)

    def __repr__(self) -> str:
        return (f"PackagedTokenizer({str(self.path)!r}: {self.format.name} {tuple(self.format.feature_shape)} "
                f"at {self.format.fps:g} fps, {self.codebook_size:,} codes, one token per {self.downsample} frames)")

    def encode(self, motion: np.ndarray | Sequence[np.ndarray]) -> np.ndarray | list[np.ndarray]:
        """Token ids of one clip ``(T, *F)`` -> ``(T // downsample, *id_shape)`` int64, or of a list of clips."""
        if isinstance(motion, (list, tuple)):
            return [self._encode(clip, f"clip {i}") for i, clip in enumerate(motion)]
        return self._encode(motion, "the motion")

    @torch.inference_mode()
    def _encode(self, motion: np.ndarray, what: str) -> np.ndarray:
        frames = np.asarray(motion, dtype=np.float32)
        shape = tuple(self.format.feature_shape)
        if frames.ndim != 1 + len(shape) or frames.shape[1:] != shape:
            several = " (pass several clips as a list of arrays)" if frames.ndim == 2 + len(shape) else ""
            raise MotionhubError(f"{what} has shape {frames.shape}; this tokenizer encodes (T, "
                                 f"{', '.join(map(str, shape))}) '{self.format.name}' features{several}")
        length = len(frames) // self.downsample * self.downsample
        if length == 0:
            raise MotionhubError(f"{what} has {len(frames)} frames, fewer than the {self.downsample} frames of "
                                 f"one token")
        bad = np.flatnonzero(~np.isfinite(frames[:length].reshape(length, -1)).all(axis=1))
        if len(bad):
            raise MotionhubError(f"{what} has non-finite values (NaN or inf) in {len(bad)} frames, the first at "
                                 f"frame {bad[0]}")
        x = self.format.normalise(torch.from_numpy(frames[:length]))[None].to(self.device)
        return self.model.encode(x)[0].cpu().numpy().astype(np.int64)

    def decode(self, ids: np.ndarray | Sequence[np.ndarray], first_frame: np.ndarray | None = None
               ) -> np.ndarray | list[np.ndarray]:
        """Features ``(len(ids) * downsample, *F)`` float32 of one clip's ids, or a list for a list.

        ``first_frame`` ``(*F)``: the clip's first frame, for decoders that predict motion from it
        (point-track decoders); others ignore it.
        """
        if isinstance(ids, (list, tuple)) and not (ids and np.isscalar(ids[0])):
            return [self._decode(clip, first_frame, f"clip {i}") for i, clip in enumerate(ids)]
        return self._decode(ids, first_frame, "the ids")

    @torch.inference_mode()
    def _decode(self, ids: np.ndarray, first_frame: np.ndarray | None, what: str) -> np.ndarray:
        ids = np.asarray(ids)
        if not np.issubdtype(ids.dtype, np.integer) or ids.ndim != 1 + len(self.id_shape) or ids.shape[1:] != \
                self.id_shape or len(ids) == 0:
            expected = ", ".join(["tokens", *map(str, self.id_shape)])
            raise MotionhubError(f"{what} are {ids.dtype} of shape {ids.shape}; this tokenizer decodes integer ids "
                                 f"of shape ({expected}), as encode returns them")
        outside = np.flatnonzero(((ids < 0) | (ids >= self.codebook_size)).reshape(len(ids), -1).any(axis=1))
        if len(outside):
            raise MotionhubError(f"{what} hold ids outside the codebook of {self.codebook_size} codes (token "
                                 f"{outside[0]}: {ids[outside[0]].tolist()})")
        decoded = self.model.decode(torch.from_numpy(ids.astype(np.int64))[None].to(self.device))
        if isinstance(decoded, dict) and "recon" not in decoded:
            if first_frame is None:
                raise MotionhubError("this tokenizer's decoder predicts motion from the clip's first frame: pass "
                                     f"first_frame, shape {tuple(self.format.feature_shape)}")
            first = torch.from_numpy(np.asarray(first_frame, dtype=np.float32).reshape(self.format.feature_shape))
            decoded = self.model.reconstruction(decoded, self.format.normalise(first)[None, None].to(self.device))
        elif isinstance(decoded, dict):
            decoded = decoded["recon"]
        return self.format.denormalise(decoded).float()[0].cpu().numpy()

    def joints(self, features: np.ndarray) -> np.ndarray:
        """Joint positions ``(T, J, 3)`` of features ``(T, *F)`` (not normalised), where the format has them."""
        return self.format.to_joints(torch.from_numpy(np.asarray(features, dtype=np.float32))).numpy()


def load_tokenizer(path: str | Path, device: torch.device | str = "cpu") -> PackagedTokenizer:
    """The packaged tokenizer in folder ``path`` (written by ``motionhub package``), checked and ready.

    ``PackageError`` when the folder is not a package, a file is missing or altered, or a plugin it
    needs is missing or of an incompatible version. Reads nothing outside the folder.
    """
    return PackagedTokenizer(load_package(path, data=False), device)
