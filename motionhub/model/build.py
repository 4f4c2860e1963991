"""Turn a validated ``Recipe`` into objects: data set, tokenizer, loss set."""

from __future__ import annotations

import copy
import inspect
from collections import Counter
from typing import Any

import torch

from motionhub.data.dataset import Dataset
from motionhub.errors import MotionhubError
from motionhub.data.formats import MotionFormat
from motionhub.model.losses import LossSet, LossTerm
from motionhub.model.metrics import Metric
from motionhub.recipes import ComponentSpec, Recipe
from motionhub.model.tokenizer import Tokenizer


def instantiate(spec: ComponentSpec, **injected: Any) -> Any:
    """Build ``spec``'s class from its recipe arguments plus the injected ones it asks for."""
    params = inspect.signature(spec.component.cls).parameters
    kwargs = dict(spec.kwargs)
    for key, value in injected.items():
        if key in params and key not in kwargs:
            kwargs[key] = value
    try:
        return spec.component.cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise MotionhubError(f"{spec.path} ({spec.component.kind} '{spec.name}'): {exc}") from exc


def build_dataset(recipe: Recipe) -> Dataset:
    return instantiate(recipe.data)


def build_tokenizer(recipe: Recipe, fmt: MotionFormat) -> Tokenizer:
    encoder = instantiate(recipe.encoder, format=fmt)
    dim = getattr(encoder, "out_dim", None)
    quantizer = instantiate(recipe.quantizer, dim=dim)
    decoder = instantiate(recipe.decoder, format=fmt, dim=getattr(quantizer, "dim", dim), encoder=encoder)
    return Tokenizer(encoder, quantizer, decoder)


def build_losses(recipe: Recipe) -> LossSet:
    counts = Counter(spec.name for spec in recipe.losses)
    seen: Counter = Counter()
    terms = []
    for spec in recipe.losses:
        seen[spec.name] += 1
        label = spec.name if counts[spec.name] == 1 else f"{spec.name}{seen[spec.name]}"
        terms.append(LossTerm(label, instantiate(spec), spec.weight, spec.every, spec.schedule, spec.every_scale,
                              spec.schedule_mode, spec.downsample, spec.path))
    return LossSet(terms)


def build_metrics(recipe: Recipe, fmt: MotionFormat, codebook_size: int | None = None) -> dict[str, Metric]:
    """The recipe's metrics with their arguments, or every registered metric that applies to
    ``fmt``; a metric that asks for ``codebook_size`` gets the quantizer's real number of codes."""
    from motionhub.plugins.manager import get_registry

    specs = recipe.metrics
    if specs is None:
        specs = [ComponentSpec(f"eval.metrics ({c.name})", c, {})
                 for c in get_registry().components("metric") if c.cls.applies_to(fmt)]
    return {spec.name: instantiate(spec, codebook_size=codebook_size) for spec in specs}


def check_shapes(model: Tokenizer, window: torch.Tensor, recipe: Recipe) -> None:
    """Run one ``window`` (1, T, *F) of the data through a copy of ``model`` before training:
    parts whose sizes do not fit become one ``MotionhubError`` naming both, instead of an error
    from inside the model minutes later. Leaves ``model`` and every RNG as they were."""
    enc, quant, dec = (f"{spec.path} '{spec.name}'" for spec in (recipe.encoder, recipe.quantizer, recipe.decoder))
    frames, down = window.shape[1], model.downsample
    if down > frames:
        raise MotionhubError(f"{enc} down-samples time x{down}, more than the {frames}-frame window of "
                             f"data.window={recipe.data.window}: not one token would come out of a window. "
                             f"Raise data.window to at least {down}, or lower the encoder's down-sampling")
    probe = copy.deepcopy(model).eval()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        latents = _probe(lambda: probe.encoder(window), lambda: f"{enc} fails on one window of the data, shape "
                         f"{tuple(window.shape)} (data.window={recipe.data.window})")
        width, dim = latents.shape[-1], getattr(probe.quantizer, "dim", None)

        def quantizer_failure() -> str | None:
            if isinstance(dim, int) and dim != width:
                return (f"{enc} outputs {width}-wide latents, but {quant} takes dim={dim}: the sizes must match. "
                        f"Set {recipe.quantizer.path}.dim to {width} (or leave it out to take the encoder's "
                        f"width), or change the encoder's output width to {dim}")
            return None

        quantized = _probe(lambda: probe.quantizer(latents).quantized,
                           lambda: f"{quant} fails on the {tuple(latents.shape)} latents of {enc}", quantizer_failure)
        _probe(lambda: probe.decoder(quantized), lambda: f"{dec} fails on the {tuple(quantized.shape)} output of {quant}")


def _probe(call, failure, explanation=lambda: None):
    """``call()``; an error from inside a part becomes a MotionhubError: ``explanation()`` when it
    knows the cause, else ``failure()`` followed by the error."""
    try:
        return call()
    except MotionhubError:
        raise
    except Exception as exc:
        raise MotionhubError(explanation() or f"{failure()}: {type(exc).__name__}: {exc}") from exc
