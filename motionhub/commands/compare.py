"""``motionhub compare RUN_DIR RUN_DIR...``: runs side by side (the work is in ``motionhub.use.compare``)."""

from __future__ import annotations

from pathlib import Path

from motionhub.commands import Command

DEFAULT_OUT = Path("compare")


class Compare(Command):
    """Runs side by side: recipe differences, report figures, curves and codebook usage."""

    help = "put runs side by side: recipe lines that differ, report figures, curves, codebook usage"
    description = (
        "Compare finished runs with the first one (the baseline): the recipe lines that differ, every "
        "figure of their reports with its ratio (or difference) to the baseline's, loss and evaluation "
        "curves overlaid, and codebook usage histograms. Writes compare.md, compare.json and PNG figures "
        "into --out and prints the tables."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                            help="two or more run directories; the first is the baseline")
        parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                            help="folder for compare.md, compare.json and the figures (default: ./compare; files of an "
                                 "earlier comparison there are replaced)")
        parser.add_argument("--evaluate", metavar="SPLIT", choices=("train", "val", "test"),
                            help="evaluate every run's checkpoint on SPLIT (train, val or test) of the first run's "
                                 "data and compare those figures; needed when the runs were evaluated on different "
                                 "data")
        parser.add_argument("--checkpoint", default="best",
                            help="with --evaluate: checkpoint name in each RUN_DIR/checkpoints/: best (default; falls "
                                 "back to last), last or step_N")
        parser.add_argument("--device", choices=("cpu", "cuda"),
                            help="with --evaluate: default cuda when there is a GPU, else cpu")

    def run(self, args) -> int:
        from rich.console import Console

        from motionhub.use.compare import compare, print_summary

        comparison = compare(args.run_dirs, args.out, evaluate=args.evaluate, checkpoint=args.checkpoint,
                             device=args.device, console=Console(stderr=True))
        print_summary(comparison, Console())
        for note in comparison["notes"]:
            print(f"note: {note}")
        print(args.out / "compare.md")
        return 0
