"""``motionhub import IMPORTER CHECKPOINT --out RUN_DIR [options]``: a checkpoint written elsewhere as a run directory.

The importers are plugins' (``register_importers``); each one's options are its constructor's
arguments (``motionhub.commands.options``), so ``motionhub import t2m-gpt --help`` lists them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from motionhub.commands import Command

RESERVED = ("checkpoint", "out")  # the command's own arguments


class Import(Command):
    """Turn a checkpoint written by another code base into a run directory, with a registered importer."""

    help = "turn a checkpoint written by another code base into a run directory (see: motionhub list importers)"
    description = (
        "Read CHECKPOINT with the named importer and write RUN_DIR (recipe.yaml, checkpoints/last.pt) for "
        "'motionhub eval', 'encode' and 'train RUN_DIR' (continue training). The importers are plugins': "
        "'motionhub list importers' lists them, 'motionhub import IMPORTER --help' shows one's options.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from motionhub.commands.options import add_component_subcommands

        add_component_subcommands(parser, "importer", importer_parser)

    def run(self, args: argparse.Namespace) -> int:
        from rich.console import Console

        from motionhub.commands.options import component_options

        importer = args.importer_class(**component_options(args, args.importer_options))
        imported = importer.import_run(args.checkpoint, args.out)
        Console(stderr=True).print(f"[green]imported[/] {imported.tensors} tensors of {args.checkpoint} "
                                   f"({args.importer}) at step {imported.step} -> "
                                   f"{imported.run / 'checkpoints' / 'last.pt'}")
        print(imported.run)
        return 0


def importer_parser(component, parser: argparse.ArgumentParser) -> None:
    """``CHECKPOINT --out RUN_DIR`` and the importer's own options."""
    from motionhub.commands import ParagraphFormatter
    from motionhub.commands.options import add_component_options, described

    parser.formatter_class = ParagraphFormatter
    parser.description = described(component.cls)
    parser.add_argument("checkpoint", type=Path, metavar="CHECKPOINT",
                        help="the checkpoint to import, e.g. net_last.pth or best.pth")
    parser.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="run directory to create")
    names = add_component_options(parser, component, reserved=RESERVED)
    parser.set_defaults(importer_class=component.cls, importer_options=names)
