"""The paper's experiments: Table I (folds), Tables III and IV (ablation), Table II (compare), the demo, ensembles of
finished runs and the submission plan.

Public names are re-exported lazily (PEP 562): `from harness.experiments import X` imports only X's module.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "CI_NOTE": "harness.experiments.table_files",
    "COST_SCHEMA": "harness.experiments.compare",
    "Candidate": "harness.experiments.plan",
    "CompareReport": "harness.experiments.compare",
    "DEMO_LAYOUT": "harness.experiments.demo",
    "DEMO_ROOT": "harness.experiments.demo",
    "DemoResult": "harness.experiments.demo",
    "EnsembleError": "harness.experiments.ensemble_members",
    "EnsembleResult": "harness.experiments.ensemble",
    "Estimate": "harness.experiments.ensemble",
    "ExperimentRun": "harness.experiments.rows",
    "ExperimentSetup": "harness.experiments.rows",
    "FOLD_ENSEMBLE": "harness.experiments.ensemble_members",
    "Grid": "harness.experiments.intervals",
    "LATE_FUSION": "harness.experiments.ensemble_members",
    "MAX_SUBMISSIONS": "harness.experiments.plan",
    "MODEL_ENSEMBLE": "harness.experiments.ensemble_members",
    "Member": "harness.experiments.ensemble_members",
    "PAIRED_SCHEMA": "harness.experiments.table_files",
    "PAIRS_III": "harness.experiments.ablation",
    "PAPER_NAMES_IV": "harness.experiments.ablation",
    "REFERENCE": "harness.experiments.compare",
    "SCORES": "harness.experiments.table_files",
    "SELF_REPORTED": "harness.experiments.compare",
    "SINGLE": "harness.experiments.plan",
    "STAGE_SHARES": "harness.experiments.demo",
    "TABLE": "harness.experiments.compare",
    "TABLE3_ROWS": "harness.experiments.ablation",
    "TABLE_SCHEMA": "harness.experiments.table_files",
    "TIMED_STEPS": "harness.experiments.compare",
    "TableReport": "harness.experiments.rows",
    "WEIGHT_MODES": "harness.experiments.ensemble_members",
    "build_ensemble": "harness.experiments.ensemble",
    "check_compatible": "harness.experiments.ensemble_members",
    "check_models": "harness.experiments.compare",
    "choose_candidates": "harness.experiments.plan",
    "citation_of": "harness.experiments.compare",
    "demo_config": "harness.experiments.demo",
    "describe_result": "harness.experiments.rows",
    "display_name": "harness.experiments.compare",
    "gate_stats": "harness.experiments.demo",
    "gate_traces": "harness.experiments.demo",
    "load_member": "harness.experiments.ensemble_members",
    "make_ensemble": "harness.experiments.ensemble",
    "measure_cost": "harness.experiments.compare",
    "paired_seed_ci": "harness.experiments.intervals",
    "pairs_iv": "harness.experiments.ablation",
    "plan_markdown": "harness.experiments.plan",
    "prediction_rate": "harness.experiments.compare",
    "read_candidate": "harness.experiments.plan",
    "run_ablation": "harness.experiments.ablation",
    "run_compare": "harness.experiments.compare",
    "run_demo": "harness.experiments.demo",
    "run_folds": "harness.experiments.folds",
    "run_stats": "harness.experiments.intervals",
    "seed_mean_ci": "harness.experiments.intervals",
    "seed_note": "harness.experiments.table_files",
    "self_reported_table": "harness.experiments.compare",
    "time_train_step": "harness.experiments.compare",
    "train_row": "harness.experiments.rows",
    "variant": "harness.experiments.rows",
    "without_refinement": "harness.experiments.rows",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness.experiments' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
