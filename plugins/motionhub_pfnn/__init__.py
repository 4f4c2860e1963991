"""Phase-Functioned Neural Network (PFNN) training data, the ``pfnn`` exporter and the released network's forward pass."""

import motionhub
from motionhub.api import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "PFNNExporter": ".exporter",
})


@motionhub.hookimpl
def register_exporters(register):
    register("pfnn", "motionhub_pfnn.exporter:PFNNExporter")


@motionhub.hookimpl
def register_commands(register):
    register("export-pfnn", "motionhub_pfnn.commands:ExportPFNN")
