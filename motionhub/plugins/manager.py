"""The plugin manager: loads first-party and third-party plugins and builds the registry.

First-party plugins are ordinary ``motionhub_<x>`` packages registered through the same
hooks as third-party ones. Third-party plugins are found through the ``motionhub`` entry
point group; ``MOTIONHUB_LOAD_PLUGINS`` (comma-separated distribution or entry-point names,
empty = none) limits which of them load.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import os
import sys

import pluggy

from motionhub.plugins import hookspecs
from motionhub.errors import PluginError, did_you_mean
from motionhub.plugins.registry import KINDS, Registry, hook_name

ENTRY_POINT_GROUP = "motionhub"
LOAD_ENV = "MOTIONHUB_LOAD_PLUGINS"

DEFAULT_PLUGINS = (
    "motionhub_synthetic",
    "motionhub_humanml3d",
    "motionhub_motionmillion",
    "motionhub_tracks",
    "motionhub_bvh",
    "motionhub_conv",
    "motionhub_transformer",
    "motionhub_amplify",
    "motionhub_quantizers",
    "motionhub_losses",
    "motionhub_metrics",
    "motionhub_pfnn",
)

pm = pluggy.PluginManager("motionhub")
pm.add_hookspecs(hookspecs)


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    """Where a loaded plugin came from."""

    name: str
    distribution: str | None = None  # None for first-party plugins
    version: str | None = None
    module: str | None = None


@dataclasses.dataclass(frozen=True)
class LoadFailure:
    """A third-party plugin that could not be loaded, and why."""

    name: str
    distribution: str
    version: str
    error: str

    def message(self) -> str:
        return (
            f"motionhub plugin '{self.name}' from distribution {self.distribution} "
            f"{self.version} failed to load:\n  {self.error}\n"
            f"Start without it:  {LOAD_ENV}='' motionhub ...  (or list the plugins to keep)\n"
            f"Remove it:         pip uninstall {self.distribution}"
        )


_loaded = False
_infos: dict[str, PluginInfo] = {}
_failures: list[LoadFailure] = []
_registry: Registry | None = None


def load_plugins() -> None:
    """Load first-party plugins, then third-party entry points. Lazy and idempotent."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module_name in DEFAULT_PLUGINS:
        module = importlib.import_module(module_name)
        if pm.get_plugin(module_name) is None:
            pm.register(module, name=module_name)
            _check_hooks(module_name)
        _infos[module_name] = PluginInfo(module_name, module=module_name)
    # Tests set this so that plugins installed on a developer's machine cannot leak in.
    if not getattr(sys, "_called_from_test", False):
        _load_entry_points()


def _wanted(entry_point: importlib.metadata.EntryPoint, distribution: str) -> bool:
    allowed = os.environ.get(LOAD_ENV)
    if allowed is None:
        return True
    keep = {_normalise(name) for name in allowed.split(",") if name.strip()}
    return _normalise(distribution) in keep or _normalise(entry_point.name) in keep


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _load_entry_points() -> None:
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP or pm.get_plugin(ep.name) is not None:
                continue
            dist_name = dist.metadata["Name"]
            if not _wanted(ep, dist_name):
                continue
            try:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
                _check_hooks(ep.name)
            except Exception as exc:  # a broken plugin must not take the core down
                if pm.get_plugin(ep.name) is not None:
                    pm.unregister(name=ep.name)
                _failures.append(LoadFailure(ep.name, dist_name, dist.version, f"{type(exc).__name__}: {exc}"))
                continue
            _infos[ep.name] = PluginInfo(ep.name, dist_name, dist.version, ep.value)


def _check_hooks(plugin_name: str) -> None:
    """Reject hook implementations that match no hook (usually a misspelled name)."""
    plugin = pm.get_plugin(plugin_name)
    known = {hook_name(kind) for kind in KINDS}
    for attr in dir(plugin):
        opts = pm.parse_hookimpl_opts(plugin, attr)
        if opts is not None and not opts.get("optionalhook") and attr not in known:
            raise PluginError(
                f"plugin '{plugin_name}' implements unknown hook '{attr}'"
                f"{did_you_mean(attr, known) or '.'} Known hooks: {', '.join(sorted(known))}"
            )


def plugin_infos() -> list[PluginInfo]:
    """Every registered plugin: first-party, third-party and any registered in-process."""
    load_plugins()
    return [_infos.get(name, PluginInfo(name)) for name, _ in pm.list_name_plugin()]


def versions() -> dict[str, str | None]:
    """motionhub's version and each third-party plugin's, as checkpoints record them."""
    from motionhub import __version__

    return {"motionhub": __version__, **{p.name: p.version for p in plugin_infos() if p.distribution}}


def load_failures() -> list[LoadFailure]:
    load_plugins()
    return list(_failures)


def get_registry(strict: bool = True) -> Registry:
    """The registry of every loaded plugin's components.

    ``strict``: raise if a third-party plugin failed to load, rather than run without it
    (listing commands pass False so a broken plugin can still be inspected).
    """
    global _registry
    load_plugins()
    if strict and _failures:
        raise PluginError("\n\n".join(failure.message() for failure in _failures))
    if _registry is None:
        _registry = build_registry()
    return _registry


def build_registry() -> Registry:
    """Call every plugin's ``register_*`` hooks one plugin at a time, recording providers."""
    registry = Registry()
    for kind in KINDS:
        for impl in getattr(pm.hook, hook_name(kind)).get_hookimpls():
            provider = impl.plugin_name

            def register(name, cls, _kind=kind, _provider=provider):
                registry.add(_kind, name, cls, _provider)

            impl.function(**{arg: register for arg in impl.argnames})
    return registry


def registered_by(plugin_name: str) -> dict[str, list[str]]:
    """``{"quantizers": ["fsq", ...], ...}`` for one plugin (kinds with no names omitted)."""
    registry = get_registry(strict=False)
    out: dict[str, list[str]] = {}
    for component in registry:
        if component.provider == plugin_name:
            out.setdefault(component.kind, []).append(component.name)
    return out


def hooks_of(plugin_name: str) -> list[str]:
    plugin = pm.get_plugin(plugin_name)
    return sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])


def invalidate() -> None:
    """Forget the built registry (after registering or unregistering a plugin)."""
    global _registry
    _registry = None
