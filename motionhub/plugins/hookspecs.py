"""The hooks a motionhub plugin can implement.

Every hook receives a ``register(name, cls)`` callback. A plugin registers classes, not
instances; a recipe builds the instances later from its keyword arguments. Implement only
the hooks you need, with ``@motionhub.hookimpl``.
"""

import pluggy

hookspec = pluggy.HookspecMarker("motionhub")
hookimpl = pluggy.HookimplMarker("motionhub")


@hookspec
def register_datasets(register):
    """Register data-set classes: ``register("humanml3d", HumanML3D)``."""


@hookspec
def register_encoders(register):
    """Register encoder modules: ``(B, T, *F) -> (B, T', C)``."""


@hookspec
def register_decoders(register):
    """Register decoder modules: ``(B, T', C) -> (B, T, *F)`` or logits."""


@hookspec
def register_quantizers(register):
    """Register quantizer modules returning a ``motionhub.model.quantizer.QuantizerOutput``."""


@hookspec
def register_losses(register):
    """Register loss classes: called as ``loss(batch, outputs, format)`` -> scalar."""


@hookspec
def register_metrics(register):
    """Register evaluation metrics (``motionhub.model.metrics.Metric``), accumulated over whole splits."""


@hookspec
def register_exporters(register):
    """Register exporters that turn a data set (and a trained tokenizer) into another format."""
