"""``motionhub report RUN_DIR``: print a finished run's report (and write its report.md again).

A run trained where matplotlib was missing has no figures; once it is installed, this command
draws them (and records them in report.json) before writing report.md.
"""

from __future__ import annotations

from motionhub.commands import Command


class Report(Command):
    """Print a finished run's report, draw its missing figures and render its report.md again."""

    help = "print (and re-render report.md of) a finished run, drawing figures it lacks"

    def add_arguments(self, parser) -> None:
        parser.add_argument("run_dir", help="a run directory")

    def run(self, args) -> int:
        import json
        from pathlib import Path

        from rich.console import Console
        from rich.markup import escape

        from motionhub.errors import MotionhubError
        from motionhub.train.report import load_report, print_report, render_markdown, report_figures
        from motionhub.train.figures import draw_report_figures

        run_dir = Path(args.run_dir)
        if not (run_dir / "report.json").is_file():
            raise MotionhubError(f"no report.json in {run_dir}: is it a finished run directory?")
        report = load_report(run_dir)
        # Figures are looked for where the run is now, which need not be where it was trained.
        here = {**report, "run": {**report["run"], "directory": str(run_dir)}}
        figures = None
        if (report.get("figures") or {}).get("skipped") or not report_figures(here):
            figures = here["figures"] = report["figures"] = draw_report_figures(run_dir, here)
            (run_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        (run_dir / "report.md").write_text(render_markdown(here))
        print_report(here, Console())
        if figures and figures.get("skipped"):
            Console(stderr=True).print(f"[yellow]note:[/] {escape(figures['skipped'])}")
        elif figures and figures["drawn"]:
            Console(stderr=True).print(f"drew {', '.join(figures['drawn'])} in {run_dir}")
        return 0
