"""Ensembles of finished runs: the folds of one experiment averaged, or several models fused with searched weights.

Members are finished stage-2 run folders (read through `RunDir`). Three shapes are ensembled:

- **one fold, several runs** (different models, visual features or seeds trained on the same fold): every member
  predicted the same validation videos, so weights may be searched there (`--weights search`: the simplex grid of
  `submissions.ensemble`, joint or per dimension). The estimate of what the ensemble scores on data its weights never
  saw is a nested cross-validation over the validation videos: they are dealt into `GROUPS` groups by raw video, and
  each group's frames are predicted with weights searched on the other groups alone. Those out-of-group predictions
  are the ensemble's `validation.npz`, so rescoring that file gives the honest number. With `--weights mean` nothing
  is chosen and the validation predictions are the plain mean.
- **several models, each on the same folds** (late fusion over folds): every fold's validation videos are held out
  from that fold's runs of every model, so the weights are searched on all folds' validation frames; the estimate is
  nested over folds (fold f's frames get weights searched on the other folds' frames of other videos) and averaged
  over folds as Table I is. The test split is each model's folds averaged, then the models fused.
- **several folds, one run each** (the fold ensemble: the models of a cross-validation averaged): the folds hold out
  different videos, and every video of a fold's validation set trained the other folds' models, so there is no
  validation frame to choose weights on or to score the ensemble on; the weights are the mean, its validation row is
  the folds' own mean (one fold model's estimate, Table I's kind), and the ensemble itself is estimated on the test
  split, when its labels are known (the demo's corpus has them, the challenge's test set does not).

The test split (when every member predicted it; `make_ensemble(predict=True)` predicts it with members that did not, the
cross-validation folds, which predict only their held-out videos) gets the weights chosen on all validation videos,
and is scored when its labels are known. Each estimate comes with the video-bootstrap interval and the paired
difference against the best single member (chosen by its validation score, as a team would choose it), from
`submissions.bootstrap`.

Members must agree on what makes their frames comparable, and the first difference is named: the videos of each split
and their frame counts, the label files (each member's recorded validation score is reproduced from its saved
predictions and the labels given), and the settings that fix frames and folds (`FRAME_SETTINGS`).

The ensemble folder (claimed through `core.ownership`, every file written atomically) keeps the run-folder names of
`RunDir`: `predictions/validation.npz`, `predictions/test.npz`, `predictions/submission.csv` (with the organisers'
sample file), `summary.json` (the ensemble's record: members with their config and git hashes, weights, search
space, validation score, estimates) and `git.txt`, so `harness submit` packages it like a run folder.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import atomic_write_text
from core.errors import printable
from core.ownership import claim_folder
from harness.data.datasets import load_labels, open_dataset
from harness.experiments.ensemble_members import (
    ENSEMBLE_KIND,
    ENSEMBLE_LAYOUT,
    FOLD_ENSEMBLE,
    WEIGHT_MODES,
    EnsembleError,
    Member,
    _score,
    check_compatible,
    ensemble_kind,
    fold_grid,
    load_member,
)
from harness.folders.run import (
    PREDICTIONS_DIR,
    SUMMARY_FILE,
    RunDir,
    git_hash,
)
from harness.stages.predict import predict_videos, save_predictions
from submissions import MetricError
from submissions.bootstrap import BootstrapCI, bootstrap_ci, cluster_stats, paired_bootstrap
from submissions.ensemble import (
    GROUPS,
    STEP,
    FusionStats,
    Search,
    combine_videos,
    equal_weights,
    fusion_stats_videos,
    nested_search,
    search_weights,
    video_groups,
    weights_dict,
)
from submissions.formats import write_submission
from submissions.metrics import annotated_mask


@dataclass(frozen=True)
class Estimate:
    """A score on frames the ensemble's weights never saw, against the best single member on the same frames.

    Args:
        on: which frames, in words.
        split: `validation` or `test`.
        score: (ccc_v, ccc_a, p_va): the ensemble's, or for a fold ensemble's validation the folds' mean (`of`).
        ci: its video-bootstrap interval.
        best_member: the best single member (by validation score).
        best_score: (ccc_v, ccc_a, p_va) of that member on the same frames (NaN when it has none there).
        paired: the paired interval of ensemble minus best member (None where they share no frames).
        videos: videos scored.
        frames: annotated frames scored.
        of: `ensemble`, or `members` for a fold ensemble's validation (no ensemble can be scored there).
    """

    on: str
    split: str
    score: tuple[float, float, float]
    ci: BootstrapCI
    best_member: str
    best_score: tuple[float, float, float]
    paired: BootstrapCI | None
    videos: int
    frames: int
    of: str = "ensemble"

    def as_dict(self) -> dict[str, Any]:
        names = ("ccc_v", "ccc_a", "p_va")
        return {"on": self.on, "split": self.split, "of": self.of, "score": dict(zip(names, self.score, strict=True)),
                "ci": self.ci.as_dict(), "best_member": self.best_member,
                "best_score": dict(zip(names, self.best_score, strict=True)),
                "paired": self.paired.as_dict() if self.paired else None,
                "verdicts": self.paired.verdicts() if self.paired else None, "videos": self.videos,
                "frames": self.frames}  # fmt: skip


@dataclass
class EnsembleResult:
    """An ensemble, before it is written.

    Args:
        kind: `FOLD_ENSEMBLE`, `MODEL_ENSEMBLE` (the mean of one fold's runs) or `LATE_FUSION` (searched weights).
        members: the runs.
        mode: `mean` or `search`.
        weights: (M, 2) the weights the test split gets (chosen on all validation videos).
        search: the search over all validation videos (None for the mean).
        nested: per validation group, its videos and the weights searched without them (search only).
        predictions: split -> video -> (N, 2): validation out-of-group (search) or mean, test with `weights`.
        member_scores: member run folder (as given) -> split -> (ccc_v, ccc_a, p_va), where labelled.
        estimates: honest estimates, validation first (what a team chooses by), then test when labelled.
        notes: what the reader should know (why an estimate is missing).
        weight_rows: per member, its row of `weights` (folds x models: its model's); empty: the member's own.
    """

    kind: str
    members: list[Member]
    mode: str
    weights: np.ndarray
    search: Search | None
    nested: list[tuple[list[str], Search]]
    predictions: dict[str, dict[str, np.ndarray]]
    member_scores: dict[str, dict[str, tuple[float, float, float]]]
    estimates: list[Estimate]
    notes: list[str]
    weight_rows: list[int] = field(default_factory=list)

    def weight_row(self, i: int) -> int:
        """The row of `weights` that member i's predictions get (its model's, when the members are folds x models)."""
        return self.weight_rows[i] if self.weight_rows else i

    def record(self) -> dict[str, Any]:
        """The ensemble's summary.json."""
        return {
            "kind": ENSEMBLE_KIND,
            "ensemble": self.kind,
            "members": [
                {**m.record(), "weight_row": self.weight_row(i),
                 "scores": {s: dict(zip(("ccc_v", "ccc_a", "p_va"), v, strict=True))
                            for s, v in self.member_scores.get(str(m.path), {}).items()}}
                for i, m in enumerate(self.members)
            ],
            "weights": {"mode": self.mode, "per_dimension": bool(self.search.per_dimension) if self.search else False,
                        "values": weights_dict(self.weights)},
            "search": None if self.search is None else {**self.search.as_dict(), "selected_on": "validation"},
            "nested": [{"held_out": videos, **s.as_dict()} for videos, s in self.nested],
            "estimates": [e.as_dict() for e in self.estimates],
            "estimate": self.estimates[0].as_dict() if self.estimates else None,  # validation's, when there is one
            "splits": {s: {"videos": len(p), "frames": int(sum(a.shape[0] for a in p.values()))}
                       for s, p in self.predictions.items()},
            "notes": self.notes,
        }  # fmt: skip


def _labels_of(
    labels: Mapping[str, Mapping[str, np.ndarray]], split: str, videos: Collection[str]
) -> dict[str, np.ndarray]:
    """The labels of `videos` of a split.

    Raises:
        EnsembleError: a video without labels (naming it).
    """
    have = labels.get(split, {})
    missing = next((v for v in videos if v not in have), None)
    if missing is not None:
        raise EnsembleError(f"{split} video {printable(missing)!r} has no labels in the data given")
    return {v: have[v] for v in videos}


def _labelled(labels: Mapping[str, np.ndarray] | None) -> bool:
    return labels is not None and sum(int(annotated_mask(a).sum()) for a in labels.values()) >= 2


def _estimate(on: str, split: str, labels: Mapping[str, np.ndarray], ens: Mapping[str, np.ndarray], best: Member,
              best_preds: Mapping[str, np.ndarray]) -> Estimate:  # fmt: skip
    a, b = cluster_stats(labels, ens), cluster_stats(labels, best_preds)
    return Estimate(on=on, split=split, score=a.estimate, ci=bootstrap_ci(a), best_member=best.name,
                    best_score=b.estimate, paired=paired_bootstrap(a, b), videos=a.videos, frames=a.frames)  # fmt: skip


def build_ensemble(members: Sequence[Member], labels: Mapping[str, Mapping[str, np.ndarray]], mode: str = "mean",
                   per_dimension: bool = False, step: float = STEP,
                   groups: int = GROUPS) -> EnsembleResult:  # fmt: skip
    """Combine the members' predictions, choose weights on validation only, and estimate on frames they never saw.

    Args:
        members: finished runs (`load_member`), compatible (`check_compatible`).
        labels: split -> video -> (N, 2) labels (-5 unannotated); a split without labelled frames gets no estimate.
        mode: `mean` or `search`.
        per_dimension: search valence and arousal weights separately.
        step: the simplex grid's step.
        groups: validation video groups of the nested estimate.

    Raises:
        EnsembleError: an unknown mode, weights searched over folds, or members lacking a split the others hold.
    """
    if mode not in WEIGHT_MODES:
        raise EnsembleError(f"--weights {mode!r}: choose one of {', '.join(WEIGHT_MODES)}")
    if per_dimension and mode != "search":
        raise EnsembleError("--per-dimension chooses searched weights per dimension: give --weights search with it")
    kind = ensemble_kind(members, mode)
    if kind == FOLD_ENSEMBLE and mode == "search":
        raise EnsembleError("the runs are different folds: no validation video is held out from all of them, so "
                            "there is nothing to search weights on; use --weights mean")  # fmt: skip
    folds = {m.fold for m in members}
    if kind != FOLD_ENSEMBLE and len(folds) > 1:
        return _build_grid(fold_grid(members), labels, kind, mode, per_dimension, step)
    splits = ["test"] if kind == FOLD_ENSEMBLE else ["validation", "test"]
    for split in splits:
        have = [m for m in members if split in m.predictions]
        if have and len(have) < len(members):
            lacks = next(m for m in members if split not in m.predictions)
            raise EnsembleError(f"{lacks.path}: has no {split} predictions, which {have[0].path} has; predict them "
                                "(`harness ensemble --predict`) or leave the run out")  # fmt: skip
    if not any(split in members[0].predictions for split in splits):
        raise EnsembleError(f"{members[0].path}: the runs share no split of saved predictions "
                            f"({' or '.join(splits)}); predict the test list with --predict")  # fmt: skip
    notes: list[str] = []
    scores: dict[str, dict[str, tuple[float, float, float]]] = {str(m.path): {} for m in members}
    for m in members:
        for split, preds in m.predictions.items():
            have = labels.get(split, {})
            lab = {v: have[v] for v in preds if v in have}
            if len(lab) == len(preds) and _labelled(lab):
                scores[str(m.path)][split] = _score(lab, preds)
    val_of = {str(m.path): (m.recorded_val or {}).get("p_va") for m in members}
    best = max(members, key=lambda m: v if isinstance(v := val_of[str(m.path)], int | float) else -math.inf)
    weights = equal_weights(len(members))
    search, nested, out, estimates = None, [], {}, []
    if kind != FOLD_ENSEMBLE and "validation" not in members[0].predictions:
        if mode == "search":
            raise EnsembleError(f"{members[0].path}: no validation predictions to search weights on")
        notes.append("the runs saved no validation predictions: no validation estimate")
    elif kind != FOLD_ENSEMBLE:
        val_preds = [m.predictions["validation"] for m in members]
        val_labels = _labels_of(labels, "validation", val_preds[0])
        if mode == "search":
            search = search_weights(fusion_stats_videos(val_labels, val_preds), step, per_dimension)
            weights = search.weights
            parts = video_groups(sorted(val_labels), groups)
            if len(parts) < 2:
                raise EnsembleError("the validation split has one raw video: a nested estimate needs at least 2")
            found = nested_search([fusion_stats_videos(val_labels, val_preds, p) for p in parts], step, per_dimension)
            nested = [(p, s) for p, s in zip(parts, found, strict=True)]
            out["validation"] = {}
            for p, s in nested:
                out["validation"].update(combine_videos([{v: m[v] for v in p} for m in val_preds], s.weights))
            on = f"validation, nested over {len(parts)} video groups (weights searched on the other groups)"
        else:
            out["validation"] = combine_videos(val_preds, weights)
            on = "validation (equal weights: nothing chosen on it)"
        if _labelled(val_labels):
            estimates.append(_estimate(on, "validation", val_labels, out["validation"], best,
                                       best.predictions["validation"]))  # fmt: skip
    else:
        notes.append(
            "fold ensemble: every validation video trained some other fold's model, so no ensemble is "
            "scored on validation; its validation row is the folds' own mean (one fold model's estimate)"
        )
        folds = [(m, _labels_of(labels, "validation", m.predictions.get("validation", {}))) for m in members]
        if all(m.predictions.get("validation") and _labelled(lab) for m, lab in folds):
            stats = [cluster_stats(lab, m.predictions["validation"]) for m, lab in folds]
            ci = bootstrap_ci(stats)
            nan3 = (math.nan, math.nan, math.nan)
            estimates.append(Estimate(
                on=f"validation: each of the {len(folds)} fold models on its own held-out videos, mean over folds",
                split="validation", score=(ci.ccc_v.estimate, ci.ccc_a.estimate, ci.p_va.estimate), ci=ci,
                best_member=best.name, best_score=scores[str(best.path)].get("validation", nan3), paired=None,
                videos=sum(s.videos for s in stats), frames=sum(s.frames for s in stats), of="members"))  # fmt: skip
    if all("test" in m.predictions for m in members):
        out["test"] = combine_videos([m.predictions["test"] for m in members], weights)
        test_labels = labels.get("test")
        if _labelled(test_labels) and set(test_labels or {}) == set(out["test"]):
            on = "test (weights chosen on validation)" if mode == "search" else "test (equal weights)"
            estimates.append(_estimate(on, "test", test_labels, out["test"], best,  # type: ignore[arg-type]
                                       best.predictions["test"]))  # fmt: skip
        else:
            notes.append("the test split has no labels here: no test estimate")
    if not estimates:
        notes.append("no split gives an honest estimate of this ensemble")
    return EnsembleResult(kind=kind, members=list(members), mode=mode, weights=weights, search=search, nested=nested,
                          predictions=out, member_scores=scores, estimates=estimates, notes=notes)  # fmt: skip


def _total(stats: Sequence[FusionStats]) -> FusionStats:
    total = stats[0]
    for st in stats[1:]:
        total = total + st
    return total


def _frames_apart(grid: list[list[Member]], val: list[dict[str, np.ndarray]], f: int) -> list[FusionStats]:
    """The statistics fold f's weights may be searched on: the other folds' validation frames of videos fold f does
    not hold out (fold 0's official validation videos are also some cross-validation fold's: never the same video).

    Raises:
        EnsembleError: no other fold holds a video fold f does not.
    """
    out = []
    for g, row in enumerate(grid):
        apart = [v for v in sorted(val[g]) if v not in val[f]] if g != f else []
        if apart:
            out.append(fusion_stats_videos(val[g], [m.predictions["validation"] for m in row], apart))
    if not out:
        raise EnsembleError(f"fold {grid[f][0].fold}: every other fold holds out only its videos; no frame is left "
                            "to search its weights on")  # fmt: skip
    return out


def _build_grid(grid: list[list[Member]], labels: Mapping[str, Mapping[str, np.ndarray]], kind: str, mode: str,
                per_dimension: bool, step: float) -> EnsembleResult:  # fmt: skip
    """Several models, each on the same folds: weights over the models, chosen on the folds' held-out videos.

    Each fold's validation videos are predicted by that fold's runs of every model (held out from all of them). With
    `search`, the weights the test split gets are searched on every fold's validation frames together; the estimate
    is nested over folds: fold f's frames get weights searched on the other folds' frames of videos it does not hold
    out (`_frames_apart`: fold 0's official validation videos are also some cross-validation fold's). The estimate
    is the mean over folds of the ensemble's score, against the best model's (by its mean validation score), as
    Table I averages folds. The test split: each model's folds averaged (its fold ensemble), then the models fused
    with the weights.
    """
    members = [m for row in grid for m in row]
    for m in members:
        if "validation" not in m.predictions:
            raise EnsembleError(f"{m.path}: has no validation predictions; an ensemble over folds is chosen on them")
    cols = len(grid[0])
    names = [f"{grid[0][c].model}" + (f" seed{grid[0][c].seed}" if grid[0][c].seed else "") for c in range(cols)]
    val = [_labels_of(labels, "validation", row[0].predictions["validation"]) for row in grid]
    stats = [fusion_stats_videos(val[f], [m.predictions["validation"] for m in row]) for f, row in enumerate(grid)]
    search, nested = None, []
    weights = equal_weights(cols)
    per_fold = [weights] * len(grid)
    if mode == "search":
        search = search_weights(_total(stats), step, per_dimension)
        weights = search.weights
        for f in range(len(grid)):
            found = search_weights(_total(_frames_apart(grid, val, f)), step, per_dimension)
            per_fold[f] = found.weights
            nested.append((sorted(val[f]), found))
    scores: dict[str, dict[str, tuple[float, float, float]]] = {str(m.path): {} for m in members}
    test_labels = labels.get("test", {})
    for f, row in enumerate(grid):
        for m in row:
            scores[str(m.path)]["validation"] = _score(val[f], m.predictions["validation"])
            test = m.predictions.get("test", {})
            if test and set(test) <= set(test_labels) and _labelled({v: test_labels[v] for v in test}):
                scores[str(m.path)]["test"] = _score({v: test_labels[v] for v in test}, test)
    mean_val = [float(np.mean([scores[str(row[c].path)]["validation"][2] for row in grid])) for c in range(cols)]
    best = int(np.argmax(mean_val))
    ens_stats, best_stats = [], []
    for f, row in enumerate(grid):
        oof = combine_videos([m.predictions["validation"] for m in row], per_fold[f])
        ens_stats.append(cluster_stats(val[f], oof))
        best_stats.append(cluster_stats(val[f], row[best].predictions["validation"]))
    ci, best_ci = bootstrap_ci(ens_stats), bootstrap_ci(best_stats)
    how = ("weights searched on the other folds' frames of other videos" if mode == "search"
           else "equal weights: nothing chosen on it")  # fmt: skip
    estimates = [Estimate(
        on=f"validation: each of the {len(grid)} folds' held-out videos ({how}), mean over folds",
        split="validation", score=(ci.ccc_v.estimate, ci.ccc_a.estimate, ci.p_va.estimate), ci=ci,
        best_member=f"{names[best]} (mean over folds)",
        best_score=(best_ci.ccc_v.estimate, best_ci.ccc_a.estimate, best_ci.p_va.estimate),
        paired=paired_bootstrap(ens_stats, best_stats), videos=sum(x.videos for x in ens_stats),
        frames=sum(x.frames for x in ens_stats))]  # fmt: skip
    notes = ["the folds' validation predictions overlap (fold 0's official validation videos are also some "
             "cross-validation fold's): validation.npz is not written; the estimate is per fold"]  # fmt: skip
    out: dict[str, dict[str, np.ndarray]] = {}
    if all("test" in m.predictions for m in members):
        fold_means = [combine_videos([row[c].predictions["test"] for row in grid], equal_weights(len(grid)))
                      for c in range(cols)]  # fmt: skip
        out["test"] = combine_videos(fold_means, weights)
        if _labelled(test_labels) and set(test_labels) == set(out["test"]):
            a, b = cluster_stats(test_labels, out["test"]), cluster_stats(test_labels, fold_means[best])
            estimates.append(Estimate(
                on="test (each model's folds averaged, then " + ("fused with weights chosen on validation)"
                                                                 if mode == "search" else "averaged)"),
                split="test", score=a.estimate, ci=bootstrap_ci(a), best_member=f"{names[best]} (its folds averaged)",
                best_score=b.estimate, paired=paired_bootstrap(a, b), videos=a.videos, frames=a.frames))  # fmt: skip
        else:
            notes.append("the test split has no labels here: no test estimate")
    else:
        notes.append("not every run holds test predictions (`--predict` makes them): no test split")
    return EnsembleResult(kind=kind, members=members, mode=mode, weights=weights, search=search, nested=nested,
                          predictions=out, member_scores=scores, estimates=estimates, notes=notes,
                          weight_rows=[c for _row in grid for c in range(cols)])  # fmt: skip


# -- files -----------------------------------------------------------------------------------------------------------
def split_labels(layout: Any, preds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The labels of the predicted videos, at the predictions' frame counts (-5 for a video without a label file)."""
    return {v: load_labels(layout.entry(v).annotation, p.shape[0]).astype(np.float64) for v, p in preds.items()}


def write_ensemble(out: str | Path, result: EnsembleResult, sample: Path | None = None, force: bool = False,
                   warn: Callable[[str], None] | None = None) -> RunDir:  # fmt: skip
    """Write the ensemble folder (claimed in its ownership record; every file atomic).

    Args:
        out: the folder (new, empty, or an earlier ensemble folder).
        result: the ensemble.
        sample: the organisers' sample file: writes the test split's submission file.
        force: write into a non-empty folder the harness did not write, beside what it holds.
        warn: called with the line naming what `force` leaves untouched.

    Returns:
        The folder, as a `RunDir` (its file names).
    """
    owned = claim_folder(out, ENSEMBLE_LAYOUT, what="ensemble folder", force=force, warn=warn)
    ens = RunDir(out)
    # An earlier ensemble's files (recorded, so the harness's own); the record goes first and comes back last, so a
    # write cut short leaves a folder without one, which nothing reads as an ensemble.
    owned.remove(SUMMARY_FILE, PREDICTIONS_DIR)
    ens.predictions.mkdir()
    for split, preds in result.predictions.items():
        save_predictions(ens.split_predictions(split), preds)
    record = result.record()
    if sample is not None and "test" in result.predictions:
        log: list[str] = []
        write_submission(ens.submission_file, result.predictions["test"], sample, pad=True, log=log)
        record["notes"] = [*record["notes"], *log]
    atomic_write_text(ens.git_file, git_hash() + "\n")
    ens.write_json(SUMMARY_FILE, record)
    owned.note(*ENSEMBLE_LAYOUT)
    return ens


def make_ensemble(runs: Sequence[str | Path], data: str | Path, out: str | Path, *, cache: str | Path | None = None,
                  mode: str = "mean", per_dimension: bool = False, step: float = STEP, predict: bool = False,
                  force: bool = False,
                  warn: Callable[[str], None] | None = None) -> tuple[EnsembleResult, RunDir]:  # fmt: skip
    """`harness ensemble`: load the runs, check them, predict what they lack (with `predict`), build, write.

    Args:
        runs: the members' run folders.
        data: the dataset root (its annotation files are the labels; its sample file makes the submission).
        out: the ensemble folder.
        cache: the feature cache (default `DATA/features`), read only with `predict`.
        mode: `mean` or `search`.
        per_dimension: search valence and arousal separately.
        step: the simplex grid's step.
        predict: predict the test list with members that hold no test predictions.
        force: see `write_ensemble`.
        warn: see `write_ensemble`.
    """
    members = [load_member(r) for r in runs]
    layout, features = open_dataset(data, cache)
    if predict:
        test = [e.name for e in layout.test]
        for m in members:
            if "test" not in m.predictions:
                if not test:
                    raise EnsembleError(f"{data}: the test split has no videos to predict")
                m.predictions["test"] = predict_videos(m.path, features, test)
    labels: dict[str, dict[str, np.ndarray]] = {}
    for split in ("validation", "test"):
        for m in members:  # every member's videos (a fold ensemble's members hold out different ones)
            todo = {v: p for v, p in m.predictions.get(split, {}).items() if v not in labels.get(split, {})}
            labels.setdefault(split, {}).update(split_labels(layout, todo))
    check_compatible(members, labels)
    try:
        result = build_ensemble(members, labels, mode, per_dimension, step)
    except MetricError as exc:
        raise EnsembleError(str(exc)) from None
    return result, write_ensemble(out, result, layout.sample_file, force=force, warn=warn)
