"""``motionhub plugins`` and ``motionhub list KIND [NAME]``: what is installed and registered."""

from __future__ import annotations

from motionhub.commands import Command
from motionhub.plugins.registry import KINDS, plural


class Plugins(Command):
    """Every loaded plugin as JSON: version, distribution, hooks and the names it registered."""

    help = "list loaded plugins as JSON"

    def run(self, args) -> int:
        from motionhub.cli import _plugins

        return _plugins(args)


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
