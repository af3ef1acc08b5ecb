"""`harness ensemble`: combine the frame predictions of finished runs (folds, models, seeds) in one ensemble folder."""

from __future__ import annotations

import argparse
import sys

import polars as pl
from rich.console import Console

from harness.experiments import FOLD_ENSEMBLE, WEIGHT_MODES, EnsembleResult, Estimate, make_ensemble
from harness.reporting.tables import print_table
from submissions.bootstrap import Interval
from submissions.ensemble import STEP

NAME = "ensemble"
HELP = ("Average the folds of an experiment, or fuse several models (one fold's runs, or each model's folds) with "
        "weights searched on validation; write predictions, weights and an estimate on frames the weights never "
        "saw.")  # fmt: skip
EXAMPLES = [
    "harness ensemble runs/demo/folds/fold0 runs/demo/ablation/*/fold0 --data corpus/ --weights search --out ens/",
    "harness ensemble runs/demo/folds/fold* --data corpus/ --predict --out folds_ens/",
    "harness ensemble runs/bdca/folds/fold* runs/concat/folds/fold* --data corpus/ --predict --weights search "
    "--per-dimension --out fusion_ens/",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="finished stage-2 run folders (at least 2)")
    p.add_argument("--data", required=True, help="dataset root in the Aff-Wild2 layout (labels, sample file)")
    p.add_argument("--out", required=True, help="the ensemble folder to write (new, empty, or an earlier ensemble)")
    p.add_argument("--weights", choices=WEIGHT_MODES, default="mean",
                   help="mean: equal weights; search: a simplex grid, chosen on validation (default mean)")  # fmt: skip
    p.add_argument("--per-dimension", action="store_true", help="search valence and arousal weights separately")
    p.add_argument("--step", type=float, default=STEP, help=f"the simplex grid's step (default {STEP})")
    p.add_argument("--predict", action="store_true",
                   help="predict the test list with runs that saved no test predictions (CV folds)")  # fmt: skip
    p.add_argument("--cache", help="feature cache root for --predict (default: DATA/features)")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty folder the harness did not write, beside what it holds")  # fmt: skip


def _cell(iv: Interval) -> str:
    return iv.cell(3, 2)


def estimate_rows(est: Estimate) -> pl.DataFrame:
    """The table of one estimate: the ensemble, the best member, the paired difference with its verdict."""
    first = "ensemble" if est.of == "ensemble" else "fold models (mean over folds)"
    rows = [
        (first, _cell(est.ci.ccc_v), _cell(est.ci.ccc_a), _cell(est.ci.p_va), ""),
        (f"best single: {est.best_member}", *(f"{x:.3f}" for x in est.best_score), ""),
    ]
    if est.paired is not None:
        rows.append(("ensemble - best single", _cell(est.paired.ccc_v), _cell(est.paired.ccc_a),
                     _cell(est.paired.p_va), est.paired.p_va.verdict))  # fmt: skip
    return pl.DataFrame(rows, schema=["row", "valence", "arousal", "average", "P_VA difference"], orient="row")


def print_result(result: EnsembleResult, out: str, console: Console) -> None:
    """The members, the weights and every estimate, as tables."""
    w = result.weights
    rows = [(m.name, str(m.path), f"{w[result.weight_row(i), 0]:.2f}", f"{w[result.weight_row(i), 1]:.2f}",
             *(f"{result.member_scores[str(m.path)][s][2]:.3f}" if s in result.member_scores[str(m.path)] else "-"
               for s in ("validation", "test")))
            for i, m in enumerate(result.members)]  # fmt: skip
    schema = ["member", "run", "weight V", "weight A", "val P_VA", "test P_VA"]
    df = pl.DataFrame(rows, schema=schema, orient="row")
    print_table(df, title=f"{result.kind} of {len(result.members)} runs -> {out}", console=console)
    if result.search is not None:
        s = result.search
        console.print(f"weights searched on validation ({s.frames} frames): {s.space()}; validation P_VA "
                      f"{s.score[2]:.3f} (in-sample)", soft_wrap=True, highlight=False)  # fmt: skip
    for est in result.estimates:
        print_table(estimate_rows(est), title=f"Estimate on {est.on}", console=console)
    for note in result.notes:
        console.print(f"note: {note}", soft_wrap=True, highlight=False)


def run(args: argparse.Namespace) -> int:
    console = Console()
    warn = lambda line: print(f"warning: {line}", file=sys.stderr)  # noqa: E731
    result, ens = make_ensemble(args.runs, args.data, args.out, cache=args.cache, mode=args.weights,
                                per_dimension=args.per_dimension, step=args.step, predict=args.predict,
                                force=args.force, warn=warn)  # fmt: skip
    print_result(result, args.out, console)
    if result.kind == FOLD_ENSEMBLE and not result.estimates:
        console.print("no estimate: the test split has no labels here", highlight=False)
    console.print(f"wrote {ens.path} (predictions, {ens.summary_file.name})", highlight=False)
    return 0
