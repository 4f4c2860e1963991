"""Third-party discovery through the ``motionhub`` entry-point group, in real subprocesses.

Each test writes a fake installed distribution (a ``*.dist-info`` folder with entry points
next to its module) into a temporary folder put on PYTHONPATH, as pip would install it.
"""

import json
import textwrap
from pathlib import Path

from helpers import run_cli


def fake_distribution(root: Path, dist: str, module: str, source: str, entry_name: str | None = None) -> Path:
    info = root / f"{dist.replace('-', '_')}-0.3.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3.1\n")
    (info / "entry_points.txt").write_text(f"[motionhub]\n{entry_name or module} = {module}\n")
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    return root


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


def test_an_installed_plugin_is_listed_with_version_hooks_and_names(tmp_path):
    fake_distribution(tmp_path, "motionhub-zero", "motionhub_zero", GOOD, entry_name="zero")
    result = run_cli("plugins", pythonpath=[tmp_path])
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["zero"] == {"name": "zero", "version": "0.3.1", "distribution": "motionhub-zero",
                            "builtin": False, "hooks": ["register_losses"],
                            "registered": {"losses": ["zero"]}}
    assert rows["motionhub_quantizers"]["builtin"] is True
    listing = run_cli("list", "losses", pythonpath=[tmp_path])
    assert "zero" in listing.stdout and "Always zero." in listing.stdout
    version = run_cli("--version", pythonpath=[tmp_path])
    assert "zero (motionhub-zero 0.3.1)" in version.stdout


def test_load_plugins_env_restricts_third_party_plugins(tmp_path):
    fake_distribution(tmp_path, "motionhub-zero", "motionhub_zero", GOOD, entry_name="zero")
    for value, expected in (("", False), ("motionhub-zero", True), ("zero,other", True), ("other", False)):
        result = run_cli("plugins", pythonpath=[tmp_path], env={"MOTIONHUB_LOAD_PLUGINS": value})
        names = {row["name"] for row in json.loads(result.stdout)}
        assert ("zero" in names) is expected, value
        assert "motionhub_synthetic" in names  # first-party plugins always load


def test_a_plugin_that_fails_to_import_is_reported_with_its_distribution_and_a_way_out(tmp_path):
    fake_distribution(tmp_path, "motionhub-broken", "motionhub_broken", "import no_such_module_xyz\n")
    listing = run_cli("plugins", pythonpath=[tmp_path])
    assert listing.returncode == 0, listing.stderr
    broken = [row for row in json.loads(listing.stdout) if row["name"] == "motionhub_broken"]
    assert broken and "ModuleNotFoundError" in broken[0]["error"]

    result = run_cli("list", "datasets", pythonpath=[tmp_path])
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "motionhub plugin 'motionhub_broken' from distribution motionhub-broken 0.3.1 failed to load" in result.stderr
    assert "No module named 'no_such_module_xyz'" in result.stderr
    assert "MOTIONHUB_LOAD_PLUGINS=''" in result.stderr and "pip uninstall motionhub-broken" in result.stderr

    recovered = run_cli("list", "datasets", pythonpath=[tmp_path], env={"MOTIONHUB_LOAD_PLUGINS": ""})
    assert recovered.returncode == 0 and "synthetic" in recovered.stdout


def test_a_misspelled_hook_name_is_rejected_with_a_suggestion(tmp_path):
    source = GOOD.replace("def register_losses", "def register_loss")
    fake_distribution(tmp_path, "motionhub-typo", "motionhub_typo", source)
    result = run_cli("list", "losses", pythonpath=[tmp_path])
    assert result.returncode != 0
    assert "implements unknown hook 'register_loss'; did you mean 'register_losses'?" in result.stderr


def test_a_duplicate_name_from_a_third_party_names_both_plugins(tmp_path):
    source = GOOD.replace('register("zero", Zero)', 'register("recon", Zero)')
    fake_distribution(tmp_path, "motionhub-dup", "motionhub_dup", source)
    result = run_cli("list", "losses", pythonpath=[tmp_path])
    assert result.returncode != 0
    assert "loss 'recon' is registered twice" in result.stderr
    assert "'motionhub_losses'" in result.stderr and "'motionhub_dup'" in result.stderr
