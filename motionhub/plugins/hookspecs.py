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
def register_protocols(register):
    """Register evaluation protocols (``motionhub.model.protocols.Protocol``): a field's standard
    table of a trained run, for ``motionhub eval RUN_DIR --protocol NAME`` and a recipe's
    ``eval.protocols`` (the report then shows it)."""


@hookspec
def register_exporters(register):
    """Register exporters (``motionhub.use.export.Exporter``) that turn one split of a data set, and
    optionally a trained run, into another format's files. The constructor's keyword arguments are
    the exporter's options: ``motionhub export NAME RUN_OR_RECIPE --out PATH --option value``."""


@hookspec
def register_importers(register):
    """Register importers (``motionhub.use.importing.Importer``) that turn a checkpoint written
    elsewhere into a motionhub run directory. The constructor's keyword arguments are the
    importer's options: ``motionhub import NAME CHECKPOINT --out RUN_DIR --option value``."""


@hookspec
def register_commands(register):
    """Register ``motionhub <name>`` sub-commands (``motionhub.commands.Command``): a one-line
    ``help``, ``add_arguments(parser)`` and ``run(args) -> int``. Importing the class must stay
    light (heavy imports go inside ``run``); a name another plugin registered is an error."""
