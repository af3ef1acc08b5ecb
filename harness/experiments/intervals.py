"""Intervals of an experiment's scores: a run's per-cluster statistics from its saved predictions (kept as
`<run>/bootstrap.json`), and the seed-mean and paired intervals of a table row over folds and seeds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np

from core.atomic import atomic_write_text
from harness.data.datasets import load_labels
from harness.folders.run import RunDir
from harness.stages.predict import load_predictions
from harness.stages.skeleton import StageResult
from preprocessing.affwild2 import AffWild2Layout
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


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else math.nan


def run_stats(res: StageResult, layout: AffWild2Layout) -> ClusterStats | None:
    """The per-cluster statistics of a run's reported split, from its saved predictions and the split's labels.

    Args:
        res: the run.
        layout: the dataset layout (the annotation files).

    Returns:
        None when the run folder holds no predictions of that split.
    """
    from submissions.bootstrap import cluster_stats

    path = RunDir(res.run_dir).split_predictions(res.reported_on)
    if not path.is_file():
        return None
    preds = load_predictions(path)
    labels = {v: load_labels(layout.entry(v).annotation, preds[v].shape[0]) for v in preds}
    return cluster_stats(labels, preds)


def _save_interval(res: StageResult, stats: ClusterStats, ci: BootstrapCI) -> None:
    """Write `<run>/bootstrap.json`, only when its content changes (a rerun leaves a finished run untouched)."""
    doc = {"on": res.reported_on, "videos": stats.videos, "frames": stats.frames, **ci.as_dict()}
    text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    path = RunDir(res.run_dir).bootstrap_file
    same = path.is_file() and path.stat().st_size == len(text.encode()) and path.read_text(encoding="utf-8") == text
    if not same:  # (the size first: a foreign file of any size is never read whole)
        atomic_write_text(path, text)


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
