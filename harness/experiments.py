"""The paper's experiments: Table I (folds 0-5), Table IV (fusion ablation) and Table III (fine-tuning ablation).

Run folders under one output folder:

    <out>/stage1/                     stage 1 (encoder, features into the cache), shared by everything below
    <out>/folds/fold<i>/              the configured model on fold i (Table I, and Table IV's row of that model)
    <out>/ablation/<model>/fold<i>/   the other Table IV models
    <out>/ablation/visual_only_<feature>/fold<i>/   Table III's visual-only model on other visual features
    <out>/table_I.{csv,md,json}, table_III.{csv,md,json}, table_IV.{csv,md,json}, table_{III,IV}_paired.csv

Seeds: every (fold, row) is trained once per stage-2 seed (`Config.stage2_seeds`: `experiment.seeds`, or the
config's `seed` alone; `--seeds`). The run of the config's own seed keeps the folder above; any other seed s gets
the subfolder `seed<s>` of it (`folds/fold0/seed1/`, `ablation/concat/fold3/seed2/`), so an experiment of one seed
has exactly the folders it always had. A seed changes the run's config (`seed`), hence its hash: runs of different
seeds are different runs. Stage 1 (the encoder, shared by all stage-2 runs) is trained once, with the config's `seed`.
With several seeds a table cell is the mean over seeds of the score ± its standard deviation over seeds (ddof 1;
for a row over several folds, of the fold-mean score), beside the interval of the seed-mean score (below).

Every run is skipped when its folder holds a final record of the same config hash and fold, so an interrupted
`harness folds` or `harness ablate` continues with the first unfinished (fold, row, seed) run. All variants use the
same folds and seeds. Each table lists our numbers beside the paper's (`submissions.leaderboard.paper_rows`).

Every score carries a 95% video-bootstrap interval (`submissions.bootstrap`: percentile interval, `RESAMPLES`
resamples, seed `SEED`), computed from the run's saved predictions (`<run>/predictions/<split>.npz`, float32) and the
split's labels, and written beside the run as `<run>/bootstrap.json`. A row over several folds (Table I's mean,
Tables III and IV) resamples each fold's videos on its own and averages the folds per resample. Tables IV and III
also carry paired differences of rows scored on the same videos (`pairs_iv`, `PAIRS_III`): the interval of
row - reference from the same draws for both rows, with the verdict "resolved" when it excludes 0.

With several seeds the interval is that of the seed-mean score (`seed_mean_ci`): each resample draws a fold's videos
once, scores every seed's predictions on that same draw and averages the seeds (then the folds), so the interval
counts the uncertainty of the videos, with the seeds' spread averaged in, not the seed-to-seed spread itself (that
is the ± std). Paired differences compare seed-mean scores in the same way (`paired_seed_ci`). With one seed both
are exactly `bootstrap_ci` and `paired_bootstrap`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from core.atomic import atomic_write_text
from core.ownership import claim_folder
from harness.config import BASELINE_ROW, NO_REFINE_ROW, Config
from harness.distributed import Strategy
from harness.runs import STAGE1_DIR, RunDir
from harness.stage2 import Stage2Result, train_stage2
from harness.tables import TABLES
from submissions import MetricError
from submissions.bootstrap import (
    LEVEL,
    RESAMPLES,
    SEED,
    BootstrapCI,
    ClusterStats,
    bootstrap_ci,
    draw_counts,
    paired_bootstrap,
    resampled_scores,
)
from submissions.bootstrap import _interval as _percentile_interval  # the same intervals and reasons as bootstrap_ci

PAPER_NAMES_IV = {
    "audio_only": "Only Audio",
    "visual_only": "Only Visual",
    "concat": "Concat w/o BDCA",
    "bdca_no_dw": "BDCA w/o DW",
    "bdca": "BDCA",
    BASELINE_ROW: "Baseline",
    NO_REFINE_ROW: "BDCA w/o label refinement",
}
"""Our temporal model names (and the challenge baseline's row, `harness.baseline`, and the row without label
refinement) -> the paper's Table IV rows (the paper has no row without refinement; ours says what it adds)."""

TABLE3_ROWS = (("visual_mae", "MAE w/o FT"), ("visual", "MAE"))
"""Table III: (cached visual feature, the paper's row) for the visual-only model."""

PAIRS_III = (("MAE w/o FT", "MAE"),)
"""Table III's paired comparison: the features before fine-tuning against those after."""

SCORES = (("valence", "ccc_v"), ("arousal", "ccc_a"), ("average", "p_va"))
"""Table columns and the score each shows."""

CI_NOTE = (f"[low, high]: {LEVEL:.0%} percentile bootstrap over video clusters (the two persons of a raw video "
           f"are one), {RESAMPLES} resamples, seed {SEED}; a row over several folds resamples each fold's videos")

EXPERIMENT_LAYOUT = (STAGE1_DIR, "folds", "ablation",
                     *(f"table_{t}{ext}" for t in TABLES for ext in (".csv", ".md", ".json", "_paired.csv")),
                     "table_II_measured_cost.csv", "table_II_self_reported.csv")
"""What `run_folds` and `run_ablation` write in an experiment folder (claimed in its ownership record)."""



def seed_note(seeds: Sequence[int]) -> str:
    """The tables' line on what +- means when a table averages several stage-2 seeds."""
    return (f"±: standard deviation over the stage-2 seeds {','.join(map(str, seeds))} (ddof 1) of the score, "
            "which is their mean; the interval is that of the seed-mean score, every seed's predictions scored on "
            "the same video draws")  # fmt: skip


@dataclass
class ExperimentRun(Stage2Result):
    """A stage-2 (or baseline) run of an experiment, with its stage-2 seed and the interval of its reported score.

    Args:
        seed: the run's stage-2 seed.
        seeds: how many seeds the experiment trains each (fold, row) with (the run print names the seed when > 1).
        stats: the per-cluster statistics of its reported split (None without saved predictions).
        ci: their bootstrap interval (None without statistics).
    """

    seed: int = 0
    seeds: int = 1
    stats: ClusterStats | None = field(default=None, repr=False)
    ci: BootstrapCI | None = None

    @classmethod
    def of(cls, res: Stage2Result, seed: int, seeds: int, layout: Any) -> ExperimentRun:
        """A trained or reused run with its seed and interval (computed from its saved predictions, not written).

        Args:
            res: the run.
            seed: its stage-2 seed.
            seeds: the experiment's number of seeds.
            layout: the dataset layout (the labels).
        """
        stats = run_stats(res, layout)
        ci = bootstrap_ci(stats) if stats is not None else None
        base = {f.name: getattr(res, f.name) for f in fields(Stage2Result)}
        return cls(**base, seed=seed, seeds=seeds, stats=stats, ci=ci)


@dataclass
class TableReport:
    """A written results table.

    Args:
        name: `I`, `III` or `IV`.
        table: the rows (ours beside the paper's).
        files: the CSV and Markdown files.
        results: the runs behind it (every fold and seed).
        intervals: run folder -> the bootstrap interval of the run's reported score.
        paired: the paired differences (Tables III and IV), None for Table I.
        seeds: the stage-2 seeds each (fold, row) was trained with.
    """

    name: str
    table: pl.DataFrame
    files: list[Path]
    results: list[Stage2Result] = field(default_factory=list)
    intervals: dict[str, BootstrapCI] = field(default_factory=dict)
    paired: pl.DataFrame | None = None
    seeds: tuple[int, ...] = ()

    def interval(self, res: Stage2Result) -> BootstrapCI | None:
        """The interval of one run's reported score (None when it could not be computed)."""
        return self.intervals.get(str(res.run_dir))


def run_dir_for(out: str | Path, cfg: Config, fold: int, model: str | None = None, visual: str | None = None,
                seed: int | None = None) -> Path:  # fmt: skip
    """The run folder of a (model, visual feature, fold, stage-2 seed) variant (see the module docstring).

    Args:
        out: the experiment output folder.
        cfg: the base config.
        fold: fold index.
        model: temporal model (default: the config's).
        visual: visual feature (default: the config's).
        seed: stage-2 seed (default: the config's `seed`, whose runs keep the folder without a seed level).
    """
    model = model or cfg.model.name
    visual = visual or cfg.features.visual
    out = Path(out)
    if model == cfg.model.name and visual == cfg.features.visual:
        path = out / "folds" / f"fold{fold}"
    else:
        name = model if visual == cfg.features.visual else f"{model}_{visual}"
        path = out / "ablation" / name / f"fold{fold}"
    return path if seed is None or seed == cfg.seed else path / f"seed{seed}"


def variant(cfg: Config, model: str | None = None, visual: str | None = None, seed: int | None = None) -> Config:
    """The config of one ablation variant (its run folder's config.yaml names the real model, features and seed).

    Args:
        cfg: the base config.
        model: temporal model (default: the config's).
        visual: visual feature (default: the config's).
        seed: stage-2 seed (default: the config's); a part of the config, so of the run's hash.
    """
    changes: dict[str, Any] = {}
    if model and model != cfg.model.name:
        changes["model.name"] = model
    if visual and visual != cfg.features.visual:
        changes["features.visual"] = visual
    if seed is not None and seed != cfg.seed:
        changes["seed"] = seed
    return cfg.replace(**changes) if changes else cfg


def without_refinement(cfg: Config) -> Config:
    """The config of the row without label refinement: refinement off, and the row itself off the list (its run
    folder's config.yaml then loads as it is)."""
    rows = [m for m in cfg.experiment.ablation_models if m != NO_REFINE_ROW]
    return cfg.replace(**{"data.refine_labels": False, "experiment.ablation_models": rows})


def _maybe_stage1(cfg: Config, layout: Any, cache: Any, out: Path, resume: bool, progress: bool | None,
                  console: Any = None, strategy: Strategy | None = None) -> Path | None:  # fmt: skip
    """Run stage 1 into `<out>/stage1` when enabled (skipped when its features are cached); the encoder weights."""
    if not cfg.stage1.enabled:
        return None
    from harness.stage1 import run_stage1

    res = run_stage1(cfg, layout, cache, out / STAGE1_DIR, resume=resume, progress=progress, strategy=strategy)
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

    path = RunDir(res.run_dir).split_predictions(res.reported_on)
    if not path.is_file():
        return None
    preds = load_predictions(path)
    labels = {v: load_labels(layout.entry(v).annotation, preds[v].shape[0]) for v in preds}
    return cluster_stats(labels, preds)


def _save_interval(res: Stage2Result, stats: ClusterStats, ci: BootstrapCI) -> None:
    """Write `<run>/bootstrap.json`, only when its content changes (a rerun leaves a finished run untouched)."""
    doc = {"on": res.reported_on, "videos": stats.videos, "frames": stats.frames, **ci.as_dict()}
    text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    path = RunDir(res.run_dir).bootstrap_file
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        atomic_write_text(path, text)


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
    _save_interval(res, stats, ci)
    return stats, ci


Grid = Sequence[Sequence[ClusterStats]]
"""Statistics of one table row: `grid[k][j]` is fold k's (in the row's fold order) of seed j."""


def _seed_samples(grid: Grid, resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A row's estimate (mean over folds of the seed-mean scores) and each resample's row value.

    Each fold's clusters are drawn once per resample (`draw_counts` with the fold's position as its stratum, as
    `bootstrap_ci` draws them) and every seed's run is scored on that same draw; the seeds are averaged, then the
    folds.
    """
    if not grid or any(not reps for reps in grid):
        raise MetricError("no partitions to bootstrap")
    for k, reps in enumerate(grid):
        if any(x.names != reps[0].names for x in reps):
            raise MetricError(f"fold at position {k}: the seeds' runs were not scored on the same videos")
    est = np.mean([np.mean([x.estimate for x in reps], axis=0) for reps in grid], axis=0)
    samples = np.zeros((resamples, 3))
    for k, reps in enumerate(grid):
        counts = draw_counts(reps[0].clusters, resamples, seed, k)
        samples += np.mean([resampled_scores(x, counts) for x in reps], axis=0)
    return est, samples / len(grid)


def seed_mean_ci(grid: Grid) -> BootstrapCI:
    """The video-bootstrap interval of a row's seed-mean score (`RESAMPLES` resamples, seed `SEED`, `LEVEL`).

    Args:
        grid: `grid[k][j]`: the statistics of fold k, seed j (every fold the same number of seeds or not).

    Returns:
        With one seed per fold exactly `bootstrap_ci` over the folds; else the percentile interval of the
        resampled seed-mean (then fold-mean) score, with `bootstrap_ci`'s reasons when there is none.

    Raises:
        MetricError: no folds, a fold without runs, or seeds of one fold scored on different videos.
    """
    if grid and all(len(reps) == 1 for reps in grid):
        return bootstrap_ci([reps[0] for reps in grid])
    est, samples = _seed_samples(grid, RESAMPLES, SEED)
    return _percentile_interval(est, samples, [reps[0] for reps in grid], RESAMPLES, SEED, LEVEL)


def paired_seed_ci(a: Grid, b: Grid) -> BootstrapCI:
    """The paired interval of row a's seed-mean score minus row b's, every run resampled with the same draws.

    Args:
        a: row a, `a[k][j]` fold k's statistics of seed j.
        b: row b, scored on the same videos in the same folds.

    Returns:
        With one seed per fold exactly `paired_bootstrap`; else the interval of the per-resample difference of the
        seed-mean scores.

    Raises:
        MetricError: the rows average over different numbers of folds or were not scored on the same videos.
    """
    if a and b and all(len(reps) == 1 for reps in [*a, *b]):
        return paired_bootstrap([reps[0] for reps in a], [reps[0] for reps in b])
    if len(a) != len(b):
        raise MetricError(f"the rows average over different numbers of folds ({len(a)} and {len(b)})")
    for k, (x, y) in enumerate(zip(a, b, strict=True)):
        if x and y and x[0].names != y[0].names:
            raise MetricError(f"fold at position {k}: the rows were not scored on the same videos")
    ea, xa = _seed_samples(a, RESAMPLES, SEED)
    eb, xb = _seed_samples(b, RESAMPLES, SEED)
    return _percentile_interval(ea - eb, xa - xb, [reps[0] for reps in a], RESAMPLES, SEED, LEVEL)


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
    from harness.tables import ci_cells

    cols = ["row", "valence", "arousal", "average", "paper_valence", "paper_arousal", "paper_average", "on"]
    extra = [f"{c}_{e}" for c, _ in SCORES for e in ("low", "high", "std")]
    shown = ci_cells(df.select([*cols, *extra]), tuple(c for c, _ in SCORES))
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
    csv = out / f"table_{name}.csv"
    atomic_write_text(csv, df.write_csv(float_precision=4))
    files = [csv]
    notes = f"{CI_NOTE}.\n" + (f"{seed_note(seeds)}.\n" if len(seeds) > 1 else "")
    md_text = f"### {title}\n\n" + table_markdown(_display(df)).replace("nan", "-") + f"\n{notes}"
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
                         "folds": "a row over several folds resamples each fold's videos on its own"},
           "seeds": list(seeds)}  # fmt: skip
    if len(seeds) > 1:
        doc["bootstrap"]["seeds"] = ("the interval of the seed-mean score: each resample scores every seed's "
                                     "predictions on the same video draw")  # fmt: skip
    js = out / f"table_{name}.json"
    atomic_write_text(js, json.dumps(_json_safe(doc), indent=1) + "\n")
    files += [md, js]
    if console is not None:
        _print_table(df, title, console, paired, seeds)
    return df, files


def _print_table(df: pl.DataFrame, title: str, console: Any, paired: pl.DataFrame | None = None,
                 seeds: Sequence[int] = ()) -> None:  # fmt: skip
    from harness.tables import print_table

    print_table(_display(df), title, console=console)
    if paired is not None and paired.height:
        print_table(_display_paired(paired), f"{title.split(':')[0]}: paired differences (row - against; "
                    "resolved: the interval excludes 0)", console=console)  # fmt: skip
    console.print(CI_NOTE, style="dim", soft_wrap=True, highlight=False, markup=False)
    if len(seeds) > 1:
        console.print(seed_note(seeds), style="dim", soft_wrap=True, highlight=False, markup=False)


def describe_result(res: Stage2Result) -> str:
    """One line on what happened to a run: reused (an interrupted command resumed past it) or trained now, with its
    score and, for an experiment's run (`ExperimentRun`), the score's interval and (several seeds) its seed.

    The `folds` and `ablate` commands print it after every run, so the user sees which finished runs a rerun kept.

    Args:
        res: the run's result.
    """
    from submissions.bootstrap import Interval

    what = "reused the finished run" if res.skipped else "trained"
    score = res.reported.get("p_va", math.nan)
    name = f"{res.model} fold {res.fold}"
    cell = f"{score:.3f}"
    if isinstance(res, ExperimentRun):
        name += f" seed {res.seed}" if res.seeds > 1 else ""
        if res.ci is not None:
            cell = Interval(score, res.ci.p_va.low, res.ci.p_va.high).cell()
    return f"{name}: {what} in {res.run_dir} (P_VA {cell} on {res.reported_on})"


def _scores(res: Stage2Result) -> tuple[float, float, float]:
    s = res.reported
    return s["ccc_v"], s["ccc_a"], s["p_va"]


def _train_row(cfg: Config, layout: Any, cache: Any, out: Path, folds: Sequence[int], seeds: Sequence[int],
               model: str, visual: str, encoder: Path | None, resume: bool, progress: bool | None,
               on_result: Callable[[Stage2Result], None] | None,
               strategy: Strategy | None = None) -> list[list[ExperimentRun]]:  # fmt: skip
    """Train (or reuse) one row's runs, seed by seed and within a seed fold by fold; `runs[k][j]` is fold k's run of
    seed j. Seed by seed: a command stopped after its first seed has left a complete experiment of that seed."""
    runs: list[list[ExperimentRun]] = [[] for _ in folds]
    for s in seeds:
        for k, f in enumerate(folds):
            where = run_dir_for(out, cfg, f, model, visual, seed=s)
            if model == BASELINE_ROW:
                from harness.baseline import train_baseline

                r = train_baseline(variant(cfg, seed=s), layout, cache, f, where, resume=resume, progress=progress,
                                   strategy=strategy)
            else:
                v = without_refinement(variant(cfg, None, visual, seed=s)) if model == NO_REFINE_ROW else \
                    variant(cfg, model, visual, seed=s)  # fmt: skip
                r = train_stage2(v, layout, cache, f, where, resume=resume, progress=progress,
                                 encoder_weights=encoder, strategy=strategy)  # fmt: skip
            run = ExperimentRun.of(r, s, len(seeds), layout)
            runs[k].append(run)
            if on_result:
                on_result(run)
    return runs


def _flat(grid: Sequence[Sequence[ExperimentRun]]) -> list[ExperimentRun]:
    """A row's runs, fold by fold and within a fold seed by seed."""
    return [r for reps in grid for r in reps]


def _intervals(runs: Sequence[ExperimentRun]) -> dict[str, BootstrapCI]:
    """Each run's interval by run folder, also written to `<run>/bootstrap.json`."""
    out = {}
    for r in runs:
        if r.stats is not None and r.ci is not None:
            _save_interval(r, r.stats, r.ci)
            out[str(r.run_dir)] = r.ci
    return out


def _grid_stats(grid: Sequence[Sequence[ExperimentRun]]) -> list[list[ClusterStats | None]]:
    return [[r.stats for r in reps] for reps in grid]


def _row_ci(grid: Sequence[Sequence[ExperimentRun]]) -> BootstrapCI | None:
    """The interval of a row's seed-mean (fold-mean) score; None when a run has no statistics."""
    stats = _grid_stats(grid)
    if not stats or any(s is None for reps in stats for s in reps):
        return None
    return seed_mean_ci([[s for s in reps if s is not None] for reps in stats])


def _row_summary(grid: Sequence[Sequence[ExperimentRun]]) -> tuple[list[float], list[float]]:
    """A row's (ccc_v, ccc_a, p_va): the mean over seeds of the fold-mean score, and its std over seeds (NaN with
    one seed). With one seed and one fold these are the run's scores themselves."""
    seeds = len(grid[0])
    per_seed = [[float(np.mean(c)) for c in zip(*[_scores(reps[j]) for reps in grid], strict=True)]
                for j in range(seeds)]  # fmt: skip
    ms = [_mean_std([p[i] for p in per_seed]) for i in range(3)]
    return [m for m, _ in ms], [s for _, s in ms]


def _summary_row(name: str, grid: Sequence[Sequence[ExperimentRun]], paper: Sequence[float] | None,
                 seeds: Sequence[int]) -> dict[str, Any]:  # fmt: skip
    runs = _flat(grid)
    ours, spread = _row_summary(grid)
    on = ",".join(sorted({r.reported_on for r in runs}))
    return _row(name, ours, paper, on, ";".join(str(r.run_dir) for r in runs), _row_ci(grid), spread, seeds)


def _seeds_of(cfg: Config, seeds: Sequence[int] | None) -> tuple[int, ...]:
    """The stage-2 seeds to train: as given, or the config's (`Config.stage2_seeds`)."""
    from harness.config import ConfigError

    out = tuple(cfg.stage2_seeds if seeds is None else seeds)
    if not out or len(set(out)) != len(out):
        raise ConfigError(f"seeds: expected distinct seeds, got {list(out)}")
    return out


def run_folds(
    cfg: Config,
    layout: Any,
    cache: Any,
    out: str | Path,
    folds: Sequence[int] | None = None,
    *,
    seeds: Sequence[int] | None = None,
    resume: bool = False,
    progress: bool | None = None,
    console: Any = None,
    on_result: Callable[[Stage2Result], None] | None = None,
    strategy: Strategy | None = None,
) -> TableReport:
    """Train the configured model on each fold (once per stage-2 seed) and write Table I (per fold, mean, std,
    beside the paper's).

    Args:
        cfg: the config (`experiment.folds`, `k`, `fold_seed`, `seeds`).
        layout: the dataset layout.
        cache: the feature cache (audio features present; stage 1 adds the visual ones when enabled).
        out: the experiment output folder.
        folds: folds to run (default: `experiment.folds`).
        seeds: stage-2 seeds (default: `Config.stage2_seeds`).
        resume: continue interrupted runs from their checkpoints.
        progress: progress bars (default: the config's).
        console: a rich console to print the table on (None: print nothing).
        on_result: called after each run (with an `ExperimentRun`), e.g. to log.
        strategy: the run's processes (None: this process's own, `harness.distributed.current_strategy`).
    """
    out = Path(out)
    claim_folder(out, EXPERIMENT_LAYOUT, what="experiment folder")  # a folder the harness did not write: refused
    folds = list(cfg.experiment.folds if folds is None else folds)
    seeds = _seeds_of(cfg, seeds)
    encoder = _maybe_stage1(cfg, layout, cache, out, resume, progress, console, strategy)
    grid = _train_row(cfg, layout, cache, out, folds, seeds, cfg.model.name, cfg.features.visual, encoder, resume,
                      progress, on_result, strategy) if folds else []  # fmt: skip
    base: list[list[ExperimentRun]] = []
    if BASELINE_ROW in cfg.experiment.ablation_models and 0 in folds:
        # The challenge reports its baseline on the official split: Table I's Baseline row is fold 0's.
        base = _train_row(cfg, layout, cache, out, [0], seeds, BASELINE_ROW, cfg.features.visual, encoder, resume,
                          progress, on_result, strategy)  # fmt: skip
    paper = _paper("I")
    intervals = _intervals(_flat(grid))
    rows = [_summary_row(f"Fold {f}", [reps], paper.get(f"Fold {f}"), seeds)
            for f, reps in zip(folds, grid, strict=True)]  # fmt: skip
    if grid:
        fold_means = [_row_summary([reps])[0] for reps in grid]  # each fold's seed-mean score
        cols = list(zip(*fold_means, strict=True))
        pcols = [paper.get(f"Fold {f}") for f in folds]
        pm = pcols if all(p is not None for p in pcols) else []
        mean_std = [_mean_std(c) for c in cols]
        pmean_std = [_mean_std([p[i] for p in pm]) for i in range(3)] if pm else [(math.nan, math.nan)] * 3
        _, seed_spread = _row_summary(grid)
        rows.append(_row("Mean", [m for m, _ in mean_std], [m for m, _ in pmean_std], "", "", _row_ci(grid),
                         seed_spread, seeds))  # fmt: skip
        rows.append(_row("Std", [s for _, s in mean_std], [s for _, s in pmean_std], "", "", seeds=seeds))
    if base:
        intervals.update(_intervals(_flat(base)))
        rows.append(_summary_row("Baseline", base, paper.get("Baseline"), seeds))
    elif "Baseline" in paper:
        rows.append(_row("Baseline (paper)", [None] * 3, paper["Baseline"], "", ""))
    title = f"Table I: CCC per fold ({cfg.name} config, model {cfg.model.name}{_seed_title(seeds)})"
    df, files = _write_table(out, "I", rows, title, console, seeds=seeds)
    return TableReport("I", df, files, [*_flat(grid), *_flat(base)], intervals, seeds=seeds)


def _seed_title(seeds: Sequence[int]) -> str:
    return f", mean over seeds {','.join(map(str, seeds))}" if len(seeds) > 1 else ""


def run_ablation(
    cfg: Config,
    layout: Any,
    cache: Any,
    out: str | Path,
    folds: Sequence[int] | None = None,
    *,
    models: Sequence[str] | None = None,
    table3: bool | None = None,
    seeds: Sequence[int] | None = None,
    resume: bool = False,
    progress: bool | None = None,
    console: Any = None,
    on_result: Callable[[Stage2Result], None] | None = None,
    strategy: Strategy | None = None,
) -> list[TableReport]:
    """Tables IV and III on the same folds and seeds, each beside the paper's rows.

    Table IV trains each temporal model of `experiment.ablation_models`; Table III trains the visual-only model on
    the features of the encoder before fine-tuning (`visual_mae`) and after (`visual`, shared with Table IV's
    "Only Visual"). Scores are means over the folds (and the seeds).

    Args:
        cfg: the config.
        layout: the dataset layout.
        cache: the feature cache.
        out: the experiment output folder (shared with `run_folds`).
        folds: folds (default: `experiment.ablation_folds`).
        models: Table IV models (default: `experiment.ablation_models`).
        table3: run Table III (default: `experiment.table3`).
        seeds: stage-2 seeds (default: `Config.stage2_seeds`).
        resume: continue interrupted runs.
        progress: progress bars.
        console: rich console for the tables.
        on_result: called after each run (with an `ExperimentRun`).
        strategy: the run's processes (None: this process's own, `harness.distributed.current_strategy`).
    """
    out = Path(out)
    claim_folder(out, EXPERIMENT_LAYOUT, what="experiment folder")  # a folder the harness did not write: refused
    folds = list(cfg.experiment.ablation_folds if folds is None else folds)
    models = list(cfg.experiment.ablation_models if models is None else models)
    table3 = cfg.experiment.table3 if table3 is None else table3
    seeds = _seeds_of(cfg, seeds)
    if table3 and cfg.stage1.enabled and not cfg.stage1.extract_unfinetuned:
        from harness.config import ConfigError

        raise ConfigError(
            "Table III needs the features before fine-tuning: set stage1.extract_unfinetuned=true "
            "(or run without Table III)"
        )
    encoder = _maybe_stage1(cfg, layout, cache, out, resume, progress, console, strategy)

    def train(model: str, visual: str) -> list[list[ExperimentRun]]:
        return _train_row(cfg, layout, cache, out, folds, seeds, model, visual, encoder, resume, progress, on_result,
                          strategy)

    reports = []
    fold_txt = ",".join(map(str, folds))
    paper = _paper("IV")
    rows, all_results, intervals = [], [], {}
    row_stats: dict[str, list[list[ClusterStats | None]]] = {}
    for m in models:
        grid = train(m, cfg.features.visual)
        all_results += _flat(grid)
        name = PAPER_NAMES_IV.get(m, m)
        intervals.update(_intervals(_flat(grid)))
        row_stats[name] = _grid_stats(grid)
        rows.append(_summary_row(name, grid, paper.get(name), seeds))
    if "Baseline" in paper and BASELINE_ROW not in models:
        rows.insert(0, _row("Baseline (paper)", [None] * 3, paper["Baseline"], "", ""))
    paired = _paired_table([_paired_row(a, b, row_stats[a], row_stats[b], seeds)
                            for a, b in pairs_iv(list(row_stats))])  # fmt: skip
    title = f"Table IV: fusion ablation (folds {fold_txt}, {cfg.name} config{_seed_title(seeds)})"
    df, files = _write_table(out, "IV", rows, title, console, paired, seeds)
    reports.append(TableReport("IV", df, files, all_results, intervals, paired, seeds))

    if table3:
        paper3 = _paper("III")
        rows, all_results, intervals, row_stats = [], [], {}, {}
        for visual, name in TABLE3_ROWS:
            grid = train("visual_only", visual)
            all_results += _flat(grid)
            intervals.update(_intervals(_flat(grid)))
            row_stats[name] = _grid_stats(grid)
            rows.append(_summary_row(name, grid, paper3.get(name), seeds))
        if "Fuxi" in paper3:
            rows.insert(1, _row("Fuxi (paper)", [None] * 3, paper3["Fuxi"], "", ""))
        paired = _paired_table([_paired_row(a, b, row_stats[a], row_stats[b], seeds) for a, b in PAIRS_III])
        title = (f"Table III: visual features without vs with fine-tuning (visual only, folds {fold_txt}"
                 f"{_seed_title(seeds)})")  # fmt: skip
        df, files = _write_table(out, "III", rows, title, console, paired, seeds)
        reports.append(TableReport("III", df, files, all_results, intervals, paired, seeds))
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
