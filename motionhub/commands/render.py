"""``motionhub render``: one clip and its reconstruction by a trained run, as a GIF, MP4 or PNG."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from motionhub.commands import Command, add_run_arguments

if TYPE_CHECKING:
    import torch

    from motionhub.data.dataset import Clip, Dataset
    from motionhub.data.formats import MotionFormat
    from motionhub.model.tokenizer import Tokenizer

SHOWN_IDS = 5  # ids listed when a clip id is unknown


class Render(Command):
    """One clip and its reconstruction by a trained run, drawn side by side."""

    help = "draw a clip next to its reconstruction (.gif, .mp4 or .png)"
    description = (
        "Reconstruct one clip with a trained run and draw ground truth and reconstruction side by side: "
        "skeletons for formats with joints, points with trails for point tracks. Needs matplotlib (pip "
        "install 'motionhub[render]'); .mp4 also needs ffmpeg."
    )

    def add_arguments(self, parser) -> None:
        add_run_arguments(parser)
        parser.add_argument("--clip", metavar="ID", help="id of the clip to draw (see --list)")
        parser.add_argument("--split", default="val", choices=("train", "val", "test"),
                            help="split the clip is in (default: val)")
        parser.add_argument("--frames", type=int, metavar="N", help="animate only the first N frames")
        parser.add_argument("--fps", type=float, metavar="F", help="frames per second (default: the data's)")
        parser.add_argument("--frame", type=int, default=0, metavar="K", help="frame drawn into a .png (default: 0)")
        parser.add_argument("--out", type=Path, metavar="FILE",
                            help="clip.gif, clip.mp4 or clip.png; clip.bvh writes the reconstruction there and "
                                 "the clip beside it as clip.target.bvh (263 and 272 features)")
        parser.add_argument("--list", action="store_true", help="print the clip ids of the split and exit")

    def run(self, args: argparse.Namespace) -> int:
        from motionhub.errors import MotionhubError
        from motionhub.use.render import check_output, render_clip
        from motionhub.use.trained_run import load_run

        if not args.list:
            if args.clip is None or args.out is None:
                raise MotionhubError("render needs --clip ID and --out FILE (or --list to print the clip ids)")
            if not is_bvh(args.out):
                check_output(args.out)
        loaded = load_run(args.run_dir, args.checkpoint, args.overrides)
        if args.list:
            for clip in loaded.dataset.clips(args.split):
                print(clip.id)
            return 0
        clip = find_clip(loaded.dataset, args.split, args.clip, args.run_dir)
        if is_bvh(args.out):
            from motionhub.use.bvh_output import check_bvh_format
            check_bvh_format(loaded.format)
        target, recon = reconstruct(loaded.model, loaded.format, clip)
        if is_bvh(args.out):
            return write_bvh_pair(loaded.format, target, recon, args.out, args.frames)
        render_clip(loaded.format, target, recon, args.out, clip_id=clip.id, fps=args.fps, frames=args.frames,
                    frame=args.frame)
        print(args.out)
        return 0


def is_bvh(path: Path | None) -> bool:
    return path is not None and path.suffix.lower() == ".bvh"


def write_bvh_pair(fmt: MotionFormat, target: torch.Tensor, recon: torch.Tensor, out: Path,
                   frames: int | None) -> int:
    """The reconstruction as ``out`` and the clip as ``<out stem>.target.bvh``, both or neither."""
    from motionhub.use.bvh_output import bvh_of, write_bvh_files

    keep = slice(None, frames)
    target_path = out.with_name(f"{out.stem}.target{out.suffix}")
    write_bvh_files({out: bvh_of(fmt, recon[keep].cpu().numpy()),
                     target_path: bvh_of(fmt, target[keep].cpu().numpy())})
    print(out)
    print(target_path)
    return 0


def find_clip(dataset: Dataset, split: str, clip_id: str, run_dir: Path) -> Clip:
    """The clip ``clip_id`` of ``split``; an unknown id is an error naming the closest ones."""
    from motionhub.errors import MotionhubError, did_you_mean

    ids = []
    for clip in dataset.clips(split):
        if clip.id == clip_id:
            return clip
        ids.append(clip.id)
    if not ids:
        raise MotionhubError(f"the {split} split of {dataset.describe()} has no clips; pick another --split")
    shown = ", ".join(ids[:SHOWN_IDS]) + (", …" if len(ids) > SHOWN_IDS else "")
    raise MotionhubError(
        f"no clip '{clip_id}' in the {split} split{did_you_mean(clip_id, ids) or '.'} "
        f"It has {len(ids):,} clip{'s' * (len(ids) != 1)}: {shown}. "
        f"List them all with: motionhub render {run_dir} --split {split} --list")


def reconstruct(model: Tokenizer, fmt: MotionFormat, clip: Clip) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground truth and reconstruction of ``clip``, de-normalised: two (T, *F) tensors.

    T is the clip's length cropped to a multiple of the model's temporal down-sampling,
    exactly as evaluation crops it.
    """
    import torch

    from motionhub.errors import MotionhubError
    from motionhub.data.windows import ClipBank, EvalBatches

    unit = model.downsample
    if len(clip.motion) < unit:
        raise MotionhubError(f"clip '{clip.id}' has {len(clip.motion)} frames, fewer than the model's "
                             f"down-sampling unit of {unit}; pick a longer clip")
    batch = next(iter(EvalBatches(ClipBank.from_clips([clip]), fmt, unit=unit, batch_size=1)))
    with torch.no_grad():
        recon = model.reconstruction(model(batch["motion"]), batch["motion"])
    return fmt.denormalise(batch["motion"][0]), fmt.denormalise(recon[0].float())
