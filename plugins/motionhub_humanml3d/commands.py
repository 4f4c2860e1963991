"""``motionhub prepare JOINTS_DIR --out DIR``: joint positions -> a HumanML3D / KIT-ML feature folder."""

from __future__ import annotations

from motionhub.api import Command


class Prepare(Command):
    """Turn a folder of joint positions (T, J, 3) into a HumanML3D / KIT-ML data-set folder."""

    help = "turn joint positions (T, J, 3) into HumanML3D / KIT-ML features"

    def add_arguments(self, parser) -> None:
        parser.add_argument("joints_dir", help="folder of <id>.npy joint positions, e.g. HumanML3D's joints/")
        parser.add_argument("--out", required=True,
                            help="data-set folder to write (new_joint_vecs/, new_joints/, Mean/Std)")
        parser.add_argument("--skeleton", default="t2m", choices=["t2m", "kit"],
                            help="t2m (22 joints, default) or kit (21)")
        parser.add_argument("--no-uniform", action="store_true",
                            help="keep each clip's own bone lengths instead of HumanML3D's reference skeleton "
                                 "(needed for kit, whose reference lengths are not known)")

    def run(self, args) -> int:
        from pathlib import Path

        from rich.console import Console
        from rich.progress import Progress

        from motionhub_humanml3d.prepare import prepare_folder

        console = Console(stderr=True)
        total = len(list(Path(args.joints_dir).glob("*.npy")))
        with Progress(console=console) as progress:
            task = progress.add_task("prepare", total=total)
            summary = prepare_folder(args.joints_dir, args.out, skeleton=args.skeleton, uniform=not args.no_uniform,
                                     progress=lambda _: progress.advance(task))
        console.print(f"{summary.clips} clips, {summary.frames} feature frames -> {summary.out} "
                      f"(add train.txt / val.txt / test.txt to use it as a data set)")
        return 0
