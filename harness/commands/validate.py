"""`harness validate`: check a prediction file against the organisers' sample file, listing every problem."""

from __future__ import annotations

import argparse

from rich.console import Console

from submissions.formats import validate_submission

NAME = "validate"
HELP = "Validate a submission file against the sample file; list every problem with line and reason."
EXAMPLES = ["harness validate predictions.csv --sample VA_test_set_sample.txt"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pred", help="submission file (image_location,valence,arousal)")
    p.add_argument("--sample", help="the organisers' sample file (frame list); without it, only the structure")
    p.add_argument("--max", type=int, default=50, help="show at most this many problems (default 50)")


def run(args: argparse.Namespace) -> int:
    console = Console()
    problems = validate_submission(args.pred, args.sample)
    if not problems:
        console.print(f"[green]valid[/]: {args.pred}")
        return 0
    console.print(f"[red]{len(problems)} problem(s)[/] in {args.pred}:")
    for p in problems[: args.max]:
        console.print(f"  {p}", highlight=False, markup=False)
    if len(problems) > args.max:
        console.print(f"  ... and {len(problems) - args.max} more")
    return 1
