"""``motionhub export EXPORTER (RUN_DIR | RECIPE.yaml) --out PATH [options]``: a data set in another format.

The exporters are plugins' (``register_exporters``); each one's options are its constructor's
arguments (``motionhub.commands.options``), so ``motionhub export pfnn --help`` lists them.
``ExporterCommand`` gives one exporter a command of its own (``motionhub export-pfnn``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from motionhub.commands import Command

RESERVED = ("source", "out", "split", "checkpoint", "overrides")  # the command's own arguments


class Export(Command):
    """Write one split of a data set (and optionally a trained run's output) in another format."""

    help = "write a data set (or a trained run's output) in another format, with a registered exporter"
    description = (
        "Export one split of the data set that a recipe (or the recipe of a run directory) names, with the "
        "named exporter. The exporters are plugins': 'motionhub list exporters' lists them, 'motionhub "
        "export EXPORTER --help' shows one's options.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from motionhub.commands.options import add_component_subcommands

        add_component_subcommands(parser, "exporter", exporter_parser)

    def run(self, args: argparse.Namespace) -> int:
        return run_export(args)


class ExporterCommand(Command):
    """``motionhub <command> (RUN_DIR | RECIPE.yaml) --out PATH [options]`` for one exporter.

    A plugin subclasses it, names its exporter in ``exporter`` and registers the subclass with
    ``register_commands``: the command takes the same arguments as ``motionhub export <exporter>``.
    """

    exporter = ""  # the registered name of the exporter

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from motionhub.plugins.manager import get_registry

        exporter_parser(get_registry().get("exporter", self.exporter), parser, self.description or None)

    def run(self, args: argparse.Namespace) -> int:
        return run_export(args)


def exporter_parser(component, parser: argparse.ArgumentParser, description: str | None = None) -> None:
    """``(RUN_DIR | RECIPE) [key=value ...] --out PATH [--split] [--checkpoint]`` and the exporter's options."""
    from motionhub.commands import ParagraphFormatter, add_overrides
    from motionhub.commands.options import add_component_options, described

    needs_model = bool(getattr(component.cls, "needs_model", False))
    parser.formatter_class = ParagraphFormatter
    parser.description = description or described(component.cls)
    parser.add_argument("source", type=Path, metavar="RUN_DIR" if needs_model else "RUN_DIR|RECIPE",
                        help="a run directory" + ("" if needs_model else " (its recipe's data set; the model is not "
                                                                          "needed) or a recipe file"))
    add_overrides(parser)
    parser.add_argument("--out", type=Path, required=True, metavar="PATH",
                        help="main file to write; companion files, if any, go next to it")
    parser.add_argument("--split", default="train", choices=("train", "val", "test"),
                        help="split to export (default: train)")
    if needs_model:
        parser.add_argument("--checkpoint", default="best",
                            help="checkpoint name in RUN_DIR/checkpoints/: best (default; falls back to last), "
                                 "last or step_N")
    names = add_component_options(parser, component, reserved=RESERVED)
    parser.set_defaults(exporter_component=component, exporter_options=names)


def run_export(args: argparse.Namespace) -> int:
    """Build the exporter from its options, read the source's data set (and run), export, summarise."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from motionhub.commands.options import component_options
    from motionhub.errors import MotionhubError
    from motionhub.model.build import build_dataset
    from motionhub.recipes import load_recipe
    from motionhub.use.export import ExportSource

    console = Console(stderr=True)
    component = args.exporter_component
    name = component.name
    exporter = component.cls(**component_options(args, args.exporter_options))
    needs_model = bool(getattr(exporter, "needs_model", False))
    recipe_path = args.source / "recipe.yaml" if args.source.is_dir() else args.source
    if args.source.is_dir() and not recipe_path.is_file():
        raise MotionhubError(f"{args.source} is not a run directory (no recipe.yaml); pass a run directory"
                             + ("" if needs_model else " or a recipe file"))
    loaded = None
    if needs_model:
        from motionhub.use.trained_run import load_run

        if not args.source.is_dir():
            raise MotionhubError(f"the {name} exporter needs a trained model: pass a run directory, not the recipe "
                                 f"{args.source}")
        loaded = load_run(args.source, args.checkpoint, args.overrides)
        dataset = loaded.dataset
    else:
        if args.source.is_dir():
            console.print(f"reading the data set of run {args.source} ({name} data needs no model)")
        dataset = build_dataset(load_recipe(recipe_path, args.overrides))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        source = ExportSource(dataset, args.split, run=loaded)
        task = progress.add_task(f"{name} {args.split} clips", total=source.num_clips())
        source.on_clip = lambda _: progress.advance(task)
        result = exporter.export(source, args.out)

    main, *others = result.files
    companions = f" (and {', '.join(path.name for path in others)})" if others else ""
    print(f"{getattr(exporter, 'output', '') or name + ' output'}: {main}{companions}")
    skipped = sum(len(ids) for ids in result.skipped.values())
    print(f"clips: {result.clips} of {result.clips + skipped} in split '{args.split}' of {dataset.describe()}")
    for reason, ids in result.skipped.items():
        shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
        print(f"skipped {len(ids)}: {reason} ({shown})")
    for key, value in result.details.items():
        print(f"{key}: {value}")
    return 0
