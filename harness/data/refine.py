"""Label refinement: training targets for frames whose valence/arousal is missing but whose expression is known.

The paper (IV.A) discards frames with invalid annotations (-5) and, "to address missing labels", applies "a
refinement approach inspired by Wang [29], using the correlation between discrete and continuous labels to maintain
temporal continuity" ([29]: Wang, Zheng and Liu, "Improvement of continuous emotion recognition of temporal
convolutional networks with incomplete labels", IET Image Processing 18, 2024). Neither gives a formula; what
follows is our reading, and every constant of it is ours:

1. The correlation between discrete and continuous labels: each expression class's mean valence and arousal over
   the training frames that carry both labels (`class_va_means`). Only the fold's training videos are read.
2. Temporal continuity: for a frame whose V/A is -5 and whose expression class c is known, the annotated V/A on
   either side is interpolated linearly to the frame (or the one side's value near a video's end), and the target is
   `w * neighbours + (1 - w) * mean_c`, with `w = exp(-d / tau)` and d the distance in frames to the nearest
   annotated frame: next to annotated frames the target continues the curve, deep inside a gap it is the class's
   mean. Valence and arousal are refined one column at a time (a frame may miss only one of them).
3. Frames with neither label stay -5 (masked in the loss); annotated values are never changed; targets are clipped
   to [-1, 1]. Refined labels are training targets only: stage 2 validates, selects and scores on the files' labels.

Pure numpy, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from submissions.formats import EXPR_CLASSES
from submissions.metrics import UNANNOTATED


def class_va_means(pairs: Iterable[tuple[np.ndarray, np.ndarray]], n_classes: int = len(EXPR_CLASSES)) -> np.ndarray:
    """Mean valence and arousal of each expression class over frames annotated with both.

    Args:
        pairs: (labels (N, 2), classes (N,)) per video.
        n_classes: number of expression classes.

    Returns:
        (n_classes, 2) float64; NaN for a column of a class never seen with that column annotated.
    """
    sums = np.zeros((n_classes, 2))
    counts = np.zeros((n_classes, 2))
    for labels, classes in pairs:
        labels = np.asarray(labels, dtype=np.float64)
        classes = np.asarray(classes)
        if labels.shape[0] != classes.shape[0]:
            raise ValueError(f"labels ({labels.shape[0]} frames) and classes ({classes.shape[0]}) differ in length")
        known_c = (classes >= 0) & (classes < n_classes)
        for col in range(2):
            ok = known_c & (labels[:, col] != UNANNOTATED)
            np.add.at(sums[:, col], classes[ok], labels[ok, col])
            np.add.at(counts[:, col], classes[ok], 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1.0), np.nan)


def _neighbour_values(values: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the annotated values interpolated from both sides (one side at the ends) and the distance in frames
    to the nearest annotated frame (inf without any)."""
    n = values.shape[0]
    idx = np.arange(n)
    if not known.any():
        return np.zeros(n), np.full(n, np.inf)
    prev = np.maximum.accumulate(np.where(known, idx, -1))  # last annotated frame at or before i (-1: none)
    nxt = np.minimum.accumulate(np.where(known, idx, n)[::-1])[::-1]  # first at or after i (n: none)
    has_p, has_n = prev >= 0, nxt < n
    vp = values[np.clip(prev, 0, n - 1)]
    vn = values[np.clip(nxt, 0, n - 1)]
    span = np.where(has_p & has_n, nxt - prev, 1)
    t = np.where(has_p & has_n, (idx - prev) / np.maximum(span, 1), 0.0)
    both = vp + t * (vn - vp)
    nb = np.where(has_p & has_n, both, np.where(has_p, vp, vn))
    dist = np.minimum(np.where(has_p, idx - prev, np.inf), np.where(has_n, nxt - idx, np.inf))
    return nb, dist


def refine_labels(labels: np.ndarray, classes: np.ndarray | None, means: np.ndarray, tau: float) -> np.ndarray:
    """Targets for frames without V/A but with an expression class (see the module docstring).

    Args:
        labels: (N, 2) valence and arousal, -5 where unannotated.
        classes: (N,) expression class per frame, -1 where unannotated; None: the video has no expression labels.
        means: (n_classes, 2) class means from `class_va_means` (NaN: unknown).
        tau: frames over which the neighbours' weight falls by a factor e.

    Returns:
        A new (N, 2) array of the labels' dtype: annotated values as they were, refined targets in [-1, 1], -5 where
        neither label is known.
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    labels = np.asarray(labels)
    out = labels.copy()
    if classes is None:
        return out
    classes = np.asarray(classes)
    if classes.shape != (labels.shape[0],):
        raise ValueError(f"classes must have shape ({labels.shape[0]},), got {classes.shape}")
    means = np.asarray(means, dtype=np.float64)
    valid_c = (classes >= 0) & (classes < means.shape[0])
    safe_c = np.where(valid_c, classes, 0)
    for col in range(2):
        values = labels[:, col].astype(np.float64)
        known = values != UNANNOTATED
        prior = means[safe_c, col]
        todo = ~known & valid_c & np.isfinite(prior)
        if not todo.any():
            continue
        nb, dist = _neighbour_values(values, known)
        w = np.exp(-dist / tau)  # 0 where no annotated frame exists at all
        target = np.clip(w * nb + (1.0 - w) * prior, -1.0, 1.0)
        out[todo, col] = target[todo]
    return out


def refined_frames(before: np.ndarray, after: np.ndarray) -> int:
    """How many label values refinement filled in (were -5, are not)."""
    return int(((np.asarray(before) == UNANNOTATED) & (np.asarray(after) != UNANNOTATED)).sum())
