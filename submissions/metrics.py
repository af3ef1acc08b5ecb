"""Concordance correlation coefficient and the ABAW valence-arousal score, exactly as the challenge computes them.

CCC follows Lin (1989) and eq. 8 of the BDCA paper with population (ddof=0) moments:

    ccc = 2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))^2)

which equals 2 s_x s_y rho / (s_x^2 + s_y^2 + (mean_x - mean_y)^2). The challenge score is
P_VA = (CCC_V + CCC_A) / 2 (eq. 7), computed once over all frames of all videos concatenated, after dropping every
frame whose label holds -5 in either column.

Edge cases, by definition here:
- length mismatch, NaN or inf anywhere, fewer than 2 frames: MetricError (there is no score to report);
- both series constant: the denominator is var_x + var_y + (mean_x - mean_y)^2; when that is 0 (both constant and
  equal) CCC is NaN, documented and returned (agreement is undefined, not perfect); when only the denominator's mean
  term is non-zero, CCC is 0 (cov is 0).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from submissions.errors import MetricError

UNANNOTATED = -5.0
"""The value Aff-Wild2 writes for a frame without a valence/arousal label."""


def _as_1d(name: str, x: np.ndarray | list[float]) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise MetricError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def ccc(truth: np.ndarray | list[float], pred: np.ndarray | list[float]) -> float:
    """Concordance correlation coefficient of two series (Lin 1989, population moments).

    Args:
        truth: ground-truth values, shape (N,).
        pred: predicted values, shape (N,).

    Returns:
        CCC in [-1, 1]; NaN when both series are constant and equal (see module docstring).

    Raises:
        MetricError: on a length mismatch, NaN/inf values, or fewer than 2 frames.

    Examples:
        Agreement is 1, mirror agreement -1, and a shift costs what it adds to the denominator:

        >>> ccc([1, 2, 3], [1, 2, 3]), ccc([1, 2, 3], [3, 2, 1])
        (1.0, -1.0)
        >>> ccc([1, 2, 3, 4], [1, 3, 2, 4])
        0.8
        >>> round(ccc([1, 2, 3], [2, 3, 4]), 4)  # correlation 1, means 1 apart: 2 (2/3) / (2/3 + 2/3 + 1) = 4/7
        0.5714

        Constant series: NaN when equal (undefined), 0 when their means differ:

        >>> ccc([0.5, 0.5], [0.5, 0.5]), ccc([0.0, 0.0], [1.0, 1.0])
        (nan, 0.0)
        >>> ccc([0.3], [0.3])
        Traceback (most recent call last):
            ...
        submissions.errors.MetricError: CCC needs at least 2 frames, got 1
    """
    x = _as_1d("truth", truth)
    y = _as_1d("pred", pred)
    if x.shape != y.shape:
        raise MetricError(f"length mismatch: truth has {x.shape[0]} frames, pred has {y.shape[0]}")
    if x.shape[0] < 2:
        raise MetricError(f"CCC needs at least 2 frames, got {x.shape[0]}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        bad = "truth" if not np.isfinite(x).all() else "pred"
        raise MetricError(f"{bad} holds NaN or inf values; CCC is undefined")
    mx, my = x.mean(), y.mean()
    dx, dy = x - mx, y - my
    vx, vy = np.dot(dx, dx) / x.size, np.dot(dy, dy) / y.size
    cov = np.dot(dx, dy) / x.size
    denom = vx + vy + (mx - my) ** 2
    if denom == 0.0:
        return float("nan")
    # Clip guards the last ulp of rounding; the true value is in [-1, 1] by Cauchy-Schwarz.
    return float(np.clip(2.0 * cov / denom, -1.0, 1.0))


def annotated_mask(labels: np.ndarray) -> np.ndarray:
    """Frames that carry a label: rows of an (N, 2) label array where neither value is -5.

    Examples:
        >>> annotated_mask(np.array([[0.1, 0.2], [-5.0, 0.3], [0.4, -5.0], [-5.0, -5.0]])).tolist()
        [True, False, False, False]
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[1] != 2:
        raise MetricError(f"labels must have shape (N, 2), got {labels.shape}")
    return ~(labels == UNANNOTATED).any(axis=1)


@dataclass(frozen=True)
class VAScore:
    """The challenge score of one partition.

    Args:
        ccc_v: CCC of valence.
        ccc_a: CCC of arousal.
        p_va: (ccc_v + ccc_a) / 2.
        frames: frames scored (after dropping -5).
        dropped: frames dropped because their label holds -5.
    """

    ccc_v: float
    ccc_a: float
    p_va: float
    frames: int
    dropped: int

    def as_dict(self) -> dict[str, float | int]:
        """The fields by name.

        Examples:
            >>> VAScore(ccc_v=0.5, ccc_a=0.25, p_va=0.375, frames=10, dropped=2).as_dict()
            {'ccc_v': 0.5, 'ccc_a': 0.25, 'p_va': 0.375, 'frames': 10, 'dropped': 2}
        """
        return asdict(self)


def score_va(labels: np.ndarray, preds: np.ndarray) -> VAScore:
    """P_VA over all frames at once (eq. 7), dropping frames labelled -5 in either column.

    Args:
        labels: ground truth, shape (N, 2), columns valence and arousal, -5 for unannotated.
        preds: predictions, shape (N, 2).

    Raises:
        MetricError: on shape mismatch, or when fewer than 2 annotated frames remain.

    Examples:
        The third frame has no label: its prediction is not scored, whatever it is.

        >>> labels = np.array([[0.1, 0.2], [0.5, -0.4], [-5.0, -5.0], [0.9, 0.8]])
        >>> preds = np.array([[0.1, 0.2], [0.5, -0.4], [0.7, -0.7], [0.9, 0.8]])
        >>> score_va(labels, preds)
        VAScore(ccc_v=1.0, ccc_a=1.0, p_va=1.0, frames=3, dropped=1)

        Valence mirrored about its mean (-1), arousal exact (1): P_VA is their mean.

        >>> labels = np.array([[-0.5, 0.1], [0.0, 0.2], [0.5, 0.3]])
        >>> preds = np.array([[0.5, 0.1], [0.0, 0.2], [-0.5, 0.3]])
        >>> score_va(labels, preds).p_va
        0.0
    """
    labels = np.asarray(labels, dtype=np.float64)
    preds = np.asarray(preds, dtype=np.float64)
    if labels.shape != preds.shape:
        raise MetricError(f"shape mismatch: labels {labels.shape}, predictions {preds.shape}")
    keep = annotated_mask(labels)
    t, p = labels[keep], preds[keep]
    cv, ca = ccc(t[:, 0], p[:, 0]), ccc(t[:, 1], p[:, 1])
    return VAScore(ccc_v=cv, ccc_a=ca, p_va=(cv + ca) / 2.0, frames=int(keep.sum()), dropped=int((~keep).sum()))
