"""``motionhub package RUN_DIR --out DIR``: a trained run as a self-contained, checksummed tokenizer folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from motionhub.commands import Command, add_run_arguments


class Package(Command):
    """Package a trained run as a folder that encode / decode / eval and ``load_tokenizer`` read."""

    help = "package a trained run as a self-contained tokenizer folder (safetensors weights, checksums)"
    description = """
    Writes DIR with the run's weights as model.safetensors (no pickle), its normalisation
    statistics (stats.safetensors), the resolved recipe, the data format (format.json), the
    plugins and versions it needs (plugins.json), a model card (README.md, with the run's
    report) and manifest.json with the sha256 of every file. DIR must not exist or be empty;
    the folder is written beside it and renamed into place when complete.

    'motionhub encode / decode / eval DIR' take the package in place of the run directory, and
    Python code loads it with 'from motionhub import load_tokenizer'. Loading refuses a package
    with a missing or altered file, or whose plugins are missing or of an incompatible version
    (the same release series, not older).
    """

    def add_arguments(self, parser) -> None:
        add_run_arguments(parser)
        parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="package folder to write")

    def run(self, args: argparse.Namespace) -> int:
        from rich.console import Console

        from motionhub.use.package import write_package

        manifest = write_package(args.run_dir, args.out, args.checkpoint, args.overrides)
        tok, run = manifest["tokenizer"], manifest["run"]
        size = sum(entry["bytes"] for entry in manifest["files"].values())
        Console(stderr=True).print(
            f"[green]packaged[/] checkpoint {run['checkpoint']} (step {run['step']}) of {args.run_dir}: "
            f"{tok['encoder']} -> {tok['quantizer']} ({tok['codebook_size']:,} codes) -> {tok['decoder']}, "
            f"{tok['parameters']:,} parameters; {len(manifest['files']) + 1} files, {size / 2**20:,.2f} MiB")
        print(args.out)
        return 0
