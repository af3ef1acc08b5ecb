"""An experiment table's rows and files: a row's cells (score, interval, the paper's), the paired differences, and
`table_<name>.{csv,md,json}` written and printed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from core.atomic import atomic_write_text
from harness.experiments.intervals import paired_seed_ci
from harness.folders.experiment import ExperimentDir
from harness.reporting.tables import ci_cells, paired_display, print_table
from submissions import MetricError
from submissions.bootstrap import (
    LEVEL,
    RESAMPLES,
    SEED,
    BootstrapCI,
    ClusterStats,
)

SCORES = (("valence", "ccc_v"), ("arousal", "ccc_a"), ("average", "p_va"))
"""Table columns and the score each shows."""

CI_NOTE = (f"[low, high]: {LEVEL:.0%} percentile bootstrap over video clusters (the two persons of a raw video "
           f"are one), {RESAMPLES} resamples, seed {SEED}; a row over several folds resamples each fold's videos")




def seed_note(seeds: Sequence[int]) -> str:
    """The tables' line on what +- means when a table averages several stage-2 seeds."""
    return (f"±: standard deviation over the stage-2 seeds {','.join(map(str, seeds))} (ddof 1) of the score, "
            "which is their mean; the interval is that of the seed-mean score, every seed's predictions scored on "
            "the same video draws")  # fmt: skip


def _row(name: str, ours: Sequence[float | None], paper: Sequence[float] | None, on: str, runs: str,
         ci: BootstrapCI | None = None, spread: Sequence[float] | None = None,
         seeds: Sequence[int] = ()) -> dict[str, Any]:  # fmt: skip
    p = paper or (math.nan, math.nan, math.nan)
    o = [math.nan if x is None else float(x) for x in ours]
    row = {"row": name, "valence": o[0], "arousal": o[1], "average": o[2], "paper_valence": float(p[0]),
           "paper_arousal": float(p[1]), "paper_average": float(p[2]), "on": on, "runs": runs}  # fmt: skip
    for col, m in SCORES:
        row[f"{col}_low"] = ci[m].low if ci else math.nan
        row[f"{col}_high"] = ci[m].high if ci else math.nan
    row["clusters"] = ci.clusters if ci else None
    sd = spread or (math.nan, math.nan, math.nan)
    for i, (col, _m) in enumerate(SCORES):
        row[f"{col}_std"] = float(sd[i])
    row["seeds"] = ",".join(map(str, seeds))
    return row


TABLE_SCHEMA = {"row": pl.Utf8, "valence": pl.Float64, "arousal": pl.Float64, "average": pl.Float64,
                "paper_valence": pl.Float64, "paper_arousal": pl.Float64, "paper_average": pl.Float64, "on": pl.Utf8,
                "runs": pl.Utf8, **{f"{c}_{e}": pl.Float64 for c, _ in SCORES for e in ("low", "high")},
                "clusters": pl.Int64, **{f"{c}_std": pl.Float64 for c, _ in SCORES}, "seeds": pl.Utf8}  # fmt: skip
"""A results table's columns (CSV and JSON): scores (the mean over seeds), the paper's, where scored, the runs, the
intervals, then the std over seeds (NaN with one seed) and the seeds."""

PAIRED_SCHEMA = {"comparison": pl.Utf8, "row": pl.Utf8, "against": pl.Utf8,
                 **{f"{k}{c}{e}": t for c, _ in SCORES
                    for k, e, t in (("d_", "", pl.Float64), ("d_", "_low", pl.Float64), ("d_", "_high", pl.Float64),
                                    ("", "_verdict", pl.Utf8))},
                 "clusters": pl.Int64, "note": pl.Utf8, "seeds": pl.Utf8}  # fmt: skip
"""A paired-differences table's columns: per score the difference row - against (of the seed-mean scores), its
interval and the verdict."""


def _paired_row(name: str, against: str, a: Sequence[Sequence[ClusterStats | None]],
                b: Sequence[Sequence[ClusterStats | None]], seeds: Sequence[int] = ()) -> dict[str, Any]:  # fmt: skip
    """One paired comparison (row - against) over the folds (and seeds) both rows were scored on."""
    out: dict[str, Any] = {"comparison": f"{name} - {against}", "row": name, "against": against}
    note, d = "", None
    if any(x is None for reps in [*a, *b] for x in reps):
        note = "a run has no saved predictions"
    else:
        try:
            d = paired_seed_ci([[x for x in reps if x] for reps in a], [[x for x in reps if x] for reps in b])
            note = d.reason or ""
        except MetricError as exc:
            note = str(exc)
    for col, m in SCORES:
        iv = d[m] if d else None
        out[f"d_{col}"] = iv.estimate if iv else math.nan
        out[f"d_{col}_low"] = iv.low if iv else math.nan
        out[f"d_{col}_high"] = iv.high if iv else math.nan
        out[f"{col}_verdict"] = iv.verdict if iv else "not resolved"
    out["clusters"] = d.clusters if d else None
    out["note"] = note
    out["seeds"] = ",".join(map(str, seeds))
    return out


def _paired_table(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=PAIRED_SCHEMA)


def _display(df: pl.DataFrame) -> pl.DataFrame:
    """The shown table: score cells with their +- std over seeds (several seeds) and intervals, the paper's scores,
    where scored."""
    cols = ["row", "valence", "arousal", "average", "paper_valence", "paper_arousal", "paper_average", "on"]
    extra = [f"{c}_{e}" for c, _ in SCORES for e in ("low", "high", "std")]
    shown = ci_cells(df.select([*cols, *extra]), tuple(c for c, _ in SCORES))
    return shown.select(cols).rename({c: c.replace("paper_", "paper ") for c in cols if c.startswith("paper_")})


def _display_paired(paired: pl.DataFrame) -> pl.DataFrame:
    return paired_display(paired)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def _relative_runs(runs: str | None, out: Path) -> str | None:
    """`;`-separated run folders, each relative to `out` where it lies under it."""
    if not runs:
        return runs
    parts = []
    for r in runs.split(";"):
        path = Path(r)
        parts.append(path.relative_to(out).as_posix() if path.is_relative_to(out) else r)
    return ";".join(parts)


def _write_table(out: Path, name: str, rows: list[dict[str, Any]], title: str, console: Any,
                 paired: pl.DataFrame | None = None,
                 seeds: Sequence[int] = ()) -> tuple[pl.DataFrame, list[Path]]:  # fmt: skip
    """Write `table_<name>.{csv,md,json}` (and `table_<name>_paired.csv`) and print the table(s)."""
    from submissions.leaderboard import table_markdown

    # Run folders relative to the experiment folder: the same experiment in another folder writes the same tables.
    rows = [{**r, "runs": _relative_runs(r["runs"], out)} for r in rows]
    df = pl.DataFrame(rows, schema=TABLE_SCHEMA)
    csv = ExperimentDir(out).table_file(name, ".csv")
    atomic_write_text(csv, df.write_csv(float_precision=4))
    files = [csv]
    notes = f"{CI_NOTE}.\n" + (f"{seed_note(seeds)}.\n" if len(seeds) > 1 else "")
    md_text = f"### {title}\n\n" + table_markdown(_display(df)).replace("nan", "-") + f"\n{notes}"
    if paired is not None:
        pcsv = ExperimentDir(out).table_file(name, "_paired.csv")
        atomic_write_text(pcsv, paired.write_csv(float_precision=4))
        files.append(pcsv)
        md_text += ("\n#### Paired differences (row - against; resolved: the interval excludes 0)\n\n"
                    + table_markdown(_display_paired(paired)).replace("nan", "-"))  # fmt: skip
    md = ExperimentDir(out).table_file(name, ".md")
    atomic_write_text(md, md_text)
    doc = {"table": name, "title": title, "rows": df.to_dicts(),
           "paired": paired.to_dicts() if paired is not None else None,
           "bootstrap": {"level": LEVEL, "resamples": RESAMPLES, "seed": SEED, "method": BootstrapCI.method,
                         "clusters": "the two persons of a raw video are one cluster",
                         "folds": "a row over several folds resamples each fold's videos on its own"},
           "seeds": list(seeds)}  # fmt: skip
    if len(seeds) > 1:
        doc["bootstrap"]["seeds"] = ("the interval of the seed-mean score: each resample scores every seed's "
                                     "predictions on the same video draw")  # fmt: skip
    js = ExperimentDir(out).table_file(name, ".json")
    atomic_write_text(js, json.dumps(_json_safe(doc), indent=1) + "\n")
    files += [md, js]
    if console is not None:
        _print_table(df, title, console, paired, seeds)
    return df, files


def _print_table(df: pl.DataFrame, title: str, console: Any, paired: pl.DataFrame | None = None,
                 seeds: Sequence[int] = ()) -> None:  # fmt: skip
    print_table(_display(df), title, console=console)
    if paired is not None and paired.height:
        print_table(_display_paired(paired), f"{title.split(':')[0]}: paired differences (row - against; "
                    "resolved: the interval excludes 0)", console=console)  # fmt: skip
    console.print(CI_NOTE, style="dim", soft_wrap=True, highlight=False, markup=False)
    if len(seeds) > 1:
        console.print(seed_note(seeds), style="dim", soft_wrap=True, highlight=False, markup=False)


def _seed_title(seeds: Sequence[int]) -> str:
    return f", mean over seeds {','.join(map(str, seeds))}" if len(seeds) > 1 else ""
