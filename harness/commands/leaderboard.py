"""`harness leaderboard`: a run's scores beside the paper and the 8th ABAW teams; the CI regression check."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console

from core.errors import HarnessError, printable, shorten
from core.safe_read import ReadError, read_json
from harness.floors import MIN_RUNS, Run, measure_floors
from harness.runs import SUMMARY_FILE, RunDir
from harness.tables import ci_cells, paired_display, print_table, save_table
from submissions.leaderboard import (
    BAND_CAP,
    RECORDED_PATH,
    CheckResult,
    Comparison,
    Entry,
    check_recorded,
    fixture_scores,
    leaderboard,
    load_recorded,
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


METRICS = ("ccc_v", "ccc_a", "p_va")


def _read_json(path: Path) -> dict:
    if not path.exists():
        raise HarnessError(f"no scores file at {printable(str(path))}; run `harness demo`, `folds` or `ablate` first")
    return read_json(path, "scores file", allow_nan=True)  # a NaN score is a drop


def _num(path: Path, key: str, value: Any) -> float:
    """A score read from `path`: a JSON number (NaN where the file has null), else a located error."""
    if value is None:
        return float("nan")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HarnessError(f"{printable(str(path))}: {printable(key)} is {shorten(repr(value))}, not a number")
    return float(value)


def resolve_source(path: str | Path) -> tuple[str, Path]:
    """What a leaderboard source is: ("scores", scores.json), ("run", run folder) or ("experiment", folder).

    Accepted: a scores.json file; a folder holding one (a demo's output); a stage-2 run folder such as a fold
    folder (`summary.json`, e.g. `RUN/folds/fold0` or `harness train --out`); an experiment folder (`folds/`,
    `ablation/`, as `harness folds` and `ablate` write).

    Args:
        path: the file or folder given on the command line.

    Raises:
        HarnessError: the path is none of these (the message says what was looked for).
    """
    path = Path(path)
    if path.is_file():
        return "scores", path
    if path.is_dir():
        if (path / "scores.json").is_file():
            return "scores", path / "scores.json"
        if RunDir(path).summary_file.is_file():
            return "run", path
        if (path / "folds").is_dir() or (path / "ablation").is_dir():
            return "experiment", path
        raise HarnessError(
            f"{path}: not a leaderboard source: no scores.json (a demo's folder), no summary.json (a run or fold "
            "folder, e.g. RUN/folds/fold0) and no folds/ or ablation/ (an experiment folder); a run that has not "
            "finished has no summary.json yet")
    raise HarnessError(f"{path}: no such file or folder; give a scores.json, a demo's folder, a run or fold folder, "
                       "or an experiment folder")


def group_of(key: str) -> str:
    """The leaderboard group of a scores.json key: oracle, test, ablation (tables III and IV) or validation."""
    parts = key.split("/")
    if any("oracle" in p for p in parts):
        return "oracle"
    if "test" in parts:
        return "test"
    if any(p.startswith("table") for p in parts):
        return "ablation"
    return "validation"


def _bounds(path: Path, key: str, val: dict) -> dict[str, tuple[float, float]] | None:
    out = {m: (val.get(f"{m}_ci_low"), val.get(f"{m}_ci_high")) for m in METRICS}
    out = {m: (_num(path, f"{key}/{m}_ci_low", lo), _num(path, f"{key}/{m}_ci_high", hi))
           for m, (lo, hi) in out.items() if lo is not None and hi is not None}  # fmt: skip
    return out or None


def _run_entries(run: Path, name: str, group: str | None = None) -> list[Entry]:
    """A finished run's rows: its validation score and, when it has one, its test score (with its interval)."""
    folder = RunDir(run)
    rec = _read_json(folder.summary_file)
    ci_file = folder.bootstrap_file
    ci = _read_json(ci_file) if ci_file.is_file() else {}
    bounds = {m: (_num(ci_file, f"{m}/low", ci[m]["low"]), _num(ci_file, f"{m}/high", ci[m].get("high")))
              for m in METRICS if isinstance(ci.get(m), dict) and ci[m].get("low") is not None}  # fmt: skip
    out = []
    for split in ("val", "test"):
        s = rec.get(split)
        if not isinstance(s, dict) or "p_va" not in s:
            continue
        on = "test" if split == "test" else "validation"
        v, a, p = (_num(folder.summary_file, f"{split}/{m}", s.get(m)) for m in METRICS)
        out.append(Entry(f"{name} ({on})", v, a, p, str(run), group or on,
                         bounds if ci.get("on") == on and bounds else None))  # fmt: skip
    if not out:
        raise HarnessError(f"{folder.summary_file}: holds no validation or test score")
    return out


def load_entries(path: str | Path) -> list[Entry]:
    """Leaderboard rows, grouped, with their intervals where the source has them (`resolve_source`).

    Args:
        path: a scores.json, a folder holding one, a run or fold folder, or an experiment folder.
    """
    kind, where = resolve_source(path)
    if kind == "scores":
        data = _read_json(where)
        return [Entry(k, *(_num(where, f"{k}/{m}", v.get(m)) for m in METRICS), "this run", group_of(k),
                      _bounds(where, k, v))
                for k, v in sorted(data.items()) if isinstance(v, dict) and "p_va" in v]  # fmt: skip
    if kind == "run":
        rec = _read_json(RunDir(where).summary_file)
        return _run_entries(where, f"fold{rec.get('fold', '?')}/{rec.get('model', where.name)}")
    out = []
    for summary in sorted(where.glob(f"folds/fold*/{SUMMARY_FILE}")):
        rec = _read_json(summary)
        out += _run_entries(summary.parent, f"{summary.parent.name}/{rec.get('model', '?')}")
    for summary in sorted(where.glob(f"ablation/*/fold*/{SUMMARY_FILE}")):
        out += _run_entries(summary.parent, f"{summary.parent.name}/{summary.parent.parent.name}", "ablation")
    if not out:
        raise HarnessError(f"{where}: an experiment folder without finished runs (no */summary.json)")
    return out


def paired_tables(path: str | Path) -> dict[str, list[dict]]:
    """The paired differences of Tables IV and III written beside a source (`table_<name>.json`), by table."""
    kind, where = resolve_source(path)
    base = where.parent if kind == "scores" else where
    out = {}
    for folder in (base, base / "experiments"):
        for name in ("IV", "III"):
            f = folder / f"table_{name}.json"
            if name not in out and f.is_file():
                paired = _read_json(f).get("paired")
                if isinstance(paired, list) and paired:
                    out[name] = paired
    return out


def load_scores(path: str | Path) -> dict[str, float]:
    """Flat scores `{key/metric: value}` from any leaderboard source (`resolve_source`)."""
    kind, where = resolve_source(path)
    flat: dict[str, float] = {}
    if kind != "scores":
        for e in load_entries(where):
            flat.update({f"{e.name}/{m}": float(getattr(e, m)) for m in METRICS})
        return flat
    for key, val in _read_json(where).items():
        if isinstance(val, dict):
            for m in METRICS:
                if m in val:
                    flat[f"{key}/{m}"] = _num(where, f"{key}/{m}", val[m])
        elif isinstance(val, int | float) and not isinstance(val, bool):
            flat[key] = float(val)
    return flat


def entries_from_scores(scores: dict[str, float]) -> list[Entry]:
    keys = sorted({k.rsplit("/", 1)[0] for k in scores if k.endswith("/p_va")})
    return [Entry(k, scores.get(f"{k}/ccc_v", float("nan")), scores.get(f"{k}/ccc_a", float("nan")),
                  scores[f"{k}/p_va"], "this run", group_of(k)) for k in keys]


def load_platform(path: str | Path) -> dict | None:
    """The platform fingerprint a leaderboard source was made on: a scores.json's (or a folder holding one), a run
    or fold folder's final record (`summary.json`); None when it has none (an experiment folder has many)."""
    try:
        kind, where = resolve_source(path)
    except HarnessError:
        return None  # load_scores reports the missing source; the check then has no fingerprint
    if kind == "experiment":
        return None
    file, what = (where, "scores file") if kind == "scores" else (RunDir(where).summary_file, "run summary")
    try:
        data = read_json(file, what, allow_nan=True)
    except ReadError:
        return None  # load_scores reports the unreadable file; the check then has no fingerprint
    plat = data.get("platform") if isinstance(data, dict) else None
    return plat if isinstance(plat, dict) else None


def check(scores: dict[str, float], recorded_path: Path = RECORDED_PATH,
          platform: dict | None = None) -> tuple[pl.DataFrame, CheckResult]:  # fmt: skip
    """Compare fixture + given scores with the recorded leaderboard; (table, result).

    Without scores only the scoring fixture is checked. With them, each recorded run key is compared with its floor
    and ceiling (`submissions.leaderboard.check_recorded`): `result.dropped` and `result.rose` name the keys that
    fell below or rose above; recorded keys the scores lack are listed in `result.absent`.

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
            "status": [r.status for r in res.rows],
            "recorded": [r.recorded for r in res.rows],
            "current": [float("nan") if r.current is None else r.current for r in res.rows],
            "delta": [float("nan") if r.delta is None else r.delta for r in res.rows],
            "floor": [r.floor for r in res.rows],
            "ceiling": [r.ceiling for r in res.rows],
            "ok": [r.ok for r in res.rows],
        }
    )
    return df, res


def _verdict_line(r: Comparison) -> str:
    """One failing key in words: its value against the floor or ceiling it crossed, and the recorded band."""
    value = "missing" if r.current is None else f"{r.current:.6g}"
    if r.status == "dropped":
        where = f"below floor {r.floor:.6g}" if r.current is not None and math.isfinite(r.current) else "not a number"
        head = "REGRESSION: dropped"
    else:
        where = f"above ceiling {r.ceiling:.6g}"
        head = "CHANGED: rose beyond the band - re-record deliberately, and say why:"
    return f"{head} {r.key}: {value} {where} (recorded {r.recorded:.6g} +- {r.allowed:.3g})"


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
            console.print(_verdict_line(r), highlight=False, soft_wrap=True, markup=False)
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
        from harness.recording import record_quick

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
