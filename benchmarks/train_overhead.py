"""Training-loop overhead: a bare loop of T2M-GPT's own VQ-VAE code vs motionhub's whole ``train()``.

    python benchmarks/train_overhead.py [--reference /path/to/T2M-GPT] [--steps N] [--rounds R] [--threads T]
                                        [--precision fp32|bf16]

Both contenders train the T2M-GPT HumanML3D VQ-VAE (263 features, width 512, depth 3, down_t 2,
stride 2, dilation growth 3, 512 x 512 EMA-reset codebook, 64-frame windows) at batch 32,
on the CPU with T torch threads (default 2), in float32 or (``--precision bf16``) under bf16
autocast (motionhub's ``train.precision: bf16``; the reference's forward and loss in the same
autocast):

  A reference  T2M-GPT's ``VQVAE_251`` built with the arguments its option parser gives for the
               README recipe, its ``ReConsLoss`` (smooth L1) + 0.5 x the "velocity" (positions)
               term + 0.02 x commitment, AdamW (lr 2e-4, betas 0.9/0.99), on pre-made random
               normalised batches: forward, loss, zero_grad, backward, step, nothing else;
  B motionhub  ``motionhub.train.trainer.train`` on configs/humanml3d/t2m_gpt_vq.yaml with the data
               swapped for the synthetic data set, batch 32, no warm-up, N steps, logging every
               min(200, N) steps and evaluation only after the last step (then a checkpoint and
               the report, which are not per-step costs). Its wall time per step is the
               trainer's own figure (``report.json`` -> time.step_s, the median of the step
               times it measures inside the loop).

A round runs A for N steps and one ``train()`` of N steps, in this one process, A first in
odd rounds and B first in even ones. Per-step figures are the median over a round's steps,
then the median over rounds: other work on a small shared machine comes and goes and can slow
a whole round. CPU time is ``time.process_time`` (every thread of the process) and page faults
are the process's minor faults (memory the kernel had to map and zero), both taken around each
reference step, and for motionhub between the loop's batch draw and its per-step progress-bar
update, by two small hooks; the trainer itself is not changed. The progress bar draws to a
discarded terminal, so its rendering costs what it does in a real run.

The contenders alternate by rounds, not by steps, and before each contender's turn the heap's
free memory is handed back to the kernel (``malloc_trim``): how often a loop's memory goes back
to the kernel and has to be faulted in again is part of what differs between loops, and in a
shared heap one contender's freed memory would hide the other's faults.

Each contender's achieved FLOP/s (its training FLOPs per step, counted by
``torch.utils.flop_counter.FlopCounterMode``, over its median wall time per step) is printed with
its share of a dense matmul ceiling measured in this run, in the same dtype
(``motionhub.train.hardware.matmul_ceiling``).

Without --reference only motionhub runs. The reference is imported from a checkout given by
--reference (only ``models/``,
``options/option_vq.py`` and ``utils/losses.py`` are used). It creates its codebook with
``.cuda()``; while its model is built, ``torch.Tensor.cuda`` returns the tensor unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import gc
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import Progress
from torch.utils.flop_counter import FlopCounterMode

import motionhub.data.batches
import motionhub.train.trainer
from motionhub.recipes import read_tree, recipe_from_tree
from motionhub.train.hardware import PRECISION_DTYPES, matmul_ceiling
from motionhub.train.report import load_report
from motionhub.train.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "configs" / "humanml3d" / "t2m_gpt_vq.yaml"
BATCH, WINDOW, FEATURES = 32, 64, 263

# The reference's README command for the HumanML3D VQ-VAE, batch size aside.
README_FLAGS = ["--batch-size", str(BATCH), "--lr", "2e-4", "--total-iter", "300000", "--lr-scheduler", "200000",
                "--nb-code", "512", "--down-t", "2", "--depth", "3", "--dilation-growth-rate", "3",
                "--dataname", "t2m", "--vq-act", "relu", "--quantizer", "ema_reset", "--loss-vel", "0.5",
                "--recons-loss", "l1_smooth"]

PHASES = ("data", "forward", "loss", "backward", "optimizer")  # as the trainer's PhaseTimer names them


@dataclasses.dataclass(frozen=True)
class Clocks:
    """Wall seconds, CPU seconds of the whole process and minor page faults."""

    wall: float
    cpu: float
    faults: int

    @classmethod
    def now(cls) -> Clocks:
        return cls(time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt)

    def __sub__(self, other: Clocks) -> Clocks:
        return Clocks(self.wall - other.wall, self.cpu - other.cpu, self.faults - other.faults)

    @staticmethod
    def medians(steps: list[Clocks]) -> dict[str, float]:
        return {key: statistics.median(getattr(c, key) for c in steps) for key in ("wall", "cpu", "faults")}


# ---- the reference


@contextlib.contextmanager
def tensors_stay_on_cpu():
    """``Tensor.cuda()`` returns the tensor itself (the reference builds its codebook on CUDA)."""
    original = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda = original


def import_reference(checkout: Path):
    """The reference's option parser, model and loss modules, imported from its checkout."""
    sys.path.insert(0, str(checkout))
    import models.vqvae as vqvae
    import options.option_vq as option_vq
    import utils.losses as losses

    return option_vq, vqvae, losses


def reference_args(option_vq) -> argparse.Namespace:
    """The reference's own argument defaults with the README flags, as train_vq.py sees them."""
    argv = sys.argv
    sys.argv = ["train_vq.py", *README_FLAGS]
    try:
        args = option_vq.get_args_parser()
    finally:
        sys.argv = argv
    args.nb_joints = 22  # train_vq.py sets this for t2m
    return args


def run_reference(modules, steps: int, seed: int, precision: str = "fp32", batch: int = BATCH,
                  device: str = "cpu") -> dict:
    """``steps`` training steps of the reference at ``batch`` on ``device``; the clocks and phases
    of each step, and the FLOPs of one step (forward, loss and backward, counted on the first)."""
    option_vq, vqvae, losses = modules
    args = reference_args(option_vq)
    torch.manual_seed(seed)
    with tensors_stay_on_cpu():
        # train_vq.py builds HumanVQVAE, a wrapper whose forward only calls this VQVAE_251.
        net = vqvae.VQVAE_251(args, args.nb_code, args.code_dim, args.output_emb_width, args.down_t,
                              args.stride_t, args.width, args.depth, args.dilation_growth_rate,
                              activation=args.vq_act, norm=args.vq_norm)
    net.to(device).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=args.weight_decay)
    recons = losses.ReConsLoss(args.recons_loss, args.nb_joints)
    # Normalised windows are roughly unit normal; a few distinct ones so the codebook sees new input.
    batches = [torch.randn(batch, WINDOW, FEATURES, device=device) for _ in range(4)]
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)

    clocks, phases, flops = [], dict.fromkeys(PHASES, 0.0), 0
    for step in range(steps):
        gt_motion = batches[step % len(batches)]
        counter = FlopCounterMode(display=False) if step == 0 else contextlib.nullcontext()
        sync()
        before = Clocks.now()
        t0 = time.perf_counter()
        # One counting block: FlopCounterMode starts its count afresh each time it is entered.
        with counter:
            with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                pred_motion, loss_commit, _ = net(gt_motion)
                t1 = time.perf_counter()
                loss_motion = recons(pred_motion, gt_motion)
                loss_vel = recons.forward_vel(pred_motion, gt_motion)
                loss = loss_motion + args.commit * loss_commit + args.loss_vel * loss_vel
                sync()
                t2 = time.perf_counter()
            optimizer.zero_grad()
            loss.backward()
            sync()
            t3 = time.perf_counter()
        if step == 0:
            flops = counter.get_total_flops()
        optimizer.step()
        sync()
        t4 = time.perf_counter()
        clocks.append(Clocks.now() - before)
        for name, start, end in (("forward", t0, t1), ("loss", t1, t2), ("backward", t2, t3), ("optimizer", t3, t4)):
            phases[name] += end - start
    return {**Clocks.medians(clocks), "total": sum(c.wall for c in clocks), "phases": phases, "flops": flops}


# ---- motionhub


@contextlib.contextmanager
def clocked_steps():
    """While active, the clocks of each step of ``train()`` are appended to the yielded list.

    A step runs from the loop's batch draw to its per-step progress-bar update, which comes
    right after the trainer has taken the step's time. Both are looked up at call time, so
    wrapping them changes nothing else.
    """
    steps: list[Clocks] = []
    started: list[Clocks] = []
    draw = motionhub.data.batches.TrainingData.train_batch

    def train_batch(data, index, device):
        started.append(Clocks.now())
        return draw(data, index, device)

    class ClockedProgress(Progress):
        def update(self, task_id, *, completed=None, **kwargs):
            if completed is not None:  # once per step; other updates only change the status text
                steps.append(Clocks.now() - started.pop())
            super().update(task_id, completed=completed, **kwargs)

    motionhub.data.batches.TrainingData.train_batch = train_batch
    motionhub.train.trainer.Progress = ClockedProgress
    try:
        yield steps
    finally:
        motionhub.data.batches.TrainingData.train_batch = draw
        motionhub.train.trainer.Progress = Progress


def motionhub_recipe(steps: int, threads: int, out: Path, seed: int, precision: str = "fp32", batch: int = BATCH,
                     recipe: Path = RECIPE, extra: tuple[str, ...] = (), data: dict | None = None):
    """``recipe`` on ``data`` (default: the synthetic HumanML3D-layout data set) for ``steps`` steps at
    ``batch``; ``extra`` overrides last."""
    tree = read_tree(recipe)
    tree["data"] = data or {"name": "synthetic", "layout": "humanml3d_263", "clips": 64, "min_frames": 64,
                            "max_frames": 160, "window": WINDOW}
    overrides = [f"run.out={out}", f"run.seed={seed}", f"train.batch_size={batch}", "train.warmup_iters=0",
                 f"train.iters={steps}", f"train.log_every={min(200, steps)}", "train.eval_every=0",
                 "train.checkpoint_every=0", f"train.threads={threads}", "eval.train_codebook=false",
                 "train.milestones=[]", f"train.precision={precision}", *extra]
    return recipe_from_tree(tree, str(recipe), overrides)


def run_motionhub(steps: int, threads: int, workdir: Path, seed: int, precision: str = "fp32", batch: int = BATCH,
                  recipe_path: Path = RECIPE, extra: tuple[str, ...] = (), data: dict | None = None) -> dict:
    """One whole ``train()`` of ``steps`` steps; the trainer's step time, the clocks and phases of
    each step, its training FLOPs per step, the precision of each part and the logged
    ``losses`` (step, loss), from its run directory."""
    recipe = motionhub_recipe(steps, threads, workdir / "run", seed, precision, batch, recipe_path, extra, data)
    with open(os.devnull, "w") as devnull, clocked_steps() as clocks:
        # A terminal that discards what it is sent: the progress bar renders as it would for a user.
        run_dir = motionhub.train.trainer.train(recipe, console=Console(file=devnull, force_terminal=True, width=120))
    report = load_report(run_dir)
    losses = [(row["step"], row["loss"]) for row in RunDir(run_dir).rows() if "loss" in row and "lr" in row]
    shutil.rmtree(run_dir)  # its checkpoint is ~230 MB

    seconds = {name: v["seconds"] for name, v in report["breakdown"].items()}
    phases = {name: seconds.get(name, 0.0) for name in ("data", "forward", "backward", "optimizer")}
    phases["loss"] = sum(v for k, v in seconds.items() if k.startswith("loss: "))
    in_loop = report["time"]["total_s"] - seconds.get("evaluation", 0.0) - seconds.get("checkpoint", 0.0)
    hooked = Clocks.medians(clocks)
    return {**hooked, "wall": report["time"]["step_s"], "hooked_wall": hooked["wall"], "total": in_loop,
            "phases": phases, "flops": report["flops"]["step_train"],
            "precision_parts": report["run"].get("precision_parts", precision), "losses": losses}


# ---- the comparison


def release_free_memory() -> None:
    """Hand the heap's free memory back to the kernel, so neither contender runs on what the other freed.

    Each then allocates as it would in a process of its own; without this, one contender's
    freed memory can spare the other the page faults it would otherwise take every step.
    """
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path,
                        help="checkout of github.com/Mael-zys/T2M-GPT (without it, motionhub runs alone)")
    parser.add_argument("--steps", type=int, default=10, help="training steps per contender per round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    modules = import_reference(args.reference.resolve()) if args.reference else None
    print(f"batch {BATCH} x {WINDOW} frames x {FEATURES} features, {args.precision}, CPU, "
          f"{torch.get_num_threads()} threads; {args.rounds} rounds x {args.steps} steps per contender; "
          f"load average {os.getloadavg()[0]:.2f}")

    started = time.perf_counter()
    contenders = {}
    if modules is not None:
        run_reference(modules, 2, args.seed, args.precision)  # first-call costs (imports, kernel set-up) both share
        contenders["reference"] = lambda workdir: run_reference(modules, args.steps, args.seed, args.precision)
    contenders["motionhub"] = lambda workdir: run_motionhub(args.steps, args.threads, workdir, args.seed,
                                                            args.precision)
    names = list(contenders)
    letters = dict(zip(["reference", "motionhub"], "AB"))
    rounds: list[dict[str, dict]] = []
    with tempfile.TemporaryDirectory(prefix="train_overhead-") as tmp:
        for i in range(args.rounds):
            order = names if i % 2 == 0 else names[::-1]  # neither always first
            result = {}
            for name in order:
                workdir = Path(tmp) / f"{name}-{i}"
                workdir.mkdir()
                release_free_memory()
                result[name] = contenders[name](workdir)
            rounds.append(result)
            parts = [f"{letters[name]} {r['wall']:.3f} s wall {r['cpu']:.3f} s CPU {r['faults']:6.0f} faults"
                     for name, r in ((name, result[name]) for name in names)]
            ratio = (f" | B/A wall {result['motionhub']['wall'] / result['reference']['wall']:.3f}"
                     if "reference" in result else "")
            print(f"round {i + 1}: {' | '.join(parts)}{ratio} | load {os.getloadavg()[0]:.2f}", flush=True)

    def median(name: str, key: str) -> float:
        return statistics.median(r[name][key] for r in rounds)

    print(f"\nper training step, medians over {args.rounds} rounds ({time.perf_counter() - started:.0f} s in all)")
    header = {"reference": "A reference", "motionhub": "B motionhub"}
    both = len(names) == 2
    print(f"{'':28} " + " ".join(f"{header[name]:>12}" for name in names) + (f" {'B / A':>7}" if both else ""))
    for label, key, form in (("wall s", "wall", ".3f"), ("CPU s", "cpu", ".3f"), ("minor page faults", "faults", ".0f")):
        values = [median(name, key) for name in names]
        ratio = f" {values[1] / max(values[0], 1e-9):7.3f}" if both else ""
        print(f"{label:28} " + " ".join(f"{v:12{form}}" for v in values) + ratio)
    # A cross-check of the trainer's own figure: the same steps, timed by the hooks.
    print(f"{'wall s, timed by the hooks':28} " + ("" if not both else f"{'':12} ")
          + f"{median('motionhub', 'hooked_wall'):12.3f}")

    # Measured here, after the steps, in the dtype the products ran in: the same routine as the report's.
    ceiling = matmul_ceiling("cpu", PRECISION_DTYPES[args.precision], budget_s=2.0)["flop_per_s"]
    print(f"\nachieved rate: training FLOPs per step over the median wall s per step; dense {args.precision} "
          f"matmul on this machine: {ceiling / 1e9:.0f} GFLOP/s")
    print(f"precision  {rounds[-1]['motionhub']['precision_parts']}")
    for name in names:
        flops, wall = rounds[-1][name]["flops"], median(name, "wall")
        rate = flops / wall if wall else 0.0
        print(f"  {header[name]:26} {flops / 1e9:8.2f} GFLOP/step {rate / 1e9:8.1f} GFLOP/s  "
              f"{rate / ceiling:6.1%} of the {args.precision} matmul ceiling")

    # The trainer reports its phases as totals over a run, so each row is a mean per step over a
    # round's steps (the first included), then the median over rounds; the rows need not add up.
    print("\nwhere a step's wall time goes: mean s per step in a round, median over rounds")
    print(f"  {'':26} " + " ".join(f"{letters[name]:>12}" for name in names) + (f" {'B - A':>7}" if both else ""))
    rows = (*PHASES, "outside the phases", "whole step")
    for name in names:
        for r in rounds:
            phases = {key: r[name]["phases"][key] / args.steps for key in PHASES}
            whole = r[name]["total"] / args.steps
            r[name]["rows"] = {**phases, "outside the phases": whole - sum(phases.values()), "whole step": whole}
    for key in rows:
        values = [statistics.median(r[name]["rows"][key] for r in rounds) for name in names]
        print(f"  {key:26} " + " ".join(f"{v:12.3f}" for v in values) + (f" {values[1] - values[0]:+7.3f}" if both else ""))


if __name__ == "__main__":
    main()
