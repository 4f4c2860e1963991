"""Sub-commands come from the registry: the core's through its own plugin, a third party's through
``register_commands``; exporter and importer options come from their constructors."""

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Literal, Optional

import pytest
from helpers import write_recipe

import motionhub
from motionhub.api import Bounds, Command, Exporter, ExportResult
from motionhub.cli import main
from motionhub.commands import builtin
from motionhub.commands.options import add_component_options, component_options
from motionhub.plugins.manager import get_registry
from motionhub.plugins.registry import Component
from motionhub.plugins.testing import registered_plugin

CORE_COMMANDS = {"train", "validate", "report", "eval", "encode", "decode", "bench", "render", "compare", "pack",
                 "package", "import", "export", "plugins", "list"}


class Greet(Command):
    """Say hello (a test command)."""

    help = "say hello to someone"
    description = "Print a greeting.\n\nThen exit with the code given."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--code", type=int, default=0)
        parser.add_argument("overrides", nargs="*", metavar="key=value")

    def run(self, args):
        print(f"hello {args.name} {' '.join(args.overrides)}".strip())
        return args.code


class GreetPlugin:
    @motionhub.hookimpl
    def register_commands(self, register):
        register("greet", Greet)


def test_the_core_commands_are_registered_by_the_cores_own_plugin_through_the_hook():
    registry = get_registry()
    assert {c.name for c in registry.components("command") if c.provider == "motionhub.commands"} == CORE_COMMANDS
    assert hasattr(builtin.register_commands, "motionhub_impl")  # an ordinary @hookimpl, not a special path


def test_help_lists_every_command_and_imports_no_torch():
    code = ("import sys\nfrom motionhub.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO TORCH')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("NO TORCH")
    for name in (*CORE_COMMANDS, "prepare", "export-pfnn"):
        assert f"\n    {name} " in result.stdout or f"\n    {name}\n" in result.stdout, name


def test_a_third_party_command_runs_through_the_cli(capsys):
    with registered_plugin(GreetPlugin(), "greeter"):
        assert main(["greet", "world", "a=1", "--code", "3", "b=2"]) == 3
        assert capsys.readouterr().out == "hello world a=1 b=2\n"
        with pytest.raises(SystemExit):
            main(["greet", "--help"])
        out = capsys.readouterr().out
        assert "usage: motionhub greet" in out and "Print a greeting.\n\nThen exit" in out
        assert get_registry().get("command", "greet").provider == "greeter"
    with pytest.raises(SystemExit):
        main(["greet", "world"])
    assert "unknown command 'greet'" in capsys.readouterr().err


def test_a_command_name_two_plugins_register_is_an_error_naming_both(capsys):
    class Clash:
        @motionhub.hookimpl
        def register_commands(self, register):
            register("train", Greet)

    with registered_plugin(Clash(), "clashing-plugin"):
        with pytest.raises(SystemExit) as exit_info:
            main(["train", "recipe.yaml"])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "command 'train' is registered by 2 plugins" in err
        assert "'motionhub.commands'" in err and "'clashing-plugin'" in err
        assert main(["list", "losses"]) == 0  # every other command still works


def test_a_command_that_breaks_the_contract_is_refused_naming_its_plugin(capsys):
    class NoRun:
        help = "does nothing"

    class Broken:
        @motionhub.hookimpl
        def register_commands(self, register):
            register("norun", NoRun)
            register("gone", "motionhub_no_such_module.commands:Gone")

    with registered_plugin(Broken(), "broken-plugin"):
        with pytest.raises(SystemExit) as exit_info:
            main(["norun"])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "plugin 'broken-plugin' registered command 'norun'" in err and "without add_arguments(parser)" in err
        with pytest.raises(SystemExit):
            main(["--help"])
        listed = " ".join(capsys.readouterr().out.split())
        assert "gone UNAVAILABLE: plugin 'broken-plugin' registered command 'gone'" in listed
        assert "train train what a recipe names" in listed  # the others are listed as ever
        with pytest.raises(SystemExit):
            main(["gone"])
        assert "importing 'motionhub_no_such_module.commands' failed" in capsys.readouterr().err


def test_an_unknown_command_suggests_the_closest(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evl", "runs/x"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown command 'evl'; did you mean 'eval'?" in err and "Available commands: bench, " in err


# ---------------------------------------------------------------------------- options from constructors
class Widgets(Exporter):
    """Widgets of every clip.

    count: widgets per clip
    scale: how big each is
    labels: names to print
    mode: how to draw them
    table: where to read sizes from
    fancy: draw them fancily
    overrides: recipe overrides
    """

    def __init__(self, table: Path, count: Annotated[int, Bounds(low=1)] = 2, scale: Optional[float] = None,
                 labels: list[str] = ("a", "b"), mode: Literal["flat", "round"] = "flat", fancy: bool = True,
                 sizes: tuple[int, ...] = ()):
        self.options = dict(table=table, count=count, scale=scale, labels=labels, mode=mode, fancy=fancy, sizes=sizes)

    def export(self, source, out_path):
        return ExportResult([out_path], 0)


def widget_parser(cls=Widgets, reserved=()):
    parser = argparse.ArgumentParser(prog="widgets", formatter_class=argparse.RawTextHelpFormatter)
    names = add_component_options(parser, Component("exporter", "widgets", cls, "test-plugin"), reserved)
    return parser, names


def test_each_constructor_argument_becomes_a_typed_option():
    parser, names = widget_parser()
    assert names == ["table", "count", "scale", "labels", "mode", "fancy", "sizes"]
    args = parser.parse_args(["--table", "t.csv", "--count", "5", "--scale", "0.5", "--labels", "x, y,z",
                              "--mode", "round", "--no-fancy", "--sizes", "1,2"])
    assert component_options(args, names) == {"table": Path("t.csv"), "count": 5, "scale": 0.5,
                                              "labels": ["x", "y", "z"], "mode": "round", "fancy": False,
                                              "sizes": (1, 2)}
    defaults = component_options(parser.parse_args(["--table", "t.csv"]), names)
    assert defaults == {"table": Path("t.csv"), "count": 2, "scale": None, "labels": ("a", "b"), "mode": "flat",
                        "fancy": True, "sizes": ()}
    assert Widgets(**defaults).options["labels"] == ("a", "b")


@pytest.mark.parametrize(("argv", "message"), [
    ([], "the following arguments are required: --table"),
    (["--table", "t", "--count", "0"], "argument --count: must be at least 1, got 0"),
    (["--table", "t", "--count", "two"], "argument --count: expected an integer, got 'two'"),
    (["--table", "t", "--mode", "square"], "argument --mode: invalid choice: 'square' (choose from 'flat', 'round')"),
    (["--table", "t", "--sizes", "1,x"], "argument --sizes: expected an integer, got 'x'"),
])
def test_bad_option_values_are_named(capsys, argv, message):
    parser, _ = widget_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(argv)
    assert message in capsys.readouterr().err


def test_option_help_is_the_docstring_line_with_the_default(capsys):
    parser, _ = widget_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    out = capsys.readouterr().out
    assert "widgets per clip (default: 2)" in out and "names to print (default: a,b)" in out
    assert "--no-fancy" in out and "--labels LABELS,..." in out


def test_an_argument_named_like_the_commands_own_is_refused_naming_the_plugin():
    class Splitter(Exporter):
        def __init__(self, split: str = "train"):
            pass

    with pytest.raises(motionhub.api.MotionhubError, match=r"exporter 'widgets' of plugin 'test-plugin' has the "
                                                           r"argument 'split', which the command uses itself"):
        widget_parser(Splitter, reserved=("source", "out", "split"))


def test_export_builds_the_exporter_from_its_options_end_to_end(tmp_path, capsys):
    seen = {}

    class Recorder(Exporter):
        """Records what it was given.

        every: keep every n-th clip
        """

        output = "recording"

        def __init__(self, every: Annotated[int, Bounds(low=1)] = 1):
            self.every = every

        def export(self, source, out_path):
            ids = [clip.id for clip in source][:: self.every]
            seen.update(every=self.every, ids=ids, split=source.split, run=source.run)
            Path(out_path).write_text("\n".join(ids))
            return ExportResult([Path(out_path)], len(ids), {"too dull": ["x"]}, {"widgets": 3})

    class RecorderPlugin:
        @motionhub.hookimpl
        def register_exporters(self, register):
            register("recorder", Recorder)

    recipe = write_recipe(tmp_path / "r.yaml")
    with registered_plugin(RecorderPlugin(), "recorder-plugin"):
        assert main(["export", "recorder", str(recipe), "--out", str(tmp_path / "ids.txt"), "--every", "2",
                     "--split", "val", "data.clips=20"]) == 0
    out = capsys.readouterr().out
    assert seen["every"] == 2 and seen["split"] == "val" and seen["run"] is None and seen["ids"]
    assert f"recording: {tmp_path / 'ids.txt'}\n" in out and "skipped 1: too dull (x)" in out and "widgets: 3" in out
    assert (tmp_path / "ids.txt").read_text().split("\n") == seen["ids"]


def test_an_exporter_that_needs_the_model_gets_the_trained_run(tmp_path, capsys):
    seen = {}

    class Tokens(Exporter):
        """Token ids of the first clip."""

        needs_model = True

        def export(self, source, out_path):
            import torch

            clip = next(iter(source))
            x = torch.as_tensor(source.run.format.normalise(clip.features[:32]))[None]
            with torch.no_grad():
                seen["indices"] = source.run.model(x)["indices"]
            seen["step"] = source.run.step
            Path(out_path).write_text(" ".join(map(str, seen["indices"].flatten().tolist())))
            return ExportResult([Path(out_path)], 1)

    class TokensPlugin:
        @motionhub.hookimpl
        def register_exporters(self, register):
            register("tokens", Tokens)

    recipe = write_recipe(tmp_path / "r.yaml")
    run = tmp_path / "run"
    assert main(["train", str(recipe), f"run.out={run}", "train.iters=2"]) == 0
    with registered_plugin(TokensPlugin(), "tokens-plugin"):
        assert main(["export", "tokens", str(recipe), "--out", str(tmp_path / "t.txt")]) == 2
        assert "the tokens exporter needs a trained model: pass a run directory" in capsys.readouterr().err
        assert main(["export", "tokens", str(run), "--out", str(tmp_path / "t.txt"), "--checkpoint", "last"]) == 0
    assert seen["step"] == 2 and (tmp_path / "t.txt").read_text().split() == [
        str(i) for i in seen["indices"].flatten().tolist()]


@pytest.mark.parametrize("command", ["export", "import"])
def test_export_and_import_without_a_component_say_it_is_required(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([command])
    assert exit_info.value.code == 2
    assert f"the following arguments are required: <{command}er>" in capsys.readouterr().err
