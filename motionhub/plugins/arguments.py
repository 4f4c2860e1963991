"""What a component takes: the arguments of a registered class, read from its constructor.

A recipe section is ``name:`` plus the component's keyword arguments, so a constructor's
parameters are the component's public arguments: their annotations are the types the
recipe checks, their defaults the values a recipe may leave out, and the lines
``name: what it means`` of the class docstring their one-line docs.

A few keys of a recipe section belong to the framework, not to the component (a loss's
``weight``, the data section's ``window``): an argument with one of those names could never
be set, so registering it is an error rather than a silent surprise.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import typing
from typing import Any

from motionhub.errors import PluginError
from motionhub.plugins.types import Bounds, _annotated_metadata, describe

# Keys a recipe section uses itself, besides ``name``; a component argument cannot share one.
DATA_KEYS = ("window", "short", "weighting", "store", "store_dtype", "cache_dir", "captions", "shards")
LOSS_KEYS = ("weight", "every", "every_scale", "schedule", "schedule_mode", "downsample")
RESERVED = {"dataset": ("name", *DATA_KEYS), "loss": ("name", *LOSS_KEYS)}

# The base class (or protocol) whose docstring states each kind's contract.
CONTRACTS = {
    "dataset": "motionhub.data.dataset:Dataset",
    "encoder": "motionhub.model.tokenizer:Encoder",
    "decoder": "motionhub.model.tokenizer:Decoder",
    "quantizer": "motionhub.model.quantizer:Quantizer",
    "loss": "motionhub.model.losses:Loss",
    "metric": "motionhub.model.metrics:Metric",
    "protocol": "motionhub.model.protocols:Protocol",
    "exporter": "motionhub.use.export:Exporter",
    "importer": "motionhub.use.importing:Importer",
    "command": "motionhub.commands:Command",
}

_NAMES_GO_ON = re.compile(r"^\s*[A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*\s*,\s*$")
_DOC_LINE = re.compile(r"^\s*([A-Za-z_][\w]*(?:\s*,\s*[A-Za-z_][\w]*)*)\s*(?:\([^)]*\))?:\s+(\S.*)$")


@dataclasses.dataclass(frozen=True)
class Argument:
    """One constructor argument of a component, as a recipe sees it."""

    name: str
    annotation: Any  # inspect.Parameter.empty when the constructor does not say
    default: Any  # inspect.Parameter.empty when the recipe must set it
    doc: str = ""
    bounds: Bounds | None = None

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    @property
    def type_text(self) -> str:
        return "any" if self.annotation is inspect.Parameter.empty else describe(self.annotation)


def annotations(cls: type) -> dict[str, Any]:
    """Resolved annotations of ``cls.__init__``, ``Annotated`` metadata kept.

    An annotation that cannot be resolved (a name the module never imports, a typo) is a
    ``PluginError``: leaving it unchecked would silently switch off type checking.
    """
    try:
        return typing.get_type_hints(cls.__init__, include_extras=True)
    except Exception as exc:
        raise PluginError(
            f"the annotations of {cls.__module__}.{cls.__qualname__}.__init__ cannot be resolved "
            f"({type(exc).__name__}: {exc}); import the names they use at module level (not only "
            f"under TYPE_CHECKING), or write the annotation as a type motionhub can check"
        ) from None


def arguments_of(cls: type) -> list[Argument]:
    """The keyword arguments a recipe can give ``cls``, in constructor order."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return []
    hints, docs = annotations(cls), argument_docs(cls)
    out = []
    for name, param in params.items():
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            continue
        hint = hints.get(name, param.annotation if not isinstance(param.annotation, str) else param.empty)
        bounds = next((m for m in _annotated_metadata(hint) if isinstance(m, Bounds)), None)
        out.append(Argument(name, _strip_annotated(hint), param.default, docs.get(name, ""), bounds))
    return out


def _strip_annotated(hint: Any) -> Any:
    return typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint


def argument_docs(cls: type) -> dict[str, str]:
    """``{argument: one-line doc}`` from lines ``name: text`` (or ``a, b: text``) of the
    docstrings of the class, its bases and their ``__init__``."""
    docs: dict[str, str] = {}
    texts = []
    for klass in (k for k in cls.__mro__ if k.__module__.split(".")[0] not in ("builtins", "torch")):
        # a subclass may inherit its parent's arguments and their docs
        init = vars(klass).get("__init__")
        texts += [klass.__doc__ or "", (init.__doc__ or "") if init else ""]
    lines: list[str] = []
    for line in "\n".join(inspect.cleandoc(t) for t in texts if t).splitlines():
        if lines and _NAMES_GO_ON.match(lines[-1]):  # "a, b, c,\n d: shared meaning"
            lines[-1] = f"{lines[-1].rstrip()} {line.strip()}"
        else:
            lines.append(line)
    for line in lines:
        match = _DOC_LINE.match(line)
        if match:
            for name in re.split(r"\s*,\s*", match.group(1)):
                docs.setdefault(name, match.group(2).strip())
    return docs


def check_component(kind: str, name: str, cls: type, provider: str) -> None:
    """Raise ``PluginError`` for a constructor a recipe could not drive: an argument named like a
    framework key of the recipe section, or annotations that cannot be resolved."""
    try:
        arguments = arguments_of(cls)
    except PluginError as exc:
        raise PluginError(f"plugin '{provider}' registered {kind} '{name}', but {exc}") from None
    reserved = RESERVED.get(kind, ("name",))
    clashes = [a.name for a in arguments if a.name in reserved]
    if clashes:
        section = "the data section" if kind == "dataset" else f"a {kind} entry"
        raise PluginError(
            f"plugin '{provider}' registered {kind} '{name}' ({cls.__module__}.{cls.__qualname__}) with "
            f"argument{'s' if len(clashes) > 1 else ''} {', '.join(repr(c) for c in clashes)}, which "
            f"{section} of a recipe uses itself ({', '.join(reserved)}), so a recipe could never set "
            f"{'them' if len(clashes) > 1 else 'it'}; rename {'them' if len(clashes) > 1 else 'it'} "
            f"(e.g. '{name}_{clashes[0]}')"
        )


def contract(kind: str) -> str:
    """The docstring of the base class that states what a ``kind`` must provide ("" if none)."""
    module_name, _, attr = CONTRACTS.get(kind, ":").partition(":")
    if not module_name:
        return ""
    try:
        base = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        return ""
    return inspect.getdoc(base) or ""
