"""The ``motionhub`` command line."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import MotionhubError
from .registry import KINDS, plural

console = Console(stderr=True)
KIND_NAMES = {**{plural(k): k for k in KINDS}, **{k: k for k in KINDS}}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        return _version()
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    try:
        return args.func(args) or 0
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
                             ("train", _train, "train what a recipe names")):
        p = sub.add_parser(name, help=text)
        p.add_argument("recipe", help="path to the recipe YAML")
        p.add_argument("overrides", nargs="*", metavar="key=value",
                       help="override recipe values, e.g. train.lr=1e-4 data.root=./data")
        p.set_defaults(func=func)
    return parser


def _version() -> int:
    from .plugins import load_failures, plugin_infos

    print(f"motionhub {__version__}")
    for info in plugin_infos():
        where = f"{info.distribution} {info.version}" if info.distribution else "built-in"
        print(f"  {info.name} ({where})")
    for failure in load_failures():
        print(f"  {failure.name} ({failure.distribution} {failure.version}): FAILED TO LOAD - {failure.error}")
    return 0


def _plugins(args) -> int:
    from .plugins import hooks_of, load_failures, plugin_infos, registered_by

    rows = []
    for info in plugin_infos():
        rows.append({"name": info.name, "version": info.version or __version__,
                     "distribution": info.distribution or "motionhub", "builtin": info.distribution is None,
                     "hooks": hooks_of(info.name),
                     "registered": {plural(k): v for k, v in registered_by(info.name).items()}})
    for failure in load_failures():
        rows.append({"name": failure.name, "version": failure.version, "distribution": failure.distribution,
                     "builtin": False, "error": failure.error})
    print(json.dumps(rows, indent=2))
    return 0


def _list(args) -> int:
    from .errors import did_you_mean
    from .plugins import get_registry

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
    from .recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    parts = [f"{s}={getattr(recipe, s).name}" for s in ("data", "encoder", "quantizer", "decoder")]
    parts.append("losses=" + ",".join(spec.name for spec in recipe.losses))
    print(f"{args.recipe}: OK ({' '.join(parts)})")
    return 0


def _train(args) -> int:
    from .recipe import load_recipe
    from .trainer import train

    recipe = load_recipe(args.recipe, args.overrides)
    run_dir = train(recipe, console)
    print(run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
