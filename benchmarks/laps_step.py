"""One train step of LAPS's re-implementation of the AMPLIFY tokenizer: the reference vs motionhub's ``laps``.

    PYTHONPATH=.:plugins python benchmarks/laps_step.py --reference /path/to/checkout [--points 400] [--batch 1]

``--reference`` is the folder that holds the reference package ``amplify_motion_tokenizer/``.
The reference's ``MotionTokenizer`` is built from its shipped ``configs/tokenizer_config.yaml``
(hidden 768, 8 heads, 2 + 2 layers, 16 codes, FSQ [8, 8, 4, 4], 16-frame windows, 400 points,
dropout 0.1); ``--points`` shrinks N. Its state dict goes into motionhub's tokenizer (encoder
and decoder ``laps``, the ``fsq`` quantizer) through ``motionhub import``'s converter.

Parity (eval mode, no gradients): the same random-walk tracks, as motionhub's (row, col) points
and as the reference's clamped (x, y) velocities; printed are the largest differences of the
encoder output before FSQ and of the logits, and how many FSQ indices agree. In eval mode the
reference's encoder runs torch's fused inference path, which differs from the layer-by-layer
computation by about 1e-6 before FSQ, so an index whose value sits on a rounding boundary can
flip.

Timed step (train mode, dropout on): forward to the logits, the focal loss with the reference's
static-point mask (gamma 2, alpha 0.25 for the centre class and 1 for the others, the config's
p95 threshold and min_keep 16), backward, AdamW (lr 1e-4, torch's defaults otherwise, the
reference's optimizer). The reference's labels and masks come from its own data code (its
``VelocityDataset`` reading the velocities from .pt files, outside the timing) and its loss is
its ``train.py`` ``FocalLoss`` (where that module cannot be imported, the same formula written
here; the script says which). motionhub's loss is its ``focal`` loss with ``static_threshold``
on data whose format asks for the reference's velocity labels. Contenders alternate within one
process; the figures are medians over the repetitions; memory is measured as in
``amplify_step.py`` (peak resident set above the resting one).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import types
from pathlib import Path

import torch

from motionhub.use.importing import convert_state_dict, strip_wrappers
from motionhub.data.layouts import point_tracks
from motionhub.model.tokenizer import Tokenizer
from motionhub_amplify import FocalLoss, LapsDecoder, LapsEncoder
from motionhub_amplify.tracks import radius_velocities
from motionhub_quantizers import FSQ

sys.path.insert(0, str(Path(__file__).resolve().parent))
from amplify_step import race  # noqa: E402  (the shared timing and memory measurement)

IMAGE_SIZE = (480, 853)  # the reference's frames: shorter side 480, 16:9
GAMMA, CENTRE_ALPHA = 2.0, 0.25
UNUSED_BY_THE_LOSS = ("torch.utils.tensorboard",)  # imported at the top of the reference's train.py


def load_reference(root: Path, points: int) -> tuple[types.ModuleType, dict, torch.nn.Module]:
    """The reference package, its shipped config (with ``points`` points) and its ``MotionTokenizer``."""
    sys.path.insert(0, str(root))
    from amplify_motion_tokenizer.models.motion_tokenizer import MotionTokenizer
    from amplify_motion_tokenizer.utils.helpers import load_config

    config = load_config(str(root / "amplify_motion_tokenizer" / "configs" / "tokenizer_config.yaml"))
    config["data"]["num_points"] = points
    with contextlib.redirect_stdout(io.StringIO()):
        model = MotionTokenizer(config)
    return sys.modules["amplify_motion_tokenizer"], config, model


def reference_focal_loss(config: dict) -> tuple[torch.nn.Module, str]:
    """The reference's ``FocalLoss`` with its class weights, and where it came from."""
    classes = int(config["model"]["num_classes"])
    side = int(config["model"]["decoder_window_size"])
    alpha = torch.ones(classes)
    alpha[(side // 2) * side + side // 2] = CENTRE_ALPHA
    for name in UNUSED_BY_THE_LOSS:  # only its training loop uses them
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = types.SimpleNamespace(SummaryWriter=None)
    try:
        from amplify_motion_tokenizer.train import FocalLoss as ReferenceFocal
    except ImportError as exc:
        return FormulaFocal(alpha), f"the formula written in this script (the reference's train.py: {exc})"
    return ReferenceFocal(gamma=GAMMA, alpha=alpha, reduction="none"), "the reference's train.py FocalLoss"


class FormulaFocal(torch.nn.Module):
    """-alpha[y] (1 - p_y)^gamma log p_y per element, for when the reference's module cannot be imported."""

    def __init__(self, alpha: torch.Tensor):
        super().__init__()
        self.alpha = alpha

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        log_p = logits.log_softmax(-1).gather(-1, labels[:, None]).squeeze(-1)
        return -self.alpha[labels] * (1 - log_p.exp()).clamp(min=0).pow(GAMMA) * log_p


def reference_targets(package: types.ModuleType, config: dict, velocities: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels, mask) (B, T - 1, N) as the reference's ``VelocityDataset`` makes them from .pt files."""
    from amplify_motion_tokenizer.dataset.velocity_dataset import VelocityDataset

    with tempfile.TemporaryDirectory() as folder:
        for i, sample in enumerate(velocities):
            torch.save(sample.clone(), Path(folder) / f"window_start{i:06d}.pt")
        dataset = VelocityDataset(folder, int(config["model"]["decoder_window_size"]),
                                  static_filter=config["data"].get("static_filter"))
        items = [dataset[i] for i in range(len(dataset))]
    return torch.stack([labels for _, labels, _ in items]), torch.stack([mask for _, _, mask in items])


def build_ours(config: dict, reference: torch.nn.Module) -> tuple[Tokenizer, object]:
    """motionhub's tokenizer for the reference's config, holding the reference's weights."""
    model_cfg, data_cfg = config["model"], config["data"]
    fmt = point_tracks(1, int(data_cfg["num_points"]), fps=20.0, image_size=IMAGE_SIZE, track_labels="velocity")
    encoder = LapsEncoder(fmt, hidden_dim=int(model_cfg["hidden_dim"]), num_heads=int(model_cfg["num_heads"]),
                          num_layers=int(model_cfg["num_layers"]), dropout=float(model_cfg["dropout"]),
                          codes=int(model_cfg["encoder_sequence_len"]), horizon=int(data_cfg["sequence_length"]))
    quantizer = FSQ(dim=encoder.out_dim, levels=list(model_cfg["fsq_levels"]))
    side = int(model_cfg["decoder_window_size"])
    model = Tokenizer(encoder, quantizer, LapsDecoder(fmt, dim=quantizer.dim, encoder=encoder, grid=[side, side]))
    model.load_state_dict(convert_state_dict("laps", model, strip_wrappers(reference.state_dict())))
    return model, fmt


def make_points(batch: int, frames: int, points: int) -> torch.Tensor:
    """Random-walk tracks (B, T, 1, N, 2), (row, col) normalised; steps of a few pixels, some beyond 7."""
    size = torch.tensor(IMAGE_SIZE, dtype=torch.float32)
    start = torch.rand(batch, 1, 1, points, 2) * 1.8 - 0.9
    steps = torch.randn(batch, frames - 1, 1, points, 2) * 3.0 * 2 / size
    return torch.cat([start, start + steps.cumsum(1)], dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True,
                        help="folder holding the reference package amplify_motion_tokenizer/")
    parser.add_argument("--points", type=int, default=400, help="N tracked points (the reference's 400)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    package, config, reference = load_reference(args.reference, args.points)
    ours, fmt = build_ours(config, reference)
    frames = int(config["data"]["sequence_length"])
    points = make_points(args.batch, frames, args.points)
    velocities = radius_velocities(points, IMAGE_SIZE, ours.encoder.radius)[:, :, 0].contiguous()  # (B, T-1, N, 2)
    labels, mask = reference_targets(package, config, velocities)
    focal, focal_source = reference_focal_loss(config)
    static = config["data"]["static_filter"]
    our_loss = FocalLoss(gamma=GAMMA, alpha=1.0, center_weight=CENTRE_ALPHA,
                         static_threshold=float(static["threshold"]), static_metric=static["metric"],
                         static_min_keep=int(static["min_keep"]))
    classes = int(config["model"]["num_classes"])

    def reference_loss(logits: torch.Tensor) -> torch.Tensor:
        flat = mask.reshape(-1).float()
        return (focal(logits.reshape(-1, classes), labels.reshape(-1)) * flat).sum() / flat.sum().clamp_min(1.0)

    print(f"config: {args.points} points, batch {args.batch}, {frames}-frame windows, "
          f"{sum(p.numel() for p in reference.parameters()):,} parameters (both); loss: {focal_source}")

    # ---- parity
    reference.eval(), ours.eval()
    captured = {}
    hook = reference.quantizer.register_forward_hook(lambda module, inputs, output: captured.update(z=inputs[0]))
    with torch.no_grad():
        ref_logits = reference(velocities)
        ref_indices = reference.last_fsq_indices
        outputs = ours(points)
    hook.remove()
    pre = (captured["z"] - outputs["latents"]).abs().max().item()
    logit_diff = (ref_logits - outputs["logits"][:, :, 0]).abs().max().item()
    equal = int((ref_indices.long() == outputs["indices"]).sum())
    with torch.no_grad():
        losses = reference_loss(ref_logits).item(), our_loss({"motion": points}, outputs, fmt).item()
    print(f"eval mode, same weights: max |pre-FSQ difference| {pre:.3g}, max |logit difference| {logit_diff:.3g}, "
          f"FSQ indices equal {equal} / {ref_indices.numel()}; focal loss {losses[0]:.6f} (reference) vs "
          f"{losses[1]:.6f} (motionhub)")
    print("parity: " + ("OK (logits within 1e-5, indices equal)" if logit_diff <= 1e-5 and equal == ref_indices.numel()
                        else "MISMATCH"))

    # ---- timing
    reference.train(), ours.train()
    ref_opt = torch.optim.AdamW(reference.parameters(), lr=1e-4)
    our_opt = torch.optim.AdamW(ours.parameters(), lr=1e-4)

    # both keep their logits alive through backward, as a trainer that logs metrics does
    def reference_step() -> None:
        ref_opt.zero_grad(set_to_none=True)
        reference_loss(reference(velocities)).backward()
        ref_opt.step()

    def our_step() -> None:
        our_opt.zero_grad(set_to_none=True)
        our_loss({"motion": points}, ours(points), fmt).backward()
        our_opt.step()

    race({"reference": reference_step, "motionhub": our_step}, args.reps, args.warmup,
         f"{args.points} points, batch {args.batch}")

if __name__ == "__main__":
    main()
