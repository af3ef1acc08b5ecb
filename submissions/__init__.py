"""ABAW formats and scoring: CCC, annotation and prediction files, validation, packaging, leaderboards.

numpy and polars only (no torch), so that scoring and validation run anywhere.
"""

from submissions.errors import FormatError, HarnessError, MetricError, Problem
from submissions.metrics import UNANNOTATED, VAScore, annotated_mask, ccc, score_va

__all__ = [
    "UNANNOTATED",
    "FormatError",
    "HarnessError",
    "MetricError",
    "Problem",
    "VAScore",
    "annotated_mask",
    "ccc",
    "score_va",
]
