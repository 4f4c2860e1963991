"""Check recipe values against constructor annotations before anything is built."""

from __future__ import annotations

import collections.abc
import inspect
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
    if inspect.isclass(annotation):
        return isinstance(value, annotation)
    return True  # an annotation we do not understand is not the user's fault


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
    return getattr(annotation, "__name__", str(annotation))
