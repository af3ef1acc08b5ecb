"""Ensembles of frame predictions: weighted averages, and weights searched on the simplex to maximise CCC.

Members are aligned frame predictions of the same videos ((N, 2) valence/arousal arrays per video, one mapping per
member). An ensemble's prediction is a weighted average of its members':

    ensemble[f, d] = sum_m weights[m, d] * member_m[f, d]      (d = 0 valence, 1 arousal)

with weights non-negative and summing to 1 per dimension (a point of the simplex), so the ensemble stays in the
members' range ([-1, 1]). `joint` weights are one simplex point used for both dimensions; `per-dimension` weights are
one point per dimension (valence and arousal chosen separately, as ABAW teams do).

The search (`search_weights`) is deterministic and exhaustive over a stated space: every point of the simplex grid
with the given `step` (w_m = k_m * step, k_m integers summing to 1 / step), plus the equal-weights point, which comes
first: among points of equal score the first wins, so ties go to the plain mean, then to the grid's lexicographic
order (the first member's weight largest). It maximises CCC over all annotated frames of the data it is given (the
challenge's one global CCC per dimension; P_VA for joint weights), computed from sufficient statistics
(`FusionStats`: frame count and the sums of truth, each member, and their products, per dimension), so a point costs
O(M^2) however many frames there are, and the statistics of disjoint parts of the data add up: weights for one held-
out part are searched on the sum of the others' (`nested_search`, nested cross-validation of the weights).

Frames labelled -5 in either column are left out, as `submissions.metrics.score_va` leaves them out.

numpy only; this module knows no run folder.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from submissions.bootstrap import cluster_of
from submissions.errors import MetricError
from submissions.metrics import annotated_mask

STEP = 0.1
"""The simplex grid's step by default (11 points for 2 members, 66 for 3, 3,003 for 6)."""

MAX_GRID_POINTS = 500_000
"""Most points a search may visit (the grid of 10 members at step 0.1 has 92,378); a larger one is refused."""

WEIGHT_TOLERANCE = 1e-9
"""How far a weight may be below 0, or a dimension's weights from summing to 1, before they are refused."""

DIMENSIONS = ("valence", "arousal")

GROUPS = 5
"""Video groups of a single validation split, for the nested estimate of searched weights."""

TIE = 1e-12
"""Scores this close to the best count as ties (rounding makes equal scores differ in the last bits)."""


@dataclass(frozen=True)
class FusionStats:
    """Sufficient statistics of the annotated frames for any weighted average of the members, per dimension.

    Index 0 of `sums` and `products` is the truth, 1..M the members.

    Args:
        frames: annotated frames.
        sums: (2, M + 1): per dimension the sums of truth and of each member.
        products: (2, M + 1, M + 1): per dimension the sums of the pairwise products.
    """

    frames: int
    sums: np.ndarray
    products: np.ndarray

    @property
    def members(self) -> int:
        return int(self.sums.shape[1]) - 1

    def __add__(self, other: FusionStats) -> FusionStats:
        if other.members != self.members:
            raise MetricError(f"cannot add the statistics of {self.members} and {other.members} members")
        return FusionStats(self.frames + other.frames, self.sums + other.sums, self.products + other.products)


@dataclass(frozen=True)
class Search:
    """The weights a search chose.

    Args:
        weights: (M, 2) one column per dimension (valence, arousal), each on the simplex.
        score: (ccc_v, ccc_a, p_va) of these weights on the data searched.
        points: simplex points visited.
        step: the grid's step.
        per_dimension: valence and arousal weights chosen separately.
        frames: annotated frames searched on.
    """

    weights: np.ndarray
    score: tuple[float, float, float]
    points: int
    step: float
    per_dimension: bool
    frames: int

    def space(self) -> str:
        """The search space in words (what an ensemble's record says it searched)."""
        how = "per dimension (valence and arousal separately)" if self.per_dimension else "joint (one point for both)"
        return (f"simplex grid with step {self.step:g} plus the equal-weights point ({self.points} points), {how}; "
                "ties go to equal weights, then to the first grid point")  # fmt: skip

    def as_dict(self) -> dict:
        return {
            "weights": weights_dict(self.weights),
            "score": dict(zip(("ccc_v", "ccc_a", "p_va"), self.score, strict=True)),
            "points": self.points, "step": self.step, "per_dimension": self.per_dimension, "frames": self.frames,
            "space": self.space(),
        }  # fmt: skip


def weights_dict(weights: np.ndarray) -> dict[str, list[float]]:
    """`{"valence": [...], "arousal": [...]}` of (M, 2) weights (for records)."""
    w = np.asarray(weights, dtype=np.float64)
    return {d: [float(x) for x in w[:, i]] for i, d in enumerate(DIMENSIONS)}


def equal_weights(members: int) -> np.ndarray:
    """(M, 2) weights of the plain mean."""
    if members < 1:
        raise MetricError("an ensemble needs at least one member")
    return np.full((members, 2), 1.0 / members)


def check_weights(weights: np.ndarray, members: int) -> np.ndarray:
    """(M, 2) float64 weights from (M,) or (M, 2) ones, each column non-negative and summing to 1.

    Raises:
        MetricError: another shape, a negative or non-finite weight, or a column not summing to 1.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 1:
        w = np.stack([w, w], axis=1)
    if w.shape != (members, 2):
        raise MetricError(f"weights of shape {np.shape(weights)} for {members} members; want ({members},) or "
                          f"({members}, 2)")  # fmt: skip
    if not np.isfinite(w).all() or (w < -WEIGHT_TOLERANCE).any():
        raise MetricError("weights must be finite and non-negative")
    sums = w.sum(axis=0)
    if (np.abs(sums - 1.0) > WEIGHT_TOLERANCE).any():
        raise MetricError(f"each dimension's weights must sum to 1, not {sums[0]:.6g} (valence), {sums[1]:.6g} "
                          "(arousal)")  # fmt: skip
    return np.clip(w, 0.0, None)


def combine(members: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """The weighted average of aligned predictions.

    Args:
        members: M arrays (N, 2), the same frames in the same order.
        weights: (M,) joint or (M, 2) per-dimension weights on the simplex.

    Returns:
        (N, 2) float64.

    Raises:
        MetricError: members of different shapes, or weights as `check_weights` refuses them.

    Examples:
        >>> combine([np.array([[0.0, 1.0]]), np.array([[1.0, 0.0]])], np.array([0.25, 0.75])).tolist()
        [[0.75, 0.25]]
    """
    if not members:
        raise MetricError("an ensemble needs at least one member")
    arrays = [np.asarray(p, dtype=np.float64) for p in members]
    shape = arrays[0].shape
    if len(shape) != 2 or shape[1] != 2:
        raise MetricError(f"member 0: predictions of shape {shape}, not (frames, 2)")
    for i, a in enumerate(arrays[1:], start=1):
        if a.shape != shape:
            raise MetricError(f"member {i}: predictions of shape {a.shape}, member 0 has {shape}")
    w = check_weights(weights, len(arrays))
    return np.einsum("mnd,md->nd", np.stack(arrays), w)


def combine_videos(members: Sequence[Mapping[str, np.ndarray]], weights: np.ndarray) -> dict[str, np.ndarray]:
    """`combine` per video; every member must hold the same videos.

    Raises:
        MetricError: a video one member lacks, or frame counts that differ (naming the video).
    """
    if not members:
        raise MetricError("an ensemble needs at least one member")
    videos = sorted(members[0])
    for i, m in enumerate(members[1:], start=1):
        if sorted(m) != videos:
            only = sorted(set(m) ^ set(videos))
            raise MetricError(f"member {i} and member 0 predict different videos (in one only: {only[:5]})")
    out = {}
    for v in videos:
        try:
            out[v] = combine([m[v] for m in members], weights)
        except MetricError as exc:
            raise MetricError(f"video {v!r}: {exc}") from None
    return out


def simplex_grid(members: int, step: float = STEP) -> np.ndarray:
    """Every point of the simplex whose coordinates are multiples of `step`, in lexicographic order of the counts,
    the first member's largest first.

    Args:
        members: dimensions of the simplex (M >= 1).
        step: the grid's step; 1 / step must be an integer.

    Returns:
        (P, M) float64, P = C(1/step + M - 1, M - 1).

    Raises:
        MetricError: a step that does not divide 1, or more than `MAX_GRID_POINTS` points.

    Examples:
        >>> simplex_grid(2, 0.5).tolist()
        [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]
    """
    if members < 1:
        raise MetricError("an ensemble needs at least one member")
    if not (math.isfinite(step) and 0.0 < step <= 1.0):
        raise MetricError(f"the grid step must be in (0, 1], got {step}")
    parts = round(1.0 / step)
    if abs(parts * step - 1.0) > 1e-9:
        raise MetricError(f"the grid step {step} does not divide 1 (try 0.1, 0.05 or 0.2)")
    points = math.comb(parts + members - 1, members - 1)
    if points > MAX_GRID_POINTS:
        raise MetricError(f"a simplex grid of {members} members at step {step} has {points:,} points, more than "
                          f"{MAX_GRID_POINTS:,}; choose a coarser step or fewer members")  # fmt: skip
    rows = []
    # Bars between stars: each combination of M-1 bar positions among parts+M-1 slots is one point.
    for bars in itertools.combinations(range(parts + members - 1), members - 1):
        edges = (-1, *bars, parts + members - 1)
        rows.append([edges[i + 1] - edges[i] - 1 for i in range(members)])
    counts = np.array(rows, dtype=np.float64).reshape(-1, members)
    return counts[np.lexsort(counts.T[::-1])][::-1] / parts


def search_space(members: int, step: float = STEP) -> np.ndarray:
    """The points a search visits: the equal-weights point first, then `simplex_grid` (without a repeat of it)."""
    grid = simplex_grid(members, step)
    mean = np.full((1, members), 1.0 / members)
    keep = ~np.all(np.abs(grid - mean) < 1e-12, axis=1)
    return np.concatenate([mean, grid[keep]])


def fusion_stats(labels: np.ndarray, members: Sequence[np.ndarray]) -> FusionStats:
    """The sufficient statistics of one aligned set of frames.

    Args:
        labels: (N, 2) truth, -5 where unannotated.
        members: M (N, 2) predictions of the same frames.

    Raises:
        MetricError: shapes that differ, or NaN/inf in the annotated frames.
    """
    truth = np.asarray(labels, dtype=np.float64)
    keep = annotated_mask(truth)
    cols = [truth]
    for i, p in enumerate(members):
        arr = np.asarray(p, dtype=np.float64)
        if arr.shape != truth.shape:
            raise MetricError(f"member {i}: predictions of shape {arr.shape}, labels {truth.shape}")
        cols.append(arr)
    stack = np.stack(cols)[:, keep, :]  # (M + 1, n, 2)
    if not np.isfinite(stack).all():
        raise MetricError("NaN or inf values in the annotated frames; CCC is undefined")
    sums = stack.sum(axis=1).T  # (2, M + 1)
    products = np.einsum("ind,jnd->dij", stack, stack)  # (2, M + 1, M + 1)
    return FusionStats(int(keep.sum()), sums, products)


def fusion_stats_videos(labels: Mapping[str, np.ndarray], members: Sequence[Mapping[str, np.ndarray]],
                        videos: Sequence[str] | None = None) -> FusionStats:  # fmt: skip
    """`fusion_stats` over the frames of several videos (all of `labels`' videos, or `videos`).

    Raises:
        MetricError: a video a member does not predict, or one with another frame count (naming the video).
    """
    names = sorted(labels) if videos is None else list(videos)
    if not names:
        raise MetricError("no videos to compute fusion statistics on")
    total = None
    for v in names:
        for i, m in enumerate(members):
            if v not in m:
                raise MetricError(f"member {i} does not predict video {v!r}")
        try:
            s = fusion_stats(labels[v], [m[v] for m in members])
        except MetricError as exc:
            raise MetricError(f"video {v!r}: {exc}") from None
        total = s if total is None else total + s
    assert total is not None
    return total


def grid_ccc(stats: FusionStats, points: np.ndarray) -> np.ndarray:
    """CCC of each dimension for each weight point, from the statistics (population moments, as `metrics.ccc`).

    Args:
        stats: the frames' statistics.
        points: (P, M) joint weights (each row used for both dimensions).

    Returns:
        (P, 2) float64; NaN where CCC is undefined (fewer than 2 frames, both series constant and equal).
    """
    pts = np.asarray(points, dtype=np.float64)
    n = stats.frames
    out = np.full((pts.shape[0], 2), np.nan)
    if n < 2:
        return out
    for d in range(2):
        s, q = stats.sums[d] / n, stats.products[d] / n
        mx = s[0]
        vx = max(q[0, 0] - mx * mx, 0.0)
        my = pts @ s[1:]
        vy = np.maximum(np.einsum("pi,ij,pj->p", pts, q[1:, 1:], pts) - my * my, 0.0)
        cov = pts @ q[0, 1:] - mx * my
        denom = vx + vy + (mx - my) ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            c = np.clip(2.0 * cov / denom, -1.0, 1.0)
        out[:, d] = np.where(denom > 0, c, np.nan)
    return out


def search_weights(stats: FusionStats, step: float = STEP, per_dimension: bool = False) -> Search:
    """The simplex point (per dimension, or one for both) of the highest CCC on the given frames.

    Joint weights maximise P_VA = (CCC_V + CCC_A) / 2; per-dimension weights maximise each CCC on its own (the same
    as maximising P_VA over pairs of points). Undefined scores never win; ties go to the earlier point of
    `search_space` (equal weights first).

    Args:
        stats: the statistics of the frames to choose on (never those of the frames the ensemble reports).
        step: the grid's step.
        per_dimension: choose valence and arousal weights separately.

    Raises:
        MetricError: a grid too large, or no point with a defined score.
    """
    points = search_space(stats.members, step)
    scores = grid_ccc(stats, points)
    if per_dimension:
        cols = []
        for d in range(2):
            col = np.where(np.isnan(scores[:, d]), -np.inf, scores[:, d])
            if not np.isfinite(col).any():
                raise MetricError(f"no weights give a defined {DIMENSIONS[d]} CCC on these frames")
            cols.append(_first_best(col))
        weights = np.stack([points[cols[0]], points[cols[1]]], axis=1)
        cv, ca = float(scores[cols[0], 0]), float(scores[cols[1], 1])
    else:
        p_va = scores.mean(axis=1)
        col = np.where(np.isnan(p_va), -np.inf, p_va)
        if not np.isfinite(col).any():
            raise MetricError("no weights give a defined P_VA on these frames")
        best = _first_best(col)
        weights = np.stack([points[best], points[best]], axis=1)
        cv, ca = float(scores[best, 0]), float(scores[best, 1])
    return Search(weights, (cv, ca, (cv + ca) / 2.0), points.shape[0], step, per_dimension, stats.frames)


def _first_best(scores: np.ndarray) -> int:
    """The first index whose score is within `TIE` of the highest (undefined scores are -inf here)."""
    return int(np.flatnonzero(scores >= scores.max() - TIE)[0])


def nested_search(strata: Sequence[FusionStats], step: float = STEP, per_dimension: bool = False) -> list[Search]:
    """For each part, the weights searched on all the other parts together (never on the part itself).

    Args:
        strata: the statistics of disjoint parts of the data (video groups, or folds), at least 2.
        step: the grid's step.
        per_dimension: choose valence and arousal weights separately.

    Returns:
        One `Search` per part, in order: `result[k]` is what part k's frames get.

    Raises:
        MetricError: fewer than 2 parts, or as `search_weights`.
    """
    if len(strata) < 2:
        raise MetricError("a nested search needs at least 2 parts of the data")
    out = []
    for k in range(len(strata)):
        rest = [s for j, s in enumerate(strata) if j != k]
        total = rest[0]
        for s in rest[1:]:
            total = total + s
        out.append(search_weights(total, step, per_dimension))
    return out


def video_groups(videos: Sequence[str], groups: int = GROUPS) -> list[list[str]]:
    """Split videos into at most `groups` parts by cluster (the two persons of a raw video stay together).

    Clusters are sorted by name and dealt out in turn, so the split depends on the names alone.

    Args:
        videos: the videos (unique).
        groups: parts wanted; fewer when there are fewer clusters.

    Returns:
        Non-empty lists of videos, each sorted.

    Examples:
        >>> video_groups(["a_left", "a_right", "b", "c"], 2)
        [['a_left', 'a_right', 'c'], ['b']]
    """
    clusters: dict[str, list[str]] = {}
    for v in sorted(videos):
        clusters.setdefault(cluster_of(v), []).append(v)
    k = max(1, min(groups, len(clusters)))
    parts: list[list[str]] = [[] for _ in range(k)]
    for i, name in enumerate(sorted(clusters)):
        parts[i % k].extend(clusters[name])
    return [sorted(p) for p in parts if p]
