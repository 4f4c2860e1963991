"""Discovery through the ``motionhub`` entry-point group.

Most tests run in-process: discovery reads motionhub's own entry points plus fake installed
distributions (``FakeDistribution``), whose modules are written to a temporary folder on
``sys.path``. One test runs the real thing in a fresh process: a ``*.dist-info`` folder on
PYTHONPATH, as pip would install it, found by ``importlib.metadata``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import REPO, TINY_RECIPE

from motionhub.commands.listing import print_plugins, print_versions
from motionhub.errors import RecipeError
from motionhub.plugins import manager
from motionhub.plugins.manager import get_registry, pm, versions
from motionhub.plugins.registry import ComponentUnavailableError
from motionhub.plugins.testing import registered_plugin
from motionhub.recipes import recipe_from_tree


class FakeDistribution:
    """What discovery reads of an installed distribution: name, version, entry points."""

    def __init__(self, name: str, entry_points: dict[str, str], version: str = "0.3.1"):
        self.metadata = {"Name": name}
        self.version = version
        self.entry_points = [importlib.metadata.EntryPoint(ep, value, "motionhub") for ep, value in entry_points.items()]


GOOD = """
    import motionhub
    from motionhub.model.losses import Loss

    class Zero(Loss):
        '''Always zero.'''
        def __call__(self, batch, outputs, format):
            return outputs["recon"].sum() * 0

    @motionhub.hookimpl
    def register_losses(register):
        register("zero", Zero)
"""


@pytest.fixture
def discover(tmp_path, monkeypatch, caplog):
    """``discover(*distributions)`` reruns discovery over motionhub's own entry points plus these.

    ``modules={"name": source}`` writes importable modules first. Real discovery comes back afterwards.
    """
    written: list[str] = []
    monkeypatch.syspath_prepend(str(tmp_path))
    caplog.set_level(logging.WARNING, logger="motionhub.plugins")

    def run(*distributions, modules: dict[str, str] | None = None, core=None):
        for name, source in (modules or {}).items():
            (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
            written.append(name)
        importlib.invalidate_caches()
        core = core or importlib.metadata.distribution("motionhub")
        monkeypatch.setattr(manager, "_distributions", lambda: [core, *distributions])
        monkeypatch.setattr(manager, "TEST_DISTRIBUTIONS", None)  # this test chooses what is installed
        manager.reset()
        manager.load_plugins()

    yield run
    manager.reset()
    for name in written:
        sys.modules.pop(name, None)


def plugins_json(capsys) -> dict[str, dict]:
    assert print_plugins() == 0
    return {(row["name"], row["distribution"]): row for row in json.loads(capsys.readouterr().out)}


def version_text(capsys) -> str:
    assert print_versions() == 0
    return capsys.readouterr().out


def test_an_installed_plugin_is_listed_with_version_hooks_and_names(discover, capsys):
    discover(FakeDistribution("motionhub-zero", {"zero": "motionhub_zero"}), modules={"motionhub_zero": GOOD})
    rows = plugins_json(capsys)
    assert rows["zero", "motionhub-zero"] == {
        "name": "zero", "version": "0.3.1", "distribution": "motionhub-zero", "builtin": False,
        "status": "loaded", "hooks": ["register_losses"], "registered": {"losses": ["zero"]}}
    assert rows["motionhub_quantizers", "motionhub"]["builtin"] is True
    assert rows["motionhub_quantizers", "motionhub"]["registered"]["quantizers"] == ["fsq", "lfq", "rvq", "rvq_ema_reset",
                                                                                     "vq", "vq_ema_reset"]
    component = get_registry().get("loss", "zero")
    assert component.provider == "zero" and component.description == "Always zero."
    assert "  zero (motionhub-zero 0.3.1)\n" in version_text(capsys)
    assert versions() == {"motionhub": "0.1.0", "zero": "0.3.1"}  # what checkpoints record


@pytest.mark.parametrize(("value", "loaded"), [("", False), ("motionhub-zero", True), ("zero,other", True),
                                               ("Motionhub_Zero", True), ("other", False)])
def test_load_plugins_env_restricts_third_party_plugins(discover, monkeypatch, value, loaded):
    monkeypatch.setenv("MOTIONHUB_LOAD_PLUGINS", value)
    discover(FakeDistribution("motionhub-zero", {"zero": "motionhub_zero"}), modules={"motionhub_zero": GOOD})
    names = {info.name for info in manager.plugin_infos()}
    assert ("zero" in names) is loaded
    assert "motionhub_synthetic" in names  # first-party plugins always load


@pytest.mark.parametrize("value", ["zero", "motionhub-zero", "motionhub_zero", " ZERO ,nothing"])
def test_disable_plugins_switches_off_a_plugin_by_any_of_its_names(discover, monkeypatch, capsys, value):
    monkeypatch.setenv("MOTIONHUB_DISABLE_PLUGINS", value)
    discover(FakeDistribution("motionhub-zero", {"zero": "motionhub_zero"}), modules={"motionhub_zero": GOOD})
    assert "motionhub_zero" not in sys.modules  # never imported
    assert plugins_json(capsys)["zero", "motionhub-zero"]["status"] == "disabled"
    assert "  zero (motionhub-zero 0.3.1): disabled by MOTIONHUB_DISABLE_PLUGINS\n" in version_text(capsys)


def test_disable_plugins_switches_off_first_party_plugins_too(discover, monkeypatch, capsys):
    monkeypatch.setenv("MOTIONHUB_DISABLE_PLUGINS", "motionhub_pfnn,motionhub_losses")
    discover()
    assert pm.get_plugin("motionhub_pfnn") is None and pm.get_plugin("motionhub_losses") is None
    rows = plugins_json(capsys)
    assert rows["motionhub_pfnn", "motionhub"]["status"] == "disabled"
    assert rows["motionhub_pfnn", "motionhub"]["builtin"] is True
    assert rows["motionhub_quantizers", "motionhub"]["status"] == "loaded"
    with pytest.raises(RecipeError) as info:
        recipe_from_tree(TINY_RECIPE, "r.yaml")  # its losses came from motionhub_losses
    assert "unknown loss 'recon'" in str(info.value)
    assert "Switched off by MOTIONHUB_DISABLE_PLUGINS: motionhub_losses, motionhub_pfnn." in str(info.value)


def test_a_plugin_that_fails_to_import_is_listed_as_broken_and_takes_nothing_else_down(discover, capsys, caplog):
    broken = FakeDistribution("motionhub-broken", {"broken": "motionhub_broken"})
    discover(broken, modules={"motionhub_broken": "import no_such_module_xyz\n"})
    row = plugins_json(capsys)["broken", "motionhub-broken"]
    assert row["status"] == "broken" and row["failed_in"] == "import" and row["version"] == "0.3.1"
    assert row["error"] == "ModuleNotFoundError: No module named 'no_such_module_xyz'"
    assert ("  broken (motionhub-broken 0.3.1): FAILED TO LOAD - ModuleNotFoundError: No module named "
            "'no_such_module_xyz'\n") in version_text(capsys)
    # reported once when plugins load, with the ways out
    warning = "\n".join(r.getMessage() for r in caplog.records if "'broken'" in r.getMessage())
    assert warning == (
        "motionhub plugin 'broken' from distribution motionhub-broken 0.3.1 failed to load:\n"
        "  ModuleNotFoundError: No module named 'no_such_module_xyz'\n"
        "Its components are unavailable; everything else works.\n"
        "Start without it:  MOTIONHUB_DISABLE_PLUGINS=broken motionhub ...  ('motionhub plugins' lists every plugin)\n"
        "Remove it:         pip uninstall motionhub-broken")
    # a recipe that does not need it works; one that names what it might provide is told about it
    assert recipe_from_tree(TINY_RECIPE, "r.yaml").losses[0].name == "recon"
    with pytest.raises(RecipeError) as info:
        recipe_from_tree({**TINY_RECIPE, "losses": [{"name": "pendulum_smoothness"}]}, "r.yaml")
    assert ("losses[0].name: unknown loss 'pendulum_smoothness'. Available losses: " in str(info.value))
    assert ("Plugin 'broken' (motionhub-broken) is broken and may provide it: ModuleNotFoundError: "
            "No module named 'no_such_module_xyz'.") in str(info.value)


def test_a_plugin_whose_hook_fails_is_left_out_whole_and_its_names_explained(discover, capsys):
    source = GOOD + """
    @motionhub.hookimpl
    def register_metrics(register):
        register("zero_metric", Zero)
        raise RuntimeError("needs a licence file")
    """
    discover(FakeDistribution("motionhub-zero", {"zero": "motionhub_zero"}), modules={"motionhub_zero": source})
    row = plugins_json(capsys)["zero", "motionhub-zero"]
    assert row["status"] == "broken" and row["failed_in"] == "register_metrics"
    assert row["error"] == "RuntimeError: needs a licence file"
    assert row["hooks"] == ["register_losses", "register_metrics"] and row["registered"] == {}
    assert "  zero (motionhub-zero 0.3.1): FAILED IN register_metrics - RuntimeError: needs a licence file\n" \
        in version_text(capsys)
    registry = get_registry()
    assert "zero" not in registry.names("loss")  # nothing of a broken plugin is half-registered
    with pytest.raises(ComponentUnavailableError) as info:
        registry.get("metric", "zero_metric")
    assert str(info.value) == (
        "metric 'zero_metric' comes from motionhub plugin 'zero' from distribution motionhub-zero 0.3.1 failed "
        "in register_metrics: RuntimeError: needs a licence file. Fix or update the plugin, or start without it: "
        "MOTIONHUB_DISABLE_PLUGINS=zero ('motionhub plugins' shows every plugin and its error).")
    assert registry.get("loss", "recon").provider == "motionhub_losses"


def test_a_first_party_plugin_can_fail_the_same_way(discover, capsys, caplog):
    core = importlib.metadata.distribution("motionhub")
    entry_points = {ep.name: ep.value for ep in core.entry_points if ep.group == "motionhub"}
    discover(core=FakeDistribution("motionhub", {**entry_points, "motionhub_optional": "motionhub_optional"}, "0.1.0"),
             modules={"motionhub_optional": "import scipy_that_is_not_installed\n"})
    row = plugins_json(capsys)["motionhub_optional", "motionhub"]
    assert row["builtin"] is True and row["status"] == "broken"
    assert "No module named 'scipy_that_is_not_installed'" in row["error"]
    message = next(r.getMessage() for r in caplog.records if "motionhub_optional" in r.getMessage())
    assert "MOTIONHUB_DISABLE_PLUGINS=motionhub_optional" in message and "pip uninstall" not in message
    assert get_registry().get("quantizer", "fsq").provider == "motionhub_quantizers"


def test_a_misspelled_hook_name_breaks_only_its_plugin_with_a_suggestion(discover, capsys):
    source = GOOD.replace("def register_losses", "def register_loss")
    discover(FakeDistribution("motionhub-typo", {"typo": "motionhub_typo"}), modules={"motionhub_typo": source})
    row = plugins_json(capsys)["typo", "motionhub-typo"]
    assert row["status"] == "broken"
    assert row["error"].startswith("plugin 'typo' implements unknown hook 'register_loss'; did you mean 'register_losses'?")
    assert get_registry().get("loss", "recon").provider == "motionhub_losses"


def test_a_hook_without_hookimpl_is_reported(discover, capsys, caplog):
    source = GOOD + """
    def register_encoders(register):
        register("forgotten", Zero)

    def register_decoder(register):
        pass
    """
    discover(FakeDistribution("motionhub-zero", {"zero": "motionhub_zero"}), modules={"motionhub_zero": source})
    row = plugins_json(capsys)["zero", "motionhub-zero"]
    assert row["status"] == "loaded" and row["registered"] == {"losses": ["zero"]}
    assert row["warnings"] == [
        "plugin 'zero' defines register_decoder() without @motionhub.hookimpl, so motionhub never calls it "
        "(and the hook is named 'register_decoders'); mark it with @motionhub.hookimpl",
        "plugin 'zero' defines register_encoders() without @motionhub.hookimpl, so motionhub never calls it; "
        "mark it with @motionhub.hookimpl"]
    logged = [r.getMessage() for r in caplog.records]
    assert all(warning in logged for warning in row["warnings"])


def test_a_duplicate_name_from_a_third_party_names_both_distributions(discover, capsys):
    source = GOOD.replace('register("zero", Zero)', 'register("recon", Zero)')
    discover(FakeDistribution("motionhub-dup", {"dup": "motionhub_dup"}), modules={"motionhub_dup": source})
    rows = plugins_json(capsys)  # still works, and shows the conflict on both plugins
    conflict = rows["dup", "motionhub-dup"]["conflicts"]
    assert conflict == rows["motionhub_losses", "motionhub"]["conflicts"]
    assert conflict == [
        "loss 'recon' is registered by 2 plugins: 'motionhub_losses' (motionhub 0.1.0) as "
        "motionhub_losses.reconstruction:ReconstructionLoss; 'dup' (motionhub-dup 0.3.1) as motionhub_dup:Zero. "
        "A name must be unique, so none of them is used. Start without one of them, e.g. "
        "MOTIONHUB_DISABLE_PLUGINS=dup motionhub ..., or uninstall it; 'motionhub plugins' shows where each "
        "plugin comes from."]
    with pytest.raises(RecipeError) as info:
        recipe_from_tree(TINY_RECIPE, "r.yaml")
    assert f"losses[0].name: {conflict[0]}" in str(info.value)


def test_two_distributions_with_one_entry_point_name_is_an_error_naming_both(discover, capsys):
    discover(FakeDistribution("motionhub-zero", {"zero": "motionhub_zero"}),
             FakeDistribution("motionhub-nil", {"zero": "motionhub_nil"}, version="2.0"),
             modules={"motionhub_zero": GOOD, "motionhub_nil": GOOD})
    rows = plugins_json(capsys)
    assert rows["zero", "motionhub-zero"]["status"] == "loaded"
    clash = rows["zero", "motionhub-nil"]
    assert clash["status"] == "broken" and clash["failed_in"] == "entry point"
    assert clash["error"] == (
        "its entry-point name 'zero' is also used by distribution motionhub-zero 0.3.1 (loaded as plugin 'zero'); "
        "two plugins cannot share a name. Rename the entry point in one of them, uninstall one, or choose one "
        "with MOTIONHUB_DISABLE_PLUGINS=motionhub-nil")
    assert "motionhub_nil" not in sys.modules


def test_a_distribution_found_twice_on_the_path_counts_once(discover, capsys):
    zero = FakeDistribution("motionhub-zero", {"zero": "motionhub_zero"})
    discover(zero, FakeDistribution("motionhub_zero", {"zero": "motionhub_zero"}), modules={"motionhub_zero": GOOD})
    assert [row["status"] for key, row in plugins_json(capsys).items() if key[0] == "zero"] == ["loaded"]


def test_missing_first_party_entry_points_are_reported(discover, caplog):
    discover(core=FakeDistribution("motionhub", {}, "0.1.0"))
    assert any("motionhub's own plugins were not found" in r.getMessage() and "pip install -e ." in r.getMessage()
               for r in caplog.records)


def test_contributing_test_pattern_works_for_an_installed_plugin(discover, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "plugins" / "motionhub-example"))
    discover(FakeDistribution("motionhub-example", {"example": "motionhub_example"}, "0.1.0"))
    import motionhub_example

    assert pm.get_plugin("example") is motionhub_example  # installed: registered through its entry point
    for name in ("example", "example-under-test"):
        with registered_plugin(motionhub_example, name):
            assert get_registry().get("loss", "smoothness").provider == name
        assert pm.get_plugin("example") is motionhub_example
    assert get_registry().get("loss", "smoothness").provider == "example"


def test_tests_load_only_motionhubs_own_entry_points(monkeypatch):
    stray = FakeDistribution("motionhub-stray", {"stray": "motionhub_stray_not_importable"})
    core = importlib.metadata.distribution("motionhub")
    monkeypatch.setattr(manager, "_distributions", lambda: [stray, core])
    manager.reset()
    try:
        manager.load_plugins()
        assert "stray" not in {info.name for info in manager.plugin_infos()}
        assert manager.load_failures() == []
    finally:
        manager.reset()


def test_a_real_installed_plugin_is_found_and_help_and_plugins_import_no_torch(tmp_path):
    """End to end in a fresh process: a dist-info folder on PYTHONPATH, real entry-point discovery."""
    info = tmp_path / "motionhub_zero-0.3.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: motionhub-zero\nVersion: 0.3.1\n")
    (info / "entry_points.txt").write_text("[motionhub]\nzero = motionhub_zero\n")
    (tmp_path / "motionhub_zero.py").write_text(textwrap.dedent("""
        import motionhub

        @motionhub.hookimpl
        def register_losses(register):
            register("zero", "motionhub_zero_loss:Zero")
    """))
    (tmp_path / "motionhub_zero_loss.py").write_text(textwrap.dedent(GOOD).split("@motionhub.hookimpl")[0])
    script = textwrap.dedent("""
        import contextlib, io, json, sys
        from motionhub.cli import main

        with contextlib.redirect_stdout(io.StringIO()) as help_text:
            try:
                main(["--help"])
            except SystemExit:
                pass
        assert "plugins" in help_text.getvalue()
        assert "torch" not in sys.modules, "motionhub --help imported torch"
        with contextlib.redirect_stdout(io.StringIO()) as out:
            assert main(["plugins"]) == 0
        assert "torch" not in sys.modules, "motionhub plugins imported torch"
        assert "motionhub_zero_loss" not in sys.modules
        print(json.dumps(json.loads(out.getvalue())))
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("MOTIONHUB_LOAD_PLUGINS", "MOTIONHUB_DISABLE_PLUGINS")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), *filter(None, [env.get("PYTHONPATH")])])
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["zero"]["distribution"] == "motionhub-zero" and rows["zero"]["registered"] == {"losses": ["zero"]}
    assert rows["motionhub_conv"]["builtin"] is True and rows["motionhub_conv"]["registered"]["encoders"] == ["conv1d"]


OUTSIDE = '''
    """An outside plugin written from CONTRIBUTING alone: a command, an importer and an exporter."""
    import json
    from pathlib import Path

    import motionhub
    from motionhub.api import Command, Exporter, ExportResult, StateDictImporter


    class ClipLengths(Exporter):
        """Clip ids and frame counts of a split, as JSON.

        minimum: leave out clips shorter than this many frames
        """

        output = "clip lengths"

        def __init__(self, minimum: int = 0):
            self.minimum = minimum

        def export(self, source, out_path):
            lengths = {clip.id: len(clip.features) for clip in source if len(clip.features) >= self.minimum}
            Path(out_path).write_text(json.dumps(lengths))
            return ExportResult(files=[Path(out_path)], clips=len(lengths))


    class PrefixedWeights(StateDictImporter):
        """A bare torch state dict whose keys carry a prefix.

        prefix: the prefix to strip
        """

        source = "prefixed"

        def __init__(self, recipe: Path, prefix: str = "net.", no_data: bool = False,
                     stats_mean: Path | None = None, stats_std: Path | None = None, overrides=()):
            super().__init__(recipe, no_data, stats_mean, stats_std, overrides)
            self.prefix = prefix

        def key_map(self, model, reference):
            return {key: self.prefix + key for key in model.state_dict()}


    class Shout(Command):
        """Say something loudly."""

        help = "print the words in capitals"

        def add_arguments(self, parser):
            parser.add_argument("words", nargs="+")

        def run(self, args):
            print(" ".join(args.words).upper())
            return 0


    @motionhub.hookimpl
    def register_exporters(register):
        register("clip_lengths", ClipLengths)


    @motionhub.hookimpl
    def register_importers(register):
        register("prefixed", PrefixedWeights)


    @motionhub.hookimpl
    def register_commands(register):
        register("shout", "motionhub_outside:Shout")
'''


def test_an_outside_plugin_adds_a_command_an_importer_and_an_exporter(discover, tmp_path, capsys):
    import torch
    import yaml

    from motionhub.cli import main
    from motionhub.model.build import build_dataset, build_tokenizer

    discover(FakeDistribution("motionhub-outside", {"outside": "motionhub_outside"}),
             modules={"motionhub_outside": OUTSIDE})
    assert main(["shout", "hello", "tokens"]) == 0
    assert capsys.readouterr().out == "HELLO TOKENS\n"

    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump({**TINY_RECIPE, "run": {**TINY_RECIPE["run"], "out": str(tmp_path / "r")}}))
    for minimum in (0, 50):
        assert main(["export", "clip_lengths", str(recipe_path), "--out", str(tmp_path / f"{minimum}.json"),
                     "--split", "train", "--minimum", str(minimum)]) == 0
    every, long = (json.loads((tmp_path / f"{m}.json").read_text()) for m in (0, 50))
    assert len(every) == 10 and 0 < len(long) < 10  # the option reached the exporter
    assert long == {clip: frames for clip, frames in every.items() if frames >= 50}

    recipe = recipe_from_tree(yaml.safe_load(recipe_path.read_text()), str(recipe_path))
    model = build_tokenizer(recipe, build_dataset(recipe).format)
    torch.save({f"w.{key}": value for key, value in model.state_dict().items()}, tmp_path / "weights.pt")
    assert main(["import", "prefixed", str(tmp_path / "weights.pt"), "--recipe", str(recipe_path),
                 "--out", str(tmp_path / "imported"), "--prefix", "w."]) == 0
    saved = torch.load(tmp_path / "imported" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(saved[key], value) for key, value in model.state_dict().items())
