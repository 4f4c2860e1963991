"""Phase-Functioned Neural Network (PFNN) training data, the ``pfnn`` exporter and the released network's forward pass."""

import motionhub

from .exporter import PFNNExporter


@motionhub.hookimpl
def register_exporters(register):
    register("pfnn", PFNNExporter)
