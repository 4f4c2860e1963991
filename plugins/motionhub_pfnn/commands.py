"""``motionhub export-pfnn``: ``motionhub export pfnn`` under the name it has always had."""

from motionhub.api import ExporterCommand


class ExportPFNN(ExporterCommand):
    """PFNN training data of a data set, as ``motionhub export pfnn`` writes it."""

    help = "PFNN training data (database.npz and .bin normalisation) of a recipe's data set"
    exporter = "pfnn"
