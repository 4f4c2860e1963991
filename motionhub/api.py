"""The public surface for plugin authors: everything a plugin may import from motionhub.

Import from here rather than from the core's modules, which may move::

    from motionhub.api import Encoder, MotionFormat, hookimpl

Names resolve on first use, so ``import motionhub.api`` stays light (no torch) until a class
that needs it is asked for. What each kind of component must provide is documented in
CONTRIBUTING.md and by ``motionhub list <kind> <name>``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    # hooks and registration
    "hookimpl": "motionhub.plugins.hookspecs",
    "Bounds": "motionhub.plugins.types",
    "registered_plugin": "motionhub.plugins.testing",
    "lazy_exports": "motionhub.plugins.lazy",
    "get_registry": "motionhub.plugins.manager",
    # errors a plugin raises for its users
    "MotionhubError": "motionhub.errors",
    "DataError": "motionhub.errors",
    "did_you_mean": "motionhub.errors",
    # data sets
    "Dataset": "motionhub.data.dataset",
    "Clip": "motionhub.data.dataset",
    "SPLITS": "motionhub.data.dataset",
    "MotionFormat": "motionhub.data.formats",
    "FolderDataset": "motionhub.data.files",
    "BadDataPolicy": "motionhub.data.files",
    "ClipError": "motionhub.data.files",
    "OnBad": "motionhub.data.files",
    "find_stats": "motionhub.data.files",
    "load_motion": "motionhub.data.files",
    "read_stats": "motionhub.data.files",
    "sha256_of": "motionhub.data.files",
    "split_files": "motionhub.data.files",
    "layouts": "motionhub.data",
    # models
    "Encoder": "motionhub.model.tokenizer",
    "Decoder": "motionhub.model.tokenizer",
    "mirrored_settings": "motionhub.model.tokenizer",
    "Quantizer": "motionhub.model.quantizer",
    "QuantizerOutput": "motionhub.model.quantizer",
    "Loss": "motionhub.model.losses",
    "Metric": "motionhub.model.metrics",
    "Protocol": "motionhub.model.protocols",
    "ProtocolRun": "motionhub.model.protocols",
    "code_histogram": "motionhub.model.codebook",
    "codebook_usage": "motionhub.model.codebook",
    "histogram_entropy": "motionhub.model.codebook",
    "usage_from_histogram": "motionhub.model.codebook",
    "full_precision": "motionhub.model.precision",
    "full_precision_forward": "motionhub.model.precision",
    # motion math (pure functions, no I/O)
    "Skeleton": "motionhub.motion.skeletons",
    "forward_kinematics": "motionhub.motion.skeletons",
    "rotations": "motionhub.motion",
    "skeletons": "motionhub.motion",
    "humanml3d": "motionhub.motion",
    "representation272": "motionhub.motion",
    "filters": "motionhub.motion",
    # what one does with a run
    "Exporter": "motionhub.use.export",
    "ExportSource": "motionhub.use.export",
    "ExportResult": "motionhub.use.export",
    "SourceClip": "motionhub.use.export",
    "Importer": "motionhub.use.importing",
    "Imported": "motionhub.use.importing",
    "StateDictImporter": "motionhub.use.importing",
    "ForeignCheckpoint": "motionhub.use.importing",
    "Command": "motionhub.commands",
    "ExporterCommand": "motionhub.commands.export",
    "LoadedRun": "motionhub.use.trained_run",
    "load_run": "motionhub.use.trained_run",
    "load_tokenizer": "motionhub.use.package",
    "PackagedTokenizer": "motionhub.use.package",
    "resolve_device": "motionhub.use.encoding",
    "protocol_run": "motionhub.use.protocols",
    "run_and_write": "motionhub.use.protocols",
    "read_torch_file": "motionhub.train.checkpoint",
    "atomic_folder": "motionhub.data.folders",
    "check_new_folder": "motionhub.data.folders",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"motionhub.api has no '{name}'; it offers: {', '.join(__all__)}")
    module = importlib.import_module(module_name)
    value = getattr(module, name) if hasattr(module, name) else importlib.import_module(f"{module_name}.{name}")
    globals()[name] = value  # resolve once
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # for editors and type checkers; at run time names resolve lazily above
    from motionhub.commands import Command
    from motionhub.commands.export import ExporterCommand
    from motionhub.data import layouts
    from motionhub.data.dataset import SPLITS, Clip, Dataset
    from motionhub.data.files import (BadDataPolicy, ClipError, FolderDataset, OnBad, find_stats, load_motion, read_stats,
                                      sha256_of, split_files)
    from motionhub.data.folders import atomic_folder, check_new_folder
    from motionhub.data.formats import MotionFormat
    from motionhub.errors import DataError, MotionhubError, did_you_mean
    from motionhub.model.codebook import code_histogram, codebook_usage, histogram_entropy, usage_from_histogram
    from motionhub.model.losses import Loss
    from motionhub.model.metrics import Metric
    from motionhub.model.protocols import Protocol, ProtocolRun
    from motionhub.model.precision import full_precision, full_precision_forward
    from motionhub.model.quantizer import Quantizer, QuantizerOutput
    from motionhub.model.tokenizer import Decoder, Encoder, mirrored_settings
    from motionhub.motion import filters, humanml3d, representation272, rotations, skeletons
    from motionhub.motion.skeletons import Skeleton, forward_kinematics
    from motionhub.plugins.hookspecs import hookimpl
    from motionhub.plugins.lazy import lazy_exports
    from motionhub.plugins.manager import get_registry
    from motionhub.plugins.testing import registered_plugin
    from motionhub.plugins.types import Bounds
    from motionhub.train.checkpoint import read_torch_file
    from motionhub.use.export import Exporter, ExportResult, ExportSource, SourceClip
    from motionhub.use.encoding import resolve_device
    from motionhub.use.protocols import protocol_run, run_and_write
    from motionhub.use.importing import ForeignCheckpoint, Imported, Importer, StateDictImporter
    from motionhub.use.package import PackagedTokenizer, load_tokenizer
    from motionhub.use.trained_run import LoadedRun, load_run
