"""The recorded leaderboard's sources: scores of a demo, a run or an experiment read as leaderboard rows, and the
check of scores against the recorded floors and ceilings (`submissions.leaderboard`).

A source is a scores.json file, a demo folder holding one, a stage-2 run or fold folder (its summary), or an
experiment folder (its finished runs); `resolve_source` says which.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import polars as pl

from core.errors import HarnessError, printable, shorten
from core.safe_read import ReadError, read_json
from harness.folders.demo import DemoDir
from harness.folders.experiment import ExperimentDir
from harness.folders.run import RunDir
from submissions.leaderboard import (
    RECORDED_PATH,
    CheckResult,
    Comparison,
    Entry,
    check_recorded,
    fixture_scores,
    load_recorded,
)

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
        if DemoDir(path).scores_file.is_file():
            return "scores", DemoDir(path).scores_file
        if RunDir(path).summary_file.is_file():
            return "run", path
        if ExperimentDir(path).folds_dir.is_dir() or ExperimentDir(path).ablation_dir.is_dir():
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


def _source_of(scores: Path, key: str) -> str:
    """Where a scores.json row comes from: "this run", or for a demo's ensemble (`<config>/test/ensemble/<name>`)
    its kind and members, read from the ensemble folder beside the scores (`DemoDir.ensemble`)."""
    parts = key.split("/")
    demo = DemoDir.of_scores(scores)
    if len(parts) == 4 and parts[2] == "ensemble" and demo is not None:
        summary = RunDir(demo.ensemble(parts[3])).summary_file
        if summary.is_file():
            rec = _read_json(summary)
            members = [str(m.get("name", "?")) for m in rec.get("members", []) if isinstance(m, dict)]
            return f"{rec.get('ensemble', 'ensemble')} of {', '.join(members)}"
    return "this run"


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
        return [Entry(k, *(_num(where, f"{k}/{m}", v.get(m)) for m in METRICS), _source_of(where, k), group_of(k),
                      _bounds(where, k, v))
                for k, v in sorted(data.items()) if isinstance(v, dict) and "p_va" in v]  # fmt: skip
    if kind == "run":
        rec = _read_json(RunDir(where).summary_file)
        return _run_entries(where, f"fold{rec.get('fold', '?')}/{rec.get('model', where.name)}")
    out = []
    for summary in ExperimentDir(where).fold_summaries():
        rec = _read_json(summary)
        out += _run_entries(summary.parent, f"{summary.parent.name}/{rec.get('model', '?')}")
    for summary in ExperimentDir(where).ablation_summaries():
        out += _run_entries(summary.parent, f"{summary.parent.name}/{summary.parent.parent.name}", "ablation")
    if not out:
        raise HarnessError(f"{where}: an experiment folder without finished runs (no */summary.json)")
    return out


def paired_tables(path: str | Path) -> dict[str, list[dict]]:
    """The paired differences of Tables IV and III written beside a source (`table_<name>.json`), by table."""
    kind, where = resolve_source(path)
    base = where.parent if kind == "scores" else where
    out = {}
    for folder in (ExperimentDir(base), DemoDir(base).experiments):
        for name in ("IV", "III"):
            f = folder.table_file(name, ".json")
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


def verdict_line(r: Comparison) -> str:
    """One failing key in words: its value against the floor or ceiling it crossed, and the recorded band."""
    value = "missing" if r.current is None else f"{r.current:.6g}"
    if r.status == "dropped":
        where = f"below floor {r.floor:.6g}" if r.current is not None and math.isfinite(r.current) else "not a number"
        head = "REGRESSION: dropped"
    else:
        where = f"above ceiling {r.ceiling:.6g}"
        head = "CHANGED: rose beyond the band - re-record deliberately, and say why:"
    return f"{head} {r.key}: {value} {where} (recorded {r.recorded:.6g} +- {r.allowed:.3g})"
