"""Lazy re-exports for plugin packages.

motionhub imports a plugin's package to call its hooks (to list plugins, to show help), so a
package that imports its components at the top makes every command pay for torch. A plugin
can instead register references (``register("mydata", "motionhub_mydata.dataset:MyData")``) and
keep ``from motionhub_mydata import MyData`` working with::

    __getattr__, __dir__ = lazy_exports(__name__, {"MyData": ".dataset", "MyLoss": ".losses"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

from motionhub.errors import did_you_mean


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` that import ``{"Name": ".module"}`` on first use.

    Module names may be relative to ``package`` (``".fsq"``) or absolute.
    """

    def __getattr__(name: str) -> Any:
        source = exports.get(name)
        if source is None:
            raise AttributeError(f"module '{package}' has no attribute '{name}'{did_you_mean(name, exports)}")
        value = getattr(importlib.import_module(source, package), name)
        setattr(sys.modules[package], name, value)  # resolve once
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return __getattr__, __dir__
