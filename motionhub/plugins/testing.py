"""Helpers for testing motionhub plugins (yours or ours), installed or not."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from motionhub.errors import PluginError
from motionhub.plugins.manager import invalidate, load_plugins, pm


@contextlib.contextmanager
def registered_plugin(plugin: Any, name: str) -> Iterator[None]:
    """Register ``plugin`` (a module or an object with ``@motionhub.hookimpl`` methods) as ``name`` for a block.

    Works whether or not the plugin is also installed: a module already registered through
    its entry point is moved to ``name`` for the block and put back afterwards.
    """
    load_plugins()  # entry points first, so an installed copy cannot clash with this one later
    previous = pm.get_name(plugin) if pm.is_registered(plugin) else None
    holder = pm.get_plugin(name)
    if holder is not None and holder is not plugin:
        raise PluginError(f"cannot register {plugin!r} as '{name}': plugin '{name}' is already registered "
                          f"({holder!r}); pick another name")
    if previous is not None:
        pm.unregister(plugin)
    pm.register(plugin, name=name)
    invalidate()
    try:
        yield
    finally:
        pm.unregister(plugin)
        if previous is not None:
            pm.register(plugin, name=previous)
        invalidate()
