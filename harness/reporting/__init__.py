"""What the harness shows: the HTML report, plots, tables, the leaderboard, its recording and its floors.

Public names are re-exported lazily (PEP 562): `from harness.reporting import X` imports only X's module.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "ALPHA": "harness.reporting.floors",
    "CHECK_SCRIPT": "harness.reporting.html",
    "CI_NOTE": "harness.reporting.page",
    "COST_COLUMNS": "harness.reporting.page",
    "CSP": "harness.reporting.html",
    "CSS": "harness.reporting.html",
    "CURVE_KEYS": "harness.reporting.plots",
    "DIMS": "harness.reporting.plots",
    "KeyFloor": "harness.reporting.floors",
    "MAX_JSON_BYTES": "harness.reporting.report",
    "MAX_METRICS_BYTES": "harness.reporting.report",
    "MAX_PLOTTED": "harness.reporting.report",
    "MAX_PNG_BYTES": "harness.reporting.report",
    "MAX_TEXT_BYTES": "harness.reporting.report",
    "METRICS": "harness.reporting.leaderboard",
    "MIN_RUNS": "harness.reporting.floors",
    "PAIRED_NOTE": "harness.reporting.page",
    "PLATFORM_ORDER": "harness.reporting.page",
    "PLOTS": "harness.reporting.page",
    "PNG_MAGIC": "harness.reporting.report",
    "PlannedRun": "harness.reporting.recording",
    "Plot": "harness.reporting.page",
    "QUANTITIES": "harness.reporting.plots",
    "REFERENCE_SEED": "harness.reporting.recording",
    "Report": "harness.reporting.page",
    "Run": "harness.reporting.floors",
    "Runner": "harness.reporting.recording",
    "SCORES": "harness.reporting.page",
    "Sources": "harness.reporting.report",
    "Table": "harness.reporting.page",
    "check": "harness.reporting.leaderboard",
    "choose_k": "harness.reporting.floors",
    "ci_cells": "harness.reporting.tables",
    "collect_report": "harness.reporting.report",
    "cost_table": "harness.reporting.page",
    "curve_keys": "harness.reporting.plots",
    "curves_figure": "harness.reporting.plots",
    "curves_png": "harness.reporting.report",
    "data_uri": "harness.reporting.page",
    "default_output": "harness.reporting.report",
    "entries_from_scores": "harness.reporting.leaderboard",
    "environment_table": "harness.reporting.page",
    "flat_scores": "harness.reporting.recording",
    "frame_table": "harness.reporting.page",
    "gates_figure": "harness.reporting.plots",
    "gates_table": "harness.reporting.page",
    "group_of": "harness.reporting.leaderboard",
    "histograms_figure": "harness.reporting.plots",
    "key_floor": "harness.reporting.floors",
    "leaderboard_tables": "harness.reporting.page",
    "load_entries": "harness.reporting.leaderboard",
    "load_platform": "harness.reporting.leaderboard",
    "load_scores": "harness.reporting.leaderboard",
    "locate": "harness.reporting.report",
    "loo_deviation": "harness.reporting.floors",
    "measure_floors": "harness.reporting.floors",
    "paired_display": "harness.reporting.tables",
    "paired_frame": "harness.reporting.page",
    "paired_tables": "harness.reporting.leaderboard",
    "plan_runs": "harness.reporting.recording",
    "plot_curves": "harness.reporting.plots",
    "plot_gates": "harness.reporting.plots",
    "plot_histograms": "harness.reporting.plots",
    "plot_html": "harness.reporting.html",
    "plot_traces": "harness.reporting.plots",
    "prediction_k": "harness.reporting.floors",
    "print_rich": "harness.reporting.tables",
    "print_table": "harness.reporting.tables",
    "read_json": "harness.reporting.report",
    "read_metrics": "harness.reporting.report",
    "read_plots": "harness.reporting.report",
    "read_png": "harness.reporting.report",
    "read_score_tables": "harness.reporting.report",
    "record_quick": "harness.reporting.recording",
    "render_html": "harness.reporting.html",
    "resolve_source": "harness.reporting.leaderboard",
    "results_frame": "harness.reporting.page",
    "rich_table": "harness.reporting.tables",
    "run_quick_demo": "harness.reporting.recording",
    "save_table": "harness.reporting.tables",
    "score_cell": "harness.reporting.tables",
    "score_tables": "harness.reporting.page",
    "table_html": "harness.reporting.html",
    "timings_table": "harness.reporting.page",
    "traces_figure": "harness.reporting.plots",
    "verdict_line": "harness.reporting.leaderboard",
    "write_report": "harness.reporting.report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness.reporting' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
