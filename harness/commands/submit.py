"""`harness submit`: validate a run's, an ensemble's (or a file's) predictions and package the submission zip;
with `--plan`, up to five candidate submissions and their honest estimates, before a test submission is spent."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import polars as pl
from rich.console import Console

from core.atomic import atomic_write_text
from core.errors import HarnessError
from core.ownership import claim_folder
from harness.data import open_dataset
from harness.experiments import MAX_SUBMISSIONS, choose_candidates, plan_markdown, read_candidate
from harness.folders.run import resolve_prediction
from harness.reporting.tables import print_table
from harness.runtime.findings import MAX_ERROR_LINES, finding_lines, from_problems
from submissions import FormatError
from submissions.package import check_package_target, package_submission

NAME = "submit"
HELP = "Validate predictions against the sample file and package the ABAW submission zip with a manifest."
PLAN_FILE = "plan.md"
"""The plan's table, in the `--plan --out` folder (with the packages `1.zip` ... in the plan's order)."""
EXAMPLES = [
    "harness submit runs/demo/fold0 --sample DATA/VA_test_set_sample.txt --out submission.zip",
    "harness submit ens/ --sample DATA/VA_test_set_sample.txt --out team_ensemble.zip",
    "harness submit --plan runs/demo/folds/fold0 folds_ens/ fusion_ens/ --out plan/",
    "harness submit predictions.csv --sample VA_test_set_sample.txt --out team_run1.zip",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_or_pred", nargs="+",
                   help="run or ensemble folder (uses predictions/submission.csv) or a prediction file; with --plan, "
                        "the candidate run and ensemble folders")  # fmt: skip
    p.add_argument("--sample", help="the organisers' sample file (frame list of the test set); needed to package")
    p.add_argument("--out", help="zip file to write (must end in .zip); with --plan, a folder for plan.md (and, "
                                 "with --sample, one package per candidate)")  # fmt: skip
    p.add_argument("--plan", action="store_true",
                   help=f"print (and with --out write) up to {MAX_SUBMISSIONS} candidate submissions with their "
                        "honest estimates, intervals and paired differences")  # fmt: skip
    p.add_argument("--data", help="with --plan: the dataset root, for the runs' validation intervals")
    p.add_argument("--force", action="store_true",
                   help="replace an existing --out file that is not a package this command wrote")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if args.plan:
        return plan(args)
    if len(args.run_or_pred) != 1 or not args.sample or not args.out:
        raise HarnessError("give one run folder, ensemble folder or prediction file, --sample and --out (several "
                           "folders only with --plan)")  # fmt: skip
    return package(args.run_or_pred[0], args.sample, args.out, args.force)


def package(source: str, sample: str, out: str, force: bool) -> int:
    """Validate and package one run's, ensemble's or file's predictions; print what was written."""
    try:
        check_package_target(out, force)  # a refused --out first, before any run file is read
        pred, run_dir = resolve_prediction(source)
        meta = {**(run_dir.metadata() if run_dir is not None else {}), "command": " ".join(sys.argv)}
        pkg = package_submission(pred, sample, out, metadata=meta, force=force)
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


def plan(args: argparse.Namespace) -> int:
    """`--plan`: the candidates' table; with --out, plan.md in that folder and (with --sample) their packages."""
    layout = open_dataset(args.data)[0] if args.data else None
    candidates = [read_candidate(p, layout) for p in args.run_or_pred]
    for c in candidates:
        if not c.ready:
            print(f"not a candidate: {c.path} holds no test submission file (a cross-validation fold: submit the "
                  "folds as a fold ensemble, `harness ensemble --predict`)", file=sys.stderr)  # fmt: skip
    chosen = choose_candidates(candidates)
    df = pl.DataFrame([c.row() for c in chosen])
    print_table(df, title=f"Submission plan: {len(chosen)} of at most {MAX_SUBMISSIONS} test submissions",
                console=Console())  # fmt: skip
    if not args.out:
        return 0
    out = Path(args.out)
    names = [PLAN_FILE] + ([f"{i + 1}.zip" for i in range(len(chosen))] if args.sample else [])
    owned = claim_folder(out, names, what="submission plan folder", force=args.force,
                         warn=lambda line: print(f"warning: {line}", file=sys.stderr))  # fmt: skip
    atomic_write_text(out / PLAN_FILE, plan_markdown(chosen))
    owned.note(PLAN_FILE)
    print(f"wrote {out / PLAN_FILE}")
    if args.sample:
        for i, c in enumerate(chosen):
            code = package(str(c.path), args.sample, str(out / f"{i + 1}.zip"), True)
            owned.note(f"{i + 1}.zip")
            if code:
                return code
    return 0
