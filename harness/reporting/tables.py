"""Results as tables: rich on screen, CSV and Markdown on disk (one function for each, shared by every command)."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table

from core.atomic import atomic_write_text
from submissions.leaderboard import table_markdown


def rich_table(df: pl.DataFrame, title: str | None = None, floats: int = 3, highlight: str | None = None) -> Table:
    """A rich Table of a polars frame; rows where boolean column `highlight` is true are bold.

    No cell is ever cut: text that does not fit folds onto the next line (`overflow="fold"`, never an ellipsis),
    and the first text column (the row names) is at least as wide as its longest name (up to 60 characters).

    Args:
        df: the rows.
        title: the table's title.
        floats: digits after the point of float cells.
        highlight: a boolean column that marks rows to show bold (not shown itself).
    """
    cols = [c for c in df.columns if c != highlight]
    t = Table(title=title, show_lines=False)
    names = next((c for c in cols if not df.schema[c].is_numeric()), None)
    for c in cols:
        numeric = df.schema[c].is_numeric()
        widest = max([len(c), *(len(str(x)) for x in df[c].to_list())]) if c == names else None
        t.add_column(c, justify="right" if numeric else "left", overflow="fold", no_wrap=numeric,
                     min_width=min(widest, 60) if widest else None)  # fmt: skip
    for row in df.iter_rows(named=True):
        cells = [f"{row[c]:.{floats}f}" if isinstance(row[c], float) else str(row[c]) for c in cols]
        t.add_row(*cells, style="bold green" if highlight and row.get(highlight) else None)
    return t


def print_rich(table: Table, console: Console) -> None:
    """Print a rich table whole: off a terminal (a log, a pipe) at its natural width, so that nothing is squeezed
    to the default 80 columns and cut; on a terminal at the terminal's width, folding what does not fit."""
    if console.is_terminal:
        console.print(table)
        return
    need = console.measure(table, options=console.options.update_width(10_000)).maximum
    old = console.width
    console.width = max(old, need)
    try:
        console.print(table)
    finally:
        console.width = old


def print_table(df: pl.DataFrame, title: str | None = None, console: Console | None = None, **kw) -> None:
    """Print a polars frame as a rich table (`rich_table`'s keywords), whole (`print_rich`)."""
    print_rich(rich_table(df, title, **kw), console or Console())


def score_cell(estimate: float, low: float, high: float, std: float = float("nan"), digits: int = 3,
               bound_digits: int = 2) -> str:  # fmt: skip
    """`0.690 [0.61, 0.75]`, or with a spread over seeds `0.690 ± 0.012 [0.61, 0.75]`.

    The score alone without bounds, `-` without a score; the `± std` part only where std is finite (several seeds).

    Args:
        estimate: the score (the mean over seeds).
        low: lower bound (NaN: none).
        high: upper bound (NaN: none).
        std: standard deviation over seeds (NaN: one seed).
        digits: digits of the score and the std.
        bound_digits: digits of the bounds.
    """
    from submissions.bootstrap import Interval

    text = Interval(estimate, low, high).cell(digits, bound_digits)
    if not (math.isfinite(estimate) and math.isfinite(std)):
        return text
    head = f"{estimate:.{digits}f}"
    return f"{head} ± {std:.{digits}f}{text[len(head):]}"


def ci_cells(df: pl.DataFrame, metrics: tuple[str, ...], digits: int = 3, bound_digits: int = 2) -> pl.DataFrame:
    """Replace each score column `m` (with `m_low`, `m_high` beside it) by cells like `0.690 [0.61, 0.75]`; where
    an `m_std` column holds a finite std over seeds, `0.690 ± 0.012 [0.61, 0.75]` (`score_cell`).

    A row without bounds shows the score alone; a row without a score shows `-`. The bound (and std) columns are
    dropped.

    Args:
        df: the rows.
        metrics: score columns that have `_low`/`_high` (and optionally `_std`) companions.
        digits: digits of the score.
        bound_digits: digits of the bounds.
    """

    def cell(row: dict, m: str) -> str:
        nan = float("nan")
        val = [nan if row.get(k) is None else float(row[k]) for k in (m, f"{m}_low", f"{m}_high", f"{m}_std")]
        return score_cell(*val, digits=digits, bound_digits=bound_digits)

    rows = list(df.iter_rows(named=True))
    out = df.with_columns(pl.Series(m, [cell(r, m) for r in rows], dtype=pl.Utf8) for m in metrics)
    return out.drop([c for m in metrics for c in (f"{m}_low", f"{m}_high", f"{m}_std") if c in out.columns])


def paired_display(paired: pl.DataFrame) -> pl.DataFrame:
    """A paired-differences table as shown: per score `d <score>` (difference with its interval) and `<score>?`
    (the verdict), from columns `d_<score>`, `d_<score>_low`, `d_<score>_high`, `<score>_verdict`.

    Args:
        paired: comparison, d_*, *_verdict and note columns (`harness.experiments.folds.PAIRED_SCHEMA`).
    """
    scores = ("valence", "arousal", "average")
    renamed = paired.rename({f"d_{c}{e}": f"{c}{e}" for c in scores for e in ("", "_low", "_high")})
    shown = ci_cells(renamed, scores, digits=3, bound_digits=3)
    cols = ["comparison", *(x for c in scores for x in (c, f"{c}_verdict")), "note"]
    return shown.select(cols).rename({c: f"d {c}" for c in scores} | {f"{c}_verdict": f"{c}?" for c in scores})


def save_table(df: pl.DataFrame, stem: str | Path) -> tuple[Path, Path]:
    """Write `stem.csv` and `stem.md` atomically; return both paths."""
    stem = Path(stem)
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    atomic_write_text(csv_path, df.write_csv())
    atomic_write_text(md_path, table_markdown(df))
    return csv_path, md_path
