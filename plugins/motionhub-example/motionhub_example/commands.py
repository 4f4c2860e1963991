"""A command: ``motionhub pendulums`` describes a pendulum data set without training on it."""

from __future__ import annotations

from motionhub.api import Command


class DescribePendulums(Command):
    """Describe a pendulums data set: clips and frames per split, the chain's reach, tip speed and swing."""

    help = "describe a pendulums data set: clips and frames per split, reach, tip speed and swing"
    description = (
        "Generate the pendulums data set with these settings (the ones a recipe's data section takes) and "
        "print, per split, its clips and frames, the fastest speed of the chain's tip and the widest "
        "swing of the first link, so you can pick settings before training.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--links", type=int, default=4, help="pendulums in the chain (default: 4)")
        parser.add_argument("--clips", type=int, default=40, help="clips in all splits (default: 40)")
        parser.add_argument("--frames", type=int, default=90, help="frames per clip (default: 90)")
        parser.add_argument("--fps", type=float, default=30.0, help="frame rate (default: 30)")
        parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")

    def run(self, args) -> int:
        import numpy as np

        from motionhub.api import MotionhubError

        from .pendulums import LINK_LENGTH, Pendulums

        try:
            data = Pendulums(links=args.links, clips=args.clips, frames=args.frames, fps=args.fps, seed=args.seed)
        except ValueError as exc:
            raise MotionhubError(f"pendulums: {exc}") from None
        print(f"pendulums: {args.links} links of {LINK_LENGTH:g} m (reach {args.links * LINK_LENGTH:g} m), "
              f"{args.clips} clips of {args.frames} frames at {args.fps:g} fps, seed {args.seed}")
        print(f"{'split':<6} {'clips':>5} {'frames':>7} {'tip speed max (m/s)':>20} {'swing max (deg)':>16}")
        for split in ("train", "val", "test"):
            joints = [clip.motion.reshape(len(clip.motion), -1, 3) for clip in data.clips(split)]
            if not joints:
                print(f"{split:<6} {0:>5} {0:>7} {'-':>20} {'-':>16}")
                continue
            frames = sum(len(j) for j in joints)
            speed = max(float(np.linalg.norm(np.diff(j[:, -1], axis=0), axis=-1).max()) * args.fps for j in joints)
            swing = max(float(np.degrees(np.abs(np.arctan2(j[:, 0, 0], -j[:, 0, 1]))).max()) for j in joints)
            print(f"{split:<6} {len(joints):>5} {frames:>7} {speed:>20.3f} {swing:>16.1f}")
        return 0
