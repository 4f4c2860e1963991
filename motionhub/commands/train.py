"""``motionhub train RECIPE`` (or a run directory to continue) and ``motionhub validate RECIPE``."""

from __future__ import annotations

from motionhub.commands import Command

OVERRIDES_HELP = "override recipe values, e.g. train.lr=1e-4 data.root=./data"


class Train(Command):
    """Train what a recipe names, or continue a run directory from its last checkpoint."""

    help = "train what a recipe names (or resume a run directory)"

    def add_arguments(self, parser) -> None:
        parser.add_argument("recipe", help="path to the recipe YAML, or a run directory to resume")
        parser.add_argument("overrides", nargs="*", default=(), metavar="key=value", help=OVERRIDES_HELP)
        parser.add_argument("--resume", action="store_true",
                            help="continue the run in the recipe's run.out from its last checkpoint")

    def run(self, args) -> int:
        from pathlib import Path

        from rich.console import Console

        from motionhub.errors import MotionhubError
        from motionhub.recipes import load_recipe
        from motionhub.train.trainer import train

        path, overrides, resume = Path(args.recipe), list(args.overrides), args.resume
        if path.is_dir():  # a run directory: resume it with the recipe it was started with
            if not (path / "recipe.yaml").is_file():
                raise MotionhubError(f"{path} is a directory, not a recipe file, and not a run directory either "
                                     f"(it holds no recipe.yaml): pass a recipe's YAML file, or a run directory "
                                     f"to resume")
            overrides, resume = [*overrides, f"run.out={path}"], True
            path = path / "recipe.yaml"
        recipe = load_recipe(path, overrides)
        run_dir = train(recipe, Console(stderr=True), resume=resume)
        print(run_dir)
        return 0


class Validate(Command):
    """Check a recipe and report every problem at once, building nothing."""

    help = "check a recipe and report every problem"

    def add_arguments(self, parser) -> None:
        parser.add_argument("recipe", help="path to the recipe YAML")
        parser.add_argument("overrides", nargs="*", default=(), metavar="key=value", help=OVERRIDES_HELP)

    def run(self, args) -> int:
        from motionhub.recipes import load_recipe

        recipe = load_recipe(args.recipe, args.overrides)
        parts = [f"{s}={getattr(recipe, s).name}" for s in ("data", "encoder", "quantizer", "decoder")]
        parts.append("losses=" + ",".join(spec.name for spec in recipe.losses))
        print(f"{args.recipe}: OK ({' '.join(parts)})")
        return 0
