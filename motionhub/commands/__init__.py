"""Sub-commands of the ``motionhub`` CLI beyond the core ones, one module each, and the
arguments they share.

Each module defines ``add_parser(subparsers)``, which adds its parser and sets ``func`` to a
function taking the parsed arguments and returning an exit code. Heavy imports go inside
that function so ``motionhub --help`` stays fast.
"""

import argparse
from pathlib import Path


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
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="recipe overrides, e.g. data.root=/elsewhere")


def add_run_arguments(parser) -> None:
    """``RUN_DIR [key=value ...] [--checkpoint best|last]`` of commands that load a trained run."""
    parser.add_argument("run_dir", type=Path, help="a run directory")
    add_overrides(parser)
    parser.add_argument("--checkpoint", default="best",
                        help="checkpoint name in RUN_DIR/checkpoints/: best (default; falls back to last), "
                             "last or step_N")
