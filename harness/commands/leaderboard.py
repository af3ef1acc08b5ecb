"""`harness leaderboard`: a run's scores beside the paper and the 8th ABAW teams; the CI regression check."""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl
from rich.console import Console

from core.errors import HarnessError
from harness.reporting.floors import MIN_RUNS, Run, measure_floors
from harness.reporting.leaderboard import (
    check,
    entries_from_scores,
    load_entries,
    load_platform,
    load_scores,
    paired_tables,
    verdict_line,
)
from harness.reporting.recording import record_quick
from harness.reporting.tables import ci_cells, paired_display, print_table, save_table
from submissions.leaderboard import (
    BAND_CAP,
    RECORDED_PATH,
    CheckResult,
    fixture_scores,
    leaderboard,
    record_scores,
)

NAME = "leaderboard"
HELP = ("Show scores beside the paper's tables and the 8th ABAW teams; --check guards the recorded leaderboard's "
        "quality floors.")
EXAMPLES = [
    "harness leaderboard runs/demo            # the run's folds beside Table II",
    "harness leaderboard --check              # CI: fixture (and --scores) against the recorded leaderboard",
    "harness leaderboard --check --scores runs/demo/scores.json",
    "harness leaderboard --record-quick /tmp/rec --seeds 0,1,2,3,4   # deliberate: re-record the quick demo's floors",
    "harness leaderboard --record --scores runs/s0/scores.json --seeds-from runs/s{1,2,3,4}/scores.json "
    "--recorded floors.json   # your project's floors from 5 seeds",
    "harness leaderboard --check --scores runs/new/scores.json --recorded floors.json",
]


def print_check(res: CheckResult, console: Console) -> None:
    """The check's verdict: one `REGRESSION: dropped` or `CHANGED: rose ...` line per failing key, else OK."""
    console.print(f"mode: {res.mode} ({res.reason})", highlight=False, soft_wrap=True, markup=False)
    if res.absent:
        console.print(f"{len(res.absent)} recorded key(s) not in these scores (not checked): "
                      + ", ".join(res.absent), highlight=False, soft_wrap=True)  # fmt: skip
    if res.noisy:
        console.print(f"{len(res.noisy)} key(s) recorded as too noisy to guard (measured band wider than the cap; "
                      "listed, never failed): " + ", ".join(res.noisy), highlight=False, soft_wrap=True)  # fmt: skip
    for r in res.rows:
        if not r.ok:
            console.print(verdict_line(r), highlight=False, soft_wrap=True, markup=False)
    if res.ok:
        console.print("OK: every key within its band", highlight=False)


def _record(args: argparse.Namespace, src: str, console: Console) -> int:
    """`--record`: floors from the reference run `src` and the runs of `--seeds-from`, into `--recorded`."""
    paths = [src, *args.seeds_from]
    if len(paths) < MIN_RUNS:
        raise HarnessError(f"--record: the spread needs at least {MIN_RUNS} runs of one configuration (other "
                           f"training seeds: --seeds-from B C ...); got {len(paths)}")  # fmt: skip
    runs = []
    for path in paths:
        plat = load_platform(path)
        if plat is None:
            raise HarnessError(f"{path}: error: no platform fingerprint in these scores; make them with this version")
        runs.append(Run(str(path), load_scores(path), None, plat.get("aten_capability_env") or None,
                        plat.get("threads")))  # fmt: skip
    floors, k, reason = measure_floors(runs, cap=args.cap)
    reference = {**fixture_scores(), **runs[0].scores}
    platform = load_platform(src) or {}
    record_scores(reference, platform, args.recorded, floors={key: f.to_json() for key, f in floors.items()},
                  samples=[r.to_json() for r in runs], k=k, k_reason=reason, cap=args.cap,
                  accept_drop=args.accept_drop)  # fmt: skip
    console.print(f"recorded floors of {len(floors)} keys from {len(runs)} runs (reference {src}: "
                  f"{platform.get('cpu_model')}, ATen {platform.get('aten_capability')}, {platform.get('threads')} "
                  f"thread(s)) into {args.recorded}; {reason}", highlight=False, soft_wrap=True)
    return 0


def _seeds(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected seeds like 0,1,2,3,4, got {text!r}") from exc


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", help="run folder holding scores.json")
    p.add_argument("--scores", help="scores.json to check or record (default: RUN/scores.json)")
    p.add_argument("--table", default="II", choices=["I", "II", "III", "IV"], help="paper table to show beside")
    p.add_argument("--check", action="store_true",
                   help="fail (exit 1) when a recorded key drops below its floor (REGRESSION) or rises above its "
                        "ceiling (CHANGED: re-record deliberately)")
    p.add_argument("--record", action="store_true",
                   help="record floors from --scores (the reference run) and the runs of --seeds-from")
    p.add_argument("--seeds-from", nargs="+", default=[], metavar="SCORES",
                   help=f"with --record: the same configuration's other runs (training seeds; also other kernel "
                        f"levels or thread counts), scores.json files or folders; {MIN_RUNS} runs at least in all")
    p.add_argument("--record-quick", metavar="WORKDIR",
                   help="run the quick demo per --seeds natively, seed 0 again (the two must agree), under "
                        "each lower ATen kernel level and at 2 threads (fresh processes, one folder each under "
                        "WORKDIR; finished ones are reused), and record their floors")
    p.add_argument("--seeds", type=_seeds, default=[0, 1, 2, 3, 4], metavar="S,S,...",
                   help="with --record-quick: training seeds (default 0,1,2,3,4; must include 0)")
    p.add_argument("--accept-drop", metavar="REASON",
                   help="with --record or --record-quick: accept floors below the recorded ones (or keys no longer "
                        "guarded); REASON, the date and the keys go into the file")
    p.add_argument("--cap", type=float, default=BAND_CAP,
                   help=f"with --record or --record-quick: the widest band (default {BAND_CAP:g})")
    p.add_argument("--recorded", default=str(RECORDED_PATH), help="recorded leaderboard file")
    p.add_argument("--out", help="also write the table as OUT.csv and OUT.md")


def run(args: argparse.Namespace) -> int:
    console = Console()
    src = args.scores or args.run
    scores = load_scores(src) if src else {}
    if args.record_quick:
        # Here, not at the top: it imports torch (seconds) that the check and the table never need.
        record_quick(Path(args.record_quick), Path(args.recorded), seeds=args.seeds, accept_drop=args.accept_drop,
                     cap=args.cap, console=console)  # fmt: skip
        return 0
    if args.record:
        if not scores:
            raise HarnessError("--record needs --scores FILE (the reference run) or a run folder")
        return _record(args, src, console)
    if args.seeds_from:
        raise HarnessError("--seeds-from goes with --record")
    if args.check:
        df, res = check(scores, Path(args.recorded), load_platform(src) if src else None)
        print_table(df, title="Recorded leaderboard check", console=console, floats=6)
        print_check(res, console)
        return 0 if res.ok else 1
    entries = load_entries(src) if src else entries_from_scores(scores)
    df = leaderboard(entries, table=args.table)
    shown = ci_cells(df, ("valence", "arousal", "average"))
    print_table(shown, title=f"Ours by group, then the paper's Table {args.table}", console=console, highlight="ours")
    console.print("[low, high]: 95% percentile bootstrap over video clusters, where the source holds one",
                  style="dim", markup=False, highlight=False, soft_wrap=True)
    for name, rows in (paired_tables(src).items() if src else []):
        paired = pl.DataFrame(rows, infer_schema_length=None)
        print_table(paired_display(paired), title=f"Table {name}: paired differences (row - against; resolved: the "
                    "interval excludes 0)", console=console)  # fmt: skip
    if args.out:
        save_table(df.drop("ours"), args.out)
    return 0
