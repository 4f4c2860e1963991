"""``motionhub pack``: pack a recipe's data splits into the store cache ahead of training."""

from __future__ import annotations

from motionhub.commands import Command, add_overrides


class Pack(Command):
    """A recipe's data splits packed into the store cache ahead of training."""

    help = "pack a recipe's data splits into packed HDF5 stores (training does it on first use)"

    def add_arguments(self, parser) -> None:
        parser.add_argument("recipe", help="path to the recipe YAML")
        add_overrides(parser)
        parser.add_argument("--splits", default="train,val,test",
                            help="comma-separated splits (default: train,val,test)")

    def run(self, args) -> int:
        from rich.console import Console
        from rich.table import Table

        from motionhub.model.build import build_dataset
        from motionhub.data.batches import open_split
        from motionhub.recipes import load_recipe

        console = Console(stderr=True)
        recipe = load_recipe(args.recipe, args.overrides)
        dataset = build_dataset(recipe)
        table = Table(title=f"packed stores of {dataset.describe()}")
        for column in ("split", "clips", "frames", "dtype", "file"):
            table.add_column(column)
        for split in [s.strip() for s in args.splits.split(",") if s.strip()]:
            store = open_split(dataset, split, recipe, console, required=False)
            if store is None:
                table.add_row(split, "0", "0", "-", "(empty split)")
                continue
            table.add_row(split, f"{len(store):,}", f"{int(store.offsets[-1]):,}", str(store.dtype), str(store.path))
        Console().print(table)
        return 0
