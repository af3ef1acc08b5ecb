"""`harness submit`: validate a run's (or a file's) predictions and package the submission zip."""

from __future__ import annotations

import argparse
import sys

from harness.folders.run import resolve_prediction
from harness.runtime.findings import MAX_ERROR_LINES, finding_lines, from_problems
from submissions import FormatError
from submissions.package import check_package_target, package_submission

NAME = "submit"
HELP = "Validate predictions against the sample file and package the ABAW submission zip with a manifest."
EXAMPLES = [
    "harness submit runs/demo/fold0 --sample DATA/VA_test_set_sample.txt --out submission.zip",
    "harness submit predictions.csv --sample VA_test_set_sample.txt --out team_run1.zip",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_or_pred", help="run folder (uses predictions/submission.csv) or a prediction file")
    p.add_argument("--sample", required=True, help="the organisers' sample file (frame list of the test set)")
    p.add_argument("--out", required=True, help="zip file to write (must end in .zip)")
    p.add_argument("--force", action="store_true",
                   help="replace an existing --out file that is not a package this command wrote")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    try:
        check_package_target(args.out, args.force)  # a refused --out first, before any run file is read
        pred, run_dir = resolve_prediction(args.run_or_pred)
        meta = {**(run_dir.metadata() if run_dir is not None else {}), "command": " ".join(sys.argv)}
        pkg = package_submission(pred, args.sample, args.out, metadata=meta, force=args.force)
    except FormatError as exc:
        # The prediction file's problems, one located line each on stderr (nothing was written).
        for line in finding_lines(from_problems(exc.problems), limit=MAX_ERROR_LINES):
            print(line, file=sys.stderr, flush=True)
        return 2
    print(f"packaged {pkg.path}")
    for name, digest in sorted(pkg.manifest["files"].items()):
        print(f"  {name}  sha256 {digest}")
    print(f"  manifest.json  (source {pkg.manifest['source']}, sample {pkg.manifest['sample_file']})")
    return 0
