"""Folder layouts: `RunDir`, `ExperimentDir`, `DemoDir` and `PreprocessDir`, the only code that spells a file or
folder name of what the harness writes.

Public names are re-exported lazily (PEP 562): `from harness.folders import X` imports only X's module.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "ABLATION_DIR": "harness.folders.experiment",
    "BEST_WEIGHTS_FILE": "harness.folders.run",
    "BOOTSTRAP_FILE": "harness.folders.run",
    "CHECKPOINTS_DIR": "harness.folders.run",
    "CONFIG_FILE": "harness.folders.run",
    "CORPUS_DIR": "harness.folders.demo",
    "COST_TABLE": "harness.folders.experiment",
    "CROPS_DIR": "harness.folders.cache",
    "DEMO_FILES": "harness.folders.demo",
    "DS_CONFIG_FILE": "harness.folders.run",
    "DemoDir": "harness.folders.demo",
    "ENCODER_FILE": "harness.folders.run",
    "ENCODER_KEY": "harness.folders.run",
    "EXPERIMENTS_DIR": "harness.folders.demo",
    "EXPERIMENT_LAYOUT": "harness.folders.experiment",
    "ExperimentDir": "harness.folders.experiment",
    "FACE_CHECK_DIR": "harness.folders.demo",
    "FEATURES_DIR": "harness.folders.cache",
    "FINAL_EVENT": "harness.folders.run",
    "FINETUNE_DIR": "harness.folders.run",
    "FOLDS_DIR": "harness.folders.experiment",
    "GIT_FILE": "harness.folders.run",
    "LOCK_FILE": "harness.folders.run",
    "MAE_DIR": "harness.folders.run",
    "METRICS_FILE": "harness.folders.run",
    "NORM_STATS_FILE": "harness.folders.run",
    "OUTPUT_LAYOUT": "harness.folders.cache",
    "PLOTS_DIR": "harness.folders.demo",
    "PREDICTIONS_DIR": "harness.folders.run",
    "PREDICTION_SPLITS": "harness.folders.run",
    "PreprocessDir": "harness.folders.cache",
    "REPORT_FILE": "harness.folders.demo",
    "RESET_ENTRIES": "harness.folders.run",
    "RUN_FILE": "harness.folders.run",
    "RUN_LAYOUT": "harness.folders.run",
    "RunDir": "harness.folders.run",
    "RunError": "harness.folders.run",
    "RunLockedError": "harness.folders.run",
    "SCORES_FILE": "harness.folders.demo",
    "SELF_REPORTED_TABLE": "harness.folders.experiment",
    "SHARD_SUMMARIES": "harness.folders.cache",
    "STAGE1_DIR": "harness.folders.run",
    "SUBMISSION_FILE": "harness.folders.run",
    "SUBMISSION_ZIP": "harness.folders.demo",
    "SUMMARY": "harness.folders.cache",
    "SUMMARY_FILE": "harness.folders.run",
    "TABLES": "harness.folders.experiment",
    "TABLE_SUFFIXES": "harness.folders.experiment",
    "TIMINGS_FILE": "harness.folders.demo",
    "VIDEO_WORK_DIR": "harness.folders.run",
    "git_hash": "harness.folders.run",
    "resolve_prediction": "harness.folders.run",
    "run_dir_for": "harness.folders.experiment",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness.folders' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
