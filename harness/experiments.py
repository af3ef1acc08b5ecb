"""The paper's experiments: Table I (folds 0-5), Table IV (fusion ablation) and Table III (fine-tuning ablation).

Run folders under one output folder:

    <out>/stage1/                     stage 1 (encoder, features into the cache), shared by everything below
    <out>/folds/fold<i>/              the configured model on fold i (Table I, and Table IV's row of that model)
    <out>/ablation/<model>/fold<i>/   the other Table IV models
    <out>/ablation/visual_only_<feature>/fold<i>/   Table III's visual-only model on other visual features
    <out>/table_I.{csv,md,json}, table_III.{csv,md,json}, table_IV.{csv,md,json}, table_{III,IV}_paired.csv

Every run is skipped when its folder holds a final record of the same config hash and fold, so an interrupted
`harness folds` or `harness ablate` continues with the first unfinished run. All variants use the same folds and
seeds. Each table lists our numbers beside the paper's (`submissions.leaderboard.paper_rows`).

Every score carries a 95% video-bootstrap interval (`submissions.bootstrap`: percentile interval, `RESAMPLES`
resamples, seed `SEED`), computed from the run's saved predictions (`<run>/predictions/<split>.npz`, float32) and the
split's labels, and written beside the run as `<run>/bootstrap.json`. A row over several folds (Table I's mean,
Tables III and IV) resamples each fold's videos on its own and averages the folds per resample. Tables IV and III
also carry paired differences of rows scored on the same videos (`pairs_iv`, `PAIRS_III`): the interval of
row - reference from the same draws for both rows, with the verdict "resolved" when it excludes 0.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from harness.config import BASELINE_ROW, Config
from harness.stage2 import Stage2Result, train_stage2
from submissions.atomic import atomic_write_text
from submissions.bootstrap import LEVEL, RESAMPLES, SEED, BootstrapCI, ClusterStats, bootstrap_ci, paired_bootstrap
from submissions.errors import MetricError

PAPER_NAMES_IV = {
    "audio_only": "Only Audio",
    "visual_only": "Only Visual",
    "concat": "Concat w/o BDCA",
    "bdca_no_dw": "BDCA w/o DW",
    "bdca": "BDCA",
    BASELINE_ROW: "Baseline",
}
"""Our temporal model names (and the challenge baseline's row, `harness.baseline`) -> the paper's Table IV rows."""

TABLE3_ROWS = (("visual_mae", "MAE w/o FT"), ("visual", "MAE"))
"""Table III: (cached visual feature, the paper's row) for the visual-only model."""

PAIRS_III = (("MAE w/o FT", "MAE"),)
"""Table III's paired comparison: the features before fine-tuning against those after."""

SCORES = (("valence", "ccc_v"), ("arousal", "ccc_a"), ("average", "p_va"))
"""Table columns and the score each shows."""

CI_NOTE = (f"[low, high]: {LEVEL:.0%} percentile bootstrap over video clusters (the two persons of a raw video "
           f"are one), {RESAMPLES} resamples, seed {SEED}; a row over several folds resamples each fold's videos")


@dataclass
class TableReport:
    """A written results table.

    Args:
        name: `I`, `III` or `IV`.
        table: the rows (ours beside the paper's).
        files: the CSV and Markdown files.
        results: the runs behind it.
        intervals: run folder -> the bootstrap interval of the run's reported score.
        paired: the paired differences (Tables III and IV), None for Table I.
    """

    name: str
    table: pl.DataFrame
    files: list[Path]
    results: list[Stage2Result] = field(default_factory=list)
    intervals: dict[str, BootstrapCI] = field(default_factory=dict)
    paired: pl.DataFrame | None = None

    def interval(self, res: Stage2Result) -> BootstrapCI | None:
        """The interval of one run's reported score (None when it could not be computed)."""
        return self.intervals.get(str(res.run_dir))


def run_dir_for(out: str | Path, cfg: Config, fold: int, model: str | None = None, visual: str | None = None) -> Path:
    """The run folder of a (model, visual feature, fold) variant (see the module docstring).

    Args:
        out: the experiment output folder.
        cfg: the base config.
        fold: fold index.
        model: temporal model (default: the config's).
        visual: visual feature (default: the config's).
    """
    model = model or cfg.model.name
    visual = visual or cfg.features.visual
    out = Path(out)
    if model == cfg.model.name and visual == cfg.features.visual:
        return out / "folds" / f"fold{fold}"
    name = model if visual == cfg.features.visual else f"{model}_{visual}"
    return out / "ablation" / name / f"fold{fold}"


def variant(cfg: Config, model: str | None = None, visual: str | None = None) -> Config:
    """The config of one ablation variant (its run folder's config.yaml names the real model and features)."""
    changes: dict[str, Any] = {}
    if model and model != cfg.model.name:
        changes["model.name"] = model
    if visual and visual != cfg.features.visual:
        changes["features.visual"] = visual
    return cfg.replace(**changes) if changes else cfg


def _maybe_stage1(cfg: Config, layout: Any, cache: Any, out: Path, resume: bool, progress: bool | None,
                  console: Any = None) -> Path | None:  # fmt: skip
    """Run stage 1 into `<out>/stage1` when enabled (skipped when its features are cached); the encoder weights."""
    if not cfg.stage1.enabled:
        return None
    from harness.stage1 import run_stage1

    res = run_stage1(cfg, layout, cache, out / "stage1", resume=resume, progress=progress)
    if console is not None and not res.skipped and cfg.stage1.reserve > 0:
        console.print(res.reserve_note())
    return res.encoder_weights


def _paper(table: str) -> dict[str, tuple[float, float, float]]:
    """The paper's rows of a table by name ({} when the lead's table is unavailable)."""
    try:
        from submissions.leaderboard import paper_rows
    except ImportError:  # pragma: no cover - the submissions package ships it
        return {}
    return {e.name: (e.ccc_v, e.ccc_a, e.p_va) for e in paper_rows(table)}


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else math.nan


def run_stats(res: Stage2Result, layout: Any) -> ClusterStats | None:
    """The per-cluster statistics of a run's reported split, from its saved predictions and the split's labels.

    Args:
        res: the run.
        layout: the dataset layout (the annotation files).

    Returns:
        None when the run folder holds no predictions of that split.
    """
    from harness.data import load_labels
    from harness.predict import load_predictions
    from submissions.bootstrap import cluster_stats

    path = res.run_dir / "predictions" / f"{res.reported_on}.npz"
    if not path.is_file():
        return None
    preds = load_predictions(path)
    labels = {v: load_labels(layout.entry(v).annotation, preds[v].shape[0]) for v in preds}
    return cluster_stats(labels, preds)


def run_interval(res: Stage2Result, layout: Any) -> tuple[ClusterStats | None, BootstrapCI | None]:
    """A run's statistics and interval; the interval is also written to `<run>/bootstrap.json`.

    Args:
        res: the run.
        layout: the dataset layout.
    """
    stats = run_stats(res, layout)
    if stats is None:
        return None, None
    ci = bootstrap_ci(stats)
    doc = {"on": res.reported_on, "videos": stats.videos, "frames": stats.frames, **ci.as_dict()}
    text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    path = res.run_dir / "bootstrap.json"
    if not path.is_file() or path.read_text(encoding="utf-8") != text:  # a rerun leaves a finished run untouched
        atomic_write_text(path, text)
    return stats, ci


def _row(name: str, ours: Sequence[float | None], paper: Sequence[float] | None, on: str, runs: str,
         ci: BootstrapCI | None = None) -> dict[str, Any]:  # fmt: skip
    p = paper or (math.nan, math.nan, math.nan)
    o = [math.nan if x is None else float(x) for x in ours]
    row = {"row": name, "valence": o[0], "arousal": o[1], "average": o[2], "paper_valence": float(p[0]),
           "paper_arousal": float(p[1]), "paper_average": float(p[2]), "on": on, "runs": runs}  # fmt: skip
    for col, m in SCORES:
        row[f"{col}_low"] = ci[m].low if ci else math.nan
        row[f"{col}_high"] = ci[m].high if ci else math.nan
    row["clusters"] = ci.clusters if ci else None
    return row


TABLE_SCHEMA = {"row": pl.Utf8, "valence": pl.Float64, "arousal": pl.Float64, "average": pl.Float64,
                "paper_valence": pl.Float64, "paper_arousal": pl.Float64, "paper_average": pl.Float64, "on": pl.Utf8,
                "runs": pl.Utf8, **{f"{c}_{e}": pl.Float64 for c, _ in SCORES for e in ("low", "high")},
                "clusters": pl.Int64}  # fmt: skip
"""A results table's columns (CSV and JSON): scores, the paper's, where scored, the runs, then the intervals."""

PAIRED_SCHEMA = {"comparison": pl.Utf8, "row": pl.Utf8, "against": pl.Utf8,
                 **{f"{k}{c}{e}": t for c, _ in SCORES
                    for k, e, t in (("d_", "", pl.Float64), ("d_", "_low", pl.Float64), ("d_", "_high", pl.Float64),
                                    ("", "_verdict", pl.Utf8))},
                 "clusters": pl.Int64, "note": pl.Utf8}  # fmt: skip
"""A paired-differences table's columns: per score the difference row - against, its interval and the verdict."""


def _paired_row(name: str, against: str, a: list[ClusterStats | None], b: list[ClusterStats | None]) -> dict[str, Any]:
    """One paired comparison (row - against) over the folds both rows were scored on."""
    out: dict[str, Any] = {"comparison": f"{name} - {against}", "row": name, "against": against}
    note, d = "", None
    if any(x is None for x in [*a, *b]):
        note = "a run has no saved predictions"
    else:
        try:
            d = paired_bootstrap([x for x in a if x], [x for x in b if x])
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
    return out


def _paired_table(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=PAIRED_SCHEMA)


def _display(df: pl.DataFrame) -> pl.DataFrame:
    """The shown table: score cells with their intervals, the paper's scores, where scored."""
    from harness.tables import ci_cells

    cols = ["row", "valence", "arousal", "average", "paper_valence", "paper_arousal", "paper_average", "on"]
    shown = ci_cells(df.select([*cols, *(f"{c}_{e}" for c, _ in SCORES for e in ("low", "high"))]),
                     tuple(c for c, _ in SCORES))  # fmt: skip
    return shown.select(cols).rename({c: c.replace("paper_", "paper ") for c in cols if c.startswith("paper_")})


def _display_paired(paired: pl.DataFrame) -> pl.DataFrame:
    from harness.tables import paired_display

    return paired_display(paired)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def _write_table(out: Path, name: str, rows: list[dict[str, Any]], title: str, console: Any,
                 paired: pl.DataFrame | None = None) -> tuple[pl.DataFrame, list[Path]]:  # fmt: skip
    """Write `table_<name>.{csv,md,json}` (and `table_<name>_paired.csv`) and print the table(s)."""
    from submissions.leaderboard import table_markdown

    df = pl.DataFrame(rows, schema=TABLE_SCHEMA)
    csv = out / f"table_{name}.csv"
    atomic_write_text(csv, df.write_csv(float_precision=4))
    files = [csv]
    md_text = f"### {title}\n\n" + table_markdown(_display(df)).replace("nan", "-") + f"\n{CI_NOTE}.\n"
    if paired is not None:
        pcsv = out / f"table_{name}_paired.csv"
        atomic_write_text(pcsv, paired.write_csv(float_precision=4))
        files.append(pcsv)
        md_text += ("\n#### Paired differences (row - against; resolved: the interval excludes 0)\n\n"
                    + table_markdown(_display_paired(paired)).replace("nan", "-"))  # fmt: skip
    md = out / f"table_{name}.md"
    atomic_write_text(md, md_text)
    doc = {"table": name, "title": title, "rows": df.to_dicts(),
           "paired": paired.to_dicts() if paired is not None else None,
           "bootstrap": {"level": LEVEL, "resamples": RESAMPLES, "seed": SEED, "method": BootstrapCI.method,
                         "clusters": "the two persons of a raw video are one cluster",
                         "folds": "a row over several folds resamples each fold's videos on its own"}}  # fmt: skip
    js = out / f"table_{name}.json"
    atomic_write_text(js, json.dumps(_json_safe(doc), indent=1) + "\n")
    files += [md, js]
    if console is not None:
        _print_table(df, title, console, paired)
    return df, files


def _print_table(df: pl.DataFrame, title: str, console: Any, paired: pl.DataFrame | None = None) -> None:
    from harness.tables import print_table

    print_table(_display(df), title, console=console)
    if paired is not None and paired.height:
        print_table(_display_paired(paired), f"{title.split(':')[0]}: paired differences (row - against; "
                    "resolved: the interval excludes 0)", console=console)  # fmt: skip
    console.print(CI_NOTE, style="dim", soft_wrap=True, highlight=False, markup=False)


def describe_result(res: Stage2Result) -> str:
    """One line on what happened to a run: reused (an interrupted command resumed past it) or trained now.

    The `folds` and `ablate` commands print it after every run, so the user sees which finished runs a rerun kept.

    Args:
        res: the run's result.
    """
    what = "reused the finished run" if res.skipped else "trained"
    score = res.reported.get("p_va", math.nan)
    return f"{res.model} fold {res.fold}: {what} in {res.run_dir} (P_VA {score:.3f} on {res.reported_on})"


def _scores(res: Stage2Result) -> tuple[float, float, float]:
    s = res.reported
    return s["ccc_v"], s["ccc_a"], s["p_va"]


def run_folds(
    cfg: Config,
    layout: Any,
    cache: Any,
    out: str | Path,
    folds: Sequence[int] | None = None,
    *,
    resume: bool = False,
    progress: bool | None = None,
    console: Any = None,
    on_result: Callable[[Stage2Result], None] | None = None,
) -> TableReport:
    """Train the configured model on each fold and write Table I (per fold, mean, std, beside the paper's).

    Args:
        cfg: the config (`experiment.folds`, `k`, `fold_seed`).
        layout: the dataset layout.
        cache: the feature cache (audio features present; stage 1 adds the visual ones when enabled).
        out: the experiment output folder.
        folds: folds to run (default: `experiment.folds`).
        resume: continue interrupted runs from their checkpoints.
        progress: progress bars (default: the config's).
        console: a rich console to print the table on (None: print nothing).
        on_result: called after each fold (e.g. to log).
    """
    out = Path(out)
    folds = list(cfg.experiment.folds if folds is None else folds)
    encoder = _maybe_stage1(cfg, layout, cache, out, resume, progress, console)
    results = []
    for f in folds:
        res = train_stage2(cfg, layout, cache, f, run_dir_for(out, cfg, f), resume=resume, progress=progress,
                           encoder_weights=encoder)  # fmt: skip
        results.append(res)
        if on_result:
            on_result(res)
    base: list[Stage2Result] = []
    if BASELINE_ROW in cfg.experiment.ablation_models and 0 in folds:
        # The challenge reports its baseline on the official split: Table I's Baseline row is fold 0's.
        from harness.baseline import baseline_runs

        base = baseline_runs(cfg, layout, cache, out, [0], resume=resume, progress=progress, on_result=on_result)
    paper = _paper("I")
    stats, intervals = _intervals(results, layout)
    rows = [_row(f"Fold {r.fold}", _scores(r), paper.get(f"Fold {r.fold}"), r.reported_on, str(r.run_dir),
                 intervals.get(str(r.run_dir))) for r in results]  # fmt: skip
    if results:
        cols = list(zip(*[_scores(r) for r in results], strict=True))
        pcols = [paper.get(f"Fold {r.fold}") for r in results]
        pm = pcols if all(p is not None for p in pcols) else []
        mean_std = [_mean_std(c) for c in cols]
        pmean_std = [_mean_std([p[i] for p in pm]) for i in range(3)] if pm else [(math.nan, math.nan)] * 3
        rows.append(_row("Mean", [m for m, _ in mean_std], [m for m, _ in pmean_std], "", "", _mean_ci(stats)))
        rows.append(_row("Std", [s for _, s in mean_std], [s for _, s in pmean_std], "", ""))
    if base:
        _stats, iv = _intervals(base, layout)
        intervals.update(iv)
        rows += [_row("Baseline", _scores(b), paper.get("Baseline"), b.reported_on, str(b.run_dir),
                      iv.get(str(b.run_dir))) for b in base]  # fmt: skip
    elif "Baseline" in paper:
        rows.append(_row("Baseline (paper)", [None] * 3, paper["Baseline"], "", ""))
    title = f"Table I: CCC per fold ({cfg.name} config, model {cfg.model.name})"
    df, files = _write_table(out, "I", rows, title, console)
    return TableReport("I", df, files, results + base, intervals)


def _intervals(results: Sequence[Stage2Result], layout: Any
               ) -> tuple[list[ClusterStats | None], dict[str, BootstrapCI]]:  # fmt: skip
    """Each run's statistics (in order) and interval (by run folder)."""
    stats, intervals = [], {}
    for r in results:
        st, ci = run_interval(r, layout)
        stats.append(st)
        if ci is not None:
            intervals[str(r.run_dir)] = ci
    return stats, intervals


def _mean_ci(stats: Sequence[ClusterStats | None]) -> BootstrapCI | None:
    """The interval of a mean over folds (each fold resampled on its own); None when a run has no statistics."""
    if not stats or any(s is None for s in stats):
        return None
    return bootstrap_ci([s for s in stats if s is not None])


def run_ablation(
    cfg: Config,
    layout: Any,
    cache: Any,
    out: str | Path,
    folds: Sequence[int] | None = None,
    *,
    models: Sequence[str] | None = None,
    table3: bool | None = None,
    resume: bool = False,
    progress: bool | None = None,
    console: Any = None,
    on_result: Callable[[Stage2Result], None] | None = None,
) -> list[TableReport]:
    """Tables IV and III on the same folds and seeds, each beside the paper's rows.

    Table IV trains each temporal model of `experiment.ablation_models`; Table III trains the visual-only model on
    the features of the encoder before fine-tuning (`visual_mae`) and after (`visual`, shared with Table IV's
    "Only Visual"). Scores are means over the folds.

    Args:
        cfg: the config.
        layout: the dataset layout.
        cache: the feature cache.
        out: the experiment output folder (shared with `run_folds`).
        folds: folds (default: `experiment.ablation_folds`).
        models: Table IV models (default: `experiment.ablation_models`).
        table3: run Table III (default: `experiment.table3`).
        resume: continue interrupted runs.
        progress: progress bars.
        console: rich console for the tables.
        on_result: called after each run.
    """
    out = Path(out)
    folds = list(cfg.experiment.ablation_folds if folds is None else folds)
    models = list(cfg.experiment.ablation_models if models is None else models)
    table3 = cfg.experiment.table3 if table3 is None else table3
    if table3 and cfg.stage1.enabled and not cfg.stage1.extract_unfinetuned:
        from harness.config import ConfigError

        raise ConfigError(
            "Table III needs the features before fine-tuning: set stage1.extract_unfinetuned=true "
            "(or run without Table III)"
        )
    encoder = _maybe_stage1(cfg, layout, cache, out, resume, progress, console)

    def run_variant(model: str, visual: str) -> list[Stage2Result]:
        vcfg = variant(cfg, model, visual)
        res = []
        for f in folds:
            r = train_stage2(vcfg, layout, cache, f, run_dir_for(out, cfg, f, model, visual), resume=resume,
                             progress=progress, encoder_weights=encoder)  # fmt: skip
            res.append(r)
            if on_result:
                on_result(r)
        return res

    def summary(results: list[Stage2Result]) -> tuple[list[float], str, str]:
        cols = list(zip(*[_scores(r) for r in results], strict=True))
        on = ",".join(sorted({r.reported_on for r in results}))
        runs = ";".join(str(r.run_dir) for r in results)
        return [float(np.mean(c)) for c in cols], on, runs

    reports = []
    fold_txt = ",".join(map(str, folds))
    paper = _paper("IV")
    rows, all_results, intervals = [], [], {}
    row_stats: dict[str, list[ClusterStats | None]] = {}
    for m in models:
        if m == BASELINE_ROW:
            from harness.baseline import baseline_runs

            res = baseline_runs(cfg, layout, cache, out, folds, resume=resume, progress=progress, on_result=on_result)
        else:
            res = run_variant(m, cfg.features.visual)
        all_results += res
        ours, on, runs = summary(res)
        name = PAPER_NAMES_IV.get(m, m)
        stats, iv = _intervals(res, layout)
        intervals.update(iv)
        row_stats[name] = stats
        rows.append(_row(name, ours, paper.get(name), on, runs, _mean_ci(stats)))
    if "Baseline" in paper and BASELINE_ROW not in models:
        rows.insert(0, _row("Baseline (paper)", [None] * 3, paper["Baseline"], "", ""))
    paired = _paired_table([_paired_row(a, b, row_stats[a], row_stats[b]) for a, b in pairs_iv(list(row_stats))])
    title = f"Table IV: fusion ablation (folds {fold_txt}, {cfg.name} config)"
    df, files = _write_table(out, "IV", rows, title, console, paired)
    reports.append(TableReport("IV", df, files, all_results, intervals, paired))

    if table3:
        paper3 = _paper("III")
        rows, all_results, intervals, row_stats = [], [], {}, {}
        for visual, name in TABLE3_ROWS:
            res = run_variant("visual_only", visual)
            all_results += res
            ours, on, runs = summary(res)
            stats, iv = _intervals(res, layout)
            intervals.update(iv)
            row_stats[name] = stats
            rows.append(_row(name, ours, paper3.get(name), on, runs, _mean_ci(stats)))
        if "Fuxi" in paper3:
            rows.insert(1, _row("Fuxi (paper)", [None] * 3, paper3["Fuxi"], "", ""))
        paired = _paired_table([_paired_row(a, b, row_stats[a], row_stats[b]) for a, b in PAIRS_III])
        title = f"Table III: visual features without vs with fine-tuning (visual only, folds {fold_txt})"
        df, files = _write_table(out, "III", rows, title, console, paired)
        reports.append(TableReport("III", df, files, all_results, intervals, paired))
    return reports


def pairs_iv(rows: Sequence[str]) -> list[tuple[str, str]]:
    """Table IV's paired comparisons among the rows present: every row against BDCA, then Concat w/o BDCA against
    BDCA w/o DW (what the dynamic weights add on top of cross-attention is BDCA - BDCA w/o DW, already a pair).

    Args:
        rows: the table's row names (the paper's names, `PAPER_NAMES_IV`).
    """
    full, concat, no_dw = PAPER_NAMES_IV["bdca"], PAPER_NAMES_IV["concat"], PAPER_NAMES_IV["bdca_no_dw"]
    pairs = [(r, full) for r in rows if r != full] if full in rows else []
    if concat in rows and no_dw in rows:
        pairs.append((concat, no_dw))
    return pairs
