"""One skeleton for every trained stage: skip if finished, prepare, lock, fit, finish, summarise.

A stage (stage 2's temporal model, the challenge baseline; stage 1's MAE pre-training and fine-tuning phases) fills
in what is its own (`Phase`, `TrainedStage`) and `run_stage` runs the steps in the one order every stage keeps:

1. skip: the run folder holds a final record of the same identity (`RunKey`: the config hash with the fold, or a
   stage's own hash), so the finished run is summarised as it is (`StageResult.skipped`);
2. prepare: checks and data the fit needs that touch no file (a refused input leaves the folder as it was);
3. lock the run folder (rank 0) and prepare it (`RunDir.prepare`: config.yaml, git.txt; a resumable folder kept);
4. fit: train with the loop (`harness.train.loop.fit`);
5. finish (rank 0): predict with the best weights, score, write the predictions and the final record;
6. summarise: the final record as a `StageResult` (every process reads the record rank 0 wrote).

`StageResult` is the one result type of a trained run, whatever trained it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from harness.config import Config
from harness.data.datasets import CacheLike
from harness.data.splits import Fold
from harness.folders.run import ENCODER_KEY, RunDir
from harness.runtime.distributed import Strategy
from harness.train.loop import FitResult
from preprocessing.affwild2 import AffWild2Layout


@dataclass
class StageResult:
    """One finished (or reused) trained run.

    Args:
        run_dir: the run folder.
        fold: fold index.
        model: the row's model (`baseline` for the challenge baseline).
        val: held-out validation scores (`ccc_v`, `ccc_a`, `p_va`, `frames`).
        test: test-split scores when the test videos carry annotations (the demo corpus), else None.
        best_epoch: the kept epoch.
        skipped: True when a finished run of the same identity was reused.
        record: the run's final record.
        encoder_weights: the stage-1 ViT that made the visual features (None when not recorded).
    """

    run_dir: Path
    fold: int
    model: str
    val: dict[str, float]
    test: dict[str, float] | None
    best_epoch: int
    skipped: bool
    record: dict[str, Any] = field(default_factory=dict)
    encoder_weights: Path | None = None

    @property
    def reported(self) -> dict[str, float]:
        """The score a results table shows: the test score when there is one, else the held-out validation."""
        return self.test if self.test else self.val

    @property
    def reported_on(self) -> str:
        return "test" if self.test else "validation"

    @classmethod
    def from_record(cls, run: RunDir, rec: Mapping[str, Any], skipped: bool) -> StageResult:
        """The result a final record describes."""
        return cls(
            run_dir=run.path,
            fold=int(rec["fold"]),
            model=str(rec["model"]),
            val=dict(rec["val"]),
            test=dict(rec["test"]) if rec.get("test") else None,
            best_epoch=int(rec["best_epoch"]),
            skipped=skipped,
            record=dict(rec),
            encoder_weights=Path(rec[ENCODER_KEY]) if rec.get(ENCODER_KEY) else None,
        )


@dataclass(frozen=True)
class RunKey:
    """What identifies a run's result: the config hash with `extra` (the fold's identity), or a stage's own hash."""

    extra: Mapping[str, Any] | None = None
    run_hash: str | None = None


@dataclass(frozen=True)
class StageInputs:
    """What every trained stage is given.

    Args:
        cfg: the run config.
        layout: the dataset layout: splits, crops and annotation files.
        cache: the feature cache.
        fold: the fold.
        run: the run folder.
        resume: continue an interrupted run from its last checkpoint.
        progress: rich progress bars.
        strategy: the run's processes.
    """

    cfg: Config
    layout: AffWild2Layout
    cache: CacheLike
    fold: Fold
    run: RunDir
    resume: bool
    progress: bool
    strategy: Strategy


R = TypeVar("R")
"""What a stage's run gives back (`StageResult` for a stage-2 row or the baseline)."""


class Phase(ABC, Generic[R]):
    """A trained step `run_stage` runs: its identity, preparation, fit, final record and result (see the module
    docstring). `locks`: whether the run folder is locked for the step (a stage-1 phase runs inside the stage-1
    folder, which its stage holds locked)."""

    locks: bool = True

    def __init__(self, run: RunDir, cfg: Config, resume: bool, strategy: Strategy) -> None:
        self.run, self.cfg, self.resume, self.strategy = run, cfg, resume, strategy

    @abstractmethod
    def key(self) -> RunKey:
        """The run's identity (checked against a finished run, recorded when it finishes)."""

    def prepare(self) -> None:
        """Checks and data the fit needs, before the run folder is touched (nothing by default)."""

    @abstractmethod
    def fit(self) -> FitResult:
        """Train (every process)."""

    @abstractmethod
    def finish(self, result: FitResult) -> dict[str, Any]:
        """Write the final record (rank 0), after predicting and scoring where the step does; the record."""

    @abstractmethod
    def summarise(self, record: Mapping[str, Any], skipped: bool) -> R:
        """The step's result from its final record (`skipped`: a finished run was reused)."""


class TrainedStage(Phase[StageResult]):
    """A trained stage over a fold (stage 2's temporal model, the challenge baseline): a `Phase` whose result is a
    `StageResult`."""

    def __init__(self, inputs: StageInputs) -> None:
        super().__init__(inputs.run, inputs.cfg, inputs.resume, inputs.strategy)
        self.inputs = inputs

    def summarise(self, record: Mapping[str, Any], skipped: bool) -> StageResult:
        return StageResult.from_record(self.run, record, skipped)


def run_stage(stage: Phase[R], force: bool = False) -> R:
    """Run a stage's steps in the order every stage keeps (see the module docstring).

    Args:
        stage: the stage (or stage-1 phase), with its inputs.
        force: train even when the folder holds a finished run of the same identity.
    """
    strategy, run, key = stage.strategy, stage.run, stage.key()
    done = None if force else run.finished_with(stage.cfg, key.extra, run_hash=key.run_hash)
    strategy.barrier()
    if done is not None:
        return stage.summarise(done, skipped=True)
    stage.prepare()
    lock = stage.locks and strategy.on_main
    if lock:
        run.lock()
    try:
        if strategy.on_main:
            run.prepare(stage.cfg, resume=stage.resume, extra=key.extra, run_hash=key.run_hash)
        strategy.barrier()
        result = stage.fit()
        record: dict[str, Any] = stage.finish(result) if strategy.on_main else {}
        strategy.barrier()
        if not strategy.on_main:
            record = run.final_record() or {}
        return stage.summarise(record, skipped=False)
    finally:
        if lock:
            run.unlock()
