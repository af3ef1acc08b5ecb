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
    CheckResult,
    Entry,
    check_recorded,
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


def load_platform(path: str | Path) -> dict | None:
    """The platform fingerprint a scores.json (or a run folder holding one) was made on; None when it has none."""
    path = Path(path)
    if path.is_dir():
        path = path / "scores.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # load_scores reports the unreadable file; the check then has no fingerprint
    plat = data.get("platform") if isinstance(data, dict) else None
    return plat if isinstance(plat, dict) else None


def check(scores: dict[str, float], recorded_path: Path = RECORDED_PATH,
          platform: dict | None = None) -> tuple[pl.DataFrame, CheckResult]:  # fmt: skip
    """Compare fixture + given scores with the recorded leaderboard; (table, result).

    Without scores only the scoring fixture is checked. With them, the recorded run keys they hold are compared,
    exactly where `platform` is the recording's and within the measured cross-platform band elsewhere
    (`submissions.leaderboard.check_recorded`); recorded keys they lack are listed in `result.absent`.

    Args:
        scores: flat scores (`load_scores`).
        recorded_path: the recorded leaderboard.
        platform: the fingerprint of the run that made `scores` (`load_platform`).
    """
    current = {**fixture_scores(), **scores}
    res = check_recorded(current, load_recorded(recorded_path), platform)
    df = pl.DataFrame(
        {
            "key": [r.key for r in res.rows],
            "mode": [r.mode for r in res.rows],
            "recorded": [r.recorded for r in res.rows],
            "current": [float("nan") if r.current is None else r.current for r in res.rows],
            "delta": [float("nan") if r.delta is None else r.delta for r in res.rows],
            "allowed": [r.allowed for r in res.rows],
            "ok": [r.ok for r in res.rows],
        }
    )
    return df, res


def _record(args: argparse.Namespace, scores: dict[str, float], src: str, console: Console) -> int:
    platform = load_platform(src)
    if platform is None:
        raise HarnessError(f"{src}: error: no platform fingerprint in these scores; make them with this version")
    levels = {}
    for item in args.levels:
        level, sep, path = item.partition("=")
        if not sep:
            raise HarnessError(f"--levels {item}: error: expected LEVEL=SCORES.json, e.g. default=runs/d/scores.json")
        levels[level] = load_scores(path)
    record_scores({**fixture_scores(), **scores}, platform, args.recorded, levels=levels)
    console.print(f"recorded {len(scores)} scores from {src} (platform: {platform['cpu_model']}, ATen "
                  f"{platform['aten_capability']}, {platform['threads']} thread(s)) and {len(levels)} kernel "
                  f"level run(s) into {args.recorded}", highlight=False)
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", help="run folder holding scores.json")
    p.add_argument("--scores", help="scores.json to check or record (default: RUN/scores.json)")
    p.add_argument("--table", default="II", choices=["I", "II", "III", "IV"], help="paper table to show beside")
    p.add_argument("--check", action="store_true",
                   help="fail (exit 1) if a recorded score moves: exactly on the recording platform, else beyond "
                        "the measured cross-platform band")
    p.add_argument("--record", action="store_true", help="write these scores into the recorded leaderboard")
    p.add_argument("--levels", nargs="*", default=[], metavar="LEVEL=SCORES",
                   help="with --record: the same run's scores under each ATEN_CPU_CAPABILITY level of this machine "
                        "(they set the cross-platform band); `harness leaderboard --record-quick` makes them all")
    p.add_argument("--record-quick", metavar="WORKDIR",
                   help="run the quick demo natively and under every ATen kernel level of this machine (fresh "
                        "processes, under WORKDIR), check that two native runs agree, and record them")
    p.add_argument("--recorded", default=str(RECORDED_PATH), help="recorded leaderboard file")
    p.add_argument("--out", help="also write the table as OUT.csv and OUT.md")


def run(args: argparse.Namespace) -> int:
    console = Console()
    src = args.scores or args.run
    scores = load_scores(src) if src else {}
    if args.record_quick:
        from harness.recording import record_quick

        record_quick(Path(args.record_quick), Path(args.recorded), console=console)
        return 0
    if args.record:
        if not scores:
            raise HarnessError("--record needs --scores FILE or a run folder")
        return _record(args, scores, src, console)
    if args.check:
        df, res = check(scores, Path(args.recorded), load_platform(src) if src else None)
        print_table(df, title="Recorded leaderboard check", console=console, floats=6)
        console.print(f"mode: {res.mode} ({res.reason})", highlight=False, soft_wrap=True)
        if res.absent:
            console.print(f"{len(res.absent)} recorded key(s) not in these scores (not checked): "
                          + ", ".join(res.absent), highlight=False, soft_wrap=True)
        console.print("[green]OK[/]" if res.ok else "[red]REGRESSION[/]: "
                      + ", ".join(r.key for r in res.rows if not r.ok), soft_wrap=True)
        return 0 if res.ok else 1
    df = leaderboard(entries_from_scores(scores), table=args.table)
    print_table(df, title=f"Beside the paper's Table {args.table}", console=console, highlight="ours")
    if args.out:
        save_table(df.drop("ours"), args.out)
    return 0
