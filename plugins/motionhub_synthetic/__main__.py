"""Write synthetic data files in the real on-disk layouts, to try recipes without the data sets.

    python -m motionhub_synthetic tracks data/tracks --videos 8 --frames 48 --tracks 64
    python -m motionhub_synthetic velocities data/laps --segments 8 --frames 48 --tracks 64

``tracks`` writes AMPLIFY / LAPS track HDF5 files (the ``gtea_tracks`` data set reads them),
``velocities`` the LAPS re-implementation's ``.pt`` windows (the ``laps_velocities`` data set).
"""

from __future__ import annotations

import argparse
import sys

from .tracks import write_track_files, write_velocity_files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m motionhub_synthetic", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="kind", required=True)
    tracks = sub.add_parser("tracks", help="track HDF5 files, one per video (gtea_tracks)")
    tracks.add_argument("--videos", type=int, default=8)
    velocities = sub.add_parser("velocities", help="LAPS .pt velocity windows, one per start frame (laps_velocities)")
    velocities.add_argument("--segments", type=int, default=8)
    for p in (tracks, velocities):
        p.add_argument("out", help="folder to write into (created)")
        p.add_argument("--frames", type=int, default=48, help="start frames (windows) per video")
        p.add_argument("--tracks", type=int, default=64, help="points per window (the references: 400)")
        p.add_argument("--horizon", type=int, default=16, help="frames per window")
        p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("frames", "tracks", "horizon", "videos", "segments"):
        value = getattr(args, name, None)
        if value is not None and value < (2 if name == "horizon" else 1):
            parser.error(f"--{name} must be at least {2 if name == 'horizon' else 1}, got {value}")
    if args.kind == "tracks":
        paths = write_track_files(args.out, videos=args.videos, frames=args.frames, tracks=args.tracks,
                                  horizon=args.horizon, seed=args.seed)
    else:
        paths = write_velocity_files(args.out, segments=args.segments, frames=args.frames, tracks=args.tracks,
                                     horizon=args.horizon, seed=args.seed)
    print(f"wrote {len(paths)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
