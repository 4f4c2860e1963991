"""No first-party plugin imports another plugin, and the core imports none.

A plugin is written as a third party would write it: everything it shares with other plugins
comes from the core (``motionhub``), so any plugin can be installed, left out or replaced
alone. This reads every module's imports (and module references in strings, as lazy
registrations and ``importlib.import_module`` name them) with ``ast``; nothing is imported.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PLUGINS = REPO / "plugins"
# A whole string naming a module of a plugin package: "motionhub_x", "motionhub_x.y", "motionhub_x.y:Name".
MODULE_REFERENCE = re.compile(r"(motionhub_\w+)(?:\.[\w.]+)?(?::[\w.]+)?")


def plugin_packages() -> dict[str, Path]:
    """Every first-party plugin package (``plugins/motionhub_*``) and the example distribution's."""
    packages = {path.name: path for path in sorted(PLUGINS.glob("motionhub_*")) if (path / "__init__.py").is_file()}
    for path in sorted(PLUGINS.glob("*/motionhub_*")):
        if (path / "__init__.py").is_file() and "build" not in path.parts:
            packages[path.name] = path
    return packages


def sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if not {"tests", "build"} & set(p.relative_to(folder).parts))


def referenced_packages(path: Path, packages: set[str]) -> dict[str, int]:
    """Top-level ``motionhub_*`` packages a module imports, or names as a module in a string (of
    ``packages`` only: a string such as an HDF5 attribute name may merely look like one), with a line of each."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = MODULE_REFERENCE.fullmatch(node.value)
            names = [match.group(1)] if match and match.group(1) in packages else []
        for name in names:
            top = name.split(".")[0]
            if top.startswith("motionhub_"):
                found.setdefault(top, node.lineno)
    return found


def test_the_plugin_packages_are_found():
    packages = plugin_packages()
    assert {"motionhub_losses", "motionhub_quantizers", "motionhub_pfnn", "motionhub_bvh", "motionhub_example"} <= set(
        packages)
    assert all(sources(folder) for folder in packages.values())


@pytest.mark.parametrize("package", sorted(plugin_packages()))
def test_a_plugin_imports_no_other_plugin(package):
    packages = plugin_packages()
    crossings = [f"{path.relative_to(REPO)}:{line} uses {other}"
                 for path in sources(packages[package])
                 for other, line in referenced_packages(path, set(packages)).items() if other != package]
    assert not crossings, (f"{package} reaches into other plugins; what plugins share belongs in the core "
                           f"(motionhub): " + "; ".join(crossings))


def test_the_core_imports_no_plugin():
    packages = set(plugin_packages())
    crossings = [f"{path.relative_to(REPO)}:{line} uses {other}"
                 for path in sources(REPO / "motionhub")
                 for other, line in referenced_packages(path, packages).items()]
    assert not crossings, "the core names plugins: " + "; ".join(crossings)


def test_the_check_sees_every_way_of_naming_a_plugin(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(
        "import motionhub_a\n"
        "import motionhub_b.fsq as fsq\n"
        "from motionhub_c.codebook import Loss\n"
        "from . import own\n"
        "from motionhub.model import quantizer\n"
        "def later():\n"
        "    from motionhub_d import x\n"
        "REFERENCE = 'motionhub_e.fsq:FSQ'\n"
        "MODULE = 'motionhub_f'\n"
        "DOC = 'see ``motionhub_g`` for more'\n"
        "ATTRIBUTE = 'motionhub_file'\n"
    )
    known = {"motionhub_e", "motionhub_f", "motionhub_g"}
    assert sorted(referenced_packages(module, known)) == ["motionhub_a", "motionhub_b", "motionhub_c", "motionhub_d",
                                                          "motionhub_e", "motionhub_f"]
