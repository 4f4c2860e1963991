"""``motionhub prepare (JOINTS_DIR | --from-bvh BVH_DIR --joint-map MAP) --out DIR``: a HumanML3D / KIT-ML folder."""

from __future__ import annotations

from motionhub.api import Command


class Prepare(Command):
    """Turn a folder of joint positions (T, J, 3), or of BVH files, into a HumanML3D / KIT-ML data-set folder."""

    help = "turn joint positions (T, J, 3) or BVH files into HumanML3D / KIT-ML features"
    description = (
        "Make HumanML3D's 263 features (or KIT-ML's 251) the way HumanML3D's own pipeline does. From BVH "
        "files of any skeleton (--from-bvh): each clip is resampled to 20 fps, its joints mapped to the 22 "
        "SMPL joints (--joint-map: cmu31/pfnn, smpl22, or a YAML/JSON file 'smpl_joint: source_joint' or "
        "'smpl_joint: {A: 0.5, B: 0.5}'), turned to metres (--unit, else the one unit that makes the skeleton "
        "human-sized) and to Y up (--up-axis, else told from head over ankles). The output folder must be new; "
        "it appears only once every clip is done."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("joints_dir", nargs="?",
                            help="folder of <id>.npy joint positions, e.g. HumanML3D's joints/ (or use --from-bvh)")
        parser.add_argument("--out", required=True,
                            help="data-set folder to write (new_joint_vecs/, new_joints/, Mean/Std)")
        parser.add_argument("--skeleton", default="t2m", choices=["t2m", "kit"],
                            help="t2m (22 joints, default) or kit (21)")
        parser.add_argument("--no-uniform", action="store_true",
                            help="keep each clip's own bone lengths instead of HumanML3D's reference skeleton "
                                 "(needed for kit, whose reference lengths are not known)")
        bvh = parser.add_argument_group("BVH input")
        bvh.add_argument("--from-bvh", metavar="BVH_DIR", help="folder of <id>.bvh files of one skeleton")
        bvh.add_argument("--joint-map", metavar="NAME|FILE",
                         help="SMPL joint -> source joint map: cmu31 (= pfnn), smpl22, or a .yaml/.json file")
        bvh.add_argument("--unit", choices=["mm", "cm", "m", "inch", "cmu"],
                         help="the BVH files' unit (cmu: 1/0.45 inch); default: told from the skeleton's size")
        bvh.add_argument("--up-axis", choices=["y", "-y", "z", "-z", "x", "-x"],
                         help="the BVH files' up axis; default: told from head over ankles, per clip")
        bvh.add_argument("--on-bad", choices=["stop", "skip"], default="stop",
                         help="a BVH file that cannot be used stops (default), or is skipped and counted")

    def run(self, args) -> int:
        from pathlib import Path

        from rich.console import Console
        from rich.progress import Progress

        from motionhub.api import MotionhubError
        from motionhub_humanml3d.prepare import bvh_joint_source, count_bvh_files, prepare_bvh_folder, prepare_folder

        console = Console(stderr=True)
        if args.from_bvh is not None:
            if args.joints_dir is not None:
                raise MotionhubError("give either a joints folder or --from-bvh BVH_DIR, not both")
            if args.joint_map is None:
                raise MotionhubError("--from-bvh needs --joint-map: cmu31 (= pfnn), smpl22, or a .yaml/.json file "
                                     "mapping each of the 22 SMPL joints to a source joint")
            if args.skeleton != "t2m":
                raise MotionhubError("--from-bvh makes HumanML3D's 22-joint features; it takes --skeleton t2m")
            total = count_bvh_files(args.from_bvh)
            # The joint map, unit and axis options are checked before the progress bar starts.
            source = bvh_joint_source(args.from_bvh, args.joint_map, unit=args.unit, up_axis=args.up_axis,
                                      on_bad=args.on_bad)
        else:
            if args.joints_dir is None:
                raise MotionhubError("prepare needs a joints folder, or --from-bvh BVH_DIR --joint-map MAP")
            if args.joint_map or args.unit or args.up_axis:
                raise MotionhubError("--joint-map, --unit and --up-axis go with --from-bvh BVH_DIR")
            total = len(list(Path(args.joints_dir).glob("*.npy")))
        with Progress(console=console) as progress:
            task = progress.add_task("prepare", total=total)
            advance = lambda _: progress.advance(task)  # noqa: E731
            if args.from_bvh is not None:
                summary = prepare_bvh_folder(args.from_bvh, args.out, joint_map=args.joint_map, unit=args.unit,
                                             up_axis=args.up_axis, uniform=not args.no_uniform,
                                             on_bad=args.on_bad, progress=advance, source=source)
            else:
                summary = prepare_folder(args.joints_dir, args.out, skeleton=args.skeleton,
                                         uniform=not args.no_uniform, progress=advance)
        for note in summary.notes:
            console.print(note)
        console.print(f"{summary.clips} clips, {summary.frames} feature frames -> {summary.out} "
                      f"(add train.txt / val.txt / test.txt to use it as a data set)")
        return 0
