"""The ``motionhub`` command line."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import pkgutil
import sys

from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from motionhub import __version__, commands
from motionhub.errors import MotionhubError
from motionhub.plugins.registry import KINDS, plural

console = Console(stderr=True)
KIND_NAMES = {**{plural(k): k for k in KINDS}, **{k: k for k in KINDS}}


def main(argv: list[str] | None = None) -> int:
    # Warnings from data loading (skipped clips, non-finite values) and from plugins that fail to
    # load go through the console.
    logging.basicConfig(level=logging.INFO, format="%(message)s",
                        handlers=[RichHandler(console=console, show_time=False, show_path=False)])
    parser = _parser()
    # Overrides may come after flags (``train r.yaml --resume train.iters=10``), which plain
    # argparse cannot split between a positional list and options: collect them here.
    args, extra = parser.parse_known_args(argv)
    for item in extra:
        if item.startswith("-") or "=" not in item or not hasattr(args, "overrides"):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides.append(item)
    if not args.version and not getattr(args, "command", None):
        parser.print_help()
        return 0
    try:
        return _version() if args.version else args.func(args) or 0
    except MotionhubError as exc:
        if args.debug:
            console.print_exception()
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="motionhub", description="Train motion tokenizers from one YAML recipe.",
        epilog="Run 'motionhub <command> --help' for a command's options.")
    parser.add_argument("--version", action="store_true", help="print versions of motionhub and its plugins")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="<command>")

    p = sub.add_parser("plugins", help="list loaded plugins as JSON")
    p.set_defaults(func=_plugins)

    p = sub.add_parser("list", help="list registered components of one kind")
    p.add_argument("kind", help=f"one of: {', '.join(plural(k) for k in KINDS)}")
    p.set_defaults(func=_list)

    for name, func, text in (("validate", _validate, "check a recipe and report every problem"),
                             ("train", _train, "train what a recipe names (or resume a run directory)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("recipe", help="path to the recipe YAML" + (", or a run directory to resume" if name == "train" else ""))
        p.add_argument("overrides", nargs="*", metavar="key=value",
                       help="override recipe values, e.g. train.lr=1e-4 data.root=./data")
        if name == "train":
            p.add_argument("--resume", action="store_true",
                           help="continue the run in the recipe's run.out from its last checkpoint")
        p.set_defaults(func=func)

    p = sub.add_parser("report", help="print (and re-render report.md of) a finished run")
    p.add_argument("run_dir", help="a run directory")
    p.set_defaults(func=_report)

    # Further commands live one per module in motionhub.commands, each with add_parser(sub).
    for info in pkgutil.iter_modules(commands.__path__):
        importlib.import_module(f"{commands.__name__}.{info.name}").add_parser(sub)
    return parser


def _version() -> int:
    from motionhub.plugins.manager import DISABLE_ENV, plugin_statuses

    print(f"motionhub {__version__}")
    for row in plugin_statuses():
        state = ""
        if row.failure is not None:
            stage = row.failure.stage
            state = {"import": ": FAILED TO LOAD", "entry point": ": NOT LOADED"}.get(stage, f": FAILED IN {stage}")
            state += f" - {row.failure.error}"
        elif row.status == "disabled":
            state = f": disabled by {DISABLE_ENV}"
        print(f"  {row.info.name} ({row.info.origin}){state}")
    return 0


def _plugins(args) -> int:
    from motionhub.plugins.manager import plugin_statuses

    rows = []
    for row in plugin_statuses():
        info = row.info
        entry = {"name": info.name, "version": info.version, "distribution": info.distribution,
                 "builtin": info.builtin, "status": row.status, "hooks": list(row.hooks),
                 "registered": {plural(k): v for k, v in row.registered.items()}}
        if row.failure is not None:
            entry.update(error=row.failure.error, failed_in=row.failure.stage)
        if row.conflicts:
            entry["conflicts"] = list(row.conflicts)
        if row.warnings:
            entry["warnings"] = list(row.warnings)
        rows.append(entry)
    print(json.dumps(rows, indent=2))
    return 0


def _list(args) -> int:
    from motionhub.errors import did_you_mean
    from motionhub.plugins.manager import get_registry

    kind = KIND_NAMES.get(args.kind)
    if kind is None:
        choices = [plural(k) for k in KINDS]
        raise MotionhubError(f"unknown kind '{args.kind}'{did_you_mean(args.kind, choices) or '.'} "
                             f"Kinds: {', '.join(choices)}")
    table = Table(title=f"motionhub {plural(kind)}")
    for column in ("name", "provider", "description"):
        table.add_column(column)
    for component in get_registry().components(kind):
        table.add_row(component.name, component.provider, component.description)
    Console().print(table)
    return 0


def _validate(args) -> int:
    from motionhub.recipes.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    parts = [f"{s}={getattr(recipe, s).name}" for s in ("data", "encoder", "quantizer", "decoder")]
    parts.append("losses=" + ",".join(spec.name for spec in recipe.losses))
    print(f"{args.recipe}: OK ({' '.join(parts)})")
    return 0


def _train(args) -> int:
    from pathlib import Path

    from motionhub.recipes.recipe import load_recipe
    from motionhub.train.trainer import train

    path, overrides, resume = Path(args.recipe), list(args.overrides), args.resume
    if path.is_dir():  # a run directory: resume it with the recipe it was started with
        if not (path / "recipe.yaml").is_file():
            raise MotionhubError(f"{path} is a directory, not a recipe file, and not a run directory either "
                                 f"(it holds no recipe.yaml): pass a recipe's YAML file, or a run directory to resume")
        overrides, resume = [*overrides, f"run.out={path}"], True
        path = path / "recipe.yaml"
    recipe = load_recipe(path, overrides)
    run_dir = train(recipe, console, resume=resume)
    print(run_dir)
    return 0


def _report(args) -> int:
    from pathlib import Path

    from motionhub.train.report import load_report, print_report, render_markdown

    run_dir = Path(args.run_dir)
    if not (run_dir / "report.json").is_file():
        raise MotionhubError(f"no report.json in {run_dir}: is it a finished run directory?")
    report = load_report(run_dir)
    (run_dir / "report.md").write_text(render_markdown(report))
    print_report(report, Console())
    return 0


if __name__ == "__main__":
    sys.exit(main())
