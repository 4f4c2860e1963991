"""Command-line options read from a component's declared arguments, and sub-parsers built on demand.

An exporter's or importer's constructor is its option list, exactly as a recipe component's is
its recipe keys (``motionhub.plugins.arguments``): parameter ``foot_heights: Sequence[float] |
None = None`` documented as ``foot_heights: ...`` in the class docstring becomes
``--foot-heights X,...`` with that line as its help. How each annotation is read:

* ``int``, ``float``, ``str``, ``Path``: one value (``Optional[...]`` the same, default None);
  ``Bounds`` declared with the type are checked.
* ``bool``: a flag, ``--name`` when the default is False, ``--no-name`` when it is True.
* ``Literal["a", "b"]``: one of those words.
* ``list[X]``, ``tuple[X, ...]``, ``Sequence[X]``: comma-separated values, ``--feet a,b,c``.
* a parameter named ``overrides``: the trailing ``key=value`` words (recipe overrides).

A parameter without a default is a required option.
"""

from __future__ import annotations

import argparse
import collections.abc
import inspect
import pathlib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from motionhub.errors import MotionhubError, PluginError

OVERRIDES = "overrides"  # a parameter with this name takes the trailing key=value words
SEQUENCES = (list, tuple, collections.abc.Sequence)


def add_component_options(parser: argparse.ArgumentParser, component, reserved: Iterable[str] = ()) -> list[str]:
    """One option per constructor argument of ``component`` (a registered ``Component``).

    ``reserved``: argument names the command uses itself (``out``, ``split``); a component
    argument of one of those names is a ``PluginError`` naming the plugin. Returns the
    argument names, which ``component_options`` reads back from the parsed arguments.
    """
    from motionhub.plugins.arguments import arguments_of

    arguments = arguments_of(component.cls)
    reserved = tuple(reserved)
    clashes = [a.name for a in arguments if a.name in reserved]
    if clashes:
        raise PluginError(
            f"{component.kind} '{component.name}' of plugin '{component.provider}' has the argument "
            f"{', '.join(repr(c) for c in clashes)}, which the command uses itself ({', '.join(reserved)}); "
            f"the plugin must rename it")
    for argument in arguments:
        add_option(parser, argument)
    return [a.name for a in arguments]


def component_options(args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """The keyword arguments to build the component with: every declared argument, as parsed."""
    return {name: getattr(args, name) for name in names}


def add_option(parser: argparse.ArgumentParser, argument) -> None:
    """The option (or the trailing overrides) for one ``motionhub.plugins.arguments.Argument``."""
    if argument.name == OVERRIDES:
        parser.add_argument(OVERRIDES, nargs="*", default=(), metavar="key=value",
                            help=argument.doc or "recipe overrides, e.g. data.root=/elsewhere")
        return
    flag = "--" + argument.name.replace("_", "-")
    annotation = _without_none(argument.annotation)
    doc = argument.doc
    if annotation is bool:
        if argument.required:
            parser.add_argument(flag, dest=argument.name, action=argparse.BooleanOptionalAction, required=True,
                                help=doc)
        elif argument.default:
            parser.add_argument("--no-" + argument.name.replace("_", "-"), dest=argument.name,
                                action="store_false", help=doc)
        else:
            parser.add_argument(flag, dest=argument.name, action="store_true", help=doc)
        return
    options: dict[str, Any] = {"dest": argument.name, "type": value_parser(annotation, argument.bounds)}
    if argument.required:
        options["required"] = True
    else:
        options["default"] = argument.default
        shown = _shown_default(argument.default)
        if shown:
            doc = f"{doc} (default: {shown})" if doc else f"default: {shown}"
    choices = _choices(annotation)
    if choices:
        options["choices"] = choices
    elif typing.get_origin(annotation) in SEQUENCES or annotation in (list, tuple):
        options["metavar"] = f"{argument.name.upper()},..."
    parser.add_argument(flag, help=doc or None, **options)


def value_parser(annotation: Any, bounds=None) -> Callable[[str], Any]:
    """``str -> value`` for one annotation; ``argparse.ArgumentTypeError`` names what was expected."""
    convert = _converter(annotation)

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        problem = bounds.problem(value) if bounds is not None else None
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = _type_name(annotation)  # argparse says "invalid <name> value"
    return parse


def _converter(annotation: Any) -> Callable[[str], Any]:
    annotation = _without_none(annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        converters = [_converter(a) for a in args if a is not type(None)]

        def first(text: str) -> Any:
            for convert in converters:
                try:
                    return convert(text)
                except (TypeError, ValueError):
                    continue
            raise ValueError(f"expected {_type_name(annotation)}, got {text!r}")

        return first
    if origin is typing.Literal:
        def literal(text: str) -> Any:
            for value in args:
                if str(value) == text:
                    return value
            return text  # argparse's choices check names the allowed words

        return literal
    if origin in SEQUENCES or annotation in (list, tuple):
        item = args[0] if args else str
        convert_item = _converter(item)

        def items(text: str) -> Any:
            values = [convert_item(part.strip()) for part in text.split(",") if part.strip()]
            return tuple(values) if origin is tuple else values

        return items
    if annotation is int:
        return _number(int, "an integer")
    if annotation is float:
        return _number(float, "a number")
    if inspect.isclass(annotation) and issubclass(annotation, pathlib.PurePath):
        return annotation
    return str


def _number(kind: type, what: str) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"expected {what}, got {text!r}") from None

    return convert


def _without_none(annotation: Any) -> Any:
    """``X`` for ``Optional[X]`` (and ``Annotated[X, ...]``), else the annotation itself."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if annotation is inspect.Parameter.empty or annotation is Any:
        return str
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return _without_none(rest[0])
    return annotation


def _choices(annotation: Any) -> list[Any] | None:
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    return None


def _type_name(annotation: Any) -> str:
    from motionhub.plugins.types import describe

    return describe(annotation)


def _shown_default(default: Any) -> str:
    if default is None or default is inspect.Parameter.empty:
        return ""
    if isinstance(default, (list, tuple)):
        return ",".join(map(str, default))
    return str(default)


def described(cls: type) -> str:
    """The class docstring without the lines that document its arguments (those become the help of
    its options), for the description of the component's parser."""
    from motionhub.plugins.arguments import argument_docs, arguments_of

    names = {argument.name for argument in arguments_of(cls)} & set(argument_docs(cls))
    lines = [line for line in (inspect.getdoc(cls) or "").splitlines() if line.split(":", 1)[0].strip() not in names]
    return "\n".join(lines).strip()


def missing_message(kind: str, name: str, registry) -> str:
    """Why ``name`` is not an available ``kind``: the registry's message (the close names and every
    available one, or the plugins that both claim it)."""
    try:
        registry.get(kind, name)
    except MotionhubError as exc:
        return str(exc)
    return f"{kind} '{name}' is not available"


# ---------------------------------------------------------------------------- sub-parsers built on demand
class Subcommands(argparse._SubParsersAction):
    """Sub-parsers that are listed up front but built only when their name is on the command line.

    ``entries``: ``{name: one-line help}`` shown by ``--help``. ``build(name, parser)`` adds the
    chosen name's arguments to its fresh parser. ``unknown(name)`` is the message for a name
    not in ``entries`` (the registry's: close names, every available one). A ``MotionhubError``
    raised while building ends the program with that message, as argparse does with its own.
    """

    def __init__(self, option_strings, *, entries: Mapping[str, str],
                 build: Callable[[str, argparse.ArgumentParser], None], unknown: Callable[[str], str], **kwargs):
        super().__init__(option_strings, **kwargs)
        self.entries, self._build, self._unknown = dict(entries), build, unknown
        self.choices = _AnyName(self.entries)  # argparse checks membership first; __call__ explains
        for name, text in self.entries.items():
            self._choices_actions.append(self._ChoicesPseudoAction(name, (), text))

    def __call__(self, parser, namespace, values, option_string=None):
        name, arg_strings = values[0], values[1:]
        if name not in self.entries:
            raise argparse.ArgumentError(self, self._unknown(name))
        if self.dest is not argparse.SUPPRESS:
            setattr(namespace, self.dest, name)
        subparser = self._name_parser_map.get(name)
        if subparser is None:
            subparser = self.add_parser(name)
            try:
                self._build(name, subparser)
            except MotionhubError as exc:
                del self._name_parser_map[name]
                parser.exit(exc.exit_code, f"Error: {exc}\n")
        subnamespace, arg_strings = subparser.parse_known_args(arg_strings, None)
        for key, value in vars(subnamespace).items():
            setattr(namespace, key, value)
        if arg_strings:
            vars(namespace).setdefault(argparse._UNRECOGNIZED_ARGS_ATTR, [])
            getattr(namespace, argparse._UNRECOGNIZED_ARGS_ATTR).extend(arg_strings)


class _AnyName(collections.abc.Container):
    """Choices that contain every name (so argparse hands unknown ones to ``Subcommands``),
    iterating over the known ones."""

    def __init__(self, names: Mapping[str, str]):
        self.names = names

    def __contains__(self, name: object) -> bool:
        return True

    def __iter__(self):
        return iter(self.names)


def add_subcommands(parser: argparse.ArgumentParser, *, dest: str, metavar: str, entries: Mapping[str, str],
                    build: Callable[[str, argparse.ArgumentParser], None], unknown: Callable[[str], str],
                    title: str | None = None, required: bool = False) -> Subcommands:
    """Add ``Subcommands`` to ``parser`` (see there); ``required``: a name must be given."""
    titled = {"title": title} if title else {}
    return parser.add_subparsers(action=Subcommands, dest=dest, metavar=metavar, entries=entries, build=build,
                                 unknown=unknown, required=required, **titled)


def add_component_subcommands(parser: argparse.ArgumentParser, kind: str,
                              build: Callable[[Any, argparse.ArgumentParser], None]) -> Subcommands:
    """One sub-command per registered component of ``kind`` (``motionhub export <exporter>``):
    listed with its description, its parser built by ``build(component, parser)`` when chosen,
    and an unknown name answered with the registry's message."""
    from motionhub.plugins.manager import get_registry
    from motionhub.plugins.registry import plural

    registry = get_registry(strict=False)
    components = {component.name: component for component in registry.components(kind)}
    return add_subcommands(parser, dest=kind, metavar=f"<{kind}>", title=plural(kind),
                           entries={name: component.description for name, component in components.items()},
                           build=lambda name, sub: build(components[name], sub),
                           unknown=lambda name: missing_message(kind, name, registry), required=True)
