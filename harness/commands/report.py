"""`harness report`: one self-contained HTML page of a demo, an experiment or a run (tables, leaderboard, plots)."""

from __future__ import annotations

import argparse

from rich.console import Console

from harness.reporting.report import write_report

NAME = "report"
HELP = ("Write one self-contained HTML report (tables with intervals, leaderboard, plots, config, environment) of "
        "a demo, experiment or run folder; it opens from disk, offline.")
EXAMPLES = [
    "harness report demo_runs/quick                      # writes demo_runs/quick/report.html",
    "harness report demo_runs/demo --out /tmp/demo.html  # a full demo's report elsewhere",
    "harness report runs/paper                           # an experiment folder (harness folds / ablate)",
    "harness report runs/paper/folds/fold0               # a single run: its scores, curves and config",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="RUN_OR_EXPERIMENT",
                   help="a demo folder (harness demo --out), an experiment folder or a run folder")
    p.add_argument("--out", metavar="FILE.html", help="the report's file (default SOURCE/report.html)")


def run(args: argparse.Namespace) -> int:
    path = write_report(args.source, args.out)
    Console().print(f"report: {path}", highlight=False, soft_wrap=True)
    return 0
