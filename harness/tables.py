"""Results as tables: rich on screen, CSV and Markdown on disk (one function for each, shared by every command)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table

from submissions.atomic import atomic_write_text
from submissions.leaderboard import table_markdown


def rich_table(df: pl.DataFrame, title: str | None = None, floats: int = 3, highlight: str | None = None) -> Table:
    """A rich Table of a polars frame; rows where boolean column `highlight` is true are bold."""
    cols = [c for c in df.columns if c != highlight]
    t = Table(title=title, show_lines=False)
    for c in cols:
        t.add_column(c, justify="right" if df.schema[c].is_numeric() else "left")
    for row in df.iter_rows(named=True):
        cells = [f"{row[c]:.{floats}f}" if isinstance(row[c], float) else str(row[c]) for c in cols]
        t.add_row(*cells, style="bold green" if highlight and row.get(highlight) else None)
    return t


def print_table(df: pl.DataFrame, title: str | None = None, console: Console | None = None, **kw) -> None:
    (console or Console()).print(rich_table(df, title, **kw))


def save_table(df: pl.DataFrame, stem: str | Path) -> tuple[Path, Path]:
    """Write `stem.csv` and `stem.md` atomically; return both paths."""
    stem = Path(stem)
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    atomic_write_text(csv_path, df.write_csv())
    atomic_write_text(md_path, table_markdown(df))
    return csv_path, md_path
