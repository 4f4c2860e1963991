"""``motionhub eval RUN_DIR``: losses, metrics and codebook usage of a trained run on a split."""

from __future__ import annotations

import json

from motionhub.commands import Command, add_run_arguments


class Evaluate(Command):
    """Losses, metrics and codebook usage of a trained run on one split."""

    help = "evaluate a trained run on a split (losses, MPJPE, codebook usage)"

    def add_arguments(self, parser) -> None:
        add_run_arguments(parser)
        parser.add_argument("--split", default="val", choices=("train", "val", "test"),
                            help="split to evaluate (default: val)")
        parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when there is a GPU, else cpu")

    def run(self, args) -> int:
        from rich.console import Console
        from rich.table import Table

        from motionhub.use.trained_run import load_run

        console = Console(stderr=True)
        loaded = load_run(args.run_dir, args.checkpoint, args.overrides)
        result = evaluate_run(loaded, args.split, args.device, console)
        out = loaded.run.path / f"eval_{args.split}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")

        table = Table(title=f"{loaded.run.path} · {args.split} · step {loaded.step}", show_header=False)
        for key, value in result.items():
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
        Console().print(table)
        print(out)
        return 0


def evaluate_run(loaded, split: str, device: str | None = None, console=None, *, clips=None,
                 eval_config=None) -> dict:
    """What ``motionhub eval`` reports for a loaded run on ``split``.

    ``clips`` (a packed store or clip bank) evaluates on those clips instead of the run's own
    split, e.g. another run's, in a format equal to this run's; ``eval_config`` then sets the
    batch size and length bounds (default: the run's ``eval`` section).
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from rich.console import Console

    from motionhub.model.build import build_losses, build_metrics
    from motionhub.train.evaluation import evaluate
    from motionhub.use.encoding import clip_progress, resolve_device
    from motionhub.data.windows import EvalBatches

    console = console or Console(stderr=True)
    device = resolve_device(device)
    ev = eval_config or loaded.recipe.eval
    source = clips if clips is not None else loaded.split(split, console)
    batches = EvalBatches(source, loaded.format, unit=loaded.model.downsample,
                          batch_size=ev.batch_size, min_length=ev.min_length, max_length=ev.max_length)
    accelerator = Accelerator(cpu=device.type == "cpu")
    try:
        with clip_progress(console, f"eval {split}", len(batches.clips)) as progress:
            result = evaluate(loaded.model.to(accelerator.device), _counted(batches, progress), loaded.format,
                              build_losses(loaded.recipe), build_metrics(loaded.recipe, loaded.format, loaded.model.quantizer.codebook_size),
                              accelerator, loaded.step)
    finally:
        AcceleratorState._reset_state()  # Accelerate's settings are process-wide
    return {"split": split, "step": loaded.step, "clips": len(batches.clips), "skipped": batches.skipped,
            "codebook_size": loaded.model.quantizer.codebook_size, **result}


def _counted(batches, progress):
    """The batches, reporting the clips handed out so far to ``progress``."""
    done = 0
    for batch in batches:
        yield batch
        done += len(batch["ids"])
        progress(done)
