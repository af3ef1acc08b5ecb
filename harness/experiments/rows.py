"""An experiment's rows: the config of each variant, and one row (a model on the table's folds, once per stage-2
seed) trained or reused, with its intervals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from rich.console import Console

from harness.config import UNFINETUNED_VISUAL, Config, ConfigError, TableRow
from harness.data.datasets import CacheLike
from harness.experiments.intervals import _mean_std, _save_interval, run_stats, seed_mean_ci
from harness.experiments.table_files import _row
from harness.folders.experiment import run_dir_for
from harness.folders.run import STAGE1_DIR, RunDir
from harness.runtime.distributed import Strategy
from harness.stages.baseline import train_baseline
from harness.stages.skeleton import StageResult
from harness.stages.stage1 import run_stage1
from harness.stages.stage2 import train_stage2
from preprocessing.affwild2 import AffWild2Layout
from submissions.bootstrap import (
    BootstrapCI,
    ClusterStats,
    bootstrap_ci,
)
from submissions.leaderboard import paper_rows


@dataclass
class ExperimentRun(StageResult):
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
    def of(cls, res: StageResult, seed: int, seeds: int, layout: AffWild2Layout) -> ExperimentRun:
        """A trained or reused run with its seed and interval (computed from its saved predictions, not written).

        Args:
            res: the run.
            seed: its stage-2 seed.
            seeds: the experiment's number of seeds.
            layout: the dataset layout (the labels).
        """
        stats = run_stats(res, layout)
        ci = bootstrap_ci(stats) if stats is not None else None
        base = {f.name: getattr(res, f.name) for f in fields(StageResult)}
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
    results: list[StageResult] = field(default_factory=list)
    intervals: dict[str, BootstrapCI] = field(default_factory=dict)
    paired: pl.DataFrame | None = None
    seeds: tuple[int, ...] = ()

    def interval(self, res: StageResult) -> BootstrapCI | None:
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
    rows = [r.name for r in cfg.experiment.rows if r.kind != "no_refine"]
    return cfg.replace(**{"data.refine_labels": False, "experiment.ablation_models": rows})


@dataclass(frozen=True)
class ExperimentSetup:
    """What every row of one experiment shares.

    Args:
        cfg: the base config.
        layout: the dataset layout.
        cache: the feature cache.
        out: the experiment folder.
        seeds: the stage-2 seeds every (fold, row) is trained with.
        resume: continue interrupted runs from their checkpoints.
        progress: progress bars (None: the config's).
        console: a rich console to print on (None: print nothing).
        on_result: called after each run (with an `ExperimentRun`).
        strategy: the run's processes (None: this process's own).
        encoder: stage 1's encoder weights behind the visual features (`with_stage1`), recorded by every run.
    """

    cfg: Config
    layout: AffWild2Layout
    cache: CacheLike
    out: Path
    seeds: tuple[int, ...]
    resume: bool = False
    progress: bool | None = None
    console: Console | None = None
    on_result: Callable[[StageResult], None] | None = None
    strategy: Strategy | None = None
    encoder: Path | None = None

    def with_stage1(self) -> ExperimentSetup:
        """Run stage 1 into `<out>/stage1` when enabled (skipped when its features are cached); the setup with its
        encoder weights."""
        if not self.cfg.stage1.enabled:
            return self
        res = run_stage1(self.cfg, self.layout, self.cache, self.out / STAGE1_DIR, resume=self.resume,
                         progress=self.progress, strategy=self.strategy)  # fmt: skip
        if self.console is not None and not res.skipped and self.cfg.stage1.reserve > 0:
            self.console.print(res.reserve_note())
        return replace(self, encoder=res.encoder_weights)


def _paper(table: str) -> dict[str, tuple[float, float, float]]:
    """The paper's rows of a table by name."""
    return {e.name: (e.ccc_v, e.ccc_a, e.p_va) for e in paper_rows(table)}


def describe_result(res: StageResult) -> str:
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


def _scores(res: StageResult) -> tuple[float, float, float]:
    s = res.reported
    return s["ccc_v"], s["ccc_a"], s["p_va"]


def _row_encoder(setup: ExperimentSetup, visual: str) -> Path | None:
    """The stage-1 encoder that made a row's visual features (Table III's rows read another one than the config)."""
    if visual == setup.cfg.features.visual:
        return setup.encoder
    p = RunDir(setup.out / STAGE1_DIR).encoder_that_made(visual != UNFINETUNED_VISUAL)
    return p if p.is_file() else None


def train_row(setup: ExperimentSetup, folds: Sequence[int], row: TableRow, visual: str) -> list[list[ExperimentRun]]:
    """Train (or reuse) one row's runs, seed by seed and within a seed fold by fold; `runs[k][j]` is fold k's run of
    seed j. Seed by seed: a command stopped after its first seed has left a complete experiment of that seed.

    Args:
        setup: what the experiment's rows share.
        folds: the table's folds.
        row: the row (a temporal model, the baseline, or the config's model without label refinement).
        visual: the visual feature the row reads.
    """
    cfg, seeds = setup.cfg, setup.seeds
    runs: list[list[ExperimentRun]] = [[] for _ in folds]
    for s in seeds:
        for k, f in enumerate(folds):
            where = run_dir_for(setup.out, cfg, f, row.name, visual, seed=s)
            if row.kind == "baseline":
                r = train_baseline(variant(cfg, seed=s), setup.layout, setup.cache, f, where, resume=setup.resume,
                                   progress=setup.progress, strategy=setup.strategy)  # fmt: skip
            else:
                v = without_refinement(variant(cfg, None, visual, seed=s)) if row.kind == "no_refine" else \
                    variant(cfg, row.name, visual, seed=s)  # fmt: skip
                r = train_stage2(v, setup.layout, setup.cache, f, where, resume=setup.resume, progress=setup.progress,
                                 encoder_weights=_row_encoder(setup, visual), strategy=setup.strategy)  # fmt: skip
            run = ExperimentRun.of(r, s, len(seeds), setup.layout)
            runs[k].append(run)
            if setup.on_result:
                setup.on_result(run)
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
