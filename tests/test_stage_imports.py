"""The core is laid out by the stages of the data flow; a stage imports only from stages before it.

Order: plugins -> recipes -> data -> model -> train -> use -> commands -> cli. ``errors`` and the
pure ``motion`` math may be imported by every stage; ``api`` re-exports for plugin authors and
``__init__`` holds only the hook marker.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "motionhub"
ORDER = ["plugins", "recipes", "data", "model", "train", "use", "commands", "cli"]
ANYWHERE = {"errors", "motion"}


def stage_of(module: str) -> str | None:
    """``motionhub.data.store`` -> ``data``; ``motionhub`` itself -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "motionhub" else None


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every ``motionhub...`` module imported anywhere in ``path`` (functions included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name == "motionhub" or name.startswith("motionhub.")]


SOURCES = sorted(p for p in CORE.rglob("*.py") if p.parent != CORE or p.stem == "cli")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(CORE)))
def test_a_stage_imports_only_from_stages_before_it(path):
    here = "cli" if path.stem == "cli" and path.parent == CORE else path.relative_to(CORE).parts[0]
    if here in ANYWHERE:
        allowed = ANYWHERE
    else:
        allowed = ANYWHERE | set(ORDER[: ORDER.index(here) + 1])
    wrong = [f"line {line}: {name}" for line, name in imports_of(path)
             if (stage := stage_of(name)) is not None and stage not in allowed]
    assert not wrong, f"{path.relative_to(CORE)} ({here}) reaches a later stage: {wrong}"


def test_every_core_module_belongs_to_a_known_stage():
    top = {p.name if p.is_dir() else p.stem for p in CORE.iterdir() if not p.name.startswith("__")}
    assert top - {"api", "cli", *ORDER, *ANYWHERE} == set()
