"""The paper's experiments: Table I (folds 0-5), Table IV (fusion ablation) and Table III (fine-tuning ablation).

Run folders under one output folder:

    <out>/stage1/                     stage 1 (encoder, features into the cache), shared by everything below
    <out>/folds/fold<i>/              the configured model on fold i (Table I, and Table IV's row of that model)
    <out>/ablation/<model>/fold<i>/   the other Table IV models
    <out>/ablation/visual_only_<feature>/fold<i>/   Table III's visual-only model on other visual features
    <out>/table_I.{csv,md}, table_III.{csv,md}, table_IV.{csv,md}

Every run is skipped when its folder holds a final record of the same config hash and fold, so an interrupted
`harness folds` or `harness ablate` continues with the first unfinished run. All variants use the same folds and
seeds. Each table lists our numbers beside the paper's (`submissions.leaderboard.paper_rows`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from harness.config import Config
from harness.stage2 import Stage2Result, train_stage2
from submissions.atomic import atomic_write_text

PAPER_NAMES_IV = {
    "audio_only": "Only Audio",
    "visual_only": "Only Visual",
    "concat": "Concat w/o BDCA",
    "bdca_no_dw": "BDCA w/o DW",
    "bdca": "BDCA",
}
"""Our temporal model names -> the paper's Table IV rows."""

TABLE3_ROWS = (("visual_mae", "MAE w/o FT"), ("visual", "MAE"))
"""Table III: (cached visual feature, the paper's row) for the visual-only model."""


@dataclass
class TableReport:
    """A written results table.

    Args:
        name: `I`, `III` or `IV`.
        table: the rows (ours beside the paper's).
        files: the CSV and Markdown files.
        results: the runs behind it.
    """

    name: str
    table: pl.DataFrame
    files: list[Path]
    results: list[Stage2Result] = field(default_factory=list)


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


def _row(name: str, ours: Sequence[float | None], paper: Sequence[float] | None, on: str, runs: str) -> dict[str, Any]:
    p = paper or (math.nan, math.nan, math.nan)
    o = [math.nan if x is None else float(x) for x in ours]
    return {"row": name, "valence": o[0], "arousal": o[1], "average": o[2], "paper_valence": float(p[0]),
            "paper_arousal": float(p[1]), "paper_average": float(p[2]), "on": on, "runs": runs}  # fmt: skip


def _write_table(
    out: Path, name: str, rows: list[dict[str, Any]], title: str, console: Any
) -> tuple[pl.DataFrame, list[Path]]:
    from submissions.leaderboard import table_markdown

    df = pl.DataFrame(rows, schema={"row": pl.Utf8, "valence": pl.Float64, "arousal": pl.Float64,
                                    "average": pl.Float64, "paper_valence": pl.Float64, "paper_arousal": pl.Float64,
                                    "paper_average": pl.Float64, "on": pl.Utf8, "runs": pl.Utf8})  # fmt: skip
    csv = out / f"table_{name}.csv"
    atomic_write_text(csv, df.write_csv(float_precision=4))
    md = out / f"table_{name}.md"
    atomic_write_text(md, f"### {title}\n\n" + table_markdown(df.drop("runs")).replace("nan", "-"))
    if console is not None:
        _print_table(df, title, console)
    return df, [csv, md]


def _print_table(df: pl.DataFrame, title: str, console: Any) -> None:
    from rich.table import Table

    t = Table(title=title)
    for c in ("row", "valence", "arousal", "average", "paper_valence", "paper_arousal", "paper_average", "on"):
        t.add_column(c.replace("paper_", "paper "), justify="left" if c in ("row", "on") else "right")
    for r in df.iter_rows(named=True):
        cells = [r["row"]] + [
            "-" if r[c] is None or math.isnan(r[c]) else f"{r[c]:.3f}"
            for c in ("valence", "arousal", "average", "paper_valence", "paper_arousal", "paper_average")
        ] + [r["on"]]  # fmt: skip
        t.add_row(*cells)
    console.print(t)


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
    paper = _paper("I")
    rows = [_row(f"Fold {r.fold}", _scores(r), paper.get(f"Fold {r.fold}"), r.reported_on, str(r.run_dir))
            for r in results]  # fmt: skip
    if results:
        cols = list(zip(*[_scores(r) for r in results], strict=True))
        pcols = [paper.get(f"Fold {r.fold}") for r in results]
        pm = pcols if all(p is not None for p in pcols) else []
        mean_std = [_mean_std(c) for c in cols]
        pmean_std = [_mean_std([p[i] for p in pm]) for i in range(3)] if pm else [(math.nan, math.nan)] * 3
        rows.append(_row("Mean", [m for m, _ in mean_std], [m for m, _ in pmean_std], "", ""))
        rows.append(_row("Std", [s for _, s in mean_std], [s for _, s in pmean_std], "", ""))
    if "Baseline" in paper:
        rows.append(_row("Baseline (paper)", [None] * 3, paper["Baseline"], "", ""))
    title = f"Table I: CCC per fold ({cfg.name} config, model {cfg.model.name})"
    df, files = _write_table(out, "I", rows, title, console)
    return TableReport("I", df, files, results)


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
    rows, all_results = [], []
    for m in models:
        res = run_variant(m, cfg.features.visual)
        all_results += res
        ours, on, runs = summary(res)
        name = PAPER_NAMES_IV.get(m, m)
        rows.append(_row(name, ours, paper.get(name), on, runs))
    if "Baseline" in paper:
        rows.insert(0, _row("Baseline (paper)", [None] * 3, paper["Baseline"], "", ""))
    title = f"Table IV: fusion ablation (folds {fold_txt}, {cfg.name} config)"
    df, files = _write_table(out, "IV", rows, title, console)
    reports.append(TableReport("IV", df, files, all_results))

    if table3:
        paper3 = _paper("III")
        rows, all_results = [], []
        for visual, name in TABLE3_ROWS:
            res = run_variant("visual_only", visual)
            all_results += res
            ours, on, runs = summary(res)
            rows.append(_row(name, ours, paper3.get(name), on, runs))
        if "Fuxi" in paper3:
            rows.insert(1, _row("Fuxi (paper)", [None] * 3, paper3["Fuxi"], "", ""))
        title = f"Table III: visual features without vs with fine-tuning (visual only, folds {fold_txt})"
        df, files = _write_table(out, "III", rows, title, console)
        reports.append(TableReport("III", df, files, all_results))
    return reports
