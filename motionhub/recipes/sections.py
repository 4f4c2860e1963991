"""The typed sections of a recipe: settings (``run``, ``train``, ``eval``, ``bench``) with their
defaults and bounds, components bound to their registered classes, and the ``Recipe`` they make."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

import yaml

from motionhub.plugins.registry import Component
from motionhub.plugins.types import Bounds

DEFAULT_ITERS = 1000  # train.iters of a recipe that gives neither train.iters nor train.epochs


@dataclasses.dataclass
class RunConfig:
    name: str = "run"  # names the run directory
    out: str = "runs/${run.name}"  # where checkpoints, metrics and reports go
    # seeds data sampling, initialisation and every RNG the loop uses
    seed: Annotated[int, Bounds(low=0, high=2**32 - 1)] = 0


@dataclasses.dataclass
class TrainConfig:
    batch_size: Annotated[int, Bounds(low=1)] = 32  # per process
    # The run's length: ``iters`` optimizer steps after warm-up, or ``epochs`` passes over the train
    # windows (warm-up included; steps = ceil(epochs x sampler batches per epoch / grad_accum)).
    # Give one of them; a recipe giving neither trains DEFAULT_ITERS steps after warm-up.
    iters: Annotated[int | None, Bounds(low=1, hint="optimizer steps after warm-up; or set train.epochs "
                                                    "instead")] = None
    epochs: Annotated[float | None, Bounds(low=0, low_open=True, hint="passes over the train windows, "
                                                                      "e.g. 100 or 2.5; or set train.iters "
                                                                      "instead")] = None
    lr: Annotated[float, Bounds(low=0, low_open=True)] = 2e-4
    betas: Annotated[list[float], Bounds(low=0, high=1, high_open=True, length=2, hint="AdamW's [beta1, beta2], "
                                         "e.g. [0.9, 0.99]")] = dataclasses.field(default_factory=lambda: [0.9, 0.99])
    weight_decay: Annotated[float, Bounds(low=0)] = 0.0
    warmup_iters: Annotated[int, Bounds(low=0)] = 0  # linear warm-up steps, taken before ``iters``
    schedule: Literal["multistep", "cosine"] = "multistep"  # after warm-up
    # multistep: steps after warm-up, each within the run (below ``iters``)
    milestones: Annotated[list[int], Bounds(low=1)] = dataclasses.field(default_factory=list)
    gamma: Annotated[float, Bounds(low=0, low_open=True)] = 0.05  # multistep: lr factor at each milestone
    # max gradient norm; null = no clipping
    grad_clip: Annotated[float | None, Bounds(low=0, low_open=True, hint="the largest gradient norm; null turns "
                                                                       "clipping off")] = None
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    grad_accum: Annotated[int, Bounds(low=1)] = 1  # micro-batches per optimizer step
    on_nonfinite: Literal["stop", "skip"] = "stop"  # a NaN/Inf loss stops the run, or skips the step
    compile: bool = False  # torch.compile the model (slower start, faster steps on GPU)
    log_every: Annotated[int, Bounds(low=1)] = 10  # steps between metrics.jsonl rows
    # steps between evaluations on the val split; 0 = only at the end
    eval_every: Annotated[int, Bounds(low=0, hint="0 evaluates only at the end")] = 0
    # steps between checkpoints (last.pt and step_N.pt); 0 = only at the end
    checkpoint_every: Annotated[int, Bounds(low=0, hint="0 checkpoints only at the end")] = 0
    trackers: list[Literal["tensorboard", "wandb"]] = dataclasses.field(default_factory=list)
    threads: Annotated[int | None, Bounds(low=1)] = None  # torch CPU threads; fixed for bit-exact resumes on CPU
    # steps between profiled steps (forward and backward seconds of each loss and model part); 0 = never
    profile_every: Annotated[int, Bounds(low=0, hint="0 turns profiling off")] = 100

    def __post_init__(self):
        if self.iters is None and self.epochs is None:
            self.iters = DEFAULT_ITERS


@dataclasses.dataclass
class EvalConfig:
    batch_size: Annotated[int, Bounds(low=1)] = 32
    min_length: Annotated[int | None, Bounds(low=1)] = None  # frames; shorter val clips are skipped
    max_length: Annotated[int | None, Bounds(low=1)] = None  # frames; longer val clips are skipped
    # metric plugins, each a name or {name: ..., its arguments}; null = every one that applies to the data
    metrics: list[str | dict[str, Any]] | None = None
    # evaluation protocols (a field's standard table), each a name or {name: ..., its settings}, run
    # on the final checkpoint at the end of training and shown in the report; none by default
    protocols: list[str | dict[str, Any]] | None = None
    best: str = "loss"  # val figure that selects checkpoints/best.pt (its metric says whether higher is better)
    train_codebook: bool = True  # codebook usage over the whole train split at the end
    # train clips evaluated at the end like val (losses, metrics, codes), evenly spaced over the split
    # within the length bounds; null = every train clip, 0 = none
    train_clips: Annotated[int | None, Bounds(low=0, hint="0 leaves the train figures out; null evaluates "
                                                          "every train clip")] = 256


@dataclasses.dataclass
class BenchConfig:
    """How ``motionhub bench`` streams: each value can also be given on its command line."""

    window: Annotated[int | None, Bounds(low=1)] = None  # frames per streaming window; null = data.window
    # frames between window starts (a new window every S frames); null = window
    stride: Annotated[int | None, Bounds(low=1)] = None
    windows: Annotated[int, Bounds(low=1)] = 1000  # windows timed, at most
    warmup: Annotated[int, Bounds(low=0)] = 10  # untimed encodes first
    split: Literal["train", "val", "test"] = "val"  # the clips streamed
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # bf16 / fp16: autocast, as mixed-precision inference
    # milliseconds each window may take; null = stride / fps, the time until the next window arrives
    budget_ms: Annotated[float | None, Bounds(low=0, low_open=True)] = None
    # joined: clips back to back, windows across the joins; per_clip: windows within each clip;
    # null = per_clip for point tracks (independent samples), joined otherwise
    stream: Literal["joined", "per_clip"] | None = None


@dataclasses.dataclass
class ComponentSpec:
    """A recipe section naming a registered component and its keyword arguments."""

    path: str  # YAML path, e.g. "quantizer" or "losses[1]"
    component: Component
    kwargs: dict[str, Any]

    @property
    def name(self) -> str:
        return self.component.name


@dataclasses.dataclass
class DataSpec(ComponentSpec):
    window: Annotated[int, Bounds(low=1)] = 64  # frames per training window (T2M-GPT 64, MotionMillion 96)
    short: Literal["drop", "pad"] = "drop"  # clips shorter than the window: dropped, or padded and masked
    weighting: Literal["uniform", "length"] = "uniform"  # clip choice: uniform, or by number of windows
    store: Literal["packed", "memory"] = "packed"  # packed HDF5 store in the cache, or clips held in memory
    store_dtype: Literal["float32", "float16"] = "float32"  # frames in the packed store
    cache_dir: str | None = None  # packed stores; default $MOTIONHUB_CACHE or ~/.cache/motionhub
    # train clips cut into N contiguous shards; each process draws windows only from its own
    # N / processes shards (N must be a multiple of the process count and divide the global batch)
    shards: Annotated[int, Bounds(low=1, hint="1 leaves the split whole")] = 1
    captions: bool = False  # each batch carries one caption per window (batch["captions"]); uncaptioned clips left out


@dataclasses.dataclass
class LossSpec(ComponentSpec):
    weight: Annotated[float, Bounds(low=0)] = 1.0
    every: Annotated[int, Bounds(low=1)] = 1  # compute every N steps (expensive losses)
    every_scale: bool = True  # with every: N, multiply the weight by N on the steps it runs (same mean contribution)
    schedule: list[list[float]] | None = None  # [[step, weight], ...]: the weight over training
    schedule_mode: Literal["linear", "step"] = "linear"  # linear in between points, or held until the next point
    # compute on every k-th frame of the input and of the outputs at its frame rate (training only)
    downsample: Annotated[int, Bounds(low=1, hint="1 keeps every frame")] = 1


@dataclasses.dataclass
class Recipe:
    source: str
    tree: dict[str, Any]  # the resolved YAML tree, saved into the run directory
    run: RunConfig
    data: DataSpec
    encoder: ComponentSpec
    quantizer: ComponentSpec
    decoder: ComponentSpec
    losses: list[LossSpec]
    train: TrainConfig
    eval: EvalConfig
    bench: BenchConfig = dataclasses.field(default_factory=BenchConfig)
    metrics: list[ComponentSpec] | None = None  # eval.metrics bound to their plugins; None = the defaults
    protocols: list[ComponentSpec] = dataclasses.field(default_factory=list)  # eval.protocols bound to their plugins

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.tree, sort_keys=False)


COMPONENT_SECTIONS = {"data": "dataset", "encoder": "encoder", "quantizer": "quantizer", "decoder": "decoder"}
SETTING_SECTIONS = {"run": RunConfig, "train": TrainConfig, "eval": EvalConfig, "bench": BenchConfig}
SECTIONS = ("run", "data", "encoder", "quantizer", "decoder", "losses", "train", "eval", "bench")

# Arguments the framework supplies at build time when the recipe leaves them unset.
INJECTED = {
    "dataset": (),
    "encoder": ("format",),
    "quantizer": ("dim",),
    "decoder": ("format", "dim", "encoder"),
    "loss": (),
    "metric": ("codebook_size",),
    "exporter": (),
}
