"""Sub-commands of the ``motionhub`` CLI beyond the core ones, one module each.

Each module defines ``add_parser(subparsers)``, which adds its parser and sets ``func`` to a
function taking the parsed arguments and returning an exit code. Heavy imports go inside
that function so ``motionhub --help`` stays fast.
"""
