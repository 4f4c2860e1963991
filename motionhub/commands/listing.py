"""``motionhub plugins`` and ``motionhub list KIND [NAME]``: what is installed and registered."""

from __future__ import annotations

from motionhub.commands import Command
from motionhub.plugins.registry import KINDS, plural


class Plugins(Command):
    """Every loaded plugin as JSON: version, distribution, hooks and the names it registered."""

    help = "list loaded plugins as JSON"

    def run(self, args) -> int:
        return print_plugins()


class List(Command):
    """The registered components of one kind, or one component's arguments and contract."""

    help = "list registered components of one kind (or describe one)"

    def add_arguments(self, parser) -> None:
        parser.add_argument("kind", help=f"one of: {', '.join(plural(k) for k in KINDS)}")
        parser.add_argument("name", nargs="?", help="a component of that kind: print its arguments and contract")

    def run(self, args) -> int:
        from rich.console import Console
        from rich.table import Table

        from motionhub.errors import MotionhubError, did_you_mean
        from motionhub.plugins.manager import get_registry

        kinds = {**{plural(k): k for k in KINDS}, **{k: k for k in KINDS}}
        kind = kinds.get(args.kind)
        if kind is None:
            choices = [plural(k) for k in KINDS]
            raise MotionhubError(f"unknown kind '{args.kind}'{did_you_mean(args.kind, choices) or '.'} "
                                 f"Kinds: {', '.join(choices)}")
        if args.name is not None:
            from motionhub.plugins.describe import describe_component

            print(describe_component(get_registry().get(kind, args.name)))
            return 0
        table = Table(title=f"motionhub {plural(kind)}")
        for column in ("name", "provider", "description"):
            table.add_column(column)
        for component in get_registry().components(kind):
            table.add_row(component.name, component.provider, component.description)
        Console().print(table)
        return 0


def print_versions() -> int:
    """``motionhub --version``: motionhub's version, then each plugin's, and the state of any that is not loaded."""
    from motionhub import __version__
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


def print_plugins() -> int:
    """``motionhub plugins``: every plugin as JSON (version, distribution, status, hooks, names, problems)."""
    import json

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
