"""Types and value bounds of component and recipe arguments: check a YAML value against an annotation."""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import pathlib
import types
import typing
from typing import Any

_NO_CHECK = object()


def annotations_of(cls: type) -> dict[str, Any]:
    """Resolved parameter annotations of ``cls.__init__`` (empty where they cannot be resolved)."""
    try:
        return typing.get_type_hints(cls.__init__)
    except Exception:  # forward references to optional modules: check nothing rather than fail
        return {}


def type_problem(value: Any, annotation: Any) -> str | None:
    """None if ``value`` fits ``annotation``, else ``"expected X, got Y"``."""
    if _fits(value, annotation):
        return None
    return f"expected {describe(annotation)}, got {type(value).__name__} {value!r}"


def _fits(value: Any, annotation: Any) -> bool:
    if annotation in (Any, inspect.Parameter.empty, object):
        return True
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if origin is typing.Literal:
        return value in args
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (list, tuple, collections.abc.Sequence) or annotation in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args))
        item = args[0] if args else Any
        return all(_fits(v, item) for v in value)
    if origin in (dict, collections.abc.Mapping) or annotation is dict:
        if not isinstance(value, dict):
            return False
        key, val = args if args else (Any, Any)
        return all(_fits(k, key) and _fits(v, val) for k, v in value.items())
    if inspect.isclass(annotation) and issubclass(annotation, pathlib.PurePath):
        return isinstance(value, (str, pathlib.PurePath))  # YAML has no path type: a string is one
    if inspect.isclass(annotation):
        return isinstance(value, annotation)
    return True  # an annotation we do not understand is not the user's fault


def coerce(value: Any, annotation: Any) -> Any:
    """``value`` as the constructor expects it, where YAML cannot say so: a string given for a
    ``Path`` (also inside ``Optional`` or a list) becomes that path. Other values are returned as is."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):  # the first member the value fits decides
        member = next((a for a in args if a is not type(None) and _fits(value, a)), None)
        return value if member is None else coerce(value, member)
    if inspect.isclass(annotation) and issubclass(annotation, pathlib.PurePath) and isinstance(value, str):
        return annotation(value)
    if origin in (list, collections.abc.Sequence) and args and isinstance(value, list):
        return [coerce(v, args[0]) for v in value]
    return value


def describe(annotation: Any) -> str:
    """A short human name for an annotation: ``int``, ``list of int``, ``one of 'a', 'b'``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        names = [describe(a) for a in args if a is not type(None)]
        text = " or ".join(names)
        return f"{text} or null" if type(None) in args else text
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (list, tuple, collections.abc.Sequence):
        return f"list of {describe(args[0])}" if args else "list"
    if origin in (dict, collections.abc.Mapping):
        return "mapping"
    if annotation is float:
        return "number"
    if inspect.isclass(annotation) and issubclass(annotation, pathlib.PurePath):
        return "path"
    return getattr(annotation, "__name__", str(annotation))


# ---------------------------------------------------------------------------- value bounds
@dataclasses.dataclass(frozen=True)
class Bounds:
    """Allowed values of a number (or of every number in a list), declared with its type:
    ``batch_size: Annotated[int, Bounds(low=1)]``; ``None`` always passes (it means "unset").

    ``low`` / ``high`` are inclusive unless ``low_open`` / ``high_open``; ``length`` fixes the
    number of items of a list; ``hint`` says what the value means, after the message.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    length: int | None = None
    hint: str = ""

    def allowed(self) -> str:
        if self.low is not None and self.high is not None:
            return (f"{'greater than' if self.low_open else 'at least'} {self.low} and "
                    f"{'below' if self.high_open else 'at most'} {self.high}")
        if self.low is not None:
            return f"{'greater than' if self.low_open else 'at least'} {self.low}"
        if self.high is not None:
            return f"{'below' if self.high_open else 'at most'} {self.high}"
        return "any number"

    def fits(self, number: Any) -> bool:
        if not isinstance(number, (int, float)) or isinstance(number, bool):
            return True  # the type check reports it
        if number != number:  # NaN fits no range
            return False
        if self.low is not None and (number <= self.low if self.low_open else number < self.low):
            return False
        if self.high is not None and (number >= self.high if self.high_open else number > self.high):
            return False
        return True

    def problem(self, value: Any) -> str | None:
        """None if ``value`` is within these bounds, else ``"must be ..., got V"``."""
        hint = f" ({self.hint})" if self.hint else ""
        if value is None:
            return None
        if isinstance(value, (list, tuple)):
            if self.length is not None and len(value) != self.length:
                return f"must hold {self.length} numbers, got {len(value)}: {list(value)!r}{hint}"
            bad = [v for v in value if not self.fits(v)]
            if bad:
                return f"each item must be {self.allowed()}, got {bad[0]!r} in {list(value)!r}{hint}"
            return None
        if not self.fits(value):
            return f"must be {self.allowed()}, got {value!r}{hint}"
        return None


def bounds_of(cls: type) -> dict[str, Bounds]:
    """The ``Bounds`` each parameter of ``cls.__init__`` declares in an ``Annotated`` type."""
    try:
        hints = typing.get_type_hints(cls.__init__, include_extras=True)
    except Exception:
        return {}
    found = {}
    for name, hint in hints.items():
        for meta in _annotated_metadata(hint):
            if isinstance(meta, Bounds):
                found[name] = meta
    return found


def _annotated_metadata(hint: Any) -> tuple:
    """Metadata of ``Annotated[...]``, also inside ``Optional[Annotated[...]]``."""
    if typing.get_origin(hint) is typing.Annotated:
        return hint.__metadata__
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return tuple(m for arg in typing.get_args(hint) for m in _annotated_metadata(arg))
    return ()
