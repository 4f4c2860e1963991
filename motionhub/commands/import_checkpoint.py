"""``motionhub import SOURCE CHECKPOINT --recipe R --out RUN_DIR``: a reference checkpoint as a run directory."""

from __future__ import annotations

from motionhub.commands import add_overrides

SOURCES = ("t2m-gpt", "motionmillion", "amplify", "laps")  # as motionhub.use.importing.SOURCES, kept here for a fast --help


def add_parser(sub) -> None:
    p = sub.add_parser("import", help="turn a T2M-GPT / MotionMillion / AMPLIFY / LAPS checkpoint into a run directory",
                       description="Build the recipe's tokenizer, give every tensor of the reference checkpoint "
                                   "its place, and write RUN_DIR (recipe.yaml, checkpoints/last.pt) for "
                                   "'motionhub eval', 'encode' and 'train RUN_DIR' (continue training).")
    p.add_argument("source", choices=SOURCES, help="which code base wrote the checkpoint")
    p.add_argument("checkpoint", help="the reference checkpoint, e.g. net_last.pth or best.pth")
    p.add_argument("--recipe", required=True, help="recipe describing the checkpoint's model and data")
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--no-data", action="store_true",
                   help="do not read the data set; take the statistics from --stats-mean / --stats-std")
    p.add_argument("--stats-mean", help="with --no-data: mean.npy the model was trained with")
    p.add_argument("--stats-std", help="with --no-data: std.npy the model was trained with")
    add_overrides(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console

    from motionhub.errors import DataError, MotionhubError
    from motionhub.use.importing import import_checkpoint

    given = args.stats_mean is not None, args.stats_std is not None
    if args.no_data and not all(given):
        raise MotionhubError("--no-data needs both --stats-mean and --stats-std (the .npy statistics the "
                             "checkpoint was trained with)")
    if any(given) and not args.no_data:
        raise MotionhubError("--stats-mean / --stats-std are read only with --no-data; without it the "
                             "statistics come from the recipe's data set")
    stats = (args.stats_mean, args.stats_std) if args.no_data else None
    try:
        imported = import_checkpoint(args.source, args.checkpoint, args.recipe, args.out, args.overrides, stats)
    except DataError as exc:
        raise DataError(f"{exc}\nWithout the data at hand, import with --no-data --stats-mean MEAN.npy "
                        f"--stats-std STD.npy.") from None
    Console(stderr=True).print(f"[green]imported[/] {imported.tensors} tensors of {args.checkpoint} ({args.source}) "
                               f"at step {imported.step} -> {imported.run / 'checkpoints' / 'last.pt'}")
    print(imported.run)
    return 0
