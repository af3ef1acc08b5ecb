"""`harness bench`: run the pytest-benchmark suite and write a JSON + Markdown report beside the device's peak."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from harness.bench import run_benchmarks
from harness.tables import print_table

NAME = "bench"
HELP = "Run the benchmark suite (tests/benchmarks) and write report.json + report.md with FLOP/s against peak."
EXAMPLES = ["harness bench --out ci/benchmarks/cpu", "harness bench -k scoring --out /tmp/bench"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="bench_report", help="folder for the report (default bench_report)")
    p.add_argument("-k", dest="select", help="only benchmarks matching this pytest -k expression")


def run(args: argparse.Namespace) -> int:
    df = run_benchmarks(Path(args.out), args.select)
    print_table(df, title="Benchmarks", console=Console(), floats=3)
    Console().print(f"report: {Path(args.out) / 'report.md'}")
    return 0
