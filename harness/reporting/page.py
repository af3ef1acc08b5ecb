"""What the HTML report shows, as data: its tables, plots and sections (`Report`), and the builders that turn
results, costs, leaderboard rows, the platform and the timings into them. Pure functions; nothing is read here.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from harness.reporting.tables import ci_cells, paired_display

COST_COLUMNS = ("row", "params", "gflops_window", "train_step_ms", "predict_fps", "backend")
"""The columns of Table II (measured)'s cost rows the page shows."""

SCORES = ("valence", "arousal", "average")
"""The score columns of a results table (CCC_V, CCC_A, P_VA)."""

CI_NOTE = ("Cells: score [95% percentile bootstrap interval over video clusters]; a score alone has no interval "
           "(fewer than two videos), '-' no score.")  # fmt: skip

PAIRED_NOTE = ("Row - against, both scored on the same videos and resampled with the same draws; resolved: the "
               "difference's 95% interval excludes 0 (not resolved: these videos cannot order the two rows).")

PLOTS = {
    "traces": ("Valence and arousal over time (like the paper's Fig. 4)",
               "True (black) and predicted values of the fold-0 run on test videos."),
    "histograms": ("Histograms of valence and arousal (like the paper's Fig. 5)",
                   "Labels (grey) and predictions (red) over the annotated frames."),
    "gates": ("BDCA gate values over time",
              "The weight G1 on the cross-attended features at every frame of a test video (eq. 4)."),
    "curves": ("Training curves", "Per epoch, from the run's metrics.jsonl."),
}
"""Title and caption of the demo's plots, by the file name's first word, in the order the page shows them."""

PLATFORM_ORDER = ("torch", "threads", "device", "cpu_model", "cpu_vendor", "aten_capability", "aten_capability_env",
                  "machine", "numpy", "mkl", "onednn", "python")  # fmt: skip
"""Fingerprint fields in the order shown (any other field follows, sorted)."""


# ---------------------------------------------------------------------------------------------------------------
# What the page shows (pure data)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A table as shown: every cell already text.

    Args:
        title: the caption.
        columns: column headers.
        rows: one tuple of cells per row, as many as `columns`.
        note: a line under the table (what the cells mean).
        bold: per row, whether to show it bold (our rows in the leaderboard); empty: none.
    """

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""
    bold: tuple[bool, ...] = ()


@dataclass(frozen=True)
class Plot:
    """One PNG with its title and caption.

    Args:
        title: the heading above it.
        png: the PNG's bytes.
        caption: a line under it.
    """

    title: str
    png: bytes
    caption: str = ""


@dataclass
class Report:
    """Everything one page shows; an empty part is left out of the page.

    Args:
        title: the page's title.
        source: the folder it describes (as given).
        kind: `demo`, `experiment` or `run`.
        tables: Tables I, II (measured), III and IV and their paired differences.
        leaderboard: ours beside the 8th ABAW teams and the paper's rows.
        plots: the figures.
        environment: the platform fingerprint.
        git: the git hash of the run (git.txt).
        timings: per-stage time and peak RSS.
        config: the resolved config (YAML text).
        config_source: the file `config` was read from.
        files: (what, where) of the other products (submission, scores).
        notes: what the page could not show and why.
    """

    title: str
    source: str
    kind: str
    tables: list[Table] = field(default_factory=list)
    leaderboard: list[Table] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    environment: Table | None = None
    git: str | None = None
    timings: Table | None = None
    config: str | None = None
    config_source: str = ""
    files: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _number(x: Any) -> float | None:
    """A JSON or CSV value as a float; None for anything that is not a number (null, text, a bool)."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x)


def _text(x: Any) -> str:
    return "" if x is None else str(x)


def _fmt(x: Any, digits: int = 3, signed: bool = False) -> str:
    """A cell's text: floats to `digits` (NaN and None as '-'), anything else as it is."""
    if x is None:
        return "-"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "-"
        return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"
    return str(x)


def frame_table(df: pl.DataFrame, title: str, note: str = "", bold: str | None = None,
                signed: Sequence[str] = ()) -> Table:  # fmt: skip
    """A polars frame as a `Table` (floats to 3 digits; NaN and null as '-').

    Args:
        df: the rows.
        title: the caption.
        note: a line under the table.
        bold: a boolean column marking rows to show bold (not shown itself).
        signed: float columns shown with their sign (differences).
    """
    cols = [c for c in df.columns if c != bold]
    rows = tuple(tuple(_fmt(r[c], signed=c in signed) for c in cols) for r in df.iter_rows(named=True))
    flags = tuple(bool(r[bold]) for r in df.iter_rows(named=True)) if bold else ()
    return Table(title, tuple(cols), rows, note, flags)


def results_frame(rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """A results table's rows (`table_<name>.json` or `.csv`, as `harness.experiments.folds` writes them) as a frame of
    the columns the page shows: missing or non-numeric values become null, so any row list gives a frame."""
    floats = [*SCORES, *(f"{c}_{e}" for c in SCORES for e in ("low", "high", "std")),
              *(f"paper_{c}" for c in SCORES)]  # fmt: skip
    data: dict[str, list] = {"row": [_text(r.get("row")) for r in rows], "on": [_text(r.get("on")) for r in rows]}
    data.update({c: [_number(r.get(c)) for r in rows] for c in floats})
    return pl.DataFrame(data, schema={"row": pl.Utf8, "on": pl.Utf8, **dict.fromkeys(floats, pl.Float64)})


def paired_frame(rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """A paired-differences table's rows (`paired` of `table_<name>.json`, or `table_<name>_paired.csv`) as a frame
    of the columns `harness.reporting.tables.paired_display` reads (missing values become null, a missing verdict
    '-')."""
    floats = [f"d_{c}{e}" for c in SCORES for e in ("", "_low", "_high")]
    texts = ["comparison", *(f"{c}_verdict" for c in SCORES), "note"]
    data: dict[str, list] = {c: [_text(r.get(c)) or ("-" if c.endswith("_verdict") else "") for r in rows]
                             for c in texts}  # fmt: skip
    data.update({c: [_number(r.get(c)) for r in rows] for c in floats})
    return pl.DataFrame(data, schema={**dict.fromkeys(texts, pl.Utf8), **dict.fromkeys(floats, pl.Float64)})


def score_tables(name: str, rows: Sequence[Mapping[str, Any]], paired: Sequence[Mapping[str, Any]] | None = None,
                 title: str = "", resamples: int | None = None) -> list[Table]:  # fmt: skip
    """One of the paper's tables as shown: cells `0.634 [0.50, 0.72]` beside the paper's numbers, then its paired
    differences (`d` with its interval and the verdict per score), as `harness ablate` prints them.

    Args:
        name: "I", "III" or "IV".
        rows: the table's rows (`results_frame`).
        paired: its paired differences (`paired_frame`); None or empty: none.
        title: the table's title (default "Table <name>").
        resamples: the bootstrap's resamples, for the note (None: not said).
    """
    title = title or f"Table {name}"
    note = CI_NOTE + (f" {resamples} resamples." if resamples else "")
    shown = ci_cells(results_frame(rows), SCORES)
    cols = ["row", *SCORES, *(f"paper_{c}" for c in SCORES), "on"]
    shown = shown.select(cols).rename({f"paper_{c}": f"paper {c}" for c in SCORES})
    out = [frame_table(shown, title, note)]
    if paired:
        diff = paired_display(paired_frame(paired))
        out.append(frame_table(diff, f"{title.split(':')[0]}: paired differences", PAIRED_NOTE))
    return out


def cost_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """Table II (measured)'s cost rows (`cost` of `table_II_measured.json`): parameters, GFLOPs per window,
    milliseconds per training step, prediction frames per second, the state-space library."""
    data = {c: [_text(r.get(c)) if c in ("row", "backend") else _number(r.get(c)) for r in rows]
            for c in COST_COLUMNS}  # fmt: skip
    schema = {c: pl.Utf8 if c in ("row", "backend") else pl.Float64 for c in COST_COLUMNS}
    return frame_table(pl.DataFrame(data, schema=schema), "Table II (measured): cost, measured in the same run",
                       "GFLOPs per window of the config's length; train step: forward, backward and AdamW on one "
                       "micro batch; predict: whole videos of the reported split.")  # fmt: skip


def leaderboard_tables(entries: Sequence[Any], table: str = "II") -> list[Table]:
    """Our rows, grouped, beside the paper's Table `table` (II: the 8th ABAW teams and BDCA), as `harness
    leaderboard` computes them (`submissions.leaderboard.leaderboard`); our rows bold.

    Args:
        entries: `submissions.leaderboard.Entry` rows (`harness.reporting.leaderboard.load_entries`).
        table: the paper's table shown beside.
    """
    from submissions.leaderboard import leaderboard

    df = ci_cells(leaderboard(list(entries), table=table), SCORES)
    return [frame_table(df, f"Leaderboard: ours by group, then the paper's Table {table}", CI_NOTE
                        + " delta: P_VA minus the paper's BDCA.", bold="ours", signed=("delta",))]  # fmt: skip


def environment_table(platform: Mapping[str, Any]) -> Table:
    """The platform fingerprint (`harness.runtime.fingerprint.platform_fingerprint`) as a two-column table."""
    keys = [k for k in PLATFORM_ORDER if k in platform] + sorted(k for k in platform if k not in PLATFORM_ORDER)
    return Table("Environment (platform fingerprint)", ("field", "value"),
                 tuple((k, _text(platform[k])) for k in keys),
                 "What the arithmetic depended on: scores compare exactly only on the same platform.")


def timings_table(timings: Mapping[str, Any]) -> Table:
    """Per-stage wall time and peak RSS (timings.json: `{stage: seconds, "peak_rss_mib": {stage: {self,
    children}}}`), with the total time."""
    rss = timings.get("peak_rss_mib")
    rss = rss if isinstance(rss, Mapping) else {}
    rows, total = [], 0.0
    for stage, secs in timings.items():
        s = _number(secs)
        if stage == "peak_rss_mib" or s is None:
            continue
        total += s
        peak = rss.get(stage) if isinstance(rss.get(stage), Mapping) else {}
        mine, kids = _number(peak.get("self")), _number(peak.get("children"))
        rows.append((stage, f"{s:.1f}", "-" if mine is None else f"{mine:.0f}", "-" if kids is None else f"{kids:.0f}"))
    rows.append(("total", f"{total:.1f}", "", ""))
    return Table("Time and memory per stage", ("stage", "seconds", "peak RSS [MiB]", "largest child's peak [MiB]"),
                 tuple(rows), "Peak RSS: this process during the stage and its largest finished child so far.")


def gates_table(scores: Mapping[str, Any]) -> Table | None:
    """BDCA's mean gate per stream (`gates/<config>/fold<k>/<stream>` of scores.json); None without any."""
    rows = []
    for key, val in sorted(scores.items()):
        if key.startswith("gates/") and isinstance(val, Mapping):
            mean, std, n = (_number(val.get(k)) for k in ("mean", "std", "frames"))
            rows.append((key.removeprefix("gates/"), _fmt(mean), _fmt(std), "-" if n is None else f"{n:.0f}"))
    if not rows:
        return None
    return Table("BDCA gates on the test frames", ("run / stream", "mean G1", "std G1", "frames"), tuple(rows),
                 "G1: the weight on the cross-attended features; the original features get 1 - G1.")


def data_uri(png: bytes) -> str:
    """A PNG as a `data:image/png;base64,...` URI (the page needs no file beside it)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
