"""One AMPLIFY motion-tokenizer train step: the official implementation vs motionhub_amplify.

    PYTHONPATH=.:plugins python benchmarks/amplify_step.py --reference /path/to/AMPLIFY

Both contenders get the reference configuration (hidden 768, 8 heads, 2 encoder layers, FSQ
[8, 8, 6, 5], 400 tracks, 16-frame windows, one "agentview" view, dropout 0.1), the same
weights (the reference's, loaded with ``load_reference_state_dict``) and the same batch. A step is
forward to the logits, relative cross-entropy (the reference's own ``get_loss``; motionhub's
``relative_ce`` with view weight 0.9), backward and an AdamW step (lr 1e-4, betas 0.9/0.95).
The reference's argmax decoding of the logits, which its forward also runs, is left out. Both
quantize with the installed ``vector_quantize_pytorch`` FSQ (motionhub's through its ``fsq`` plugin).
Contenders alternate within one process; the figures are medians over the repetitions.

Memory added by a step: before it, garbage is collected, freed heap is returned to the OS
(``malloc_trim``) and the resident set size is read (VmRSS); the kernel's peak-RSS mark
(VmHWM) is then reset by writing 5 to /proc/self/clear_refs and read again after the step.
Added = peak - rest; both steps keep their logits until the step ends. Where clear_refs cannot
be written, a thread samples VmRSS every millisecond instead (it can miss shorter peaks).

On a shared machine run it while the cores are idle (the load average is printed): when other
processes take turns on the cores, every parallel operator waits for its descheduled thread,
which adds about the same time per operator to both contenders and pulls the ratio towards 1.

Only the reference's model and loss modules are imported. Its package ``__init__`` files (which
import the whole policy stack) are skipped, and modules that those two never call (vision
backbones, plotting, training utilities, and plotting / video / Hydra packages where they are
not installed) are replaced by inert stand-ins. ``omegaconf`` and ``positional-encodings``
must be importable.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import io
import os
import statistics
import sys
import threading
import time
import types
from pathlib import Path

import torch

from motionhub.data.layouts import point_tracks
from motionhub.model.tokenizer import Tokenizer
from motionhub_amplify import AmplifyDecoder, AmplifyEncoder, RelativeCE, load_reference_state_dict
from motionhub_quantizers import FSQ

NOT_NEEDED = (  # reference modules outside its model and loss code
    "amplify.models.encoders", "amplify.models.encoders.vision_encoders",
    "amplify.utils.train", "amplify.utils.vis_utils",
)
UNUSED_PACKAGES = (  # imported at the top of the reference's files, never called on this path
    "matplotlib", "matplotlib.pyplot", "imageio", "scipy", "scipy.interpolate",
    "torchvision", "hydra", "hydra.core", "hydra.core.hydra_config",
)


class _StandIn(types.ModuleType):
    """A module whose every public attribute is an inert class."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {"__init__": lambda self, *args, **kwargs: None})


def _installed(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def import_reference(root: Path) -> types.ModuleType:
    """The reference's ``amplify.models.motion_tokenizer`` module, from a checkout at ``root``."""
    for package in ("amplify", "amplify.models", "amplify.utils", "amplify.utils.model"):
        shell = types.ModuleType(package)
        shell.__path__ = [str(root.joinpath(*package.split(".")))]
        sys.modules[package] = shell
    for name in NOT_NEEDED + tuple(n for n in UNUSED_PACKAGES if not _installed(n)):
        sys.modules[name] = _StandIn(name)
    import amplify.models.motion_tokenizer as reference

    return reference


def build_reference(root: Path, module: types.ModuleType) -> torch.nn.Module:
    """The official ``MotionTokenizer`` with its default config and the single view "agentview"."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(root / "cfg" / "train_motion_tokenizer.yaml")
    cfg.cond_cameraviews = ["agentview"]
    with contextlib.redirect_stdout(io.StringIO()):
        return module.MotionTokenizer(cfg)


def build_ours(reference: torch.nn.Module) -> Tokenizer:
    """motionhub's AMPLIFY tokenizer holding a copy of ``reference``'s weights."""
    fmt = point_tracks(views=1, tracks=400, fps=10.0)
    model = Tokenizer(AmplifyEncoder(fmt), FSQ(dim=768, codebook_size=2048), AmplifyDecoder(fmt, dim=768))
    load_reference_state_dict(model, reference.state_dict())
    return model


def make_tracks(batch: int, frames: int = 16, tracks: int = 400, size: int = 128) -> torch.Tensor:
    """Random-walk tracks (B, T, 1, N, 2), normalised, a few pixels per frame."""
    start = torch.rand(batch, 1, 1, tracks, 2) * 1.9 - 0.95
    steps = torch.randn(batch, frames - 1, 1, tracks, 2) * 3 * 2 / size
    return torch.cat([start, start + steps.cumsum(1)], dim=1).clamp(-1, 1)


def reference_logits(model: torch.nn.Module, traj: torch.Tensor) -> torch.Tensor:
    """(B, V, t, N, K) logits of the official model for (B, V, T, N, 2) tracks."""
    codes, _ = model.quantize(model.encode(torch.diff(traj, dim=2)))
    return model.decoder(codes)


# Both steps keep their logits alive through backward, as a trainer that logs metrics does.
def reference_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, traj: torch.Tensor) -> torch.Tensor:
    optimizer.zero_grad(set_to_none=True)
    logits = reference_logits(model, traj)
    loss = model.get_loss(None, logits.flatten(1, 3), None, traj)
    loss.backward()
    optimizer.step()
    return loss.detach()


def our_step(model: Tokenizer, optimizer: torch.optim.Optimizer, points: torch.Tensor, loss_fn: RelativeCE) -> torch.Tensor:
    optimizer.zero_grad(set_to_none=True)
    outputs = model(points)
    loss = loss_fn({"motion": points}, outputs)
    loss.backward()
    optimizer.step()
    return loss.detach()


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _can_reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class _Sampler(threading.Thread):
    """Highest VmRSS seen every millisecond until stopped."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.done = _status_kib("VmRSS"), threading.Event()

    def run(self):
        while not self.done.wait(0.001):
            self.peak = max(self.peak, _status_kib("VmRSS"))


def race(steps: dict, reps: int, warmup: int, setting: str) -> None:
    """Time ``steps`` {"reference": f, "motionhub": g} alternately, ``reps`` times after ``warmup``
    untimed rounds, and print the medians and their ratios (reference / motionhub)."""
    reset_peak = _can_reset_peak()
    print(f"{setting}, float32, {torch.get_num_threads()} threads, {reps} repetitions after {warmup} warm-up "
          f"step(s); peak RSS by {'VmHWM reset' if reset_peak else '1 ms VmRSS sampling'}; "
          f"load average {os.getloadavg()[0]:.2f}")
    for _ in range(warmup):
        for step in steps.values():
            step()
    results = {name: [] for name in steps}
    for rep in range(reps):
        order = list(steps) if rep % 2 == 0 else list(reversed(steps))  # neither always runs first
        for name in order:
            results[name].append(measure(steps[name], reset_peak))
    medians = {name: [statistics.median(r[i] for r in runs) for i in range(3)] for name, runs in results.items()}
    print(f"{'':10} {'wall s':>8} {'CPU s':>8} {'added MiB':>10}")
    for name, (wall, cpu, mem) in medians.items():
        print(f"{name:10} {wall:8.3f} {cpu:8.3f} {mem:10.1f}")
    wall, cpu, mem = (r / m for r, m in zip(medians["reference"], medians["motionhub"]))
    print(f"{'ratio':10} {wall:7.2f}x {cpu:7.2f}x {mem:9.2f}x  (reference / motionhub)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def measure(step, reset_peak: bool) -> tuple[float, float, float]:
    """(wall s, CPU s, MiB added above the resting RSS) of one call of ``step``."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    rest = _status_kib("VmRSS")
    sampler = None
    if reset_peak:
        Path("/proc/self/clear_refs").write_text("5")
    else:
        sampler = _Sampler()
        sampler.start()
    wall, cpu = time.perf_counter(), time.process_time()
    step()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if sampler is None:
        peak = _status_kib("VmHWM")
    else:
        sampler.done.set()
        sampler.join()
        peak = sampler.peak
    return wall, cpu, (peak - rest) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="checkout of github.com/pairlab/AMPLIFY")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    reference = build_reference(args.reference, import_reference(args.reference))
    ours = build_ours(reference)
    points = make_tracks(args.batch)
    traj = points.transpose(1, 2).contiguous()  # the reference's (B, V, T, N, 2) layout
    loss_fn = RelativeCE(view_weights=[0.9], image_size=[128, 128])

    reference.eval()
    ours.eval()
    with torch.no_grad():
        logits = reference_logits(reference, traj)
        outputs = ours(points)
        diff = (logits.transpose(1, 2) - outputs["logits"]).abs().max().item()
        ref_loss = reference.get_loss(None, logits.flatten(1, 3), None, traj).item()
        our_loss = loss_fn({"motion": points}, outputs).item()
    print(f"eval mode, same weights: max |logit difference| {diff:.3g}, "
          f"loss {ref_loss:.6f} (reference) vs {our_loss:.6f} (motionhub)")

    reference.train()
    ours.train()
    adamw = dict(lr=1e-4, betas=(0.9, 0.95), weight_decay=0.0)
    ref_opt = torch.optim.AdamW(reference.parameters(), **adamw)
    our_opt = torch.optim.AdamW(ours.parameters(), **adamw)
    steps = {
        "reference": lambda: reference_step(reference, ref_opt, traj),
        "motionhub": lambda: our_step(ours, our_opt, points, loss_fn),
    }
    race(steps, args.reps, args.warmup, f"batch {args.batch}")

if __name__ == "__main__":
    main()
