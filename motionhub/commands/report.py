"""``motionhub report RUN_DIR``: print a finished run's report (and write its report.md again)."""

from __future__ import annotations

from motionhub.commands import Command


class Report(Command):
    """Print a finished run's report and render its report.md again."""

    help = "print (and re-render report.md of) a finished run"

    def add_arguments(self, parser) -> None:
        parser.add_argument("run_dir", help="a run directory")

    def run(self, args) -> int:
        from pathlib import Path

        from rich.console import Console

        from motionhub.errors import MotionhubError
        from motionhub.train.report import load_report, print_report, render_markdown

        run_dir = Path(args.run_dir)
        if not (run_dir / "report.json").is_file():
            raise MotionhubError(f"no report.json in {run_dir}: is it a finished run directory?")
        report = load_report(run_dir)
        (run_dir / "report.md").write_text(render_markdown(report))
        print_report(report, Console())
        return 0
