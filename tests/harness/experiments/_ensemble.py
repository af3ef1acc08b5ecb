"""Tiny finished run folders for the ensemble tests: no training, predictions drawn around the corpus's labels.

Each run folder holds what `harness.ensemble.load_member` reads (config.yaml, run.json, git.txt, summary.json with the
validation and test scores of its saved predictions, predictions/validation.npz, test.npz and the test split's
submission file), written through the harness's own writers (`RunDir`, `save_predictions`, `write_submission`), so
the ensemble reads it as it reads a trained run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from harness.config import config_hash, load_config
from harness.data import load_labels
from harness.folders.run import FINAL_EVENT, SUMMARY_FILE, RunDir
from harness.stages.predict import save_predictions
from submissions.formats import read_annotation, write_submission
from submissions.metrics import score_va

QUICK = Path(__file__).resolve().parents[3] / "harness" / "configs" / "quick.yaml"


def layout_labels(layout, videos) -> dict[str, np.ndarray]:
    """video -> (N, 2) labels as the ensemble reads them (float64)."""
    return {v: load_labels(layout.entry(v).annotation, None).astype(np.float64) for v in videos}


def noisy(labels: Mapping[str, np.ndarray], noise: float, seed: int) -> dict[str, np.ndarray]:
    """Predictions around the labels: the labels' annotated values plus Gaussian noise, clipped; float32 as saved."""
    rng = np.random.default_rng(seed)
    out = {}
    for v in sorted(labels):
        lab = np.where(labels[v] == -5.0, 0.0, labels[v])
        out[v] = np.clip(lab + rng.normal(0.0, noise, lab.shape), -1, 1).astype(np.float32).astype(np.float64)
    return out


def _score(labels: Mapping[str, np.ndarray], preds: Mapping[str, np.ndarray]) -> dict[str, float]:
    videos = sorted(preds)  # (a video cut short is scored on its first frames)
    s = score_va(np.concatenate([labels[v][: len(preds[v])] for v in videos]),
                 np.concatenate([preds[v] for v in videos]))  # fmt: skip
    return {"ccc_v": s.ccc_v, "ccc_a": s.ccc_a, "p_va": s.p_va, "frames": float(s.frames)}


def make_run(folder: Path, layout, *, model: str = "bdca", fold: int = 0, val: list[str] | None = None,
             noise: float = 0.3, seed: int = 0, test: bool = True, changes: Mapping[str, object] | None = None,
             preds: Mapping[str, Mapping[str, np.ndarray]] | None = None) -> RunDir:  # fmt: skip
    """A finished stage-2 run folder of the quick config.

    Args:
        folder: the run folder.
        layout: the corpus (`tests.harness._corpus.make_corpus`).
        model: its `model.name`.
        fold: its fold index (run.json's identity and the final record).
        val: its validation videos (default: the layout's validation split).
        noise: the predictions' noise.
        seed: the predictions' draws.
        test: also predict the test split.
        changes: more config changes (dotted keys).
        preds: split -> video -> predictions to save instead of drawn ones.
    """
    cfg = load_config(QUICK).replace(**{"model.name": model, **(changes or {})})
    val = val if val is not None else [e.name for e in layout.validation]
    tests = [e.name for e in layout.test] if test else []
    identity = {"fold": fold, "train": [], "val": sorted(val), "test": tests}
    run = RunDir(folder)
    run.claim()
    run.prepare(cfg, resume=False, extra=identity)
    chosen = dict(preds or {})
    record = {"event": FINAL_EVENT, "config_hash": config_hash(cfg, identity), "fold": fold, "model": model,
              "best_epoch": 1, "test": None}  # fmt: skip
    for split, videos in (("validation", val), ("test", tests)):
        if not videos:
            continue
        labels = layout_labels(layout, videos)
        p = chosen.get(split) or noisy(labels, noise, seed + (0 if split == "validation" else 1000))
        save_predictions(run.split_predictions(split), p)
        if split == "test" and layout.sample_file is not None:
            write_submission(run.submission_file, p, layout.sample_file, pad=True)
        record["val" if split == "validation" else "test"] = _score(labels, p)
    run.write_metrics([record])
    run.write_json(SUMMARY_FILE, record)
    return run


def shuffled_annotation(path: Path, seed: int) -> np.ndarray:
    """An annotation file's rows in another order (the leak detector's labels)."""
    rows = read_annotation(path)
    return rows[np.random.default_rng(seed).permutation(rows.shape[0])]


def summary(folder: Path) -> dict:
    return json.loads(RunDir(folder).summary_file.read_text(encoding="utf-8"))
