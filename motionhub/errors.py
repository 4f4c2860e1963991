"""Errors a user can cause. The CLI prints their message and exits non-zero, without a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MotionhubError(Exception):
    """Base class for errors that are the user's to fix (bad recipe, bad data, unknown name)."""

    exit_code = 2


class UnknownComponentError(MotionhubError, KeyError):
    """A recipe or command named a component that no plugin registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class RecipeError(MotionhubError):
    """Every problem found in a recipe, reported together, each with its YAML path."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
        lines = [f"{source}: {count}:"]
        lines += [f"  {path}: {message}" if path else f"  {message}" for path, message in problems]
        super().__init__("\n".join(lines))


class PluginError(MotionhubError):
    """A plugin failed to load or broke the plugin contract."""


class DataError(MotionhubError):
    """Data files are missing, malformed or unusable."""


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice most similar to ``word``, or None if nothing is close."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` when a choice is close to ``word``, else an empty string."""
    match = closest(word, choices)
    return f"; did you mean '{match}'?" if match else ""
