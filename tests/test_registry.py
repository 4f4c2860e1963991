"""The registry and plugin manager, with plugins registered in-process."""

import importlib.metadata
import inspect
import re
import sys

import pytest
from helpers import REPO, TINY_RECIPE

import motionhub
import motionhub_losses
from motionhub.errors import PluginError, UnknownComponentError
from motionhub.plugins import hookspecs
from motionhub.plugins.manager import get_registry, load_plugins, plugin_infos, plugin_statuses, pm
from motionhub.plugins.registry import KINDS, ComponentUnavailableError, Registry, hook_name
from motionhub.plugins.testing import registered_plugin


class Widget:
    """A widget for tests."""


class OtherWidget:
    """Another widget."""


class WidgetPlugin:
    __name__ = "widget-plugin"

    @motionhub.hookimpl
    def register_quantizers(self, register):
        register("widget", Widget)

    @motionhub.hookimpl
    def register_losses(self, register):
        register("widget_loss", OtherWidget)


def test_first_party_plugins_are_the_motionhub_distributions_entry_points():
    load_plugins()
    declared = {ep.name for ep in importlib.metadata.distribution("motionhub").entry_points
                if ep.group == "motionhub"}
    assert len(declared) >= 10 and all(name.startswith("motionhub") for name in declared)
    registry = get_registry()
    assert {c.provider for c in registry} == declared
    assert all(info.builtin and info.distribution == "motionhub" for info in plugin_infos())
    assert registry.get("quantizer", "fsq").provider == "motionhub_quantizers"
    assert registry.get("dataset", "synthetic").provider == "motionhub_synthetic"


def test_the_core_imports_no_plugin():
    imports = re.compile(r"^\s*(from|import)\s+motionhub_\w+", re.MULTILINE)
    offenders = [str(path.relative_to(REPO)) for path in (REPO / "motionhub").rglob("*.py")
                 if imports.search(path.read_text())]
    assert offenders == []


def test_in_process_plugin_records_its_provider_and_description():
    with registered_plugin(WidgetPlugin(), "widget-plugin"):
        component = get_registry().get("quantizer", "widget")
        assert component.cls is Widget and component.provider == "widget-plugin"
        assert component.description == "A widget for tests."
        assert get_registry().get("loss", "widget_loss").cls is OtherWidget
    with pytest.raises(UnknownComponentError):
        get_registry().get("quantizer", "widget")


def test_a_name_registered_twice_is_unusable_and_names_both_plugins_and_where_they_come_from():
    class Clash:
        @motionhub.hookimpl
        def register_quantizers(self, register):
            register("fsq", OtherWidget)

    with registered_plugin(Clash(), "clashing-plugin"):
        registry = get_registry()  # the rest of the registry still works
        assert registry.get("quantizer", "vq").provider == "motionhub_quantizers"
        assert "fsq" not in registry.names("quantizer")
        with pytest.raises(ComponentUnavailableError) as info:
            registry.get("quantizer", "fsq")
        rows = {row.info.name: row for row in plugin_statuses()}
    message = str(info.value)
    assert isinstance(info.value, PluginError) and isinstance(info.value, UnknownComponentError)
    assert message.startswith("quantizer 'fsq' is registered by 2 plugins: ")
    assert "'motionhub_quantizers' (motionhub 0.1.0) as motionhub_quantizers.fsq:FSQ" in message
    assert "'clashing-plugin' as test_registry:OtherWidget" in message
    assert "MOTIONHUB_DISABLE_PLUGINS=clashing-plugin" in message and "motionhub plugins" in message
    assert rows["clashing-plugin"].conflicts == (message,) == rows["motionhub_quantizers"].conflicts
    assert rows["clashing-plugin"].registered == {"quantizer": ["fsq"]}
    assert get_registry().get("quantizer", "fsq").provider == "motionhub_quantizers"  # gone with the plugin


def test_unknown_name_lists_available_suggests_closest_and_says_how_to_list():
    registry = Registry()
    for name in ("fsq", "lfq", "vq"):
        registry.add("quantizer", name, Widget, "p")
    with pytest.raises(UnknownComponentError) as info:
        registry.get("quantizer", "fsqq")
    message = str(info.value)
    assert "unknown quantizer 'fsqq'; did you mean 'fsq'?" in message
    assert "Available quantizers: fsq, lfq, vq." in message
    assert "motionhub list quantizers" in message and "motionhub plugins" in message
    # no close match: no suggestion, still the list
    with pytest.raises(UnknownComponentError, match=r"unknown quantizer 'zzz'\. Available"):
        registry.get("quantizer", "zzz")


def test_registering_an_instance_instead_of_a_class_is_an_error():
    registry = Registry()
    with pytest.raises(PluginError, match="register the class itself"):
        registry.add("loss", "bad", Widget(), "p")
    with pytest.raises(PluginError, match="'not a reference', which is not a class reference; write 'package.module:ClassName'"):
        registry.add("loss", "bad", "not a reference", "p")


def test_a_reference_is_imported_only_when_its_class_is_used(tmp_path, monkeypatch):
    (tmp_path / "lazy_widget_module.py").write_text('class LazyWidget:\n    """Imported late."""\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_widget_module", raising=False)
    registry = Registry()
    registry.add("loss", "lazy", "lazy_widget_module:LazyWidget", "p")
    component = registry.get("loss", "lazy")
    assert registry.names("loss") == ["lazy"] and component.reference == "lazy_widget_module:LazyWidget"
    assert "lazy_widget_module" not in sys.modules
    assert component.cls.__name__ == "LazyWidget" and component.description == "Imported late."
    assert component.cls is sys.modules["lazy_widget_module"].LazyWidget
    monkeypatch.delitem(sys.modules, "lazy_widget_module")


def test_a_reference_that_cannot_be_resolved_names_the_plugin_and_the_reference():
    registry = Registry()
    registry.add("loss", "typo", "motionhub_losses.reconstruction:ReconstructionLos", "my-plugin")
    registry.add("loss", "gone", "motionhub_losses.no_such_module:Loss", "my-plugin")
    registry.add("loss", "function", "motionhub.errors:did_you_mean", "my-plugin")
    with pytest.raises(PluginError) as info:
        registry.get("loss", "typo").cls
    assert str(info.value) == (
        "plugin 'my-plugin' registered loss 'typo' as 'motionhub_losses.reconstruction:ReconstructionLos', but "
        "'motionhub_losses.reconstruction' has no attribute 'ReconstructionLos'; did you mean 'ReconstructionLoss'? "
        "Fix the reference in the plugin's register_losses hook, or start without the plugin: "
        "MOTIONHUB_DISABLE_PLUGINS=my-plugin (see 'motionhub plugins').")
    with pytest.raises(PluginError, match=r"importing 'motionhub_losses.no_such_module' failed: ModuleNotFoundError"):
        registry.get("loss", "gone").cls
    with pytest.raises(PluginError, match="it names a function, not a class"):
        registry.get("loss", "function").cls
    # listing never fails on it: the description says what is wrong
    assert registry.get("loss", "gone").description.startswith("UNAVAILABLE: plugin 'my-plugin' registered loss 'gone'")


def test_first_party_packages_re_export_their_classes_on_demand():
    assert motionhub_losses.ReconstructionLoss is get_registry().get("loss", "recon").cls  # re-exported on demand
    assert "ReconstructionLoss" in dir(motionhub_losses)
    with pytest.raises(AttributeError, match="has no attribute 'ReconstructionLos'; did you mean 'ReconstructionLoss'"):
        motionhub_losses.ReconstructionLos  # noqa: B018


def test_every_kind_has_a_hookspec_with_a_register_argument():
    for kind in KINDS:
        spec = getattr(hookspecs, hook_name(kind))
        assert list(inspect.signature(spec).parameters) == ["register"]
        assert spec.__doc__
    assert hook_name("loss") == "register_losses" and hook_name("dataset") == "register_datasets"


def test_a_plugin_marked_with_motionhub_hookimpl_is_called_and_its_component_built():
    from motionhub.model.build import instantiate
    from motionhub.model.losses import Loss
    from motionhub.recipes import recipe_from_tree

    calls = []

    class Scaled(Loss):
        """Reconstruction error times a factor."""

        def __init__(self, factor: float = 1.0):
            self.factor = factor

        def __call__(self, batch, outputs, format):
            return self.factor * (outputs["recon"] - batch["motion"]).abs().mean()

    class ScaledPlugin:
        @motionhub.hookimpl
        def register_losses(self, register):
            calls.append(register)
            register("scaled", Scaled)

    assert motionhub.hookimpl is hookspecs.hookimpl
    with registered_plugin(ScaledPlugin(), "scaled-plugin"):
        recipe = recipe_from_tree({**TINY_RECIPE, "losses": [{"name": "scaled", "factor": 3.0}]}, "test")
    assert len(calls) == 1
    spec = recipe.losses[0]
    assert spec.component.provider == "scaled-plugin"
    loss = instantiate(spec)
    assert isinstance(loss, Scaled) and loss.factor == 3.0


@pytest.mark.parametrize("kind", KINDS)
def test_hook_registers_components_of_its_kind(kind):
    class Thing:
        """A thing."""

    class OnePlugin:
        pass

    def impl(self, register):
        register(f"test_{kind}", Thing)

    impl.__name__ = hook_name(kind)
    setattr(OnePlugin, hook_name(kind), motionhub.hookimpl(impl))
    with registered_plugin(OnePlugin(), f"one-{kind}"):
        component = get_registry().get(kind, f"test_{kind}")
    assert component.cls is Thing and component.provider == f"one-{kind}"


def test_registered_plugin_borrows_an_installed_plugins_registration_and_gives_it_back():
    load_plugins()
    assert pm.get_plugin("motionhub_losses") is motionhub_losses  # registered through its entry point
    with registered_plugin(motionhub_losses, "losses-under-test"):
        assert get_registry().get("loss", "recon").provider == "losses-under-test"
        assert pm.get_plugin("motionhub_losses") is None
    assert pm.get_plugin("motionhub_losses") is motionhub_losses
    assert get_registry().get("loss", "recon").provider == "motionhub_losses"
    with registered_plugin(motionhub_losses, "motionhub_losses"):  # the same name: used as it is
        assert get_registry().get("loss", "recon").provider == "motionhub_losses"
    assert pm.get_plugin("motionhub_losses") is motionhub_losses


def test_registered_plugin_refuses_a_name_another_plugin_holds():
    with pytest.raises(PluginError, match="plugin 'motionhub_losses' is already registered"):
        with registered_plugin(WidgetPlugin(), "motionhub_losses"):
            pass
    assert get_registry().get("loss", "recon").provider == "motionhub_losses"


def test_every_hook_is_documented_for_plugin_authors():
    guide = (REPO / "CONTRIBUTING.md").read_text()
    for kind in KINDS:
        assert f"`{hook_name(kind)}(register)`" in guide, hook_name(kind)
