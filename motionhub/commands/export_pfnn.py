"""``motionhub export-pfnn (RUN_DIR | RECIPE.yaml) --out DIR/database.npz``: PFNN training data of a data set."""

from __future__ import annotations

import argparse
from pathlib import Path

from motionhub.commands import add_overrides

DESCRIPTION = """\
Write PFNN training data (Holden et al. 2017) of one split of a data set: database.npz
(Xun, Yun, Pun and Xmean/Xstd/Ymean/Ystd) and PFNN's Xmean.bin, Xstd.bin, Ymean.bin and
Ystd.bin next to it. The source is a run directory (the data set of the recipe it was
trained with; the model is not needed for PFNN data) or a recipe file (its data section).

Skeleton choices (facing joints, feet, their planted heights) come from the data format's
skeleton unless given here. Phase: 'contacts' starts a cycle at each right-foot landing
(the layout's foot-contact features where it has them, else foot speed); 'labels' reads
the data set's phase labels (and footstep cycles), e.g. PFNN's .phase and _footsteps.txt
next to BVH files.

Joint rotations: 'auto' uses the data set's rotations where it has them (BVH), else
derives them from positions ('swing'): each joint's rotation is the shortest arc turning
its rest bone direction onto its current one, and the root gets its facing yaw. HumanML3D's
6D rotations are not used: they hold the same bone rotations, but relative to the previous
bone of each chain, with arm chains relative to a quirky root rotation (negated hip term,
smoothed, identity at frame 0).
"""


def names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def numbers(text: str) -> list[float]:
    try:
        return [float(value) for value in names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export-pfnn", help="PFNN training data (database.npz and .bin normalisation) of a recipe's data set",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, metavar="RUN_DIR|RECIPE",
                   help="a run directory (the model is not needed) or a recipe file")
    add_overrides(p)
    p.add_argument("--out", type=Path, required=True, metavar="DIR/database.npz",
                   help="database to write; the .bin files go next to it")
    p.add_argument("--split", default="train", choices=("train", "val", "test"), help="split to export (default: train)")
    p.add_argument("--fps", type=positive_float, default=60.0, help="frame rate of the rows (default: 60, PFNN's)")
    p.add_argument("--facing", type=names, metavar="LEFT,RIGHT[,...]",
                   help="(left, right) joint pairs giving the across direction (default: the skeleton's hips "
                        "and shoulders)")
    p.add_argument("--feet", type=names, metavar="L1,L2,R1,R2",
                   help="foot joints whose contacts Y holds, left then right (default: the skeleton's feet)")
    p.add_argument("--foot-heights", type=numbers, metavar="H1,H2",
                   help="height above the floor of each foot joint of a side when planted, in PFNN units "
                        "(about cm; default: measured for HumanML3D's skeleton, else PFNN's 5,4)")
    p.add_argument("--crouch-head", metavar="NAME",
                   help="set the crouch gait from this joint's height, as PFNN does for flat-ground clips")
    p.add_argument("--masked", type=names, default=[], metavar="NAME,...",
                   help="joints whose inputs the normalisation switches off (PFNN masks 12 of its 31)")
    p.add_argument("--phase-from", choices=("contacts", "labels"), default="contacts",
                   help="phase from foot contacts (default) or from the data set's phase labels")
    p.add_argument("--gait-from", choices=("speed", "labels"), default="speed",
                   help="one-hot stand/walk/jog from root speed (default) or the data set's gait labels")
    p.add_argument("--rotations", choices=("auto", "source", "swing", "none"), default="auto",
                   help="joint rotations: the data set's, derived from positions, or none (default: auto)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from motionhub.model.build import build_dataset
    from motionhub.errors import MotionhubError
    from motionhub.use.export import ExportSource
    from motionhub.plugins.manager import get_registry
    from motionhub.recipes.recipe import load_recipe

    console = Console(stderr=True)
    recipe_path = args.source / "recipe.yaml" if args.source.is_dir() else args.source
    if args.source.is_dir():
        if not recipe_path.is_file():
            raise MotionhubError(f"{args.source} is not a run directory (no recipe.yaml); pass a run directory "
                                 f"or a recipe file")
        console.print(f"reading the data set of run {args.source} (PFNN data needs no model)")
    exporter = get_registry().get("exporter", "pfnn").cls()
    dataset = build_dataset(load_recipe(recipe_path, args.overrides))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        source = ExportSource(dataset, args.split)
        task = progress.add_task(f"pfnn {args.split} clips", total=source.num_clips())
        source.on_clip = lambda _: progress.advance(task)
        result = exporter.export(
            source, args.out, fps=args.fps, facing=args.facing, feet=args.feet, foot_heights=args.foot_heights,
            crouch_head=args.crouch_head, masked=args.masked, phase_from=args.phase_from,
            gait_from=args.gait_from, rotations=args.rotations)

    main, *others = result.files
    print(f"pfnn database: {main} (and {', '.join(path.name for path in others)})")
    skipped = sum(len(ids) for ids in result.skipped.values())
    print(f"clips: {result.clips} of {result.clips + skipped} in split '{args.split}' of {dataset.describe()}")
    for reason, ids in result.skipped.items():
        shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
        print(f"skipped {len(ids)}: {reason} ({shown})")
    for key, value in result.details.items():
        print(f"{key}: {value}")
    return 0
