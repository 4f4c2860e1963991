"""The core's own sub-commands, registered through ``register_commands`` like any plugin's.

Each command class lives in the module of its stage's command (``motionhub.commands.<x>``);
registering them imports those modules, which import nothing heavy until a command runs.
"""

from motionhub.plugins.hookspecs import hookimpl


@hookimpl
def register_commands(register):
    from motionhub.commands import (bench, compare, decode, encode, evaluate, export, import_checkpoint, listing,
                                    pack, package, render, report, train)

    register("train", train.Train)
    register("validate", train.Validate)
    register("report", report.Report)
    register("eval", evaluate.Evaluate)
    register("encode", encode.Encode)
    register("decode", decode.Decode)
    register("bench", bench.Bench)
    register("render", render.Render)
    register("compare", compare.Compare)
    register("pack", pack.Pack)
    register("package", package.Package)
    register("import", import_checkpoint.Import)
    register("export", export.Export)
    register("plugins", listing.Plugins)
    register("list", listing.List)
