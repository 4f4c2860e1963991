"""``motionhub decode RUN_DIR tokens.h5 --out recon.h5``: features (and joints) back from token ids."""

from __future__ import annotations

import argparse
from pathlib import Path

from motionhub.commands import Command, add_overrides, positive_int


class Decode(Command):
    """Features (and joint positions) decoded from a tokens file, written to one HDF5 file."""

    help = "features (and joint positions) from a tokens file, into one HDF5 file"
    description = (
        "Decode the token ids 'motionhub encode' wrote with the run's decoder. The file holds "
        "de-normalised float32 features of every clip (concatenated, with offsets and ids) and, where "
        "the data format recovers them, joint positions (frames, joints, 3)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("run_dir", type=Path, help="the run directory whose model encoded the tokens")
        parser.add_argument("tokens", type=Path, help="tokens file written by 'motionhub encode'")
        add_overrides(parser)
        parser.add_argument("--out", type=Path, required=True, metavar="FILE",
                            help="reconstruction file to write (with --format bvh: a new folder of <clip id>.bvh)")
        parser.add_argument("--format", choices=("h5", "bvh"), default="h5", dest="out_format",
                            help="h5 (default): one HDF5 file; bvh: one BVH file per clip, the 22-joint SMPL body "
                                 "(263 and 272 features)")
        parser.add_argument("--checkpoint", help="best or last (default: the checkpoint that encoded the tokens)",
                            choices=("best", "last"))
        parser.add_argument("--batch-size", type=positive_int, default=64, metavar="N",
                            help="clips per batch, at most (default: 64)")
        parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when there is a GPU, else cpu")

    def run(self, args: argparse.Namespace) -> int:
        import logging

        from rich.console import Console

        from motionhub.use.trained_run import load_run
        from motionhub.use.encoding import (check_output_file, check_token_ids, check_tokens_match, clip_progress,
                                            decode_tokens, read_tokens, resolve_device, write_reconstruction)

        console = Console(stderr=True)
        device = resolve_device(args.device)
        if args.out_format == "bvh":
            from motionhub.use.bvh_output import check_new_bvh_folder
            check_new_bvh_folder(args.out)
        else:
            check_output_file(args.out)
        tokens = read_tokens(args.tokens)
        checkpoint = args.checkpoint or tokens.attrs["checkpoint"]
        loaded = load_run(args.run_dir, checkpoint, args.overrides)
        check_tokens_match(tokens, loaded.model, loaded.run.path)
        check_token_ids(tokens, loaded.model, args.tokens)
        if (tokens.attrs["run_dir"], tokens.attrs["step"]) != (str(loaded.run.path.resolve()), loaded.step):
            logging.getLogger(__name__).warning(
                "%s was encoded by %s at step %s; decoding with %s at step %s", args.tokens,
                tokens.attrs["run_dir"], tokens.attrs["step"], loaded.run.path, loaded.step)
        fmt = loaded.format
        if args.out_format == "bvh":
            from motionhub.use.bvh_output import check_bvh_format
            check_bvh_format(fmt)
        with clip_progress(console, "decode", len(tokens.encoded.ids)) as progress:
            recon = decode_tokens(loaded.model.to(device), fmt, tokens.encoded, batch_size=args.batch_size,
                                  device=device, progress=progress)
        attrs = {"run_dir": str(loaded.run.path.resolve()), "checkpoint": checkpoint, "step": loaded.step,
                 "split": tokens.attrs["split"], "tokens_file": str(args.tokens.resolve()), "format": fmt.name,
                 "feature_shape": list(fmt.feature_shape), "fps": float(fmt.fps), "mm_per_unit": fmt.mm_per_unit}
        if args.out_format == "bvh":
            from motionhub.use.bvh_output import write_bvh_folder
            write_bvh_folder(args.out, fmt, recon.features, recon.offsets, tokens.encoded.ids)
            console.print(f"wrote {len(tokens.encoded.ids):,} BVH files ({len(recon.features):,} frames at "
                          f"{fmt.fps:g} fps, cm) into {args.out}")
            print(args.out)
            return 0
        write_reconstruction(args.out, recon, tokens.encoded.ids, tokens.texts, attrs)
        joints = f" and joint positions {recon.joints.shape[1:]}" if recon.joints is not None else ""
        console.print(f"decoded {len(tokens.encoded.ids):,} clips into {len(recon.features):,} frames of "
                      f"features{joints}")
        print(args.out)
        return 0
