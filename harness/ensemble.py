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
from core.errors import HarnessError, printable
from core.ownership import claim_folder
from core.safe_read import read_json, read_text, type_name
from harness.config import Config, config_hash, load_config
from harness.data import load_labels, open_dataset
from harness.predict import load_predictions, predict_videos, save_predictions
from harness.runs import (
    FINAL_EVENT,
    GIT_FILE,
    PREDICTIONS_DIR,
    SUMMARY_FILE,
    RunDir,
    git_hash,
)
from submissions import MetricError
from submissions.bootstrap import BootstrapCI, Interval, bootstrap_ci, cluster_stats, paired_bootstrap
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
from submissions.metrics import annotated_mask, score_va

ENSEMBLE_KIND = "ensemble"
"""The `kind` of an ensemble folder's summary.json (a run's final record has none)."""
ENSEMBLE_LAYOUT = (PREDICTIONS_DIR, SUMMARY_FILE, GIT_FILE)
"""What an ensemble folder holds (the names are `harness.runs`'s; claimed in its ownership record)."""
WEIGHT_MODES = ("mean", "search")
FRAME_SETTINGS = ("preprocess", "stage1.reserve", "experiment.k", "experiment.fold_seed")
"""Config keys members must share: how frames and features were extracted, and how the folds were drawn."""
SCORE_TOLERANCE = 1e-4
"""How far a member's recorded validation P_VA may be from its saved predictions' score on the given labels (the
predictions are saved as float32)."""
GIT_BYTES = 4096
"""The most a git.txt may hold (a hash and `-dirty`)."""
FOLD_ENSEMBLE, MODEL_ENSEMBLE, LATE_FUSION = "fold ensemble", "model ensemble", "late fusion"


class EnsembleError(HarnessError):
    """Runs that cannot be ensembled (naming the first difference), or an ensemble folder that cannot be written."""


@dataclass
class Member:
    """One finished run, as an ensemble reads it.

    Args:
        path: the run folder.
        model: its temporal model.
        fold: its fold index.
        seed: its stage-2 seed.
        identity: the fold's videos (`Fold.identity`, from run.json; empty for the challenge baseline's run).
        config_hash: the run's hash (run.json).
        git_hash: the code that ran (git.txt).
        settings: the `FRAME_SETTINGS` values.
        recorded_val: the validation score in its final record.
        predictions: split -> video -> (N, 2).
        variant: the config's hash without the fold (`config_hash(cfg)`): the same in every fold of one model.
    """

    path: Path
    model: str
    fold: int
    seed: int
    identity: dict[str, Any]
    config_hash: str
    git_hash: str
    settings: dict[str, Any]
    recorded_val: dict[str, float] | None
    predictions: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    variant: str = ""

    @property
    def name(self) -> str:
        """How tables name it: `<model> fold<k>` (and the seed when not 0)."""
        return f"{self.model} fold{self.fold}" + (f" seed{self.seed}" if self.seed else "")

    def record(self) -> dict[str, Any]:
        """What the ensemble's record keeps of it."""
        return {"run": str(self.path), "name": self.name, "model": self.model, "fold": self.fold, "seed": self.seed,
                "config_hash": self.config_hash, "git_hash": self.git_hash}  # fmt: skip


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


# -- members --------------------------------------------------------------------------------------------------------
def _dotted(data: Mapping[str, Any], key: str) -> Any:
    value: Any = data
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def frame_settings(cfg: Config) -> dict[str, Any]:
    """The `FRAME_SETTINGS` of a config, by dotted key."""
    data = cfg.to_dict()
    return {k: _dotted(data, k) for k in FRAME_SETTINGS}


def load_member(path: str | Path) -> Member:
    """Read a finished stage-2 run folder: its record, config, hashes and saved predictions.

    Raises:
        EnsembleError: not a folder, an ensemble folder, or a run without a final record, config or run.json.
    """
    run = RunDir(path)
    if not run.path.is_dir():
        raise EnsembleError(f"{run.path}: no such run folder")
    if not run.summary_file.is_file():
        raise EnsembleError(f"{run.path}: not a finished run folder ({run.summary_file.name} is missing)")
    summary = read_json(run.summary_file, "run summary")
    if summary.get("kind") == ENSEMBLE_KIND:
        raise EnsembleError(f"{run.path}: an ensemble folder; give the runs it was made of")
    if summary.get("event") != FINAL_EVENT:
        raise EnsembleError(f"{run.summary_file}: not a run's final record")
    for f in (run.config_file, run.run_file):
        if not f.is_file():
            raise EnsembleError(f"{run.path}: not a finished run folder ({f.name} is missing)")
    cfg = load_config(run.config_file)
    info = read_json(run.run_file, "run record")
    identity = info.get("extra") if isinstance(info.get("extra"), dict) else {}
    git = read_text(run.git_file, "git hash file", GIT_BYTES).strip() if run.git_file.is_file() else "unknown"
    val = summary.get("val") if isinstance(summary.get("val"), dict) else None
    preds = {}
    for split in ("validation", "test"):
        f = run.split_predictions(split)
        if f.is_file():
            preds[split] = load_predictions(f)
    fold = summary.get("fold")
    if type(fold) is not int:
        raise EnsembleError(f"{run.summary_file}: damaged: fold is {type_name(fold)}, not an integer")
    model = summary.get("model")  # the baseline's record names it; its config keeps the temporal model's name
    return Member(path=run.path, model=model if isinstance(model, str) else cfg.model.name, fold=fold,
                  seed=cfg.seed, identity=identity, config_hash=str(info.get("config_hash", "")), git_hash=git,
                  settings=frame_settings(cfg), recorded_val=val, predictions=preds,
                  variant=config_hash(cfg))  # fmt: skip


def _identity_key(m: Member) -> str:
    """The member's fold, by its index: runs of one experiment's fold hold out the same videos (a difference is named
    by `check_compatible`), and runs of other fold draws differ in their `FRAME_SETTINGS`. (The challenge baseline's
    run.json records no fold identity, so run.json cannot say it.)"""
    return str(m.fold)


def ensemble_kind(members: Sequence[Member], mode: str) -> str:
    """`FOLD_ENSEMBLE` when the members are one run per fold, else `MODEL_ENSEMBLE` (mean) or `LATE_FUSION` (one fold's
    runs, or several models each on the same folds).

    Raises:
        EnsembleError: fewer than 2 members, a run given twice, or members of several folds where a fold lacks one
            of the models (`fold_grid`).
    """
    if len(members) < 2:
        raise EnsembleError("an ensemble needs at least 2 runs")
    seen: dict[Path, int] = {}
    for i, m in enumerate(members):
        key = m.path.resolve()
        if key in seen:
            raise EnsembleError(f"{m.path}: given twice (runs {seen[key] + 1} and {i + 1})")
        seen[key] = i
    folds: dict[str, list[Member]] = {}
    for m in members:
        folds.setdefault(_identity_key(m), []).append(m)
    if len(folds) == 1:
        return LATE_FUSION if mode == "search" else MODEL_ENSEMBLE
    if all(len(g) == 1 for g in folds.values()):
        return FOLD_ENSEMBLE
    fold_grid(members)  # every fold must hold the same models
    return LATE_FUSION if mode == "search" else MODEL_ENSEMBLE


def fold_grid(members: Sequence[Member]) -> list[list[Member]]:
    """The members as folds x models: `grid[f][c]` is model c's run of fold f (folds by index, models in the order
    first given; a model is its config without the fold, `Member.variant`).

    Raises:
        EnsembleError: a fold without one of the models, or with a model twice (naming the fold and the run).
    """
    variants = list(dict.fromkeys(m.variant for m in members))
    by_fold: dict[int, dict[str, Member]] = {}
    for m in members:
        row = by_fold.setdefault(m.fold, {})
        if m.variant in row:
            raise EnsembleError(f"{row[m.variant].path} and {m.path} are the same model on fold {m.fold}")
        row[m.variant] = m
    for fold, row in sorted(by_fold.items()):
        missing = [v for v in variants if v not in row]
        if missing:
            example = next(m for m in members if m.variant == missing[0])
            raise EnsembleError(f"fold {fold} has no run of the model of {example.path}: an ensemble over folds "
                                "needs every model on every fold")  # fmt: skip
    return [[by_fold[f][v] for v in variants] for f in sorted(by_fold)]


def check_compatible(members: Sequence[Member], labels: Mapping[str, Mapping[str, np.ndarray]] | None = None) -> None:
    """Refuse members whose frames are not comparable, naming the first difference.

    Checked in order against the first member: the `FRAME_SETTINGS`; for each split both hold, the videos and each
    video's frame count; then (with `labels`) that each member's saved validation predictions score, on these labels,
    what its final record says (else it was scored on other label files).

    Args:
        members: the runs, in the order given.
        labels: split -> video -> (N, 2) labels the ensemble will be scored on (None: not checked).

    Raises:
        EnsembleError: naming both runs (or the run and the labels) and what differs.
    """
    first = members[0]
    fold_first = {m.fold: m for m in reversed(members)}  # each fold's first run: its validation videos
    for m in members[1:]:
        for key in FRAME_SETTINGS:
            if m.settings.get(key) != first.settings.get(key):
                raise EnsembleError(f"{first.path} and {m.path} differ in their feature settings: {key} is "
                                    f"{first.settings.get(key)!r} and {m.settings.get(key)!r}")  # fmt: skip
        for split in ("validation", "test"):
            ref = fold_first[m.fold] if split == "validation" else first  # folds hold out different videos
            a, b = ref.predictions.get(split), m.predictions.get(split)
            if a is None or b is None or ref is m:
                continue
            for v in sorted(set(a) | set(b)):
                if v not in b or v not in a:
                    has, lacks = (ref, m) if v in a else (m, ref)
                    raise EnsembleError(f"{lacks.path} and {has.path} predict different {split} videos: "
                                        f"{printable(v)!r} is predicted by {has.path} only")  # fmt: skip
                if a[v].shape[0] != b[v].shape[0]:
                    raise EnsembleError(f"{ref.path} and {m.path} differ in the frame count of {split} video "
                                        f"{printable(v)!r}: {a[v].shape[0]} and {b[v].shape[0]}")  # fmt: skip
    if labels is None:
        return
    for m in members:
        preds, rec = m.predictions.get("validation"), m.recorded_val
        if preds is None or not rec or not isinstance(rec.get("p_va"), int | float):
            continue
        lab = labels.get("validation", {})
        missing = sorted(set(preds) - set(lab))
        if missing:
            raise EnsembleError(f"{m.path}: validation video {printable(missing[0])!r} has no labels in the data given")
        for v in sorted(preds):
            if lab[v].shape[0] != preds[v].shape[0]:
                raise EnsembleError(f"{m.path}: validation video {printable(v)!r} has {preds[v].shape[0]} predicted "
                                    f"frames and {lab[v].shape[0]} labelled ones")  # fmt: skip
        got = _score({v: lab[v] for v in preds}, preds)[2]
        if not math.isclose(got, float(rec["p_va"]), abs_tol=SCORE_TOLERANCE):
            recorded = float(rec["p_va"])
            raise EnsembleError(f"{m.path}: its validation predictions score P_VA {got:.4f} on the labels given, its "
                                f"run recorded {recorded:.4f}: it was scored on other label files")  # fmt: skip


# -- building --------------------------------------------------------------------------------------------------------
def _score(labels: Mapping[str, np.ndarray], preds: Mapping[str, np.ndarray]) -> tuple[float, float, float]:
    videos = sorted(labels)
    s = score_va(np.concatenate([labels[v] for v in videos]), np.concatenate([preds[v] for v in videos]))
    return s.ccc_v, s.ccc_a, s.p_va


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
