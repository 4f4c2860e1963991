"""Sub-commands of the ``motionhub`` CLI: the command contract, and the arguments commands share.

Every sub-command, the core's own included, is a ``Command`` class registered through the
``register_commands`` hook; ``motionhub.commands.builtin`` registers the core's. The CLI
builds a command's parser only when that command is chosen, so ``motionhub --help`` reads
no more than each command's ``help``.
"""

from __future__ import annotations

import argparse
import inspect
import textwrap
from pathlib import Path


class Command:
    """A ``motionhub <name>`` sub-command, registered with ``register_commands(register)``.

    A command provides a one-line ``help`` (what ``motionhub --help`` lists), optionally a
    longer ``description`` (paragraphs separated by blank lines, shown by ``motionhub <name>
    --help``), ``add_arguments(parser)`` to declare its arguments on its own argparse parser, and
    ``run(args) -> int`` to do the work and return the exit code. The class is built without
    arguments. Importing the module that defines it must stay light: import torch, numpy and
    the rest of the heavy machinery inside ``run``, so ``motionhub --help`` stays fast.

    A ``MotionhubError`` raised from ``run`` is printed as one message and its ``exit_code``
    returned; a positional argument named ``overrides`` also collects ``key=value`` words
    that come after the options (recipe overrides).
    """

    help: str = ""
    description: str = ""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare the command's arguments on ``parser`` (its own sub-parser)."""

    def run(self, args: argparse.Namespace) -> int:
        """Do the work; return the process exit code (0 for success)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement run(args)")


class ParagraphFormatter(argparse.HelpFormatter):
    """Help whose description keeps its paragraphs (separated by blank lines) and its bullet
    items (lines starting with ``* `` or ``- ``), each re-wrapped to the terminal's width."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        blocks = []
        for block in inspect.cleandoc(text).split("\n\n"):
            items: list[str] = []
            for line in block.splitlines():
                if not items or line.lstrip().startswith(BULLETS):
                    items.append(line.strip())
                else:
                    items[-1] += " " + line.strip()
            blocks.append("\n".join(
                textwrap.fill(item, width, initial_indent=indent,
                              subsequent_indent=indent + ("  " if item.startswith(BULLETS) else ""))
                for item in items))
        return "\n\n".join(blocks)


BULLETS = ("* ", "- ")


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer of at least 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def add_overrides(parser) -> None:
    """The trailing ``key=value`` recipe overrides every command that reads a recipe takes."""
    parser.add_argument("overrides", nargs="*", default=(), metavar="key=value",
                        help="recipe overrides, e.g. data.root=/elsewhere")


def add_run_arguments(parser) -> None:
    """``RUN_DIR [key=value ...] [--checkpoint best|last]`` of commands that load a trained run."""
    parser.add_argument("run_dir", type=Path, help="a run directory")
    add_overrides(parser)
    parser.add_argument("--checkpoint", default="best",
                        help="checkpoint name in RUN_DIR/checkpoints/: best (default; falls back to last), "
                             "last or step_N")
