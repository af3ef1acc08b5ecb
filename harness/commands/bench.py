"""`harness bench`: run the pytest-benchmark suite and write a JSON + Markdown report beside the device's peak."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from harness.bench import run_benchmarks
from harness.tables import print_table

NAME = "bench"
HELP = (
    "Run the benchmark suite (tests/benchmarks) and write report.json + report.md with FLOP/s against peak; "
    "an interrupted run resumes, measuring only what it had not finished."
)
EXAMPLES = [
    "harness bench --out ci/benchmarks/cpu",
    "harness bench -k scoring --out /tmp/bench",
    "harness bench --out /tmp/bench --fresh",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="bench_report", help="folder for the report (default bench_report)")
    p.add_argument("-k", dest="select", help="only benchmarks matching this pytest -k expression")
    p.add_argument("--fresh", action="store_true", help="measure everything, discarding an interrupted run's rows")
    p.add_argument("--suite", type=Path, help="benchmark folder (default: the repository's tests/benchmarks)")


def run(args: argparse.Namespace) -> int:
    console = Console()

    def say(line: str) -> None:
        console.print(line, soft_wrap=True, highlight=False, markup=False)

    df = run_benchmarks(Path(args.out), args.select, suite=args.suite, fresh=args.fresh, log=say)
    print_table(df, title="Benchmarks", console=console, floats=3)
    console.print(f"report: {Path(args.out) / 'report.md'}")
    return 0
