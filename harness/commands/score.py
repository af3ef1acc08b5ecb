"""`harness score`: score a prediction file (either layout) against annotation files."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import polars as pl
from rich.console import Console

from harness.reporting.tables import print_table
from submissions.bootstrap import RESAMPLES, SEED, BootstrapCI
from submissions.scoring import ScoreReport, score_files

NAME = "score"
HELP = "Score predictions (single file or per-video folder) against annotation files: CCC_V, CCC_A, P_VA."
EXAMPLES = [
    "harness score runs/demo/fold0/predictions/submission.csv --labels DATA/organiser/VA_Estimation_Challenge/Test_Set",
    "harness score preds_dir/ --labels annotations/VA_Estimation_Challenge/Validation_Set --json",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pred", help="prediction file (image_location,valence,arousal) or folder of <video>.txt files")
    p.add_argument("--labels", required=True, help="folder of <video>.txt annotation files")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--per-video", action="store_true", help="also show each video's own score")
    p.add_argument("--resamples", type=int, default=RESAMPLES,
                   help=f"video-bootstrap resamples for the 95%% interval (default {RESAMPLES})")
    p.add_argument("--seed", type=int, default=SEED, help=f"seed of the bootstrap draws (default {SEED})")


def ci_note(ci: BootstrapCI) -> str:
    """One line on how the interval was made, or why there is none."""
    if ci.reason:
        return f"no interval: {ci.reason}"
    return (f"[low, high]: {ci.level:.0%} {ci.method} ({ci.clusters} clusters; the two persons of a raw video are one),"
            f" {ci.resamples} resamples, seed {ci.seed}")


def score_path(pred: str, labels: str) -> ScoreReport:
    """Score a prediction file, a per-video folder, or a `harness submit` package (checked, then its predictions).

    Args:
        pred: what to score.
        labels: the folder of annotation files.
    """
    import tempfile

    from submissions.package import PREDICTION_NAME, inspect_package, is_zip_file

    if not is_zip_file(pred):
        return score_files(pred, labels)
    with tempfile.TemporaryDirectory(prefix="harness-score-") as work:
        _, problems = inspect_package(pred, None, work)  # safe extraction, manifest and checksums
        if problems:
            from submissions import FormatError

            raise FormatError([dataclasses.replace(p, path=f"{pred}!{PREDICTION_NAME}") for p in problems])
        return score_files(Path(work) / PREDICTION_NAME, labels, shown=f"{pred}!{PREDICTION_NAME}")


def run(args: argparse.Namespace) -> int:
    report = score_path(args.pred, args.labels)
    ci = report.bootstrap(resamples=args.resamples, seed=args.seed)
    if args.json:
        out = report.as_dict() if args.per_video else {"total": report.total.as_dict(), "videos": report.videos}
        print(json.dumps({**out, "ci": ci.as_dict() if ci else None}))
        return 0
    t = report.total
    cells = {m: (ci[m].cell(4, 3) if ci else f"{getattr(t, m):.4f}") for m in ("ccc_v", "ccc_a", "p_va")}
    df = pl.DataFrame({
        "scope": ["all frames"], "videos": [report.videos], "frames": [t.frames], "dropped (-5)": [t.dropped],
        "CCC_V": [cells["ccc_v"]], "CCC_A": [cells["ccc_a"]], "P_VA": [cells["p_va"]],
    })
    console = Console()
    print_table(df, title=f"Score of {args.pred}", console=console, floats=4)
    if ci:
        console.print(ci_note(ci), soft_wrap=True, highlight=False)
    if args.per_video:
        rows = [(v, s.frames, s.ccc_v, s.ccc_a, s.p_va) for v, s in report.per_video.items() if s is not None]
        print_table(pl.DataFrame(rows, schema=["video", "frames", "CCC_V", "CCC_A", "P_VA"], orient="row"),
                    title="Per video (inspection only; the challenge scores all frames at once)", console=console)
    return 0
