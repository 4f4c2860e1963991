"""The recipe as a YAML tree: read it, apply ``key=value`` overrides, resolve ``${section.key}`` references.

Each step returns the problems it found as ``(path, message)`` pairs, so validation can report
them together with every other problem.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from motionhub.errors import MotionhubError
from motionhub.recipes.sections import SECTIONS

# ---------------------------------------------------------------------------- YAML
class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``2e-4`` as a float (YAML 1.1 wants ``2.0e-4``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)?(?:\.\d*)?[eE][-+]?\d+$|^[-+]?\d[\d_]*\.\d*$|^[-+]?\.\d+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        hint = " (quote values that contain '{', e.g. \"runs/${run.name}\")" if "{" in text and "flow" in str(exc) else ""
        raise MotionhubError(f"{where}: not valid YAML: {problem}{hint}") from None


def read_tree(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            inside = path / "recipe.yaml"
            hint = f", e.g. {inside}" if inside.is_file() else ""
            raise MotionhubError(f"{path} is a directory, not a recipe file: pass a recipe's YAML file{hint}")
        raise MotionhubError(f"recipe file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except PermissionError:
        raise MotionhubError(f"{path}: cannot read the recipe file: permission denied. "
                             f"Make it readable (chmod u+r {path}) or pass another recipe") from None
    except OSError as exc:
        raise MotionhubError(f"{path}: cannot read the recipe file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise MotionhubError(f"{path}: not a text recipe: byte {exc.start} is not UTF-8 "
                             f"(0x{exc.object[exc.start]:02x}). A recipe is a YAML text file saved as UTF-8; "
                             f"is this the right file?") from None
    if "\x00" in text:
        raise MotionhubError(f"{path}: not a text recipe: it holds NUL bytes (a binary file?). "
                             f"A recipe is a YAML text file saved as UTF-8; is this the right file?")
    tree = parse_yaml(text, str(path))
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise MotionhubError(f"{path}: a recipe is a mapping of sections ({', '.join(SECTIONS)}), got {type(tree).__name__}")
    return tree


# ---------------------------------------------------------------------------- overrides
def apply_overrides(tree: dict[str, Any], overrides: list[str]) -> list[tuple[str, str]]:
    """Set ``a.b.c=value`` items in place (value parsed as YAML); returns the problems."""
    problems = []
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            problems.append(("", f"override {item!r} is not key=value (e.g. train.lr=1e-4)"))
            continue
        parts = _split_path(key.strip())
        value = parse_yaml(text, f"override {item!r}") if text.strip() else ""
        node: Any = tree
        for i, part in enumerate(parts[:-1]):
            nxt = _child(node, part)
            if nxt is None:
                if isinstance(node, dict):
                    node[part] = nxt = {}
                else:
                    problems.append((".".join(parts[: i + 1]), f"override {item!r}: no such list item"))
                    break
            node = nxt
        else:
            if isinstance(node, list) and parts[-1].isdigit() and int(parts[-1]) < len(node):
                node[int(parts[-1])] = value
            elif isinstance(node, dict):
                node[parts[-1]] = value
            else:
                problems.append((key, f"override {item!r}: cannot set a key inside {type(node).__name__}"))
    return problems


def _split_path(path: str) -> list[str]:
    return [p for p in re.split(r"[.\[\]]+", path) if p]


def _child(node: Any, part: str) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return node[int(part)]
    return None


# ---------------------------------------------------------------------------- ${...}
_REF = re.compile(r"\$\{([^}]+)\}")


def resolve_references(tree: dict[str, Any]) -> list[tuple[str, str]]:
    """Replace ``${a.b}`` in strings, in place; a string that is one reference keeps the type."""
    problems: list[tuple[str, str]] = []

    def lookup(ref: str, path: str, stack: tuple[str, ...]) -> Any:
        if ref in stack:
            raise _Cycle(" -> ".join(stack + (ref,)))
        node: Any = tree
        for part in _split_path(ref):
            node = _child(node, part)
            if node is None:
                raise KeyError(ref)
        return resolve(node, path, stack + (ref,))

    def resolve(value: Any, path: str, stack: tuple[str, ...]) -> Any:
        if isinstance(value, dict):
            return {k: resolve(v, f"{path}.{k}" if path else k, stack) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v, f"{path}[{i}]", stack) for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value
        whole = _REF.fullmatch(value)
        if whole:
            return lookup(whole.group(1).strip(), path, stack)
        return _REF.sub(lambda m: str(lookup(m.group(1).strip(), path, stack)), value)

    for section in list(tree):
        try:
            tree[section] = resolve(tree[section], section, ())
        except KeyError as exc:
            problems.append((section, f"reference ${{{exc.args[0]}}} names nothing in the recipe"))
        except _Cycle as exc:
            problems.append((section, f"references form a cycle: {exc}"))
    return problems


class _Cycle(Exception):
    pass
