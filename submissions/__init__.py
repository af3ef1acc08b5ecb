"""ABAW formats and scoring: CCC, annotation and prediction files, validation, packaging, leaderboards.

numpy and polars only (no torch), so that scoring and validation run anywhere.
"""

from submissions.bootstrap import BootstrapCI, ClusterStats, Interval, bootstrap_ci, cluster_stats, paired_bootstrap
from submissions.errors import FormatError, MetricError, Problem
from submissions.metrics import UNANNOTATED, VAScore, annotated_mask, ccc, score_va

__all__ = [
    "UNANNOTATED",
    "BootstrapCI",
    "ClusterStats",
    "FormatError",
    "Interval",
    "MetricError",
    "Problem",
    "VAScore",
    "annotated_mask",
    "bootstrap_ci",
    "ccc",
    "cluster_stats",
    "paired_bootstrap",
    "score_va",
]
