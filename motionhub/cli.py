"""The ``motionhub`` command line: parses the arguments and dispatches to the chosen command.

The commands themselves are plugins' (``register_commands``); the core's own are registered by
``motionhub.commands.builtin``.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys

from rich.console import Console
from rich.logging import RichHandler

from motionhub.commands.listing import print_versions
from motionhub.errors import MotionhubError, PluginError

console = Console(stderr=True)


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
    if hasattr(args, "overrides"):  # a fresh list: the parser's default is shared between calls
        args.overrides = [*args.overrides, *extra]
    if not args.version and not getattr(args, "command", None):
        parser.print_help()
        return 0
    try:
        return print_versions() if args.version else args.func(args) or 0
    except MotionhubError as exc:
        if args.debug:
            console.print_exception()
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        if exc.errno not in DISK_ERRORS:
            raise  # not something the user's machine did: show the traceback
        if args.debug:
            console.print_exception()
        print(f"Error: {disk_error_message(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


# A full, over-quota or read-only disk, or a folder one may not write to, can stop any command
# that writes; say so in one message.
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES)


def disk_error_message(exc: OSError) -> str:
    where = f" writing {exc.filename}" if exc.filename else ""
    if exc.errno == errno.EACCES:
        return (f"permission denied{where}. Files written before it are intact: write somewhere you may "
                f"(e.g. run.out=... or --out ...) and run the command again.")
    what = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "the disk quota is exceeded",
            errno.EROFS: "the file system is read-only"}[exc.errno]
    return (f"{what}{where}. Files written before it are intact, and a training run keeps its last "
            f"checkpoint: free some space (or write to another disk, e.g. run.out=... or --out ...) and run the "
            f"command again; 'motionhub train RUN_DIR' continues a run.")


def _parser() -> argparse.ArgumentParser:
    """The top-level parser; a command's own parser is built only when that command is chosen.

    Every command, the core's included (``motionhub.commands.builtin``), comes from the
    registry: a plugin's ``register_commands`` hook adds ``motionhub <its-command>``.
    """
    from motionhub.commands.options import add_subcommands, missing_message
    from motionhub.plugins.manager import get_registry

    parser = argparse.ArgumentParser(
        prog="motionhub", description="Train motion tokenizers from one YAML recipe.",
        epilog="Run 'motionhub <command> --help' for a command's options.")
    parser.add_argument("--version", action="store_true", help="print versions of motionhub and its plugins")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    try:
        registry = get_registry(strict=False)  # a broken plugin is reported by the commands that need it
    except MotionhubError as exc:
        parser.exit(exc.exit_code, f"Error: {exc}\n")
    commands = {component.name: component for component in registry.components("command")}
    add_subcommands(parser, dest="command", metavar="<command>",
                    entries={name: _command_help(component) for name, component in commands.items()},
                    build=lambda name, sub: _command_parser(commands[name], sub),
                    unknown=lambda name: missing_message("command", name, registry))
    return parser


def _command_help(component) -> str:
    """The one line ``motionhub --help`` shows for a command (importing only its class)."""
    try:
        return getattr(component.cls, "help", "") or component.description
    except MotionhubError as exc:
        return f"UNAVAILABLE: {exc}"


def _command_parser(component, parser: argparse.ArgumentParser) -> None:
    """Fill the chosen command's parser: its description, its arguments, and ``func = run``."""
    from motionhub.commands import ParagraphFormatter

    cls = component.cls
    missing = [what for what, ok in (("a one-line 'help'", isinstance(getattr(cls, "help", None), str) and cls.help),
                                     ("add_arguments(parser)", callable(getattr(cls, "add_arguments", None))),
                                     ("run(args)", callable(getattr(cls, "run", None)))) if not ok]
    if missing:
        raise PluginError(f"plugin '{component.provider}' registered command '{component.name}' "
                          f"({cls.__module__}.{cls.__qualname__}) without {' and '.join(missing)}; a command "
                          f"subclasses motionhub.api.Command and provides help, add_arguments(parser) and "
                          f"run(args) -> int")
    command = cls()
    parser.description = getattr(command, "description", "") or command.help
    parser.formatter_class = ParagraphFormatter
    command.add_arguments(parser)
    parser.set_defaults(func=command.run)


if __name__ == "__main__":
    sys.exit(main())
