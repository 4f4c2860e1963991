"""The command line: version, listings, validation and clean errors."""

import json

from helpers import TINY_RECIPE, run_cli, write_recipe

from motionhub import __version__
from motionhub.cli import main


def test_version_lists_motionhub_and_plugins(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"motionhub {__version__}\n")
    assert "motionhub_quantizers (built-in)" in out


def test_plugins_prints_json_with_registered_names(capsys):
    assert main(["plugins"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["motionhub_quantizers"]["registered"]["quantizers"] == ["fsq", "lfq", "rvq", "rvq_ema_reset", "vq",
                                                                        "vq_ema_reset"]
    assert rows["motionhub_conv"]["hooks"] == ["register_decoders", "register_encoders", "register_importers"]
    assert rows["motionhub_conv"]["registered"]["importers"] == ["momask", "motiongpt", "motionmillion", "t2m-gpt"]
    assert {"train", "eval", "import", "export", "list"} <= set(rows["motionhub.commands"]["registered"]["commands"])


def test_list_shows_name_provider_and_description(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # descriptions on one line each, whatever the longest name
    assert main(["list", "losses"]) == 0
    out = capsys.readouterr().out
    assert "recon" in out and "motionhub_losses" in out and "named slice" in out
    assert main(["list", "quantizer"]) == 0  # singular works too


def test_list_of_an_unknown_kind_suggests_one(capsys):
    assert main(["list", "quantisers"]) == 2
    assert "unknown kind 'quantisers'; did you mean 'quantizers'?" in capsys.readouterr().err


def test_validate_prints_the_components(tmp_path, capsys):
    recipe = write_recipe(tmp_path / "r.yaml")
    assert main(["validate", str(recipe)]) == 0
    assert "OK (data=synthetic encoder=conv1d quantizer=fsq decoder=conv1d losses=recon,feature)" in capsys.readouterr().out


def test_user_errors_exit_non_zero_without_traceback_unless_debug(tmp_path):
    missing = run_cli("validate", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"Error: recipe file not found: {tmp_path / 'nope.yaml'}"
    debug = run_cli("--debug", "validate", str(tmp_path / "nope.yaml"))
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_errors_raised_while_building_name_the_section(tmp_path, capsys):
    recipe = write_recipe(tmp_path / "r.yaml", {**TINY_RECIPE, "data": {**TINY_RECIPE["data"], "min_frames": 90}})
    assert main(["train", str(recipe), f"run.out={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert "data (dataset 'synthetic'): need 2 <= min_frames <= max_frames, got 90 and 60" in err


def test_pack_fills_the_cache_that_training_then_reuses(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MOTIONHUB_CACHE", str(tmp_path / "cache"))
    recipe = write_recipe(tmp_path / "r.yaml")
    assert main(["pack", str(recipe)]) == 0
    out = capsys.readouterr().out
    assert "train" in out and "val" in out and "test" in out and "float32" in out
    stores = sorted((tmp_path / "cache").rglob("*.h5"))
    assert sorted(p.name for p in stores) == ["test.h5", "train.h5", "val.h5"]
    before = {p: p.stat().st_mtime_ns for p in stores}
    assert main(["train", str(recipe), f"run.out={tmp_path / 'run'}", "train.iters=2"]) == 0
    assert {p: p.stat().st_mtime_ns for p in stores} == before  # opened, not packed again
