"""``motionhub encode RUN_DIR --out tokens.h5``: token ids of every clip of a split, in one HDF5 file."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from motionhub.commands import Command, add_run_arguments, positive_int


class Encode(Command):
    """Token ids of every clip of a split, written to one HDF5 file."""

    help = "token ids of every clip of a split, into one HDF5 file"
    description = (
        "Encode every clip of a split with a trained run. Each clip is cropped to a multiple of the "
        "model's temporal down-sampling (its first (length // d) * d frames); clips shorter than d "
        "frames are skipped and listed in the file. Clips are batched only with clips of the same "
        "cropped length, so no clip is padded: each gets the ids it would get alone."
    )

    def add_arguments(self, parser) -> None:
        add_run_arguments(parser)
        parser.add_argument("--out", type=Path, required=True, metavar="FILE",
                            help="tokens file to write, e.g. tokens.h5")
        parser.add_argument("--split", default="val", choices=("train", "val", "test"),
                            help="split to encode (default: val)")
        parser.add_argument("--batch-size", type=positive_int, default=64, metavar="N",
                            help="clips per batch, at most (default: 64)")
        parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when there is a GPU, else cpu")
        parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                            help="fp32 (default), or bf16: the encoder's matmuls/convs under autocast, the "
                                 "quantizer in fp32; a latent near a quantisation boundary may get another id")
        parser.add_argument("--npy-dir", type=Path, metavar="DIR",
                            help="also write one DIR/<clip id>.npy per clip, int64 of shape (1, tokens), the layout "
                                 "the text-to-motion stages of T2M-GPT and MotionMillion read (e.g. "
                                 "dataset/HumanML3D/VQVAE)")

    def run(self, args: argparse.Namespace) -> int:
        from rich.console import Console

        from motionhub.model.precision import describe_precision
        from motionhub.use.trained_run import load_run
        from motionhub.use.encoding import (TokenFile, check_new_folder, check_output_file, clip_progress,
                                            encode_clips, resolve_device, write_npy_folder, write_tokens)

        console = Console(stderr=True)
        device = resolve_device(args.device)
        check_output_file(args.out)
        if args.npy_dir is not None:
            check_new_folder(args.npy_dir)
        loaded = load_run(args.run_dir, args.checkpoint, args.overrides)
        source = loaded.split(args.split, console)
        model = loaded.model.to(device)
        start = time.perf_counter()
        with clip_progress(console, f"encode {args.split}", len(source)) as progress:
            encoded = encode_clips(model, loaded.format, source, batch_size=args.batch_size,
                                   device=device, progress=progress, precision=args.precision)
        seconds = time.perf_counter() - start
        fmt = loaded.format
        attrs = {"run_dir": str(loaded.run.path.resolve()), "checkpoint": args.checkpoint, "step": loaded.step,
                 "split": args.split, "codebook_size": model.quantizer.codebook_size, "format": fmt.name,
                 "feature_shape": list(fmt.feature_shape), "fps": float(fmt.fps), "precision": args.precision}
        texts = [source.texts[i] for i in encoded.clips]
        write_tokens(args.out, TokenFile(encoded, texts, attrs))
        if args.npy_dir is not None:
            write_npy_folder(encoded, args.npy_dir)
            console.print(f"one .npy per clip in {args.npy_dir}")

        unit, cropped = encoded.downsample, encoded.source_lengths - encoded.frame_lengths
        console.print(f"encoded {len(encoded.ids):,} clips of split '{args.split}' into {len(encoded.tokens):,} tokens "
                      f"(codebook of {attrs['codebook_size']:,} codes, step {loaded.step}) in {seconds:.1f} s: "
                      f"{len(encoded.ids) / seconds:,.0f} clips/s, {int(encoded.frame_lengths.sum()) / seconds:,.0f} "
                      f"frames/s on {device.type}")
        console.print(f"precision {describe_precision(args.precision, model, networks=('encoder',))}")
        console.print(f"clips are cropped to a multiple of the down-sampling ({unit} frames): "
                      f"{int(cropped.sum()):,} trailing frames dropped from {int((cropped > 0).sum()):,} clips")
        if encoded.skipped_ids:
            shown = ", ".join(encoded.skipped_ids[:5]) + (", ..." if len(encoded.skipped_ids) > 5 else "")
            console.print(f"[yellow]skipped {len(encoded.skipped_ids):,} clips shorter than {unit} frames[/] "
                          f"({shown}); their ids are in the file's skipped_ids")
        print(args.out)
        return 0
