"""The members of an ensemble: finished run folders read through `RunDir`, and the checks that they can be combined
(the same videos and frame counts, the same label files, the same frame and fold settings; the first difference is
named). `harness.experiments.ensemble` builds and writes the ensemble (its docstring tells the three shapes)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import HarnessError, printable
from core.safe_read import read_json, read_text, type_name
from harness.config import Config, config_hash, load_config
from harness.folders.run import (
    FINAL_EVENT,
    GIT_FILE,
    PREDICTIONS_DIR,
    SUMMARY_FILE,
    RunDir,
)
from harness.stages.predict import load_predictions
from submissions.metrics import score_va

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


def _score(labels: Mapping[str, np.ndarray], preds: Mapping[str, np.ndarray]) -> tuple[float, float, float]:
    videos = sorted(labels)
    s = score_va(np.concatenate([labels[v] for v in videos]), np.concatenate([preds[v] for v in videos]))
    return s.ccc_v, s.ccc_a, s.p_va


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
