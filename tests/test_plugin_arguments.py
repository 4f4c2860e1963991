"""Component arguments: checked when registered, Path values from YAML, read back for ``motionhub list``."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Optional

import pytest

import motionhub
import motionhub.api
from motionhub.errors import PluginError, RecipeError
from motionhub.model.losses import Loss
from motionhub.plugins.arguments import RESERVED, arguments_of, argument_docs, contract
from motionhub.plugins.manager import get_registry
from motionhub.plugins.testing import registered_plugin
from motionhub.plugins.types import Bounds
from motionhub.recipes import DataSpec, LossSpec, recipe_from_tree

from helpers import TINY_RECIPE


def plugin_registering(kind: str, name: str, cls: type):
    """A plugin object whose one hook registers ``cls`` as ``name``."""
    hook = f"register_{kind}es" if kind.endswith("s") else f"register_{kind}s"

    class Plugin:
        __name__ = f"test-{name}"

    def register_hook(self, register):
        register(name, cls)

    setattr(Plugin, hook, motionhub.hookimpl(register_hook))
    return Plugin()


class WeightedLoss(Loss):
    """A loss whose own argument is called like the framework's loss weight."""

    def __init__(self, weight: float = 1.0):
        self.weight = weight

    def __call__(self, batch, outputs, format):
        return outputs["recon"].sum() * 0


class WindowedData:
    """A data set that wants its own window and cache_dir."""

    def __init__(self, window: int = 8, cache_dir: str = "x"):
        pass


class BrokenAnnotation(Loss):
    """A loss annotated with a name its module never imports."""

    def __init__(self, scale: "Tensorish" = 1.0):  # noqa: F821
        self.scale = scale


class PathLoss(Loss):
    """A loss reading a file.

    table: a file of per-feature weights.
    extra: more files, optional.
    """

    def __init__(self, table: Path, extra: Optional[list[Path]] = None,
                 gain: Annotated[float, Bounds(low=0)] = 1.0):
        self.table, self.extra, self.gain = table, extra, gain

    def __call__(self, batch, outputs, format):
        return outputs["recon"].sum() * 0


@pytest.mark.parametrize("argument", LossSpec.__dataclass_fields__.keys() - {"path", "component", "kwargs"})
def test_a_loss_argument_named_like_a_loss_entry_key_is_rejected_at_registration(argument):
    cls = type("Clash", (Loss,), {"__init__": eval(f"lambda self, {argument}=1: None"), "__doc__": "x"})
    with registered_plugin(plugin_registering("loss", "clash", cls), "clash-plugin"):
        with pytest.raises(PluginError) as info:
            get_registry().get("loss", "clash")  # the plugin is left out, and using its name says why
    message = str(info.value)
    assert "clash-plugin" in message and f"'{argument}'" in message and "rename" in message


def test_reserved_keys_are_the_recipe_sections_own_fields():
    """The lists the registry checks are the keys the recipe sections really consume."""
    own = {"path", "component", "kwargs"}
    assert set(RESERVED["loss"]) - {"name"} == LossSpec.__dataclass_fields__.keys() - own
    assert set(RESERVED["dataset"]) - {"name"} == DataSpec.__dataclass_fields__.keys() - own


def test_a_dataset_taking_window_and_cache_dir_names_both_and_the_plugin():
    with registered_plugin(plugin_registering("dataset", "windowed", WindowedData), "windowed-plugin"):
        with pytest.raises(PluginError, match=r"windowed-plugin.*'window', 'cache_dir'.*data section"):
            get_registry().get("dataset", "windowed")


def test_an_unresolvable_annotation_is_a_registration_error_not_silently_unchecked():
    with registered_plugin(plugin_registering("loss", "broken_annotation", BrokenAnnotation), "broken-ann"):
        with pytest.raises(PluginError, match=r"broken-ann.*broken_annotation.*cannot be resolved.*Tensorish"):
            get_registry().get("loss", "broken_annotation")


def test_the_registry_works_again_once_the_bad_plugin_is_gone():
    with registered_plugin(plugin_registering("loss", "weighted", WeightedLoss), "weighted-plugin"):
        with pytest.raises(PluginError):
            get_registry().get("loss", "weighted")
    assert "recon" in get_registry().names("loss")


def test_path_arguments_are_set_from_yaml_strings_and_built_as_paths(tmp_path):
    with registered_plugin(plugin_registering("loss", "path_loss", PathLoss), "path-plugin"):
        tree = {**TINY_RECIPE, "losses": [{"name": "recon"},
                                          {"name": "path_loss", "table": str(tmp_path / "w.npy"),
                                           "extra": ["a.npy", "b.npy"]}]}
        recipe = recipe_from_tree(tree, "test.yaml", [])
        spec = recipe.losses[1]
        assert spec.kwargs["table"] == tmp_path / "w.npy" and isinstance(spec.kwargs["table"], Path)
        assert spec.kwargs["extra"] == [Path("a.npy"), Path("b.npy")]
        loss = spec.component.cls(**spec.kwargs)
        assert isinstance(loss.table, Path)
        # the YAML tree saved into a run directory keeps plain strings
        assert recipe.tree["losses"][1]["table"] == str(tmp_path / "w.npy")
        # a number is still not a path, and bounds declared next to the type are checked
        bad = {**tree, "losses": [{"name": "recon"}, {"name": "path_loss", "table": 3, "gain": -1}]}
        with pytest.raises(RecipeError) as info:
            recipe_from_tree(bad, "test.yaml", [])
        assert "losses[1].table: expected path, got int 3" in str(info.value)
        assert "losses[1].gain: must be at least 0" in str(info.value)


def test_arguments_of_reads_types_defaults_bounds_and_docstring_lines():
    args = {a.name: a for a in arguments_of(PathLoss)}
    assert list(args) == ["table", "extra", "gain"]
    assert args["table"].required and args["table"].type_text == "path"
    assert args["table"].doc == "a file of per-feature weights."
    assert args["extra"].default is None and args["extra"].type_text == "list of path or null"
    assert args["gain"].bounds == Bounds(low=0) and args["gain"].type_text == "number"
    assert args["gain"].doc == ""


def test_argument_docs_accept_shared_lines_and_typed_google_style():
    class Documented:
        """Something.

        down_t, stride_t:  stages and their stride.
        decay, kmeans_init,
        codebook_dim:  as in VQ.
        Args:
            depth (int): blocks per stage.
        Not an argument line because the text after the colon is missing:
        """

    assert argument_docs(Documented) == {"down_t": "stages and their stride.", "stride_t": "stages and their stride.",
                                         "decay": "as in VQ.", "kmeans_init": "as in VQ.", "codebook_dim": "as in VQ.",
                                         "depth": "blocks per stage."}


def test_every_first_party_component_documents_each_argument():
    """``motionhub list <kind> <name>`` has a line to show for every argument of our own plugins."""
    undocumented = []
    for component in get_registry():
        if component.kind in ("command",):
            continue
        for argument in arguments_of(component.cls):
            if not argument.doc:
                undocumented.append(f"{component.kind} {component.name}: {argument.name}")
    assert not undocumented, "\n".join(undocumented)


@pytest.mark.parametrize("kind", ["dataset", "encoder", "decoder", "quantizer", "loss", "metric", "exporter"])
def test_each_kind_has_a_contract_to_show(kind):
    text = contract(kind)
    assert len(text.splitlines()) >= 2, f"the {kind} base class needs a docstring stating its contract"


def test_the_public_api_offers_every_core_name_a_first_party_plugin_imports():
    import ast

    plugins_dir = Path(__file__).resolve().parents[1] / "plugins"
    missing = set()
    for source in plugins_dir.glob("motionhub_*/*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("motionhub."):
                if node.module == "motionhub.api":
                    continue
                module_offered = node.module.rsplit(".", 1)[-1] in motionhub.api.__all__  # e.g. api.rotations
                for alias in node.names:
                    if alias.name not in motionhub.api.__all__ and not module_offered:
                        missing.add(f"{alias.name} (from {node.module}, in {source.name})")
    assert not missing, sorted(missing)


def test_api_names_resolve_lazily_and_unknown_names_list_the_offer():
    assert motionhub.api.MotionFormat.__name__ == "MotionFormat"
    assert motionhub.api.hookimpl is motionhub.hookimpl
    assert inspect.ismodule(motionhub.api.layouts)
    with pytest.raises(AttributeError, match="offers: .*Encoder"):
        motionhub.api.Encodr  # noqa: B018


def test_describing_a_component_shows_each_argument_its_default_bounds_doc_and_the_contract():
    from motionhub.plugins.describe import describe_component
    from motionhub.plugins.registry import Component

    text = describe_component(Component("loss", "path_loss", PathLoss, "path-plugin"))
    assert text.splitlines()[0] == f"loss 'path_loss' from plugin path-plugin ({__name__}.PathLoss)"
    assert "  table: path  [required]\n      a file of per-feature weights." in text
    assert "  extra: list of path or null  [default None]" in text
    assert "  gain: number, at least 0  [default 1.0]" in text
    assert "What every loss provides:" in text and "__call__(batch, outputs, format)" in text
    # an argument the framework fills in says so instead of "required"
    conv = describe_component(get_registry().get("encoder", "conv1d"))
    assert "format: MotionFormat  [from motionhub: the data set's MotionFormat]" in conv
