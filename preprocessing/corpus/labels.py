"""Valence/arousal trajectories of the demo corpus: smooth, positively skewed, with occasional rapid shifts.

The paper (IV.A, Figs. 4 and 5) describes Aff-Wild2's annotations as continuous curves in [-1, 1] with rapid affect
shifts, whose histograms hold most of their mass at positive values ("positively skewed" in the paper's words:
the bulk sits right of zero and the tail runs towards -1, so the statistical skewness is negative). The
generator here reproduces those traits:

- a per-video baseline and piecewise levels drawn from 2 * Beta(a, b) - 1 with a > b (bulk positive, left tail);
- transitions between levels as smooth ramps of 0.5-2 s, a fraction of them rapid (0.12-0.3 s);
- a slow wander and a fast tremor of filtered Gaussian noise on top;
- a soft limit (0.98 tanh(x / 0.98)) that keeps every value strictly inside [-1, 1].

Annotation noise (what separates the label files from the clean latent the media are rendered from) and the
unannotated (-5) stretches are drawn here as well. Everything is a pure function of a numpy Generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

LIMIT = 0.98
"""Largest magnitude a clean trajectory reaches (soft-limited)."""


@dataclass(frozen=True)
class TrajectoryParams:
    """How one affect dimension moves.

    Args:
        beta_a: first shape of the Beta law of levels (a > b puts the bulk at positive values).
        beta_b: second shape of the Beta law of levels.
        baseline_weight: share of the per-video baseline in each segment's level.
        mean_segment_s: mean duration of a level (exponential law).
        min_segment_s: shortest level.
        rapid_share: probability that a transition is rapid.
        wander_sd: standard deviation of the slow wander.
        wander_s: time scale (Gaussian sigma) of the slow wander.
        tremor_sd: standard deviation of the fast tremor.
        tremor_s: time scale of the fast tremor.
    """

    beta_a: float
    beta_b: float
    baseline_weight: float = 0.3
    mean_segment_s: float = 3.5
    min_segment_s: float = 0.8
    rapid_share: float = 0.2
    wander_sd: float = 0.08
    wander_s: float = 0.8
    tremor_sd: float = 0.02
    tremor_s: float = 0.08


VALENCE = TrajectoryParams(beta_a=1.6, beta_b=1.0)
AROUSAL = TrajectoryParams(beta_a=1.9, beta_b=1.15, mean_segment_s=3.0, rapid_share=0.25)


def smooth_noise(rng: np.random.Generator, n: int, sigma_frames: float) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation, shape (n,).

    Args:
        rng: random source.
        n: number of samples.
        sigma_frames: Gaussian sigma in samples (the time scale of the noise).
    """
    if n <= 0:
        return np.zeros(0)
    pad = int(4 * sigma_frames) + 1
    white = rng.standard_normal(n + 2 * pad)
    x = gaussian_filter1d(white, max(sigma_frames, 1e-3), mode="nearest")[pad : pad + n]
    sd = x.std()
    return x / sd if sd > 0 else x


def _skewed_level(rng: np.random.Generator, p: TrajectoryParams, size: int | None = None) -> np.ndarray:
    return 2.0 * rng.beta(p.beta_a, p.beta_b, size=size) - 1.0


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def affect_trajectory(rng: np.random.Generator, n_frames: int, fps: float, params: TrajectoryParams) -> np.ndarray:
    """One clean affect curve, shape (n_frames,), values in (-1, 1).

    Args:
        rng: random source.
        n_frames: length in video frames.
        fps: frame rate (time constants are in seconds).
        params: how the curve moves.
    """
    t = np.arange(n_frames, dtype=np.float64)
    baseline = float(_skewed_level(rng, params))
    # Segment boundaries (in frames) and their levels.
    bounds: list[float] = []
    pos = 0.0
    while True:
        pos += max(params.min_segment_s, rng.exponential(params.mean_segment_s)) * fps
        if pos >= n_frames:
            break
        bounds.append(pos)
    raw = _skewed_level(rng, params, size=len(bounds) + 1)
    levels = params.baseline_weight * baseline + (1.0 - params.baseline_weight) * raw
    x = np.full(n_frames, levels[0])
    for k, b in enumerate(bounds):
        rapid = rng.random() < params.rapid_share
        dur = (rng.uniform(0.12, 0.3) if rapid else rng.uniform(0.5, 2.0)) * fps
        x += (levels[k + 1] - levels[k]) * _smoothstep((t - b) / dur + 0.5)
    x += params.wander_sd * smooth_noise(rng, n_frames, params.wander_s * fps)
    x += params.tremor_sd * smooth_noise(rng, n_frames, params.tremor_s * fps)
    return LIMIT * np.tanh(x / LIMIT)


def va_trajectories(rng: np.random.Generator, n_frames: int, fps: float) -> np.ndarray:
    """Clean valence and arousal, shape (n_frames, 2), columns valence, arousal."""
    v = affect_trajectory(rng, n_frames, fps, VALENCE)
    a = affect_trajectory(rng, n_frames, fps, AROUSAL)
    return np.stack([v, a], axis=1)


def annotate(rng: np.random.Generator, clean: np.ndarray, fps: float, noise_sd: float) -> np.ndarray:
    """The annotators' labels: clean curves plus smooth annotation noise (sigma 0.15 s), clipped to [-1, 1].

    Args:
        rng: random source.
        clean: (N, 2) clean valence and arousal.
        fps: frame rate.
        noise_sd: standard deviation of the noise, per dimension.

    Returns:
        (N, 2) labels, rounded to 3 decimals as annotation tools store them.
    """
    n = clean.shape[0]
    noise = np.stack([smooth_noise(rng, n, 0.15 * fps) for _ in range(2)], axis=1)  # (N, 2)
    return np.round(np.clip(clean + noise_sd * noise, -1.0, 1.0), 3)


def skewness(x: np.ndarray) -> float:
    """Fisher's sample skewness (population moments): negative when the tail runs left."""
    x = np.asarray(x, dtype=np.float64)
    d = x - x.mean()
    m2 = float(np.mean(d**2))
    return float(np.mean(d**3) / m2**1.5) if m2 > 0 else 0.0


def stretches_mask(n_frames: int, stretches: list[tuple[int, int]]) -> np.ndarray:
    """Boolean (n_frames,) mask that is True inside the half-open frame ranges [start, end)."""
    mask = np.zeros(n_frames, dtype=bool)
    for s, e in stretches:
        mask[max(0, s) : min(n_frames, e)] = True
    return mask


# ---------------------------------------------------------------------------------------------------------------
# Expression labels (the EXPR challenge's classes, drawn from the same affect as V/A)
# ---------------------------------------------------------------------------------------------------------------

EXPR_NEUTRAL_RADIUS = 0.3
"""Below this distance from (0, 0) in the valence-arousal plane a frame is Neutral."""

EXPR_SECTORS = ((-45.0, 45.0, 4), (45.0, 100.0, 6), (100.0, 135.0, 3), (135.0, 165.0, 1), (-150.0, -90.0, 5),
                (-90.0, -45.0, 7))  # fmt: skip
"""(from, to, class) sectors of the angle atan2(arousal, valence) in degrees; the rest (165..180, -180..-150) is
Disgust (2). Classes index `submissions.formats.EXPR_CLASSES`: Happiness right of the origin, Surprise above it,
Fear and Anger up-left, Disgust left, Sadness down-left, Other (calm, content) down-right, after the circumplex
placement of the basic emotions. Our choice for the corpus, not a published mapping."""


def expression_classes(clean: np.ndarray, fps: float) -> np.ndarray:
    """The expression class of every frame, (N,) int64, from the clean affect smoothed over 0.2 s (annotators label
    an expression as a whole, not frame by frame).

    Args:
        clean: (N, 2) clean valence and arousal.
        fps: frame rate.
    """
    smooth = gaussian_filter1d(np.asarray(clean, dtype=np.float64), 0.2 * fps, axis=0, mode="nearest")
    v, a = smooth[:, 0], smooth[:, 1]
    angle = np.degrees(np.arctan2(a, v))
    out = np.full(v.shape[0], 2, dtype=np.int64)  # Disgust, the sector left over
    for lo, hi, cls in EXPR_SECTORS:
        out[(angle >= lo) & (angle < hi)] = cls
    out[np.hypot(v, a) < EXPR_NEUTRAL_RADIUS] = 0
    return out


def expression_labels(rng: np.random.Generator, clean: np.ndarray, fps: float,
                      va_unannotated: list[tuple[int, int]], own_gap_share: float = 0.4) -> np.ndarray:  # fmt: skip
    """The expression annotation of one person: classes, -1 in its own gaps, which overlap the V/A gaps only in part.

    Inside each unannotated V/A stretch the expression is missing on one sub-stretch covering 30-60% of it (so the
    rest is what label refinement can use); with probability `own_gap_share` one more gap of 0.6-3 s (at most a
    fifth of the video) lies anywhere.

    Args:
        rng: random source (its own stream: drawing it changes nothing else of the corpus).
        clean: (N, 2) clean valence and arousal.
        fps: frame rate.
        va_unannotated: the V/A annotation's -5 stretches, (start, end) half-open.
        own_gap_share: probability of a gap of the expression annotation's own.

    Returns:
        (N,) int64 class indices, -1 where unannotated.
    """
    n = clean.shape[0]
    out = expression_classes(clean, fps)
    for s, e in va_unannotated:
        length = e - s
        if length <= 0:
            continue
        cut = max(1, round(rng.uniform(0.3, 0.6) * length))
        start = s + int(rng.integers(0, length - cut + 1))
        out[start : start + cut] = -1
    if n > 1 and rng.random() < own_gap_share:
        length = int(min(rng.uniform(0.6, 3.0) * fps, n / 5))
        if length >= 1:
            start = int(rng.integers(0, n - length + 1))
            out[start : start + length] = -1
    return out
