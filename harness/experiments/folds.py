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

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core.ownership import claim_folder
from harness.config import Config, TableRow
from harness.experiments.intervals import _mean_std
from harness.experiments.rows import (
    ExperimentRun,
    ExperimentSetup,
    TableReport,
    _flat,
    _intervals,
    _paper,
    _row_ci,
    _row_summary,
    _seeds_of,
    _summary_row,
    train_row,
)
from harness.experiments.table_files import _row, _seed_title, _write_table
from harness.folders.experiment import EXPERIMENT_LAYOUT
from harness.runtime.distributed import Strategy
from harness.stages.skeleton import StageResult
from preprocessing.affwild2 import AffWild2Layout
from preprocessing.cache import FeatureCache


def run_folds(
    cfg: Config,
    layout: AffWild2Layout,
    cache: FeatureCache,
    out: str | Path,
    folds: Sequence[int] | None = None,
    *,
    seeds: Sequence[int] | None = None,
    resume: bool = False,
    progress: bool | None = None,
    console: Any = None,
    on_result: Callable[[StageResult], None] | None = None,
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
        strategy: the run's processes (None: this process's own, `harness.runtime.distributed.current_strategy`).
    """
    out = Path(out)
    claim_folder(out, EXPERIMENT_LAYOUT, what="experiment folder")  # a folder the harness did not write: refused
    folds = list(cfg.experiment.folds if folds is None else folds)
    seeds = _seeds_of(cfg, seeds)
    setup = ExperimentSetup(cfg, layout, cache, out, seeds, resume, progress, console, on_result,
                            strategy).with_stage1()  # fmt: skip
    grid = train_row(setup, folds, TableRow.model(cfg.model.name), cfg.features.visual) if folds else []
    base: list[list[ExperimentRun]] = []
    if any(r.kind == "baseline" for r in cfg.experiment.rows) and 0 in folds:
        # The challenge reports its baseline on the official split: Table I's Baseline row is fold 0's.
        base = train_row(setup, [0], TableRow.baseline(), cfg.features.visual)
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
