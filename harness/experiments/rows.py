"""An experiment's rows: the config of each variant, and one row (a model on the table's folds, once per stage-2
seed) trained or reused, with its intervals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from harness.config import BASELINE_ROW, NO_REFINE_ROW, Config, ConfigError
from harness.experiments.intervals import _mean_std, _save_interval, run_stats, seed_mean_ci
from harness.experiments.table_files import _row
from harness.folders.experiment import run_dir_for
from harness.folders.run import STAGE1_DIR
from harness.runtime.distributed import Strategy
from harness.stages.baseline import train_baseline
from harness.stages.stage1 import run_stage1
from harness.stages.stage2 import Stage2Result, train_stage2
from submissions.bootstrap import (
    BootstrapCI,
    ClusterStats,
    bootstrap_ci,
)
from submissions.leaderboard import paper_rows


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
    res = run_stage1(cfg, layout, cache, out / STAGE1_DIR, resume=resume, progress=progress, strategy=strategy)
    if console is not None and not res.skipped and cfg.stage1.reserve > 0:
        console.print(res.reserve_note())
    return res.encoder_weights


def _paper(table: str) -> dict[str, tuple[float, float, float]]:
    """The paper's rows of a table by name."""
    return {e.name: (e.ccc_v, e.ccc_a, e.p_va) for e in paper_rows(table)}


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
    out = tuple(cfg.stage2_seeds if seeds is None else seeds)
    if not out or len(set(out)) != len(out):
        raise ConfigError(f"seeds: expected distinct seeds, got {list(out)}")
    return out
