"""``motionhub pack``: pack a recipe's data splits into the store cache ahead of training."""

from __future__ import annotations

import argparse

from motionhub.commands import Command, add_overrides


def part_spec(text: str) -> tuple[int, int]:
    """argparse type: ``I/N``, part I (0-based) of N."""
    try:
        index, count = (int(value) for value in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N (part I of N, I from 0), e.g. 0/4; got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"part {text}: N must be at least 1 and I between 0 and N - 1")
    return index, count


class Pack(Command):
    """A recipe's data splits packed into the store cache ahead of training."""

    help = "pack a recipe's data splits into packed HDF5 stores (training does it on first use)"
    description = """
        Packs each split into one HDF5 store in the cache (data.cache_dir), streaming: memory stays
        flat whatever the size of the data, and a pack that is killed continues where it stopped
        when run again.

        With --part I/N only part I of N of each split is packed (a contiguous run of its listed
        clips), so N processes or machines sharing the cache folder can pack at once; the next
        `motionhub pack` (or training) merges the parts into the split's store.
    """

    def add_arguments(self, parser) -> None:
        parser.add_argument("recipe", help="path to the recipe YAML")
        add_overrides(parser)
        parser.add_argument("--splits", default="train,val,test",
                            help="comma-separated splits (default: train,val,test)")
        parser.add_argument("--part", type=part_spec, metavar="I/N",
                            help="pack only part I of N of each split (I from 0), to pack in parallel")
        parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")

    def run(self, args) -> int:
        import json
        import resource
        import time

        from rich.console import Console
        from rich.table import Table

        from motionhub.data.batches import open_split
        from motionhub.model.build import build_dataset
        from motionhub.recipes import load_recipe

        console = Console(stderr=True)
        recipe = load_recipe(args.recipe, args.overrides)
        dataset = build_dataset(recipe)
        rows = []
        for split in [s.strip() for s in args.splits.split(",") if s.strip()]:
            if args.part is not None and dataset.clip_count(split) == 0:
                continue  # a split with no clips has no parts
            start = time.perf_counter()
            store = open_split(dataset, split, recipe, console, required=False, part=args.part)
            row = {"split": split, "clips": 0, "frames": 0, "dtype": None, "path": None}
            if store is not None:
                row = {"split": split, "clips": len(store), "frames": int(store.offsets[-1]), "dtype": store.dtype,
                       "path": str(store.path), "bytes": store.size_bytes}
            rows.append({**row, "seconds": round(time.perf_counter() - start, 3)})
        # ru_maxrss is in KiB on Linux: the most this process held at once, packing included
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if args.json:
            print(json.dumps({"splits": rows, "part": list(args.part) if args.part else None,
                              "peak_rss_mib": round(peak, 1)}))
            return 0
        title = f"packed stores of {dataset.describe()}" + (f", part {args.part[0]}/{args.part[1]}" if args.part else "")
        table = Table(title=title)
        for column in ("split", "clips", "frames", "dtype", "seconds", "file"):
            table.add_column(column)
        for row in rows:
            if row["path"] is None:
                table.add_row(row["split"], "0", "0", "-", "-", "(empty split)")
            else:
                table.add_row(row["split"], f"{row['clips']:,}", f"{row['frames']:,}", row["dtype"],
                              f"{row['seconds']:.1f}", row["path"])
        Console().print(table)
        console.print(f"peak memory: {peak:,.0f} MiB (resident, this process)")
        return 0
