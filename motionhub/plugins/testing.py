"""Helpers for testing motionhub plugins (yours or ours) without installing them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from motionhub.plugins.manager import invalidate, pm


@contextlib.contextmanager
def registered_plugin(plugin: Any, name: str) -> Iterator[None]:
    """Register ``plugin`` (a module or an object with ``@motionhub.hookimpl`` methods) for a block."""
    pm.register(plugin, name=name)
    invalidate()
    try:
        yield
    finally:
        pm.unregister(name=name)
        invalidate()
