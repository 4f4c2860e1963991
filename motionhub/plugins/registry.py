"""The registry: which plugin provided which named component of each kind."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterator

from motionhub.errors import PluginError, UnknownComponentError, did_you_mean
from motionhub.plugins.arguments import check_component

# Component kinds, singular; the hook for kind "dataset" is ``register_datasets``.
KINDS = ("dataset", "encoder", "decoder", "quantizer", "loss", "metric", "exporter")


def hook_name(kind: str) -> str:
    return f"register_{kind}es" if kind.endswith("s") else f"register_{kind}s"


def plural(kind: str) -> str:
    return hook_name(kind).removeprefix("register_")


@dataclasses.dataclass(frozen=True)
class Component:
    """One registered class: its kind, name, and the plugin that provided it."""

    kind: str
    name: str
    cls: type
    provider: str

    @property
    def description(self) -> str:
        """First line of the class docstring."""
        doc = inspect.getdoc(self.cls) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""


class Registry:
    """Named components by kind. Built once from the plugin manager (``motionhub.plugins.manager``)."""

    def __init__(self) -> None:
        self._by_kind: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}

    def add(self, kind: str, name: str, cls: type, provider: str) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin '{provider}' registered a {kind} with an invalid name {name!r}")
        if not inspect.isclass(cls):
            raise PluginError(
                f"plugin '{provider}' registered {kind} '{name}' as {type(cls).__name__} "
                f"{cls!r}; register the class itself, not an instance or function"
            )
        check_component(kind, name, cls, provider)  # arguments a recipe could never set
        existing = self._by_kind[kind].get(name)
        if existing is not None:
            raise PluginError(
                f"{kind} '{name}' is registered twice: by plugin '{existing.provider}' "
                f"({existing.cls.__module__}.{existing.cls.__qualname__}) and by plugin "
                f"'{provider}' ({cls.__module__}.{cls.__qualname__}). Uninstall one of them, or "
                f"start without one with MOTIONHUB_LOAD_PLUGINS (see 'motionhub plugins')."
            )
        self._by_kind[kind][name] = Component(kind, name, cls, provider)

    def names(self, kind: str) -> list[str]:
        return sorted(self._by_kind[kind])

    def components(self, kind: str) -> list[Component]:
        return [self._by_kind[kind][name] for name in self.names(kind)]

    def __iter__(self) -> Iterator[Component]:
        for kind in KINDS:
            yield from self.components(kind)

    def get(self, kind: str, name: str) -> Component:
        try:
            return self._by_kind[kind][name]
        except KeyError:
            raise UnknownComponentError(self.unknown_message(kind, name)) from None

    def unknown_message(self, kind: str, name: object) -> str:
        """``unknown quantizer 'fsqq'; did you mean 'fsq'? Available: ...`` with a hint."""
        names = self.names(kind)
        available = ", ".join(names) if names else "none"
        suggestion = did_you_mean(name, names) if isinstance(name, str) else ""
        return (
            f"unknown {kind} '{name}'{suggestion or '.'} Available {plural(kind)}: {available}. "
            f"Run 'motionhub list {plural(kind)}' to describe them, or 'motionhub plugins' "
            f"to see installed plugins."
        )
