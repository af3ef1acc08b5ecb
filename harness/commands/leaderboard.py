"""`harness leaderboard`: a run's scores beside the paper and the 8th ABAW teams; the CI regression check."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import polars as pl
from rich.console import Console

from harness.tables import print_table, save_table
from submissions.errors import HarnessError
from submissions.leaderboard import (
    RECORDED_PATH,
    Entry,
    compare_recorded,
    fixture_scores,
    leaderboard,
    load_recorded,
    record_scores,
)

NAME = "leaderboard"
HELP = "Show scores beside the paper's tables and the 8th ABAW teams; --check guards the recorded leaderboard."
EXAMPLES = [
    "harness leaderboard runs/demo            # the run's folds beside Table II",
    "harness leaderboard --check              # CI: fixture (and --scores) against the recorded leaderboard",
    "harness leaderboard --check --scores runs/demo/scores.json",
    "harness leaderboard --record --scores runs/demo/scores.json   # deliberate: commit the new leaderboard",
]


def load_scores(path: str | Path) -> dict[str, float]:
    """Flat scores `{key: value}` from a scores.json (or a run folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "scores.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise HarnessError(f"no scores file at {path}; run `harness demo`, `folds` or `ablate` first") from exc
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{path}: not valid JSON ({exc})") from exc
    flat: dict[str, float] = {}
    for key, val in data.items():
        if isinstance(val, dict):
            for m in ("ccc_v", "ccc_a", "p_va"):
                if m in val:
                    flat[f"{key}/{m}"] = float(val[m])
        elif isinstance(val, int | float):
            flat[key] = float(val)
    return flat


def entries_from_scores(scores: dict[str, float]) -> list[Entry]:
    keys = sorted({k.rsplit("/", 1)[0] for k in scores if k.endswith("/p_va")})
    return [Entry(k, scores.get(f"{k}/ccc_v", float("nan")), scores.get(f"{k}/ccc_a", float("nan")),
                  scores[f"{k}/p_va"], "this run") for k in keys]


def check(scores: dict[str, float], recorded_path: Path = RECORDED_PATH) -> tuple[pl.DataFrame, bool]:
    """Compare fixture + given scores with the recorded leaderboard; (table, all_ok).

    Without scores only the scoring fixture is checked; with them, every recorded key must be present and hold.
    """
    current = {**fixture_scores(), **scores}
    recorded = load_recorded(recorded_path)
    rows = compare_recorded(current, recorded, prefix="" if scores else "fixture/")
    df = pl.DataFrame(
        {
            "key": [r.key for r in rows],
            "recorded": [r.recorded for r in rows],
            "current": [float("nan") if r.current is None else r.current for r in rows],
            "delta": [float("nan") if r.delta is None else r.delta for r in rows],
            "ok": [r.ok for r in rows],
        }
    )
    return df, all(r.ok for r in rows)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", help="run folder holding scores.json")
    p.add_argument("--scores", help="scores.json to check or record (default: RUN/scores.json)")
    p.add_argument("--table", default="II", choices=["I", "II", "III", "IV"], help="paper table to show beside")
    p.add_argument("--check", action="store_true", help="fail (exit 1) if a recorded score drops beyond tolerance")
    p.add_argument("--record", action="store_true", help="write these scores into the recorded leaderboard")
    p.add_argument("--recorded", default=str(RECORDED_PATH), help="recorded leaderboard file")
    p.add_argument("--out", help="also write the table as OUT.csv and OUT.md")


def run(args: argparse.Namespace) -> int:
    console = Console()
    src = args.scores or args.run
    scores = load_scores(src) if src else {}
    if args.record:
        if not scores:
            raise HarnessError("--record needs --scores FILE or a run folder")
        record_scores({**fixture_scores(), **scores}, args.recorded)
        console.print(f"recorded {len(scores)} scores into {args.recorded}")
        return 0
    if args.check:
        df, ok = check(scores, Path(args.recorded))
        print_table(df, title="Recorded leaderboard check", console=console, floats=4)
        tol = load_recorded(args.recorded)["tolerance"]
        console.print(("[green]OK[/]" if ok else "[red]REGRESSION[/]") + f" (tolerance {tol})")
        return 0 if ok else 1
    df = leaderboard(entries_from_scores(scores), table=args.table)
    print_table(df, title=f"Beside the paper's Table {args.table}", console=console, highlight="ours")
    if args.out:
        save_table(df.drop("ours"), args.out)
    return 0
