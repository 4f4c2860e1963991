"""Training steps in fp32 and in bf16, each held against a dense matmul ceiling in its own dtype.

    python benchmarks/bf16_step.py [--recipe t2m_gpt|transformer|amplify ...] [--batch 32 256] [--timed-steps N]
                                   [--rounds R] [--threads T] [--device cpu|cuda] [--reference T2M-GPT]
                                   [--curve] [--steps 300] [--quick]

For each recipe and batch size, motionhub's whole ``train()`` runs ``--timed-steps`` steps in
fp32 and ``--timed-steps`` steps under ``train.precision: bf16``, alternating for ``--rounds``
rounds (neither precision always first), on the synthetic data set in the recipe's layout
(HumanML3D's 263 features, 64-frame windows). A step's wall time is the trainer's own figure
(``report.json`` -> time.step_s, the median inside its loop); the figure kept is the median over
rounds. With ``--reference`` the T2M-GPT reference's own fp32 step (the bare loop of
``train_overhead.py``: forward, loss, backward, AdamW, nothing else) runs in the same rounds.

Recipes: ``t2m_gpt`` is configs/humanml3d/t2m_gpt_vq.yaml (conv1d encoder / decoder, 19.4 M
parameters, EMA codebook), ``transformer`` is configs/humanml3d/transformer_fsq.yaml, ``amplify``
is configs/gtea/amplify.yaml on synthetic GTEA point tracks (400 tracks, 16-frame windows).

After the steps, the dense matmul rate is measured in fp32 and in bf16 on the same device and
threads (``motionhub.train.hardware.matmul_ceiling``). Each contender's achieved rate (training
FLOPs per step, counted by the trainer, over its wall time per step) is printed with its share
of the ceiling in its own dtype, and the speed-ups bf16 / fp32 and bf16 / reference fp32; the
same again from the CPU seconds of the process per step (x threads), against the ceiling timed in
CPU seconds. On a machine shared with
other jobs, wall time stretches with their load; at ``--threads 1`` the CPU seconds are the time
the step really ran (with more threads, threads waiting on each other count too).

``--curve`` also trains the first batch size for ``--steps`` steps (default 300) three times:
fp32 with seed s, fp32 with seed s + 1 and bf16 with seed s, and states how far the bf16 loss
curve is from fp32's against how far two fp32 seeds are from each other (run-to-run noise).

``--quick`` shrinks everything (a width-64 model, batch 4, 2 timed steps, a 6-step curve) to
check that the script runs; its figures mean nothing. The trainer trains on a GPU whenever
torch finds one, so on such a machine pass ``--device cuda``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from motionhub.train.hardware import PRECISION_DTYPES, describe_ceiling, matmul_ceiling

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_overhead  # noqa: E402  (the neighbouring benchmark: its reference loop and its train() runner)

REPO = Path(__file__).resolve().parents[1]
RECIPES = {"t2m_gpt": REPO / "configs" / "humanml3d" / "t2m_gpt_vq.yaml",
           "transformer": REPO / "configs" / "humanml3d" / "transformer_fsq.yaml",
           "amplify": REPO / "configs" / "gtea" / "amplify.yaml"}
# --quick: a model small enough that a step takes milliseconds.
QUICK = {"t2m_gpt": ("encoder.width=64", "encoder.output_emb_width=64", "encoder.depth=1", "quantizer.codebook_size=64"),
         "transformer": ("encoder.width=64", "encoder.output_emb_width=64", "encoder.depth=1", "encoder.heads=2"),
         "amplify": ("encoder.hidden_dim=64", "encoder.num_layers=1", "decoder.num_layers=1")}


def recipe_data(recipe: str, root: Path) -> dict | None:
    """The data section a recipe trains on here: synthetic HumanML3D-layout clips (None: the
    runner's default), or for AMPLIFY synthetic GTEA point-track files (400 tracks of 16 frames)
    written under ``root``."""
    if recipe != "amplify":
        return None
    from motionhub_synthetic.tracks import write_track_files

    write_track_files(root / "tracks", videos=4, frames=40, tracks=400, seed=0)
    return {"name": "gtea_tracks", "root": str(root / "tracks"), "val_fraction": 0.25, "window": 16}
PRECISIONS = ("fp32", "bf16")


def time_steps(recipe: str, batch: int, args, extra: tuple[str, ...], reference, data: dict | None) -> dict[str, dict]:
    """Per contender: the median over rounds of its wall s per step, CPU s per step and its FLOPs per step."""
    contenders = {precision: (lambda workdir, p=precision: train_overhead.run_motionhub(
        args.timed_steps, args.threads, workdir, args.seed, p, batch, RECIPES[recipe], extra, data))
        for precision in PRECISIONS}
    if reference is not None and recipe == "t2m_gpt":
        contenders["reference fp32"] = lambda workdir: train_overhead.run_reference(
            reference, args.timed_steps, args.seed, "fp32", batch, args.device)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="bf16_step-") as tmp:
        for i in range(args.rounds):
            names = list(contenders) if i % 2 == 0 else list(contenders)[::-1]
            result = {}
            for name in names:
                workdir = Path(tmp) / f"{name.replace(' ', '_')}-{i}"
                workdir.mkdir()
                train_overhead.release_free_memory()
                result[name] = contenders[name](workdir)
            rounds.append(result)
            print(f"  round {i + 1}: " + " | ".join(f"{name} {result[name]['wall']:.3f} s"
                                                    for name in contenders) + f" | load {os.getloadavg()[0]:.2f}",
                  flush=True)
    return {name: {"wall": statistics.median(r[name]["wall"] for r in rounds),
                   "spread": (min(r[name]["wall"] for r in rounds), max(r[name]["wall"] for r in rounds)),
                   "cpu": statistics.median(r[name]["cpu"] for r in rounds),
                   "flops": rounds[-1][name]["flops"],
                   "precision_parts": rounds[-1][name].get("precision_parts", "fp32")}
            for name in contenders}


def print_steps(recipe: str, batch: int, steps: dict[str, dict], ceilings: dict[str, dict],
                cpu_ceilings: dict[str, dict], threads: int) -> None:
    print(f"{recipe}, batch {batch}: wall s per step (median over rounds, [min, max]), achieved rate and share "
          f"of the matmul ceiling in the step's dtype; then the same from CPU s per step x threads")
    for name, r in steps.items():
        dtype = "bf16" if name == "bf16" else "fp32"
        rate = r["flops"] / r["wall"] if r["wall"] else 0.0
        ceiling = ceilings[dtype]["flop_per_s"]
        low, high = r["spread"]
        cpu_rate = r["flops"] * threads / r["cpu"] if r["cpu"] else 0.0
        print(f"  {name:15} {r['wall']:8.3f} s [{low:.3f}, {high:.3f}] {r['flops'] / 1e9:8.2f} GFLOP/step "
              f"{rate / 1e9:8.1f} GFLOP/s {rate / ceiling:6.1%} of the {dtype} matmul ceiling | "
              f"{r['cpu']:.3f} CPU s {cpu_rate / 1e9:8.1f} GFLOP/s {cpu_rate / cpu_ceilings[dtype]['flop_per_s']:6.1%}")
    print(f"  precision: {steps['bf16']['precision_parts']}")
    # The targets, read from CPU seconds where one CPU thread makes them the time the step ran.
    by_cpu = threads == 1 and cpu_ceilings is not ceilings
    key, clock = ("cpu", "CPU s") if by_cpu else ("wall", "wall s")
    chosen = cpu_ceilings if by_cpu else ceilings

    def share(name: str, dtype: str) -> float:
        seconds = steps[name][key] / (threads if by_cpu else 1)
        return steps[name]["flops"] / seconds / chosen[dtype]["flop_per_s"] if seconds else 0.0

    checks = [f"fp32 at >= 85 % of its ceiling: {share('fp32', 'fp32'):.0%}, "
              f"{'met' if share('fp32', 'fp32') >= 0.85 else 'not met'}",
              f"bf16 at >= 75 % of its ceiling: {share('bf16', 'bf16'):.0%}, "
              f"{'met' if share('bf16', 'bf16') >= 0.75 else 'not met'}"]
    if "reference fp32" in steps:
        ratio = steps["reference fp32"][key] / steps["bf16"][key]
        checks.append(f"bf16 >= 2x the reference's fp32 step: {ratio:.2f}x, {'met' if ratio >= 2 else 'not met'}")
    print(f"  targets ({clock}): " + "; ".join(checks))
    speedup = steps["fp32"]["wall"] / steps["bf16"]["wall"]
    line = (f"  bf16 step speed-up: {speedup:.2f}x over motionhub fp32 "
            f"({steps['fp32']['cpu'] / steps['bf16']['cpu']:.2f}x in CPU s)")
    if "reference fp32" in steps:
        line += (f", {steps['reference fp32']['wall'] / steps['bf16']['wall']:.2f}x over the reference's fp32 step "
                 f"({steps['reference fp32']['cpu'] / steps['bf16']['cpu']:.2f}x in CPU s)")
    print(line, flush=True)


def loss_curves(recipe: str, batch: int, args, extra: tuple[str, ...], data: dict | None) -> None:
    """fp32 (two seeds) and bf16 over ``args.steps`` steps; the bf16 gap against the seed-to-seed gap."""
    log_every = max(1, args.steps // 30)
    extra = (*extra, f"train.log_every={log_every}")
    runs = {}
    with tempfile.TemporaryDirectory(prefix="bf16_curve-") as tmp:
        for label, precision, seed in (("fp32 seed s", "fp32", args.seed), ("fp32 seed s+1", "fp32", args.seed + 1),
                                       ("bf16 seed s", "bf16", args.seed)):
            workdir = Path(tmp) / label.replace(" ", "_")
            workdir.mkdir()
            started = time.perf_counter()
            runs[label] = dict(train_overhead.run_motionhub(args.steps, args.threads, workdir, seed, precision, batch,
                                                            RECIPES[recipe], extra, data)["losses"])
            print(f"  {label}: {args.steps} steps in {time.perf_counter() - started:.0f} s", flush=True)
    steps = sorted(set.intersection(*(set(r) for r in runs.values())))
    tail = steps[-max(1, len(steps) // 5):]  # the last fifth of the logged points

    def mean(label: str, at: list[int]) -> float:
        return statistics.fmean(runs[label][s] for s in at)

    def gap(a: str, b: str) -> float:
        return statistics.fmean(abs(runs[a][s] - runs[b][s]) for s in steps)

    noise, bf16 = gap("fp32 seed s", "fp32 seed s+1"), gap("fp32 seed s", "bf16 seed s")
    print(f"{recipe}, batch {batch}: loss over {args.steps} steps, logged every {log_every}")
    print("  " + "  ".join(f"{label} {mean(label, tail):.4f}" for label in runs)
          + f"  (mean loss over the last {len(tail)} logged points)")
    print(f"  mean |loss difference| over the curve: bf16 vs fp32 {bf16:.4f}, fp32 seed vs seed (noise) {noise:.4f}: "
          f"bf16 is {'within' if bf16 <= noise else 'outside'} run-to-run noise ({bf16 / max(noise, 1e-12):.2f}x)",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", nargs="+", choices=tuple(RECIPES), default=["t2m_gpt", "transformer"])
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 256], help="batch sizes (default 32 256)")
    parser.add_argument("--timed-steps", type=int, default=6, help="steps per train() whose median is timed")
    parser.add_argument("--rounds", type=int, default=3, help="0: no step timing (the loss curves alone)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--reference", type=Path, help="checkout of github.com/Mael-zys/T2M-GPT: its own fp32 step")
    parser.add_argument("--curve", action="store_true", help="compare loss curves fp32 vs bf16 over --steps steps")
    parser.add_argument("--steps", type=int, default=300, help="length of the loss curves (with --curve)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that the script runs")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.exit(2, "--device cuda: torch finds no CUDA GPU here\n")
    if args.device == "cpu" and torch.cuda.is_available():
        parser.exit(2, "the trainer trains on the GPU whenever there is one: pass --device cuda\n")
    if args.quick:
        args.batch, args.timed_steps, args.rounds = [4], 2, 1
        args.steps = min(args.steps, 6)

    torch.set_num_threads(args.threads)
    reference = train_overhead.import_reference(args.reference.resolve()) if args.reference else None
    print(f"{args.device}, {torch.get_num_threads()} threads; recipes {', '.join(args.recipe)}; batches "
          f"{', '.join(map(str, args.batch))}; {args.rounds} rounds x {args.timed_steps} steps per contender; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    if reference is not None:
        train_overhead.run_reference(reference, 2, args.seed, "fp32", 2, args.device)  # first-call costs

    measured = {}
    data_root = Path(tempfile.mkdtemp(prefix="bf16_data-"))
    data = {recipe: recipe_data(recipe, data_root) for recipe in args.recipe}
    for recipe in args.recipe if args.rounds else ():  # --rounds 0: the loss curves alone
        extra = QUICK[recipe] if args.quick else ()
        for batch in args.batch:
            print(f"{recipe}, batch {batch}:", flush=True)
            measured[recipe, batch] = time_steps(recipe, batch, args, extra, reference, data[recipe])

    # Measured after the steps, on the same device and threads, in each dtype the steps multiplied in.
    budget = 0.3 if args.quick else 2.0
    ceilings = {p: matmul_ceiling(args.device, PRECISION_DTYPES[p], budget_s=budget, repeats=5) for p in PRECISIONS}
    cpu_ceilings = ({p: matmul_ceiling("cpu", PRECISION_DTYPES[p], budget_s=budget, repeats=5, cpu_clock=True)
                     for p in PRECISIONS} if args.device == "cpu" else ceilings)
    print("\ndense matmul ceilings measured in this run:")
    for p in PRECISIONS:
        print(f"  {p}: {describe_ceiling(ceilings[p])}")
        if args.device == "cpu":
            print(f"  {p} timed in CPU seconds: {cpu_ceilings[p]['flop_per_s'] / 1e9:.2f} GFLOP/s")
    print(f"  bf16 / fp32: {ceilings['bf16']['flop_per_s'] / ceilings['fp32']['flop_per_s']:.2f}x\n")
    for (recipe, batch), steps in measured.items():
        print_steps(recipe, batch, steps, ceilings, cpu_ceilings, args.threads)
    if not measured:
        print("no step timing (--rounds 0)")

    if args.curve:
        print()
        for recipe in args.recipe:
            loss_curves(recipe, args.batch[0], args, QUICK[recipe] if args.quick else (), data[recipe])
    shutil.rmtree(data_root, ignore_errors=True)


if __name__ == "__main__":
    main()
