"""`harness validate`: check a prediction file, or a submission package, against the organisers' sample file."""

from __future__ import annotations

import argparse
import dataclasses
import tempfile

from harness.runtime.findings import finding_lines, findings_json, from_problems
from submissions import Problem
from submissions.formats import validate_submission
from submissions.package import PREDICTION_NAME, inspect_package, is_zip_file

NAME = "validate"
HELP = "Validate a submission file or package (.zip) against the sample file; list every problem with line and reason."
EXAMPLES = [
    "harness validate predictions.csv --sample VA_test_set_sample.txt",
    "harness validate submission.zip --sample VA_test_set_sample.txt",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pred", help="submission file (image_location,valence,arousal) or a `harness submit` package")
    p.add_argument("--sample", help="the organisers' sample file (frame list); without it, only the structure")
    p.add_argument("--max", type=int, default=50, help="show at most this many problems (default 50)")
    p.add_argument("--json", action="store_true", help="print every problem as a JSON list of {path, line, "
                   "severity, message, code}, nothing else (--max does not apply)")  # fmt: skip


def validate_path(pred: str, sample: str | None) -> tuple[list[Problem], str]:
    """The problems of a prediction file or a package, and what was checked (for the report line).

    A `.zip` (by its content) is checked as a package: safe extraction, manifest, checksums, then its prediction
    file against the sample.

    Args:
        pred: the file.
        sample: the sample file, or None.

    Raises:
        HarnessError: the file cannot be read, or the package is unsafe or damaged.
    """
    if is_zip_file(pred):
        with tempfile.TemporaryDirectory(prefix="harness-validate-") as work:
            _, problems = inspect_package(pred, sample, work)
        # Name the member inside the zip, not the temporary copy (gone when this returns).
        inside = f"{pred}!{PREDICTION_NAME}"
        return [dataclasses.replace(p, path=inside) for p in problems], "package (manifest and checksums checked)"
    return validate_submission(pred, sample), "prediction file"


def run(args: argparse.Namespace) -> int:
    problems, what = validate_path(args.pred, args.sample)
    if args.json:
        print(findings_json(from_problems(problems)))
        return 1 if problems else 0
    if not problems:
        print(f"valid {what}: {args.pred}")
        return 0
    print(f"{len(problems)} problem(s) in {args.pred}:")
    # Plain lines in a terminal too: a validator's output is read by editors and scripts as often as by people.
    for line in finding_lines(from_problems(problems), limit=max(args.max, 0), more_at=args.pred):
        print(line)
    return 1
