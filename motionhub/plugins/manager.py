"""The plugin manager: finds plugins through entry points and builds the registry.

Every plugin is found through the ``motionhub`` entry-point group, first-party ones
included: the motionhub distribution declares its own ``motionhub_<x>`` packages there
(``[project.entry-points.motionhub]`` in pyproject.toml), so the core names no plugin.

A plugin that cannot be imported, whose entry-point name another distribution uses too, or
whose ``register_*`` hook fails is listed as broken (``motionhub plugins``) and left out whole;
everything else keeps working, and a recipe that names one of its components is told why it
is missing. A name two plugins register is usable from neither, and asking for it names both.

Two environment variables choose what loads (comma lists, case and ``-``/``_`` ignored):

- ``MOTIONHUB_LOAD_PLUGINS``: the third-party distributions or entry-point names to load
  (empty: none); first-party plugins always load.
- ``MOTIONHUB_DISABLE_PLUGINS``: plugin, entry-point or distribution names not to load,
  first-party ones included; ``motionhub plugins`` lists them as disabled.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import inspect
import logging
import os
import sys
from collections.abc import Iterable
from typing import Any

import pluggy

from motionhub.errors import MotionhubError, PluginError, closest, did_you_mean
from motionhub.plugins import hookspecs
from motionhub.plugins.registry import KINDS, Component, Registry, check_registration, hook_name

ENTRY_POINT_GROUP = "motionhub"
CORE_DISTRIBUTION = "motionhub"
LOAD_ENV = "MOTIONHUB_LOAD_PLUGINS"
DISABLE_ENV = "MOTIONHUB_DISABLE_PLUGINS"
# Under pytest (tests/conftest.py sets ``sys._called_from_test``) only these distributions'
# entry points load, so plugins installed on a developer's machine cannot leak into the tests.
# A test may widen it (None: every distribution).
TEST_DISTRIBUTIONS: frozenset[str] | None = frozenset({CORE_DISTRIBUTION})

log = logging.getLogger("motionhub.plugins")

pm = pluggy.PluginManager("motionhub")
pm.add_hookspecs(hookspecs)


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    """Where a plugin came from."""

    name: str
    distribution: str | None = None  # None: registered in-process (tests), not from an entry point
    version: str | None = None
    module: str | None = None  # the entry point's value

    @property
    def builtin(self) -> bool:
        """Shipped in the motionhub distribution itself."""
        return self.distribution is not None and _normalise(self.distribution) == CORE_DISTRIBUTION

    @property
    def origin(self) -> str:
        """``built-in``, ``motionhub-x 0.3.1`` or ``registered in-process``."""
        if self.builtin:
            return "built-in"
        return f"{self.distribution} {self.version}" if self.distribution else "registered in-process"


@dataclasses.dataclass(frozen=True)
class LoadFailure:
    """A plugin that could not be loaded, and why."""

    name: str
    distribution: str | None
    version: str | None
    error: str
    stage: str = "import"  # "import", "entry point", or the hook that failed ("register_losses")

    @property
    def builtin(self) -> bool:
        return self.distribution is not None and _normalise(self.distribution) == CORE_DISTRIBUTION

    def headline(self) -> str:
        source = f" from distribution {self.distribution} {self.version}" if self.distribution else ""
        what = {"import": "failed to load", "entry point": "was not loaded"}.get(self.stage, f"failed in {self.stage}")
        return f"motionhub plugin '{self.name}'{source} {what}"

    def message(self) -> str:
        lines = [f"{self.headline()}:", f"  {self.error}",
                 "Its components are unavailable; everything else works.",
                 f"Start without it:  {DISABLE_ENV}={self.name} motionhub ...  ('motionhub plugins' lists every plugin)"]
        if self.distribution and not self.builtin:
            lines.append(f"Remove it:         pip uninstall {self.distribution}")
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class PluginStatus:
    """One row of ``motionhub plugins``: a plugin, whether it works, and what it registered."""

    info: PluginInfo
    status: str  # "loaded", "broken" or "disabled"
    failure: LoadFailure | None = None
    hooks: tuple[str, ...] = ()
    registered: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # kind -> names
    conflicts: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


_loaded = False
_infos: dict[str, PluginInfo] = {}  # plugins loaded from entry points, by plugin name
_failures: list[LoadFailure] = []  # entry points that could not be loaded
_disabled: list[PluginInfo] = []  # entry points switched off by MOTIONHUB_DISABLE_PLUGINS
_registry: Registry | None = None
_reported: set[str] = set()  # warnings already logged by this process


# ---------------------------------------------------------------------------- discovery
def _distributions() -> Iterable[Any]:
    """Every installed distribution; tests replace this with fake ones."""
    return importlib.metadata.distributions()


def _entry_points() -> list[tuple[importlib.metadata.EntryPoint, str, str | None]]:
    """``(entry point, distribution, version)`` in the ``motionhub`` group, motionhub's own first.

    A distribution found twice on the path (an egg-info folder next to an installed copy) counts
    once, the first one found, as the import system would use it.
    """
    seen: set[str] = set()
    found = []
    for dist in _distributions():
        name = dist.metadata["Name"]
        if not name or _normalise(name) in seen:
            continue
        seen.add(_normalise(name))
        found += [(ep, name, dist.version) for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
    return sorted(found, key=lambda item: _normalise(item[1]) != CORE_DISTRIBUTION)


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _env_names(variable: str) -> set[str] | None:
    """The normalised names of a comma-list environment variable, or None when it is unset."""
    value = os.environ.get(variable)
    return None if value is None else {_normalise(n) for n in value.split(",") if n.strip()}


def _named(info: PluginInfo, names: set[str]) -> bool:
    """Whether ``names`` names this plugin, its distribution or its module."""
    module = (info.module or "").partition(":")[0]
    candidates = {info.name, info.distribution or "", module, module.partition(".")[0]}
    return bool({_normalise(c) for c in candidates if c} & names)


def load_plugins() -> None:
    """Load every plugin entry point, once; what fails is recorded (and logged), never raised."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    only = TEST_DISTRIBUTIONS if getattr(sys, "_called_from_test", False) else None
    allowed, disabled = _env_names(LOAD_ENV), _env_names(DISABLE_ENV) or set()
    claimed: dict[str, PluginInfo] = {}
    core_found = False
    for ep, dist, version in _entry_points():
        info = PluginInfo(ep.name, dist, version, ep.value)
        core_found = core_found or info.builtin
        if only is not None and _normalise(dist) not in only:
            continue
        if not info.builtin and allowed is not None and not _named(info, allowed):
            continue
        if _named(info, disabled):
            _disabled.append(info)
            continue
        if ep.name in claimed:
            first = claimed[ep.name]
            _fail(LoadFailure(ep.name, dist, version, (
                f"its entry-point name '{ep.name}' is also used by distribution {first.distribution} "
                f"{first.version} (loaded as plugin '{ep.name}'); two plugins cannot share a name. Rename "
                f"the entry point in one of them, uninstall one, or choose one with {DISABLE_ENV}={dist}"
            ), stage="entry point"))
            continue
        claimed[ep.name] = info
        _load(ep, info)
    if not core_found and (only is None or CORE_DISTRIBUTION in only):
        _warn(f"motionhub's own plugins were not found: the installed motionhub distribution declares no "
              f"'{ENTRY_POINT_GROUP}' entry points (installed from an older checkout?). Reinstall it, "
              f"e.g. pip install -e . in the source folder")


def _load(ep: importlib.metadata.EntryPoint, info: PluginInfo) -> None:
    try:
        plugin = ep.load()
        if pm.is_registered(plugin):  # already registered in-process (a test), under its own name
            return
        if pm.get_plugin(ep.name) is not None:
            raise PluginError(f"another plugin is already registered in-process as '{ep.name}' "
                              f"({pm.get_plugin(ep.name)!r})")
        pm.register(plugin, name=ep.name)
    except Exception as exc:  # a broken plugin must not take the core down
        _fail(LoadFailure(ep.name, info.distribution, info.version, _error_text(exc)))
        return
    _infos[ep.name] = info


def _fail(failure: LoadFailure) -> None:
    _failures.append(failure)
    _warn(failure.message())


def _error_text(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, MotionhubError) else f"{type(exc).__name__}: {exc}"


def _warn(message: str) -> None:
    """Log a problem with the plugins once per process (the CLI prints it on stderr)."""
    if message not in _reported:
        _reported.add(message)
        log.warning(message)


# ---------------------------------------------------------------------------- the registry
def build_registry() -> Registry:
    """Call each plugin's ``register_*`` hooks and record what it provides.

    A plugin is taken whole or not at all: if one of its hooks raises (or registers something
    that is not a class or a class reference), none of its components is added, and the
    failure is kept in ``registry.failures``.
    """
    registry = Registry()
    registry.origins = {name: f"{info.distribution} {info.version}" for name, info in _infos.items()}
    for name, plugin in pm.list_name_plugin():
        info = _infos.get(name, PluginInfo(name))
        registry.warnings[name] = _unmarked_hooks(name, plugin)
        staged: list[Component] = []
        claimed: list[tuple[str, str]] = []  # (kind, name) of every register call, even a refused one
        stage = "import"
        try:
            _check_hooks(name, plugin)
            for kind in KINDS:
                caller = getattr(pm.hook, hook_name(kind), None)
                for impl in caller.get_hookimpls() if caller is not None else ():
                    if impl.plugin is not plugin:
                        continue
                    stage = hook_name(kind)

                    def register(component_name, target, _kind=kind):
                        if isinstance(component_name, str):
                            claimed.append((_kind, component_name))
                        check_registration(_kind, component_name, target, name)
                        staged.append(Component(_kind, component_name, target, name))

                    impl.function(**{arg: register for arg in impl.argnames})
        except Exception as exc:  # a broken plugin must not take the core down
            failure = LoadFailure(name, info.distribution, info.version, _error_text(exc), stage)
            registry.failures.append(failure)
            for kind, component_name in claimed:
                registry.lost[kind, component_name] = (
                    f"{kind} '{component_name}' comes from {failure.headline()}: {failure.error}"
                    f"{'' if failure.error.endswith('.') else '.'} "
                    f"Fix or update the plugin, or start without it: {DISABLE_ENV}={name} "
                    f"('motionhub plugins' shows every plugin and its error)."
                )
            continue
        for component in staged:
            registry.insert(component)
    for failure in [*_failures, *registry.failures]:
        registry.unavailable.append(f"Plugin '{failure.name}' ({failure.distribution or 'in-process'}) is broken "
                                    f"and may provide it: {failure.error}.")
    if _disabled:
        registry.unavailable.append(f"Switched off by {DISABLE_ENV}: {', '.join(i.name for i in _disabled)}.")
    return registry


def _check_hooks(plugin_name: str, plugin: object) -> None:
    """Reject hook implementations that match no hook (usually a misspelled name)."""
    known = {hook_name(kind) for kind in KINDS}
    for attr in dir(plugin):
        opts = pm.parse_hookimpl_opts(plugin, attr)
        if opts is not None and not opts.get("optionalhook") and attr not in known:
            raise PluginError(
                f"plugin '{plugin_name}' implements unknown hook '{attr}'"
                f"{did_you_mean(attr, known) or '.'} Known hooks: {', '.join(sorted(known))}"
            )


def _unmarked_hooks(plugin_name: str, plugin: object) -> list[str]:
    """Warnings for functions named like a hook but lacking ``@motionhub.hookimpl`` (never called)."""
    known = {hook_name(kind) for kind in KINDS}
    warnings = []
    for attr in dir(plugin):
        nearest = attr if attr in known else closest(attr, known)
        if not attr.startswith("register_") or nearest is None:
            continue
        if inspect.isroutine(getattr(plugin, attr, None)) and pm.parse_hookimpl_opts(plugin, attr) is None:
            named = "" if nearest == attr else f" (and the hook is named '{nearest}')"
            warnings.append(f"plugin '{plugin_name}' defines {attr}() without @motionhub.hookimpl, so "
                            f"motionhub never calls it{named}; mark it with @motionhub.hookimpl")
    return warnings


def get_registry(strict: bool = False) -> Registry:
    """The registry of every working plugin's components, built once (and after ``invalidate``).

    Problems with plugins (broken ones, names claimed twice, hooks without their marker) are
    logged once; they never stop the registry from being built, and a component only a broken
    plugin would provide is explained when it is asked for. (``strict`` is accepted for older
    callers and changes nothing.)
    """
    global _registry
    load_plugins()
    if _registry is None:
        _registry = build_registry()
        for failure in _registry.failures:
            _warn(failure.message())
        for kind, name in _registry.conflicts():
            _warn(_registry.conflict_message(kind, name))
        for warnings in _registry.warnings.values():
            for warning in warnings:
                _warn(warning)
    return _registry


def invalidate() -> None:
    """Forget the built registry (after registering or unregistering a plugin)."""
    global _registry
    _registry = None


def reset() -> None:
    """Forget discovery and unregister what it loaded; the next use discovers plugins again."""
    global _loaded
    for name in _infos:
        if pm.get_plugin(name) is not None:
            pm.unregister(name=name)
    _infos.clear()
    _failures.clear()
    _disabled.clear()
    _reported.clear()
    _loaded = False
    invalidate()


# ---------------------------------------------------------------------------- introspection
def plugin_infos() -> list[PluginInfo]:
    """Every registered plugin (from an entry point or in-process), including those whose hooks fail."""
    load_plugins()
    return [_infos.get(name, PluginInfo(name)) for name, _ in pm.list_name_plugin()]


def disabled_plugins() -> list[PluginInfo]:
    """Entry points switched off by ``MOTIONHUB_DISABLE_PLUGINS``."""
    load_plugins()
    return list(_disabled)


def load_failures() -> list[LoadFailure]:
    """Plugins that could not be imported, whose entry point clashes, or whose hooks failed."""
    load_plugins()
    return [*_failures, *get_registry().failures]


def plugin_statuses() -> list[PluginStatus]:
    """Every plugin motionhub found, working, broken or switched off, with what it registered."""
    registry = get_registry()
    failed = {(f.name, f.distribution): f for f in registry.failures}
    conflicts: dict[str, list[str]] = {}
    for (kind, name), claims in registry.conflicts().items():
        for provider in dict.fromkeys(c.provider for c in claims):
            conflicts.setdefault(provider, []).append(registry.conflict_message(kind, name))
    rows = []
    for info in plugin_infos():
        failure = failed.get((info.name, info.distribution))
        rows.append(PluginStatus(info, "broken" if failure else "loaded", failure, tuple(hooks_of(info.name)),
                                 registered_by(info.name), tuple(conflicts.get(info.name, ())),
                                 tuple(registry.warnings.get(info.name, ()))))
    for failure in _failures:
        rows.append(PluginStatus(PluginInfo(failure.name, failure.distribution, failure.version), "broken", failure))
    rows += [PluginStatus(info, "disabled") for info in _disabled]
    return rows


def versions() -> dict[str, str | None]:
    """motionhub's version and each third-party plugin's, as checkpoints record them."""
    from motionhub import __version__

    third_party = {p.name: p.version for p in plugin_infos() if p.distribution and not p.builtin}
    return {"motionhub": __version__, **third_party}


def registered_by(plugin_name: str) -> dict[str, list[str]]:
    """``{"quantizer": ["fsq", ...], ...}`` for one plugin (kinds with no names omitted), no class imported."""
    registry = get_registry()
    claimed = [c for claims in registry.conflicts().values() for c in claims]
    out: dict[str, list[str]] = {}
    for component in [*registry, *claimed]:
        if component.provider == plugin_name:
            out.setdefault(component.kind, []).append(component.name)
    return {kind: sorted(set(names)) for kind, names in out.items()}


def hooks_of(plugin_name: str) -> list[str]:
    plugin = pm.get_plugin(plugin_name)
    return sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
