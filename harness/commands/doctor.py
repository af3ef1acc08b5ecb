"""`harness doctor`: list every problem of a dataset root, a run folder or a submission file."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from harness.ops.doctor import check_path
from harness.runtime.findings import findings_json, print_findings

NAME = "doctor"
HELP = "Check a dataset root, a run folder, a submission file or package (.zip) and list every problem found."
EXAMPLES = [
    "harness doctor /data/Aff-Wild2",
    "harness doctor runs/demo/fold0 --sample DATA/VA_test_set_sample.txt",
    "harness doctor predictions.csv --sample VA_test_set_sample.txt",
    "harness doctor submission.zip --sample VA_test_set_sample.txt",
    "harness doctor /data/Aff-Wild2 --json > findings.json",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="dataset root, run folder, prediction file, or submission package (.zip)")
    p.add_argument("--sample", help="the organisers' sample file, to validate predictions against")
    p.add_argument("--json", action="store_true", help="print the findings as a JSON list of {path, line, severity, "
                   "message, code}, nothing else")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    findings = check_path(Path(args.path), Path(args.sample) if args.sample else None)
    errors = sum(f.severity == "error" for f in findings)
    if args.json:
        print(findings_json(findings))
        return 1 if errors else 0
    console = Console()
    if not findings:
        # soft_wrap: a long path stays on one line off a terminal too (rich would wrap it at COLUMNS).
        console.print(f"[green]no problems found[/] in {escape(args.path)}", soft_wrap=True, highlight=False)
        return 0
    print_findings(findings, console, title=f"harness doctor {args.path}")
    console.print(f"{errors} error(s), {len(findings) - errors} warning(s)", highlight=False)
    return 1 if errors else 0
