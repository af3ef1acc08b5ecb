"""The stage skeleton (`harness.stages.skeleton.run_stage`): skip if finished, prepare, lock, fit, finish, summarise,
in that order, for every stage; and the typed rows of the ablation table (`harness.config.rows`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from harness.config import BASELINE_ROW, NO_REFINE_ROW, Config, TableRow, load_config, table_rows
from harness.folders.run import RunDir
from harness.runtime.distributed import current_strategy
from harness.stages.skeleton import Phase, RunKey, run_stage
from harness.train.loop import FitResult


class Recorder(Phase[tuple[str, bool]]):
    """A stage that records the steps it is asked for, and whether the folder was locked during the fit."""

    def __init__(self, run: RunDir, cfg: Config, steps: list[str], fail_in_prepare: bool = False) -> None:
        super().__init__(run, cfg, resume=False, strategy=current_strategy())
        self.steps, self.fail_in_prepare = steps, fail_in_prepare

    def key(self) -> RunKey:
        return RunKey(run_hash="recorder-1")

    def prepare(self) -> None:
        self.steps.append("prepare")
        if self.fail_in_prepare:
            raise ValueError("refused input")

    def fit(self) -> FitResult:
        self.steps.append(f"fit locked={self.run.lock_file.exists()}")
        return FitResult(best_epoch=0, best={}, history=[], steps_per_epoch=1)

    def finish(self, result: FitResult) -> dict[str, Any]:
        self.steps.append("finish")
        return self.run.write_final({"config_hash": "recorder-1", "best_epoch": result.best_epoch})

    def summarise(self, record: Mapping[str, Any], skipped: bool) -> tuple[str, bool]:
        self.steps.append("summarise")
        return str(record["config_hash"]), skipped


def test_the_steps_run_in_order_and_a_finished_run_is_reused(tmp_path: Path) -> None:
    cfg = load_config("quick")
    run = RunDir(tmp_path / "run")
    steps: list[str] = []
    assert run_stage(Recorder(run, cfg, steps)) == ("recorder-1", False)
    assert steps == ["prepare", "fit locked=True", "finish", "summarise"]
    again: list[str] = []
    assert run_stage(Recorder(run, cfg, again)) == ("recorder-1", True)
    assert again == ["summarise"]  # skipped: nothing prepared, fitted or written
    forced: list[str] = []
    assert run_stage(Recorder(run, cfg, forced), force=True) == ("recorder-1", False)
    assert forced[0] == "prepare"


def test_a_refused_input_leaves_the_folder_untouched(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    with pytest.raises(ValueError, match="refused input"):
        run_stage(Recorder(run, load_config("quick"), [], fail_in_prepare=True))
    assert not run.path.exists()


def test_rows_are_typed_not_compared_as_strings() -> None:
    rows = table_rows(["bdca", BASELINE_ROW, NO_REFINE_ROW])
    assert [r.kind for r in rows] == ["model", "baseline", "no_refine"]
    assert rows[1] == TableRow.baseline() and rows[0] == TableRow.model("bdca")
    cfg = load_config("quick")
    assert cfg.experiment.rows == table_rows(cfg.experiment.ablation_models)
    assert any(r.kind == "baseline" for r in cfg.experiment.rows)
