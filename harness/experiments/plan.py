"""The submission plan (`harness submit --plan`): up to five candidate submissions, runs and ensembles, each with its
honest validation estimate, so that a team chooses before spending a test submission."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.safe_read import read_json
from harness.experiments.ensemble import split_labels
from harness.experiments.ensemble_members import (
    ENSEMBLE_KIND,
    FOLD_ENSEMBLE,
    LATE_FUSION,
    MODEL_ENSEMBLE,
    EnsembleError,
)
from harness.folders.run import (
    FINAL_EVENT,
    RunDir,
)
from harness.stages.predict import load_predictions
from submissions.bootstrap import Interval, bootstrap_ci, cluster_stats

# -- the submission plan ----------------------------------------------------------------------------------------------
MAX_SUBMISSIONS = 5
"""Test submissions the challenge allows a team (recent ABAW editions)."""
SINGLE = "single model"
PLAN_KINDS = (SINGLE, FOLD_ENSEMBLE, MODEL_ENSEMBLE, LATE_FUSION)
"""The kinds a plan takes the best of first, in this order, before it fills its other places by score."""


@dataclass(frozen=True)
class Candidate:
    """One candidate submission: a run or an ensemble folder, with its honest validation estimate.

    Args:
        path: the folder.
        kind: one of `PLAN_KINDS`.
        members: how many runs it combines (1 for a run).
        on: the frames of its validation estimate, in words ("" without one).
        p_va: the estimate's P_VA (NaN without one).
        low: the interval's lower bound (NaN without one).
        high: its upper bound (NaN without one).
        against_best: the paired P_VA difference against its best member on those frames, as a cell ("" for a run
            or where there is none).
        verdict: whether that difference is resolved ("" where there is none).
        test: the test split's P_VA where its labels are known (a check of the plan; NaN otherwise).
        ready: the folder holds a submission file (`harness submit` can package it).
    """

    path: Path
    kind: str
    members: int
    on: str
    p_va: float
    low: float
    high: float
    against_best: str
    verdict: str
    test: float
    ready: bool

    def row(self) -> dict[str, Any]:
        """The plan table's row."""
        return {"candidate": str(self.path), "kind": self.kind, "runs": self.members,
                "validation P_VA [95% CI]": Interval(self.p_va, self.low, self.high).cell(3, 2),
                "estimated on": self.on or "no estimate", "vs best member": self.against_best or "-",
                "verdict": self.verdict or "-", "test P_VA (check)": f"{self.test:.3f}" if math.isfinite(self.test)
                else "-", "submission file": "yes" if self.ready else "no"}  # fmt: skip


def _bound(d: Any, key: str) -> float:
    value = d.get(key) if isinstance(d, dict) else None
    return float(value) if isinstance(value, int | float) else math.nan


def _dict(d: Any, key: str) -> dict[str, Any]:
    value = d.get(key) if isinstance(d, dict) else None
    return value if isinstance(value, dict) else {}


def read_candidate(path: str | Path, layout: Any = None) -> Candidate:
    """A run folder or an ensemble folder as a candidate, with its validation estimate.

    An ensemble's is its record's validation estimate (nested for searched weights; the folds' own mean for a fold
    ensemble). A run's is its validation score, which also chose its best epoch; its interval is computed from its
    saved validation predictions when `layout` gives the labels.

    Args:
        path: the folder.
        layout: the dataset layout (`open_dataset`), for a run's validation interval; None: the score alone.

    Raises:
        EnsembleError: a folder with neither a run's final record nor an ensemble's record.
    """
    run = RunDir(path)
    if not run.summary_file.is_file():
        raise EnsembleError(f"{run.path}: neither a finished run nor an ensemble folder ({run.summary_file.name} is "
                            "missing)")  # fmt: skip
    summary = read_json(run.summary_file, "run summary")
    ready = run.submission_file.is_file()
    if summary.get("kind") == ENSEMBLE_KIND:
        listed = summary.get("estimates") if isinstance(summary.get("estimates"), list) else []
        val = next((e for e in listed if isinstance(e, dict) and e.get("split") == "validation"), {})
        test = next((e for e in listed if isinstance(e, dict) and e.get("split") == "test"), {})
        p_va = _dict(_dict(val, "ci"), "p_va")
        paired = _dict(_dict(val, "paired"), "p_va")
        diff = Interval(_bound(paired, "estimate"), _bound(paired, "low"), _bound(paired, "high"))
        members = summary.get("members") if isinstance(summary.get("members"), list) else []
        kind = str(summary.get("ensemble", MODEL_ENSEMBLE))
        return Candidate(run.path, kind if kind in PLAN_KINDS else MODEL_ENSEMBLE, len(members), str(val.get("on", "")),
                         _bound(p_va, "estimate"), _bound(p_va, "low"), _bound(p_va, "high"),
                         diff.cell(3, 2) if paired else "", diff.verdict if paired else "",
                         _bound(_dict(test, "score"), "p_va"), ready)  # fmt: skip
    if summary.get("event") != FINAL_EVENT:
        raise EnsembleError(f"{run.summary_file}: neither a run's final record nor an ensemble's record")
    p_va, low, high = _bound(_dict(summary, "val"), "p_va"), math.nan, math.nan
    if layout is not None and run.validation_predictions.is_file():
        preds = load_predictions(run.validation_predictions)
        ci = bootstrap_ci(cluster_stats(split_labels(layout, preds), preds))
        p_va, low, high = ci.p_va.estimate, ci.p_va.low, ci.p_va.high
    on = "validation (it also chose the run's best epoch)" if math.isfinite(p_va) else ""
    return Candidate(run.path, SINGLE, 1, on, p_va, low, high, "", "", _bound(_dict(summary, "test"), "p_va"), ready)


def choose_candidates(candidates: Sequence[Candidate], limit: int = MAX_SUBMISSIONS) -> list[Candidate]:
    """At most `limit` submittable candidates: the best of each kind first (`PLAN_KINDS` order), then the best others.

    Only candidates holding a submission file are chosen (a cross-validation fold predicts no test list: its folds
    are submitted as a fold ensemble). Candidates are compared by their validation estimate's P_VA (none last; never
    by a test score); ties keep the order given.
    """
    order = sorted((c for c in candidates if c.ready), key=lambda c: -c.p_va if math.isfinite(c.p_va) else math.inf)
    chosen: list[Candidate] = []
    for kind in PLAN_KINDS:
        best = next((c for c in order if c.kind == kind), None)
        if best is not None and len(chosen) < limit:
            chosen.append(best)
    for c in order:
        if len(chosen) >= limit:
            break
        if c not in chosen:
            chosen.append(c)
    return sorted(chosen, key=lambda c: -c.p_va if math.isfinite(c.p_va) else math.inf)


def plan_markdown(candidates: Sequence[Candidate]) -> str:
    """The plan as a Markdown table, with a line on what the estimates are."""
    rows = [c.row() for c in candidates]
    nan = math.nan
    head = list(rows[0]) if rows else list(Candidate(Path(), SINGLE, 1, "", nan, nan, nan, "", "", nan, False).row())
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r[h]) for h in head) + " |" for r in rows]
    note = ("Validation estimates are on frames the candidate's weights never saw (searched weights: nested over "
            "video groups or folds); a run's validation score also chose its best epoch, and a fold ensemble's is its "
            "folds' own mean. Estimates on other frames (one fold's validation videos, or every fold's) compare "
            "loosely. [low, high]: 95% percentile bootstrap over video clusters; vs best member: the paired P_VA "
            "difference, resolved when its interval excludes 0. Test P_VA only where the test labels are known, "
            "to check the plan, never to choose by.")  # fmt: skip
    return f"# Submission plan ({len(rows)} of at most {MAX_SUBMISSIONS})\n\n" + "\n".join(lines) + f"\n\n{note}\n"
