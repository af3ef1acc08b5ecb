"""One self-contained HTML page of a demo, an experiment or a single run (`harness report`).

The page carries everything it shows: CSS inline, plots as base64 PNG data URIs, no script or style from elsewhere
(its Content-Security-Policy forbids any network access), so it opens from disk, offline, and can be mailed.

What it shows, where the folder holds it:

- Tables I, II (measured: `harness compare`, with its cost rows), III and IV (`table_<name>.json`, else
  `table_<name>.csv` and `table_<name>_paired.csv`) with their 95% video-bootstrap intervals, and the paired
  differences with their verdicts;
- the leaderboard beside the 8th ABAW teams and the paper's rows (`harness leaderboard`'s own functions:
  `harness.reporting.leaderboard.load_entries` and `submissions.leaderboard.leaderboard`);
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

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from core.atomic import atomic_write_text
from core.errors import HarnessError
from core.safe_read import ReadError, iter_json_lines, parse_json
from harness.folders.demo import DemoDir
from harness.folders.experiment import TABLES, ExperimentDir
from harness.folders.run import RunDir
from harness.reporting.html import render_html
from harness.reporting.leaderboard import load_entries
from harness.reporting.page import (
    PLOTS,
    Plot,
    Report,
    Table,
    _text,
    cost_table,
    environment_table,
    gates_table,
    leaderboard_tables,
    score_tables,
    timings_table,
)
from harness.reporting.plots import curve_keys, curves_figure
from submissions.bootstrap import Interval
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


def locate(path: str | Path) -> Sources:
    """What a report source is: a demo folder, an experiment folder or a run folder (a scores.json file stands for
    the demo folder holding it).

    Args:
        path: the file or folder given on the command line.

    Raises:
        HarnessError: the path is none of these (the message says what was looked for).
    """
    path = Path(path)
    if path.is_file() and DemoDir.of_scores(path) is not None:
        path = path.parent
    if not path.exists():
        raise HarnessError(f"{path}: no such file or folder; give a demo folder (`harness demo --out DIR`), an "
                           "experiment folder (`harness folds` / `ablate`) or a run folder")
    if not path.is_dir():
        raise HarnessError(f"{path}: not a folder; give a demo, experiment or run folder")
    if RunDir(path).summary_file.is_file():
        return Sources(path, "run", None, path)
    demo, experiment = DemoDir(path), ExperimentDir(path)
    if demo.looks_like_one():
        exp = demo.experiments
        exp_dir = exp.path if exp.path.is_dir() else None
        return Sources(path, "demo", exp_dir, exp.fold0 if exp.fold0.is_dir() else None)
    if experiment.looks_like_one():
        return Sources(path, "experiment", path, experiment.fold0 if experiment.fold0.is_dir() else None)
    raise HarnessError(f"{path}: not a report source: no scores.json or experiments/ (a demo's folder), no "
                       "table_*.json, folds/ or ablation/ (an experiment folder) and no summary.json (a run folder)")


def read_json(path: Path, what: str) -> Any:
    """A bounded JSON file (`core.safe_read`: bytes, depth and integer digits bounded); invalid JSON is a located
    error."""
    text = read_text_bounded(path, what, MAX_JSON_BYTES)
    try:
        return parse_json(text, path, what, expect=None)
    except ReadError as exc:
        raise InputRefusedError(exc.path, exc.reason, exc.line, exc.code) from None


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
        js, csv, pcsv = (ExperimentDir(folder).table_file(name, s) for s in (".json", ".csv", "_paired.csv"))
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


def _cell(d: Any) -> str:
    """`Interval.cell` of an interval's dict as `Interval.as_dict` writes it (None for a missing bound)."""
    if not isinstance(d, dict):
        return "-"
    num = [d.get(k) if isinstance(d.get(k), int | float) else math.nan for k in ("estimate", "low", "high")]
    return Interval(*map(float, num)).cell()


def ensemble_table(folders: Sequence[Path]) -> Table | None:
    """The ensembles of a demo (`harness ensemble`'s folders): one row per estimate, with the members, the weights,
    the estimate's interval, the best single member on the same frames and the paired difference with its verdict.
    None when no folder holds an ensemble summary."""
    rows = []
    for folder in folders:
        summary = RunDir(folder).summary_file
        if not summary.is_file():
            continue
        doc = _read_object(summary, "ensemble summary")
        members = [m.get("name", "?") for m in doc.get("members", []) if isinstance(m, dict)]
        weights = doc.get("weights") if isinstance(doc.get("weights"), dict) else {}
        mode = str(weights.get("mode", "?")) + (" per dimension" if weights.get("per_dimension") else "")
        for est in doc.get("estimates", []):
            if not isinstance(est, dict):
                continue
            ci = est.get("ci") if isinstance(est.get("ci"), dict) else {}
            paired = est.get("paired") if isinstance(est.get("paired"), dict) else None
            verdicts = est.get("verdicts") if isinstance(est.get("verdicts"), dict) else {}
            best = est.get("best_score") if isinstance(est.get("best_score"), dict) else {}
            best_p = best.get("p_va")
            score = _cell(ci.get("p_va")) + ("" if est.get("of") == "ensemble" else " (folds)")
            best_num = f"{best_p:.3f}" if isinstance(best_p, int | float) else "-"
            best_cell = f"{est.get('best_member', '?')}: {best_num}"
            diff = "-" if paired is None else f"{_cell(paired.get('p_va'))} {verdicts.get('p_va', '')}"
            rows.append((folder.name, str(doc.get("ensemble", "?")), ", ".join(members), mode, str(est.get("on", "?")),
                         score, best_cell, diff))  # fmt: skip
    if not rows:
        return None
    return Table("Ensembles: P_VA on frames their weights never saw", ("ensemble", "kind", "members", "weights",
                 "estimated on", "P_VA", "best single member", "minus best single"), tuple(rows),
                 note="`harness ensemble`'s folders under ensembles/. [low, high]: 95% percentile bootstrap over video "
                      "clusters; the difference is paired (the same frames), resolved when its interval excludes 0. "
                      "(folds): a fold ensemble's validation row is its folds' own mean, no ensemble is scored there.")


def _leaderboard_source(src: Sources) -> Path | None:
    """The file or folder `harness leaderboard` reads for this report: a run folder, a demo's scores.json, else an
    experiment folder holding a finished run; None where it would find nothing finished."""
    if src.kind == "run":
        return src.root
    if DemoDir(src.root).scores_file.is_file():
        return DemoDir(src.root).scores_file
    exp = src.experiments
    if exp is not None and (ExperimentDir(exp).fold_summaries() or ExperimentDir(exp).ablation_summaries()):
        return exp
    return None


def read_metrics(path: Path) -> list[dict]:
    """A run's per-epoch records from metrics.jsonl (lines with an integer `epoch`, their numeric values only: what
    the curves plot); a line that is not JSON is a located error."""
    try:
        records = [rec for _i, rec in iter_json_lines(path, "metrics file", expect=None, max_bytes=MAX_METRICS_BYTES)
                   if isinstance(rec, dict) and _plottable(rec.get("epoch")) and isinstance(rec["epoch"], int)]
    except ReadError as exc:
        raise InputRefusedError(exc.path, exc.reason, exc.line, exc.code) from None
    return [{k: v for k, v in rec.items() if _plottable(v)} for rec in records]


MAX_PLOTTED = 1e12
"""Largest magnitude a curve plots (a loss or an epoch of 1e308 would break the axes)."""


def _plottable(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) \
        and abs(value) <= MAX_PLOTTED


def curves_png(records: Sequence[Mapping[str, Any]]) -> bytes:
    """Training curves of one run as PNG bytes (`harness.reporting.plots.curves_figure`, the demo's keys and
    resolution)."""
    import matplotlib.pyplot as plt

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
    folder = DemoDir(src.root).plots
    pngs = sorted(folder.glob("*.png"), key=_plot_order) if folder.is_dir() else []
    for png in pngs:
        title, caption = PLOTS.get(png.stem.split("_")[0], (png.stem, ""))
        plots.append(Plot(f"{title}: {png.name}", read_png(png), caption))
    drawn = {p.stem.removeprefix("curves_") for p in pngs if p.stem.startswith("curves_")}
    runs = [src.root] if src.kind == "run" else (
        sorted(ExperimentDir(src.experiments).fold_dirs(), key=_fold_number) if src.experiments else [])
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
    demo = DemoDir(root)
    if demo.ensembles.is_dir():
        ens = ensemble_table(sorted(p for p in demo.ensembles.iterdir() if p.is_dir()))
        if ens is not None:
            rep.tables.append(ens)
    if demo.scores_file.is_file():
        scores = _read_object(demo.scores_file, "scores file")
        gates = gates_table(scores)
        if gates is not None:
            rep.leaderboard.append(gates)
        rep.files.append(("scores", str(demo.scores_file)))
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
    if demo.timings_file.is_file():
        rep.timings = timings_table(_read_object(demo.timings_file, "timings file"))
    if demo.submission_zip.is_file():
        rep.files.append(("submission", str(demo.submission_zip)))
    return rep


def default_output(path: str | Path) -> Path:
    """Where the report goes without --out: `report.html` in the folder given (beside a given scores.json)."""
    path = Path(path)
    return DemoDir(path.parent if path.is_file() else path).report_file


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
        raise HarnessError(f"{target}: is a folder; give the report's file, e.g. --out {DemoDir(target).report_file}")
    page = render_html(collect_report(path))
    return atomic_write_text(target, page)
