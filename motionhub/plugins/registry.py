"""The registry: which plugin provided which named component of each kind."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import re
from collections.abc import Iterator

from motionhub.errors import PluginError, UnknownComponentError, did_you_mean
from motionhub.plugins.arguments import check_component

# Component kinds, singular; the hook for kind "dataset" is ``register_datasets``.
KINDS = ("dataset", "encoder", "decoder", "quantizer", "loss", "metric", "protocol", "exporter", "importer", "command")


def hook_name(kind: str) -> str:
    return f"register_{kind}es" if kind.endswith("s") else f"register_{kind}s"


def plural(kind: str) -> str:
    return hook_name(kind).removeprefix("register_")


# A lazy reference to a class: "package.module:ClassName" (the class may be nested: "mod:Outer.Inner").
_REFERENCE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def is_reference(target: object) -> bool:
    """Whether ``target`` is a lazy class reference ``"package.module:ClassName"``."""
    return isinstance(target, str) and _REFERENCE.match(target) is not None


def resolve(target: type | str) -> type:
    """The class a registration names: ``target`` itself, or what ``"module:ClassName"`` points at.

    Raises ``PluginError`` saying why a reference cannot be resolved.
    """
    if not isinstance(target, str):
        return target
    module_name, _, path = target.partition(":")
    try:
        value: object = importlib.import_module(module_name)
    except Exception as exc:
        raise PluginError(f"importing '{module_name}' failed: {type(exc).__name__}: {exc}") from exc
    for i, attr in enumerate(path.split(".")):
        if not hasattr(value, attr):
            owner = module_name if i == 0 else f"{module_name}:{'.'.join(path.split('.')[:i])}"
            public = [n for n in dir(value) if not n.startswith("_")]
            raise PluginError(f"'{owner}' has no attribute '{attr}'{did_you_mean(attr, public) or ''}")
        value = getattr(value, attr)
    if not inspect.isclass(value):
        raise PluginError(f"it names a {type(value).__name__}, not a class; reference the class itself")
    return value


@dataclasses.dataclass(frozen=True)
class Component:
    """One registered component: its kind, name, the plugin that provided it, and its class.

    ``target`` is the class itself or a lazy reference ``"package.module:ClassName"``; a
    reference is imported on first use of ``cls``, so listing plugins imports no component.
    """

    kind: str
    name: str
    target: type | str
    provider: str

    @functools.cached_property
    def cls(self) -> type:
        """The registered class (imported now if it was registered as a reference)."""
        if not isinstance(self.target, str):
            return self.target
        try:
            cls = resolve(self.target)
        except PluginError as exc:
            why = str(exc) if str(exc).endswith("?") else f"{exc}."
            raise PluginError(
                f"plugin '{self.provider}' registered {self.kind} '{self.name}' as '{self.target}', but "
                f"{why} Fix the reference in the plugin's {hook_name(self.kind)} hook, or start without "
                f"the plugin: MOTIONHUB_DISABLE_PLUGINS={self.provider} (see 'motionhub plugins')."
            ) from None
        check_component(self.kind, self.name, cls, self.provider)  # arguments a recipe could never set
        return cls

    @property
    def reference(self) -> str:
        """``"package.module:ClassName"``, without importing anything."""
        if isinstance(self.target, str):
            return self.target
        return f"{self.target.__module__}:{self.target.__qualname__}"

    @property
    def description(self) -> str:
        """First line of the class docstring (or why the class cannot be loaded)."""
        try:
            doc = inspect.getdoc(self.cls) or ""
        except PluginError as exc:
            return f"UNAVAILABLE: {exc}"
        return doc.strip().splitlines()[0] if doc.strip() else ""


def check_registration(kind: str, name: object, target: object, provider: str) -> None:
    """Raise ``PluginError`` unless ``register(name, target)`` names a class or a class reference."""
    if not isinstance(name, str) or not name:
        raise PluginError(f"plugin '{provider}' registered a {kind} with an invalid name {name!r}")
    if isinstance(target, str) and not is_reference(target):
        raise PluginError(
            f"plugin '{provider}' registered {kind} '{name}' as '{target}', which is not a class "
            f"reference; write 'package.module:ClassName' (or register the class itself)"
        )
    if not isinstance(target, str) and not inspect.isclass(target):
        raise PluginError(
            f"plugin '{provider}' registered {kind} '{name}' as {type(target).__name__} "
            f"{target!r}; register the class itself (or a reference 'package.module:ClassName'), "
            f"not an instance or function"
        )
    if not isinstance(target, str):
        check_component(kind, name, target, provider)  # arguments a recipe could never set


class ComponentUnavailableError(UnknownComponentError, PluginError):
    """A recipe or command named a component that cannot be used: two plugins claim it, or its plugin is broken."""


class Registry:
    """Named components by kind. Built once from the plugin manager (``motionhub.plugins.manager``).

    A name two plugins register is a conflict: neither is used, and asking for it is an error
    naming both. The manager fills in where plugins come from (``origins``) and what could not
    be loaded (``lost``, ``unavailable``) so unknown names are explained.
    """

    def __init__(self) -> None:
        self._by_kind: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        self._conflicts: dict[tuple[str, str], list[Component]] = {}
        self.origins: dict[str, str] = {}  # plugin -> "distribution version"
        self.lost: dict[tuple[str, str], str] = {}  # (kind, name) -> why its broken plugin cannot provide it
        self.unavailable: list[str] = []  # lines about broken or switched-off plugins, for unknown names
        self.failures: list = []  # manager.LoadFailure of each plugin whose hooks failed
        self.warnings: dict[str, list[str]] = {}  # plugin -> problems that do not stop it

    def add(self, kind: str, name: str, cls: type | str, provider: str) -> None:
        """Register ``cls`` (a class or a reference ``"package.module:ClassName"``) as ``name``."""
        check_registration(kind, name, cls, provider)
        self.insert(Component(kind, name, cls, provider))

    def insert(self, component: Component) -> None:
        """Add an already checked component; a name claimed twice becomes a conflict."""
        kind, name = component.kind, component.name
        if (kind, name) in self._conflicts:
            self._conflicts[kind, name].append(component)
        elif name in self._by_kind[kind]:
            self._conflicts[kind, name] = [self._by_kind[kind].pop(name), component]
        else:
            self._by_kind[kind][name] = component

    def names(self, kind: str) -> list[str]:
        return sorted(self._by_kind[kind])

    def components(self, kind: str) -> list[Component]:
        return [self._by_kind[kind][name] for name in self.names(kind)]

    def __iter__(self) -> Iterator[Component]:
        for kind in KINDS:
            yield from self.components(kind)

    def conflicts(self) -> dict[tuple[str, str], list[Component]]:
        """``{(kind, name): [every component registered under it]}`` for names claimed more than once."""
        return dict(self._conflicts)

    def get(self, kind: str, name: str) -> Component:
        try:
            return self._by_kind[kind][name]
        except KeyError:
            if (kind, name) in self._conflicts:
                raise ComponentUnavailableError(self.conflict_message(kind, name)) from None
            if (kind, name) in self.lost:
                raise ComponentUnavailableError(self.lost[kind, name]) from None
            raise UnknownComponentError(self.unknown_message(kind, name)) from None

    def _label(self, provider: str) -> str:
        origin = self.origins.get(provider)
        return f"'{provider}' ({origin})" if origin else f"'{provider}'"

    def conflict_message(self, kind: str, name: str) -> str:
        """Which plugins (and distributions) claim one name, and how to keep only one."""
        claims = self._conflicts[kind, name]
        labels = [f"{self._label(c.provider)} as {c.reference}" for c in claims]
        last = claims[-1].provider
        return (
            f"{kind} '{name}' is registered by {len(claims)} plugins: {'; '.join(labels)}. A name "
            f"must be unique, so none of them is used. Start without one of them, e.g. "
            f"MOTIONHUB_DISABLE_PLUGINS={last} motionhub ..., or uninstall it; 'motionhub plugins' "
            f"shows where each plugin comes from."
        )

    def unknown_message(self, kind: str, name: object) -> str:
        """``unknown quantizer 'fsqq'; did you mean 'fsq'? Available: ...`` with a hint."""
        names = self.names(kind)
        available = ", ".join(names) if names else "none"
        suggestion = did_you_mean(name, names) if isinstance(name, str) else ""
        message = (
            f"unknown {kind} '{name}'{suggestion or '.'} Available {plural(kind)}: {available}. "
            f"Run 'motionhub list {plural(kind)}' to describe them, or 'motionhub plugins' "
            f"to see installed plugins."
        )
        return " ".join([message, *self.unavailable])
