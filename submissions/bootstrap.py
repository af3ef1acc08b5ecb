"""Confidence intervals for the challenge score: a bootstrap over videos, and paired differences of two rows.

Frames of one video are strongly correlated (a face, a speaker, a scene, a slow affect trajectory), so resampling
frames would treat hundreds of near-copies as independent evidence and give intervals far too narrow. The unit of
resampling here is the video cluster: each resample draws the clusters of a partition with replacement (as many as
there are) and recomputes the challenge's own score on the frames of the drawn clusters, i.e. ONE global CCC over
all frames of all drawn videos (a cluster drawn twice counts its frames twice), with frames labelled -5 dropped,
exactly as `submissions.metrics.score_va` scores a partition.

Clusters: the two persons of a two-person video (`<video>_left`, `<video>_right`, separate entries of the file list)
form ONE cluster, because they share the raw video, its scene and its audio track (what the audio stream of both
predictions is computed from); their errors are not independent. Videos with no annotated frame carry no weight
in the score and are left out of the clusters.

Interval: the percentile interval (the 2.5% and 97.5% quantiles of the resampled scores for the 95% level,
linear interpolation), from `RESAMPLES` resamples drawn from a numpy Generator seeded with `SEED` unless a caller
says otherwise, so the same inputs give the same interval bit for bit. A partition with fewer than two clusters gets
no interval (NaN bounds and a `reason`): a bootstrap over one video says nothing about other videos.

Folds: a table row that is a mean over folds (Tables III and IV, Table I's mean) is bootstrapped per fold
(stratified: fold k's clusters are resampled among themselves, its draws seeded with (seed, k)), and each resample's
row value is the mean of the folds' resampled scores.

Paired differences: two rows scored on the same videos (same clusters in every fold) are resampled with the SAME
draws, and the interval is that of the per-resample difference (row a - row b). The verdict is "resolved" when the
interval excludes 0 and "not resolved" otherwise.

Speed: each cluster is reduced once to sufficient statistics (frame count and, per dimension, the sums of x, y,
x^2, y^2 and xy, taken about the partition's means so that the moments keep their precision); the (resamples,
clusters) matrix of draw counts times the (clusters, 11) statistics gives every resample's sums in one matmul.
1,000 resamples over 3 M frames in 500 videos take well under a second beyond the one pass over the frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.errors import shorten
from submissions.errors import MetricError
from submissions.metrics import annotated_mask, score_va

RESAMPLES = 1000
"""Bootstrap resamples by default."""

MAX_RESAMPLES = 20_000
"""Most bootstrap resamples (20 x the default: the draws are a (resamples, videos) int64 array, 80 MB for 500
videos; the interval's Monte-Carlo error at the default is already small)."""

SEED = 0
"""Seed of the resample draws by default: the same inputs give the same interval."""

LEVEL = 0.95
"""Coverage of the interval by default."""

METRICS = ("ccc_v", "ccc_a", "p_va")
"""The scores an interval is given for, in this order."""

PERSON_SUFFIXES = ("_left", "_right")


def cluster_of(video: str) -> str:
    """The cluster of a video name: the raw video (`<video>_left` / `<video>_right` -> `<video>`)."""
    for suffix in PERSON_SUFFIXES:
        if video.endswith(suffix):
            return video[: -len(suffix)]
    return video


@dataclass(frozen=True)
class ClusterStats:
    """One partition's score inputs reduced to per-cluster sufficient statistics.

    Args:
        names: cluster names, sorted (clusters with at least one annotated frame).
        sums: (clusters, 11): annotated frames n, then for valence and arousal the sums of x', y', x'^2, y'^2 and
            x'y', where x' = truth - shift and y' = prediction - shift of that dimension.
        shift: (2, 2): per dimension (valence, arousal) the (truth, prediction) means the sums are taken about.
        estimate: (ccc_v, ccc_a, p_va) of the whole partition, by `score_va` (the challenge's score).
        videos: videos in the partition (with or without annotated frames).
    """

    names: tuple[str, ...]
    sums: np.ndarray
    shift: np.ndarray
    estimate: tuple[float, float, float]
    videos: int

    @property
    def clusters(self) -> int:
        return len(self.names)

    @property
    def frames(self) -> int:
        return int(self.sums[:, 0].sum())


def cluster_stats(
    labels: Mapping[str, np.ndarray],
    preds: Mapping[str, np.ndarray],
    cluster: Callable[[str], str] = cluster_of,
) -> ClusterStats:
    """Reduce a partition (video -> (N, 2) labels and predictions) to per-cluster sufficient statistics.

    Args:
        labels: video -> (N, 2) ground truth, -5 where unannotated.
        preds: video -> (N, 2) predictions for every labelled video (extra predicted videos are ignored).
        cluster: video name -> cluster name (default: both persons of a raw video are one cluster).

    Returns:
        The statistics, with the partition's score (`estimate`) computed by `score_va`.

    Raises:
        MetricError: a labelled video without predictions or with another frame count, NaN/inf values, or fewer
            than 2 annotated frames in all (as `score_va`).
    """
    videos = sorted(labels)
    if not videos:
        raise MetricError("no videos to score")
    for v in videos:
        if v not in preds:
            raise MetricError(f"no predictions for labelled video {v!r}")
        if np.shape(preds[v]) != np.shape(labels[v]):
            raise MetricError(f"video {v!r}: predictions {np.shape(preds[v])}, labels {np.shape(labels[v])}")
    truth = np.concatenate([np.asarray(labels[v], dtype=np.float64).reshape(-1, 2) for v in videos])
    pred = np.concatenate([np.asarray(preds[v], dtype=np.float64).reshape(-1, 2) for v in videos])
    s = score_va(truth, pred)  # raises on NaN/inf or < 2 annotated frames, with the challenge's messages
    keep = annotated_mask(truth)
    names = sorted({cluster(v) for v in videos})
    index = {n: i for i, n in enumerate(names)}
    per_frame = np.repeat([index[cluster(v)] for v in videos], [np.shape(labels[v])[0] for v in videos])[keep]
    t, p = truth[keep], pred[keep]
    shift = np.stack([t.mean(axis=0), p.mean(axis=0)], axis=1)  # (dim, [truth, pred])
    x, y = t - shift[:, 0], p - shift[:, 1]
    cols = [np.ones(x.shape[0])]
    for d in range(2):
        cols += [x[:, d], y[:, d], x[:, d] * x[:, d], y[:, d] * y[:, d], x[:, d] * y[:, d]]
    sums = np.stack([np.bincount(per_frame, weights=c, minlength=len(names)) for c in cols], axis=1)
    used = sums[:, 0] > 0
    return ClusterStats(
        names=tuple(n for n, u in zip(names, used, strict=True) if u),
        sums=sums[used],
        shift=shift,
        estimate=(s.ccc_v, s.ccc_a, s.p_va),
        videos=len(videos),
    )


def scores_from_sums(totals: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """(ccc_v, ccc_a, p_va) from count-weighted sums of cluster statistics, as `metrics.ccc` defines CCC.

    Args:
        totals: (..., 11) sums as in `ClusterStats.sums` (any number of clusters, weighted by draw counts).
        shift: (2, 2) the shifts the sums were taken about.

    Returns:
        (..., 3) float64; NaN where fewer than 2 frames or where CCC is undefined (both series constant and equal).
    """
    n = totals[..., 0]
    out = np.full((*totals.shape[:-1], 3), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        for d in range(2):
            sx, sy, sxx, syy, sxy = (totals[..., 1 + 5 * d + i] for i in range(5))
            mx, my = sx / n, sy / n
            vx = np.maximum(sxx / n - mx * mx, 0.0)  # population moments; the max guards the last ulp
            vy = np.maximum(syy / n - my * my, 0.0)
            cov = sxy / n - mx * my
            diff = (mx + shift[d, 0]) - (my + shift[d, 1])
            denom = vx + vy + diff * diff
            c = np.clip(2.0 * cov / denom, -1.0, 1.0)
            out[..., d] = np.where((n >= 2) & (denom > 0), c, np.nan)
    out[..., 2] = (out[..., 0] + out[..., 1]) / 2.0
    return out


def draw_counts(clusters: int, resamples: int, seed: int, stratum: int = 0) -> np.ndarray:
    """How often each cluster is drawn in each resample: (resamples, clusters) int64, each row summing to clusters.

    The draws depend only on (clusters, resamples, seed, stratum), so two rows scored on the same videos get the
    same resamples (a paired comparison).

    Args:
        clusters: clusters in the partition.
        resamples: resamples to draw.
        seed: the bootstrap seed.
        stratum: the fold's position among the row's folds (each fold is resampled on its own).
    """
    rng = np.random.default_rng([seed, stratum])
    return rng.multinomial(clusters, np.full(clusters, 1.0 / clusters), size=resamples)


def resampled_scores(stats: ClusterStats, counts: np.ndarray) -> np.ndarray:
    """Each resample's (ccc_v, ccc_a, p_va): the global CCC over all frames of the drawn clusters.

    Args:
        stats: the partition.
        counts: (resamples, clusters) draw counts (`draw_counts`).

    Returns:
        (resamples, 3).
    """
    return scores_from_sums(counts.astype(np.float64) @ stats.sums, stats.shift)


@dataclass(frozen=True)
class Interval:
    """A score (or a difference of two) with its bootstrap interval.

    Args:
        estimate: the score on the data as given.
        low: lower bound (NaN when there is no interval).
        high: upper bound (NaN when there is no interval).
    """

    estimate: float
    low: float
    high: float

    @property
    def defined(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def verdict(self) -> str:
        """For a difference: "resolved" when the interval excludes 0, "not resolved" otherwise (or without one)."""
        return "resolved" if self.defined and (self.low > 0 or self.high < 0) else "not resolved"

    def cell(self, digits: int = 3, bound_digits: int = 2) -> str:
        """`0.690 [0.61, 0.75]`; the estimate alone when there is no interval, `-` when there is no estimate."""
        if not math.isfinite(self.estimate):
            return "-"
        if not self.defined:
            return f"{self.estimate:.{digits}f}"
        return f"{self.estimate:.{digits}f} [{self.low:.{bound_digits}f}, {self.high:.{bound_digits}f}]"

    def as_dict(self) -> dict[str, float | None]:
        return {k: (v if math.isfinite(v) else None) for k, v in
                (("estimate", self.estimate), ("low", self.low), ("high", self.high))}  # fmt: skip


@dataclass(frozen=True)
class BootstrapCI:
    """Intervals of (ccc_v, ccc_a, p_va), or of their differences for a paired comparison.

    Args:
        ccc_v: valence.
        ccc_a: arousal.
        p_va: (ccc_v + ccc_a) / 2.
        clusters: clusters resampled, summed over the folds.
        folds: folds (strata) the row averages over.
        resamples: resamples drawn.
        seed: the draws' seed.
        level: coverage.
        undefined: resamples whose score is undefined (left out of the quantiles).
        reason: why there is no interval (None when there is one).
    """

    ccc_v: Interval
    ccc_a: Interval
    p_va: Interval
    clusters: int
    folds: int
    resamples: int
    seed: int
    level: float
    undefined: int = 0
    reason: str | None = None

    method = "percentile bootstrap over video clusters"

    def __getitem__(self, metric: str) -> Interval:
        if metric not in METRICS:
            raise KeyError(metric)
        return getattr(self, metric)

    def as_dict(self) -> dict:
        return {
            **{m: self[m].as_dict() for m in METRICS},
            "clusters": self.clusters, "folds": self.folds, "resamples": self.resamples, "seed": self.seed,
            "level": self.level, "method": self.method, "undefined": self.undefined, "reason": self.reason,
        }  # fmt: skip

    def verdicts(self) -> dict[str, str]:
        """Per metric, whether the (difference) interval excludes 0."""
        return {m: self[m].verdict for m in METRICS}


def _strata(stats: ClusterStats | Sequence[ClusterStats]) -> list[ClusterStats]:
    out = [stats] if isinstance(stats, ClusterStats) else list(stats)
    if not out:
        raise MetricError("no partitions to bootstrap")
    return out


def _interval(
    estimate: np.ndarray, samples: np.ndarray, strata: list[ClusterStats], resamples: int, seed: int, level: float
) -> BootstrapCI:
    """Percentile intervals of (resamples, 3) samples around a (3,) estimate."""
    small = [i for i, s in enumerate(strata) if s.clusters < 2]
    reason = None
    if small:
        where = "the partition has" if len(strata) == 1 else f"fold(s) at position {small} have"
        reason = f"{where} fewer than 2 video clusters: a video bootstrap needs at least 2"
    lows, highs = np.full(3, np.nan), np.full(3, np.nan)
    undefined = int(np.isnan(samples).any(axis=1).sum())
    if reason is None and undefined < samples.shape[0]:
        a = (1.0 - level) / 2.0
        with np.errstate(all="ignore"):
            q = np.nanquantile(samples, [a, 1.0 - a], axis=0)
        lows, highs = q[0], q[1]
    elif reason is None:
        reason = "every resample's score is undefined"
    iv = [Interval(float(estimate[i]), float(lows[i]), float(highs[i])) for i in range(3)]
    return BootstrapCI(*iv, clusters=sum(s.clusters for s in strata), folds=len(strata), resamples=resamples,
                       seed=seed, level=level, undefined=undefined, reason=reason)  # fmt: skip


def _row_samples(strata: list[ClusterStats], resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The row's estimate (mean over folds) and each resample's row value (mean of the folds' resampled scores)."""
    est = np.mean([s.estimate for s in strata], axis=0)
    samples = np.zeros((resamples, 3))
    for k, s in enumerate(strata):
        samples += resampled_scores(s, draw_counts(s.clusters, resamples, seed, k))
    return est, samples / len(strata)


def _check(resamples: int, level: float) -> None:
    if not 1 <= resamples <= MAX_RESAMPLES:
        raise MetricError(f"resamples: {shorten(str(resamples))} out of range (1..{MAX_RESAMPLES:,}; the draws take "
                          "8 bytes per video per resample)")  # fmt: skip
    if not 0.0 < level < 1.0:
        raise MetricError(f"level must be in (0, 1), got {level}")


def bootstrap_ci(
    stats: ClusterStats | Sequence[ClusterStats], resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL
) -> BootstrapCI:
    """The video-bootstrap interval of a partition's score (or of a mean over folds, one partition per fold).

    Args:
        stats: one partition, or one per fold (the row is the mean of the folds' scores).
        resamples: resamples to draw.
        seed: seed of the draws.
        level: coverage (0.95: the 2.5% and 97.5% quantiles).

    Returns:
        Intervals of ccc_v, ccc_a and p_va; NaN bounds and a `reason` when some partition has fewer than 2 clusters.

    Raises:
        MetricError: no partitions, resamples < 1, or level outside (0, 1).
    """
    _check(resamples, level)
    strata = _strata(stats)
    est, samples = _row_samples(strata, resamples, seed)
    return _interval(est, samples, strata, resamples, seed, level)


def paired_bootstrap(
    a: ClusterStats | Sequence[ClusterStats],
    b: ClusterStats | Sequence[ClusterStats],
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> BootstrapCI:
    """The paired interval of row a's score minus row b's, both resampled with the same draws.

    Args:
        a: row a: one partition, or one per fold.
        b: row b, scored on the same videos (same clusters in the same folds).
        resamples: resamples to draw.
        seed: seed of the draws.
        level: coverage.

    Returns:
        Intervals of the differences; `verdicts()` says which exclude 0.

    Raises:
        MetricError: the rows were not scored on the same videos, or as `bootstrap_ci`.
    """
    _check(resamples, level)
    sa, sb = _strata(a), _strata(b)
    if len(sa) != len(sb):
        raise MetricError(f"the rows average over different numbers of folds ({len(sa)} and {len(sb)})")
    for k, (x, y) in enumerate(zip(sa, sb, strict=True)):
        if x.names != y.names:
            only = sorted(set(x.names) ^ set(y.names))
            raise MetricError(f"fold at position {k}: the rows were not scored on the same videos "
                              f"(clusters in one only: {only[:5]}{' ...' if len(only) > 5 else ''})")  # fmt: skip
    ea, xa = _row_samples(sa, resamples, seed)
    eb, xb = _row_samples(sb, resamples, seed)
    return _interval(ea - eb, xa - xb, sa, resamples, seed, level)
