"""`harness doctor`: list every problem of a dataset root, a run folder or a submission file."""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl
from rich.console import Console

from harness.doctor import check_path
from harness.tables import print_table

NAME = "doctor"
HELP = "Check a dataset root, a run folder, a submission file or package (.zip) and list every problem found."
EXAMPLES = [
    "harness doctor /data/Aff-Wild2",
    "harness doctor runs/demo/fold0 --sample DATA/VA_test_set_sample.txt",
    "harness doctor predictions.csv --sample VA_test_set_sample.txt",
    "harness doctor submission.zip --sample VA_test_set_sample.txt",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="dataset root, run folder, prediction file, or submission package (.zip)")
    p.add_argument("--sample", help="the organisers' sample file, to validate predictions against")


def run(args: argparse.Namespace) -> int:
    findings = check_path(Path(args.path), Path(args.sample) if args.sample else None)
    console = Console()
    if not findings:
        console.print(f"[green]no problems found[/] in {args.path}")
        return 0
    df = pl.DataFrame([f.__dict__ for f in findings])
    print_table(df, title=f"harness doctor {args.path}", console=console)
    errors = sum(f.severity == "error" for f in findings)
    console.print(f"{errors} error(s), {len(findings) - errors} warning(s)")
    return 1 if errors else 0
