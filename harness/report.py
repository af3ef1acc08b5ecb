"""One self-contained HTML page of a demo, an experiment or a single run (`harness report`).

The page carries everything it shows: CSS inline, plots as base64 PNG data URIs, no script or style from elsewhere
(its Content-Security-Policy forbids any network access), so it opens from disk, offline, and can be mailed.

What it shows, where the folder holds it:

- Tables I, II (measured: `harness compare`, with its cost rows), III and IV (`table_<name>.json`, else
  `table_<name>.csv` and `table_<name>_paired.csv`) with their 95% video-bootstrap intervals, and the paired
  differences with their verdicts;
- the leaderboard beside the 8th ABAW teams and the paper's rows (`harness leaderboard`'s own functions:
  `harness.commands.leaderboard.load_entries` and `submissions.leaderboard.leaderboard`);
- the plots under `plots/` (traces as in the paper's Fig. 4, histograms as in Fig. 5, BDCA gates over time,
  training curves) and, for folds without a curve PNG and for a run folder, curves drawn from `metrics.jsonl`;
- the resolved config and git hash of fold 0's run (or of the run), the platform fingerprint (`scores.json`, else
  the run's `summary.json`), per-stage time and peak RSS (`timings.json`).

Two layers: `Report` and the `*_table` functions turn data into what the page shows and `render_html` turns that
into HTML (pure: the tests call them with made-up data); `collect_report` and `write_report` read the folder. Every
file is read through `submissions.limits` (bounded, regular files only), so a missing, hostile or unreadable input
is a located `path: error: message`, never a traceback.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from core.atomic import atomic_write_text
from core.errors import HarnessError
from harness.runs import SUMMARY_FILE, RunDir
from harness.tables import TABLES, ci_cells, paired_display
from submissions.limits import InputRefusedError, read_bounded, read_text_bounded

MAX_JSON_BYTES = 32 * 1024 * 1024
"""A table, scores, timings or summary JSON (a few kB to a few hundred kB in practice)."""

MAX_TEXT_BYTES = 1024 * 1024
"""config.yaml and git.txt (a few kB)."""

MAX_METRICS_BYTES = 64 * 1024 * 1024
"""A run's metrics.jsonl (one short line per epoch and evaluation)."""

MAX_PNG_BYTES = 16 * 1024 * 1024
"""One plot (the demo's are 50-150 kB)."""

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

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
    """A results table's rows (`table_<name>.json` or `.csv`, as `harness.experiments` writes them) as a frame of
    the columns the page shows: missing or non-numeric values become null, so any row list gives a frame."""
    floats = [*SCORES, *(f"{c}_{e}" for c in SCORES for e in ("low", "high", "std")),
              *(f"paper_{c}" for c in SCORES)]  # fmt: skip
    data: dict[str, list] = {"row": [_text(r.get("row")) for r in rows], "on": [_text(r.get("on")) for r in rows]}
    data.update({c: [_number(r.get(c)) for r in rows] for c in floats})
    return pl.DataFrame(data, schema={"row": pl.Utf8, "on": pl.Utf8, **dict.fromkeys(floats, pl.Float64)})


def paired_frame(rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """A paired-differences table's rows (`paired` of `table_<name>.json`, or `table_<name>_paired.csv`) as a frame
    of the columns `harness.tables.paired_display` reads (missing values become null, a missing verdict '-')."""
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
        entries: `submissions.leaderboard.Entry` rows (`harness.commands.leaderboard.load_entries`).
        table: the paper's table shown beside.
    """
    from submissions.leaderboard import leaderboard

    df = ci_cells(leaderboard(list(entries), table=table), SCORES)
    return [frame_table(df, f"Leaderboard: ours by group, then the paper's Table {table}", CI_NOTE
                        + " delta: P_VA minus the paper's BDCA.", bold="ours", signed=("delta",))]  # fmt: skip


def environment_table(platform: Mapping[str, Any]) -> Table:
    """The platform fingerprint (`harness.fingerprint.platform_fingerprint`) as a two-column table."""
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


# ---------------------------------------------------------------------------------------------------------------
# HTML (pure)
# ---------------------------------------------------------------------------------------------------------------

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d2125;
       background: #f6f7f9; }
header { background: #24364b; color: #fff; padding: 18px 28px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; opacity: .85; word-break: break-all; }
nav { padding: 8px 28px; background: #e8ecf1; position: sticky; top: 0; }
nav a { margin-right: 16px; color: #24364b; text-decoration: none; font-weight: 600; }
main { padding: 8px 28px 40px; max-width: 1400px; }
section { margin-top: 26px; }
h2 { border-bottom: 2px solid #24364b; padding-bottom: 3px; font-size: 18px; }
.wrap { overflow-x: auto; margin: 14px 0 4px; }
table { border-collapse: collapse; background: #fff; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border: 1px solid #d3d8de; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #eef1f5; }
td.num { text-align: right; white-space: nowrap; }
td:not(.num) { max-width: 36em; overflow-wrap: anywhere; }
tr.bold td { font-weight: 700; background: #eaf6ea; }
td.resolved { color: #0a6b22; font-weight: 600; white-space: nowrap; }
td.unresolved { color: #8a5a00; white-space: nowrap; }
p.note { color: #555; font-size: 12px; margin: 2px 0 10px; }
figure { margin: 16px 0; background: #fff; padding: 10px; border: 1px solid #d3d8de; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: #444; font-size: 13px; margin-top: 4px; }
pre { background: #fff; border: 1px solid #d3d8de; padding: 10px; overflow-x: auto; font-size: 12px; }
ul.notes li { color: #8a5a00; }
"""

CHECK_SCRIPT = """
(function () {
  // Self-check for a browser test: broken images and script errors, written onto the body element once loaded.
  // In <head>, so that it counts errors of anything after it; the body exists by the time load fires.
  var errors = 0;
  function mark() { if (document.body) { document.body.setAttribute("data-errors", String(errors)); } }
  window.addEventListener("error", function () { errors += 1; mark(); }, true);
  window.addEventListener("load", function () {
    var imgs = document.images, broken = 0;
    for (var i = 0; i < imgs.length; i++) {
      if (!imgs[i].complete || imgs[i].naturalWidth === 0) { broken += 1; }
    }
    document.body.setAttribute("data-images", String(imgs.length));
    document.body.setAttribute("data-broken-images", String(broken));
    mark();
  });
})();
"""

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
"""The page's Content-Security-Policy: nothing may load from anywhere but the page itself."""

_NUMERIC = re.compile(r"^[+\-]?(\d+\.?\d*|\.\d+)( ± [\d.]+)?( \[[^\]]+\])?( \([^)]*\))?$")
"""A score cell (`0.634`, `+0.012`, `0.690 ± 0.012 [0.61, 0.75]`, `0.588 [0.47, 0.64] (0.088)`): right-aligned;
anything else (a stage name, a version such as 2.14.1) is text."""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _cell(text: str) -> str:
    if text in ("resolved", "not resolved"):
        return f'<td class="{text.replace("not ", "un")}">{_e(text)}</td>'
    return f'<td class="num">{_e(text)}</td>' if _NUMERIC.match(text) or text == "-" else f"<td>{_e(text)}</td>"


def table_html(table: Table) -> str:
    """One table (caption, header, rows, note) as HTML; every text escaped."""
    head = "".join(f"<th>{_e(c)}</th>" for c in table.columns)
    body = []
    for i, row in enumerate(table.rows):
        cls = ' class="bold"' if i < len(table.bold) and table.bold[i] else ""
        body.append(f"<tr{cls}>" + "".join(_cell(c) for c in row) + "</tr>")
    note = f'<p class="note">{_e(table.note)}</p>' if table.note else ""
    return (f'<div class="wrap"><table><caption>{_e(table.title)}</caption><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>{note}")


def plot_html(plot: Plot) -> str:
    """One figure: its PNG inline as a data URI, its title and caption."""
    caption = f"<figcaption>{_e(plot.caption)}</figcaption>" if plot.caption else ""
    return (f"<figure><h3>{_e(plot.title)}</h3><img src=\"{data_uri(plot.png)}\" alt=\"{_e(plot.title)}\">"
            f"{caption}</figure>")


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{_e(title)}</h2>{body}</section>'


def render_html(report: Report) -> str:
    """The whole page: inline CSS, inline images, a tiny inline self-check script, nothing fetched.

    Args:
        report: what to show (`collect_report`, or made up by a test).

    Returns:
        The HTML document.
    """
    sections: list[tuple[str, str, str]] = []
    if report.notes:
        items = "".join(f"<li>{_e(n)}</li>" for n in report.notes)
        sections.append(("notes", "Not shown", f'<ul class="notes">{items}</ul>'))
    if report.tables:
        body = "".join(table_html(t) for t in report.tables)
        sections.append(("tables", "Tables I, II (measured), III and IV", body))
    if report.leaderboard:
        sections.append(("leaderboard", "Leaderboard", "".join(table_html(t) for t in report.leaderboard)))
    if report.plots:
        sections.append(("plots", "Plots", "".join(plot_html(p) for p in report.plots)))
    env = []
    if report.environment is not None:
        env.append(table_html(report.environment))
    if report.git is not None:
        env.append(f"<p>git: <code>{_e(report.git)}</code></p>")
    if report.timings is not None:
        env.append(table_html(report.timings))
    if env:
        sections.append(("environment", "Environment, time and memory", "".join(env)))
    if report.config is not None:
        where = f'<p class="note">{_e(report.config_source)}</p>' if report.config_source else ""
        sections.append(("config", "Resolved config", f"{where}<pre>{_e(report.config)}</pre>"))
    if report.files:
        items = "".join(f"<li>{_e(what)}: <code>{_e(where)}</code></li>" for what, where in report.files)
        sections.append(("files", "Files", f"<ul>{items}</ul>"))
    nav = "".join(f'<a href="#{sid}">{_e(title)}</a>' for sid, title, _ in sections)
    main = "".join(_section(*s) for s in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(report.title)}</title><style>{CSS}</style><script>{CHECK_SCRIPT}</script></head>\n"
        '<body data-broken-images="pending" data-images="0" data-errors="0">'
        f"<header><h1>{_e(report.title)}</h1><p>{_e(report.kind)}: {_e(report.source)}</p></header>"
        f"<nav>{nav}</nav><main>{main}</main></body></html>\n"
    )


# ---------------------------------------------------------------------------------------------------------------
# Reading a folder (the thin wrapper)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sources:
    """Where a report's inputs are.

    Args:
        root: the folder given.
        kind: `demo`, `experiment` or `run`.
        experiments: the folder holding table_*.json and folds/ (None for a run).
        run: the run whose config, git hash and curves are shown (fold 0's; the run itself for a run folder).
    """

    root: Path
    kind: str
    experiments: Path | None
    run: Path | None


def _has_tables(folder: Path) -> bool:
    return any((folder / f"table_{n}.{ext}").is_file() for n in TABLES for ext in ("json", "csv"))


def locate(path: str | Path) -> Sources:
    """What a report source is: a demo folder, an experiment folder or a run folder (a scores.json file stands for
    the demo folder holding it).

    Args:
        path: the file or folder given on the command line.

    Raises:
        HarnessError: the path is none of these (the message says what was looked for).
    """
    path = Path(path)
    if path.is_file() and path.name == "scores.json":
        path = path.parent
    if not path.exists():
        raise HarnessError(f"{path}: no such file or folder; give a demo folder (`harness demo --out DIR`), an "
                           "experiment folder (`harness folds` / `ablate`) or a run folder")
    if not path.is_dir():
        raise HarnessError(f"{path}: not a folder; give a demo, experiment or run folder")
    if RunDir(path).summary_file.is_file():
        return Sources(path, "run", None, path)
    exp = path / "experiments"
    if (path / "scores.json").is_file() or exp.is_dir():
        exp_dir = exp if exp.is_dir() else None
        run = exp / "folds" / "fold0"
        return Sources(path, "demo", exp_dir, run if run.is_dir() else None)
    if _has_tables(path) or (path / "folds").is_dir() or (path / "ablation").is_dir():
        run = path / "folds" / "fold0"
        return Sources(path, "experiment", path, run if run.is_dir() else None)
    raise HarnessError(f"{path}: not a report source: no scores.json or experiments/ (a demo's folder), no "
                       "table_*.json, folds/ or ablation/ (an experiment folder) and no summary.json (a run folder)")


def read_json(path: Path, what: str) -> Any:
    """A bounded JSON file (`submissions.limits.read_text_bounded`); invalid JSON is a located error."""
    text = read_text_bounded(path, what, MAX_JSON_BYTES)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputRefusedError(path, f"the {what} is not valid JSON ({exc.msg}, column {exc.colno})", exc.lineno,
                                code="json") from None


def _read_object(path: Path, what: str) -> dict:
    data = read_json(path, what)
    if not isinstance(data, dict):
        raise InputRefusedError(path, f"the {what} is not a JSON object", code="format")
    return data


def _rows_of(data: Any, path: Path, what: str) -> list[dict]:
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise InputRefusedError(path, f"the {what} is not a list of row objects", code="format")
    return data


def _read_csv_rows(path: Path, what: str) -> list[dict]:
    text = read_text_bounded(path, what, MAX_JSON_BYTES)
    try:
        return pl.read_csv(io.StringIO(text), infer_schema_length=None).to_dicts()
    except (pl.exceptions.PolarsError, ValueError) as exc:
        raise InputRefusedError(path, f"the {what} is not a readable CSV table ({' '.join(str(exc).split())})",
                                code="format") from None


def read_score_tables(folder: Path) -> list[Table]:
    """Tables I, II (measured), III and IV found in `folder`, with their paired differences (and Table II's cost):
    `table_<name>.json` where it exists
    (title, rows, paired, bootstrap settings), else `table_<name>.csv` and `table_<name>_paired.csv`."""
    out: list[Table] = []
    for name in TABLES:
        js, csv, pcsv = (folder / f"table_{name}{s}" for s in (".json", ".csv", "_paired.csv"))
        if js.is_file():
            doc = _read_object(js, f"table {name} file")
            rows = _rows_of(doc.get("rows"), js, f"'rows' of table {name}")
            paired = _rows_of(doc.get("paired"), js, f"'paired' of table {name}") if doc.get("paired") else None
            boot = doc.get("bootstrap") if isinstance(doc.get("bootstrap"), dict) else {}
            resamples = boot.get("resamples") if isinstance(boot.get("resamples"), int) else None
            out += score_tables(name, rows, paired, _text(doc.get("title")), resamples)
            if doc.get("cost"):
                out.append(cost_table(_rows_of(doc.get("cost"), js, f"'cost' of table {name}")))
        elif csv.is_file():
            rows = _read_csv_rows(csv, f"table {name} CSV")
            paired = _read_csv_rows(pcsv, f"table {name} paired CSV") if pcsv.is_file() else None
            out += score_tables(name, rows, paired)
    return out


def _leaderboard_source(src: Sources) -> Path | None:
    """The file or folder `harness leaderboard` reads for this report: a run folder, a demo's scores.json, else an
    experiment folder holding a finished run; None where it would find nothing finished."""
    if src.kind == "run":
        return src.root
    if (src.root / "scores.json").is_file():
        return src.root / "scores.json"
    exp = src.experiments
    if exp is not None and (next(exp.glob(f"folds/fold*/{SUMMARY_FILE}"), None)
                            or next(exp.glob(f"ablation/*/fold*/{SUMMARY_FILE}"), None)):  # fmt: skip
        return exp
    return None


def read_metrics(path: Path) -> list[dict]:
    """A run's per-epoch records from metrics.jsonl (lines with `epoch`); a line that is not JSON is a located
    error."""
    text = read_text_bounded(path, "metrics file", MAX_METRICS_BYTES)
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputRefusedError(path, f"the metrics file's line is not JSON ({exc.msg})", i, code="json") from None
        if isinstance(rec, dict) and "epoch" in rec:
            out.append(rec)
    return out


def curves_png(records: Sequence[Mapping[str, Any]]) -> bytes:
    """Training curves of one run as PNG bytes (`harness.plots.curves_figure`, the demo's keys and resolution)."""
    import matplotlib.pyplot as plt

    from harness.plots import curve_keys, curves_figure

    fig = curves_figure(records, curve_keys(records))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def read_png(path: Path) -> bytes:
    """A bounded PNG file; anything else is refused (a broken image would show as nothing)."""
    data = read_bounded(path, "plot", MAX_PNG_BYTES)
    if not data.startswith(PNG_MAGIC):
        raise InputRefusedError(path, "the plot is not a PNG image", code="format")
    return data


def _plot_order(path: Path) -> tuple[int, str]:
    kind = path.stem.split("_")[0]
    order = list(PLOTS)
    return (order.index(kind) if kind in order else len(order), path.name)


def _fold_number(path: Path) -> int:
    digits = path.name.removeprefix("fold")
    return int(digits) if digits.isdigit() else 1 << 30


def read_plots(src: Sources) -> list[Plot]:
    """The PNGs under plots/ (a demo's), then curves drawn from metrics.jsonl for each fold without a curve PNG
    (an experiment's folds; a run folder's own)."""
    plots: list[Plot] = []
    folder = src.root / "plots"
    pngs = sorted(folder.glob("*.png"), key=_plot_order) if folder.is_dir() else []
    for png in pngs:
        title, caption = PLOTS.get(png.stem.split("_")[0], (png.stem, ""))
        plots.append(Plot(f"{title}: {png.name}", read_png(png), caption))
    drawn = {p.stem.removeprefix("curves_") for p in pngs if p.stem.startswith("curves_")}
    runs = [src.root] if src.kind == "run" else (
        sorted(src.experiments.glob("folds/fold*"), key=_fold_number) if src.experiments else [])
    for run in runs:
        metrics = RunDir(run).metrics_file
        if run.name in drawn or not metrics.is_file():
            continue
        records = read_metrics(metrics)
        if records:
            plots.append(Plot(f"Training curves: {run.name}", curves_png(records),
                              f"Per epoch, drawn from {metrics}."))
    return plots


def collect_report(path: str | Path) -> Report:
    """Read everything a demo, experiment or run folder holds into a `Report` (`locate` says which is which).

    Args:
        path: the folder (or a demo's scores.json).

    Raises:
        HarnessError: the path is no report source, or a file in it is unreadable (located, one line each).
    """
    from harness.commands.leaderboard import load_entries

    src = locate(path)
    root = src.root
    rep = Report(f"BDCA harness report: {root.resolve().name}", str(path), src.kind)
    if src.experiments is not None:
        rep.tables = read_score_tables(src.experiments)
        if not rep.tables:
            rep.notes.append(f"no table_I/II_measured/III/IV.json or .csv in {src.experiments}")
    lb = _leaderboard_source(src)
    if lb is not None:
        try:
            entries = load_entries(lb)
        except (TypeError, ValueError, KeyError) as exc:  # a score that is no number: the file's fault, located
            raise InputRefusedError(lb, f"holds a score the leaderboard cannot read ({exc!r})", code="format") from None
        rep.leaderboard = leaderboard_tables(entries)
    else:
        rep.notes.append(f"no leaderboard: no scores.json in {root} and no finished run (folds/fold*/summary.json)")
    scores: dict = {}
    if (root / "scores.json").is_file():
        scores = _read_object(root / "scores.json", "scores file")
        gates = gates_table(scores)
        if gates is not None:
            rep.leaderboard.append(gates)
        rep.files.append(("scores", str(root / "scores.json")))
    rep.plots = read_plots(src)
    platform = scores.get("platform")
    run = RunDir(src.run) if src.run is not None else None
    if not isinstance(platform, dict) and run is not None and run.summary_file.is_file():
        platform = _read_object(run.summary_file, "run summary").get("platform")
    if isinstance(platform, dict):
        rep.environment = environment_table(platform)
    if run is not None:
        if run.git_file.is_file():
            rep.git = read_text_bounded(run.git_file, "git hash file", MAX_TEXT_BYTES).strip()
        if run.config_file.is_file():
            rep.config = read_text_bounded(run.config_file, "run config", MAX_TEXT_BYTES)
            rep.config_source = str(run.config_file)
    if (root / "timings.json").is_file():
        rep.timings = timings_table(_read_object(root / "timings.json", "timings file"))
    if (root / "submission.zip").is_file():
        rep.files.append(("submission", str(root / "submission.zip")))
    return rep


def default_output(path: str | Path) -> Path:
    """Where the report goes without --out: `report.html` in the folder given (beside a given scores.json)."""
    path = Path(path)
    return (path.parent if path.is_file() else path) / "report.html"


def write_report(path: str | Path, out: str | Path | None = None) -> Path:
    """Read a demo, experiment or run folder and write its report atomically (`core.atomic`).

    Args:
        path: the folder (`collect_report`).
        out: the HTML file (default `default_output(path)`).

    Returns:
        The report's path.

    Raises:
        HarnessError: see `collect_report`; also when `out` is a folder.
    """
    target = Path(out) if out else default_output(path)
    if target.is_dir():
        raise HarnessError(f"{target}: is a folder; give the report's file, e.g. --out {target / 'report.html'}")
    page = render_html(collect_report(path))
    return atomic_write_text(target, page)
