"""The registry and plugin manager, with plugins registered in-process."""

import inspect

import pytest

import motionhub
from motionhub.plugins import hookspecs
from motionhub.errors import PluginError, UnknownComponentError
from motionhub.plugins.manager import DEFAULT_PLUGINS, get_registry, load_plugins, pm
from motionhub.plugins.registry import KINDS, Registry, hook_name
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


def test_first_party_plugins_register_through_the_same_hooks():
    load_plugins()
    registry = get_registry()
    providers = {c.provider for c in registry}
    assert providers == set(DEFAULT_PLUGINS)
    assert registry.get("quantizer", "fsq").provider == "motionhub_quantizers"
    assert registry.get("dataset", "synthetic").provider == "motionhub_synthetic"


def test_in_process_plugin_records_its_provider_and_description():
    with registered_plugin(WidgetPlugin(), "widget-plugin"):
        component = get_registry().get("quantizer", "widget")
        assert component.cls is Widget and component.provider == "widget-plugin"
        assert component.description == "A widget for tests."
        assert get_registry().get("loss", "widget_loss").cls is OtherWidget
    with pytest.raises(UnknownComponentError):
        get_registry().get("quantizer", "widget")


def test_a_name_registered_twice_names_both_providers():
    class Clash:
        @motionhub.hookimpl
        def register_quantizers(self, register):
            register("fsq", OtherWidget)

    with registered_plugin(Clash(), "clashing-plugin"):
        with pytest.raises(PluginError) as info:
            get_registry()
    message = str(info.value)
    assert "quantizer 'fsq' is registered twice" in message
    assert "motionhub_quantizers" in message and "clashing-plugin" in message


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


def test_every_kind_has_a_hookspec_with_a_register_argument():
    for kind in KINDS:
        spec = getattr(hookspecs, hook_name(kind))
        assert list(inspect.signature(spec).parameters) == ["register"]
        assert spec.__doc__
    assert hook_name("loss") == "register_losses" and hook_name("dataset") == "register_datasets"


def test_hookimpl_is_exported_for_plugins():
    assert motionhub.hookimpl is hookspecs.hookimpl
    assert pm.project_name == "motionhub"


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


def test_every_hook_is_documented_for_plugin_authors():
    from helpers import REPO

    guide = (REPO / "CONTRIBUTING.md").read_text()
    for kind in KINDS:
        assert f"`{hook_name(kind)}(register)`" in guide, hook_name(kind)
