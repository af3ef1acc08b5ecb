"""The video bootstrap: the challenge's score as the estimate, intervals from resampled videos, paired differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from submissions import MetricError
from submissions.bootstrap import (
    BootstrapCI,
    Interval,
    bootstrap_ci,
    cluster_of,
    cluster_stats,
    draw_counts,
    paired_bootstrap,
    resampled_scores,
)
from submissions.metrics import score_va
from submissions.scoring import score_predictions

Partition = tuple[dict[str, np.ndarray], dict[str, np.ndarray]]


def partition(seed: int, videos: int, frames: tuple[int, int] = (30, 120), unlabelled: float = 0.1,
              noise: float = 0.3, skill: float = 0.7) -> Partition:  # fmt: skip
    """Labels (smooth random walks, a stretch of -5) and predictions (scaled, shifted, noisy) for `videos` videos."""
    rng = np.random.default_rng(seed)
    labels, preds = {}, {}
    for i in range(videos):
        n = int(rng.integers(*frames))
        lab = np.clip(0.1 * np.cumsum(rng.normal(0, 0.3, (n, 2)), axis=0) + rng.uniform(-0.5, 0.5, 2), -1, 1)
        pred = np.clip(skill * lab + rng.normal(0, 0.1, 2) + rng.normal(0, noise, (n, 2)), -1, 1)
        cut = int(unlabelled * n)
        lab[:cut] = -5.0
        labels[f"vid{i:03d}"], preds[f"vid{i:03d}"] = lab, pred
    return labels, preds


def test_cluster_of_joins_the_two_persons_of_a_raw_video():
    assert cluster_of("12-24-1920x1080_left") == cluster_of("12-24-1920x1080_right") == "12-24-1920x1080"
    assert cluster_of("video_7") == "video_7"


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 30))
def test_point_estimate_is_the_challenge_score(seed, videos):
    labels, preds = partition(seed, videos)
    want = score_predictions(preds, labels).total
    ci = bootstrap_ci(cluster_stats(labels, preds), resamples=50, seed=seed)
    for m, w in (("ccc_v", want.ccc_v), ("ccc_a", want.ccc_a), ("p_va", want.p_va)):
        assert ci[m].estimate == pytest.approx(w, abs=1e-12)
    # The sufficient statistics give the same score when every cluster is drawn once (the matmul route).
    stats = cluster_stats(labels, preds)
    ones = resampled_scores(stats, np.ones((1, stats.clusters), dtype=np.int64))[0]
    np.testing.assert_allclose(ones, [want.ccc_v, want.ccc_a, want.p_va], rtol=0, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 12))
def test_a_resample_is_the_global_ccc_over_the_drawn_videos(seed, videos):
    labels, preds = partition(seed, videos)
    stats = cluster_stats(labels, preds)
    counts = draw_counts(stats.clusters, 3, seed)
    got = resampled_scores(stats, counts)
    for row, c in zip(got, counts, strict=True):
        drawn = [name for name, k in zip(stats.names, c, strict=True) for _ in range(k)]  # a video drawn twice: twice
        s = score_va(np.concatenate([labels[v] for v in drawn]), np.concatenate([preds[v] for v in drawn]))
        np.testing.assert_allclose(row, [s.ccc_v, s.ccc_a, s.p_va], rtol=0, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(20, 60), st.floats(0.1, 0.5))
def test_interval_holds_the_estimate_for_many_similar_videos(seed, videos, noise):
    # The condition: at least 20 videos of similar length (30-120 frames) and predictions that track the labels.
    # The percentile interval is not centred on the estimate by construction; with few or very unequal clusters
    # the resampling distribution can be skewed enough to leave the estimate outside it.
    labels, preds = partition(seed, videos, noise=noise)
    ci = bootstrap_ci(cluster_stats(labels, preds), seed=seed)
    assert ci.reason is None
    for m in ("ccc_v", "ccc_a", "p_va"):
        assert ci[m].low <= ci[m].estimate <= ci[m].high, (m, ci[m])


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(6, 20), st.integers(4, 6))
def test_interval_narrows_when_the_video_set_is_repeated(seed, videos, k):
    # The same videos k times over: the same estimate (every moment is unchanged), k times as many clusters,
    # so the interval shrinks by about sqrt(k) (at least 2 for k >= 4). Half the width is a wide margin.
    labels, preds = partition(seed, videos)
    one = bootstrap_ci(cluster_stats(labels, preds), seed=seed)
    rep_l = {f"{v}_copy{j}": a for j in range(k) for v, a in labels.items()}
    rep_p = {f"{v}_copy{j}": a for j in range(k) for v, a in preds.items()}
    many = bootstrap_ci(cluster_stats(rep_l, rep_p), seed=seed)
    assert many.clusters == k * one.clusters
    for m in ("ccc_v", "ccc_a", "p_va"):
        assert many[m].estimate == pytest.approx(one[m].estimate, abs=1e-9)
        w1, wk = one[m].high - one[m].low, many[m].high - many[m].low
        assert wk < 0.75 * w1, (m, w1, wk)


def test_one_video_gets_no_interval_and_says_why():
    labels, preds = partition(3, 1, frames=(200, 201))
    ci = bootstrap_ci(cluster_stats(labels, preds))
    assert ci.clusters == 1 and ci.reason and "fewer than 2 video clusters" in ci.reason
    assert all(math.isnan(ci[m].low) and math.isnan(ci[m].high) for m in ("ccc_v", "ccc_a", "p_va"))
    assert ci.p_va.cell() == f"{ci.p_va.estimate:.3f}"  # the estimate alone, no bracket
    # The two persons of one raw video are one cluster: still no interval.
    l2 = {"raw_left": labels["vid000"], "raw_right": labels["vid000"][::-1].copy()}
    p2 = {"raw_left": preds["vid000"], "raw_right": preds["vid000"][::-1].copy()}
    two = bootstrap_ci(cluster_stats(l2, p2))
    assert two.clusters == 1 and two.reason is not None and not two.p_va.defined


def test_unannotated_videos_are_not_clusters():
    labels, preds = partition(4, 3)
    labels["silent"], preds["silent"] = np.full((50, 2), -5.0), np.zeros((50, 2))
    stats = cluster_stats(labels, preds)
    assert stats.videos == 4 and stats.clusters == 3 and "silent" not in stats.names


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 3))
def test_same_seed_same_interval_other_seed_other_draws(seed, other):
    labels, preds = partition(seed, 15)
    stats = cluster_stats(labels, preds)
    a, b = bootstrap_ci(stats, seed=seed), bootstrap_ci(stats, seed=seed)
    assert a == b
    c = bootstrap_ci(stats, seed=seed + 1 + other)
    assert (c.p_va.low, c.p_va.high) != (a.p_va.low, a.p_va.high)


def test_errors_name_the_problem():
    labels, preds = partition(1, 3)
    with pytest.raises(MetricError, match="no predictions"):
        cluster_stats(labels, {k: v for k, v in list(preds.items())[1:]})
    bad = dict(preds)
    bad["vid000"] = bad["vid000"][:-1]
    with pytest.raises(MetricError, match="vid000"):
        cluster_stats(labels, bad)
    with pytest.raises(MetricError, match="resamples"):
        bootstrap_ci(cluster_stats(labels, preds), resamples=0)
    with pytest.raises(MetricError, match="level"):
        bootstrap_ci(cluster_stats(labels, preds), level=1.5)


def test_paired_difference_resolves_a_clear_gap_and_not_a_null_one():
    labels, good = partition(7, 40, noise=0.1)
    rng = np.random.default_rng(8)
    bad = {v: np.clip(p + rng.normal(0, 0.6, p.shape), -1, 1) for v, p in good.items()}
    sg, sb = cluster_stats(labels, good), cluster_stats(labels, bad)
    d = paired_bootstrap(sg, sb)
    assert d.p_va.estimate == pytest.approx(sg.estimate[2] - sb.estimate[2], abs=1e-12)
    assert d.verdicts() == {"ccc_v": "resolved", "ccc_a": "resolved", "p_va": "resolved"} and d.p_va.low > 0
    # A row against itself: every paired resample's difference is exactly 0 (the draws are shared).
    same = paired_bootstrap(sg, sg)
    assert same.p_va.low == same.p_va.high == 0.0 and same.p_va.verdict == "not resolved"
    # Two rows of the same quality (independent noise of the same size on each): the paired interval holds 0 here
    # (for about 9 in 10 such pairs of realisations, as a 95% interval over 40 videos should; this pair is one).
    r1, r2 = ({v: np.clip(p + g.normal(0, 0.3, p.shape), -1, 1) for v, p in good.items()}
              for g in (np.random.default_rng(100), np.random.default_rng(101)))  # fmt: skip
    null = paired_bootstrap(cluster_stats(labels, r1), cluster_stats(labels, r2))
    assert null.p_va.verdict == "not resolved" and null.p_va.low < 0 < null.p_va.high


def test_paired_needs_the_same_videos():
    la, pa = partition(1, 5)
    lb, pb = partition(2, 6)
    with pytest.raises(MetricError, match="same videos"):
        paired_bootstrap(cluster_stats(la, pa), cluster_stats(lb, pb))
    with pytest.raises(MetricError, match="folds"):
        paired_bootstrap([cluster_stats(la, pa)], [cluster_stats(la, pa)] * 2)


def test_paired_is_narrower_than_unpaired_for_correlated_rows():
    # Two rows that share most of their errors: pairing cancels the video-to-video variation both rows see.
    labels, a = partition(11, 30)
    rng = np.random.default_rng(12)
    b = {v: np.clip(p + rng.normal(0, 0.05, p.shape), -1, 1) for v, p in a.items()}
    sa, sb = cluster_stats(labels, a), cluster_stats(labels, b)
    paired = paired_bootstrap(sa, sb).p_va
    ca, cb = bootstrap_ci(sa).p_va, bootstrap_ci(sb).p_va
    assert paired.high - paired.low < 0.5 * min(ca.high - ca.low, cb.high - cb.low)


def test_mean_over_folds_is_stratified():
    folds = [cluster_stats(*partition(s, 12)) for s in (1, 2, 3)]
    ci = bootstrap_ci(folds)
    assert ci.folds == 3 and ci.clusters == sum(f.clusters for f in folds)
    assert ci.p_va.estimate == pytest.approx(np.mean([f.estimate[2] for f in folds]), abs=1e-12)
    assert ci.p_va.low < ci.p_va.estimate < ci.p_va.high
    # One fold with a single cluster: the mean has no interval.
    lone = cluster_stats(*partition(9, 1))
    assert bootstrap_ci([*folds, lone]).reason is not None


def test_cells_and_dicts():
    iv = Interval(0.6904, 0.6111, 0.7488)
    assert iv.cell() == "0.690 [0.61, 0.75]"
    assert Interval(float("nan"), float("nan"), float("nan")).cell() == "-"
    assert Interval(0.02, -0.01, 0.05).verdict == "not resolved" and Interval(-0.03, -0.05, -0.01).verdict == "resolved"
    ci = bootstrap_ci(cluster_stats(*partition(5, 8)), resamples=100)
    assert isinstance(ci, BootstrapCI)
    d = ci.as_dict()
    assert set(d) >= {"ccc_v", "ccc_a", "p_va", "clusters", "resamples", "seed", "level", "method", "reason"}
    assert d["p_va"]["estimate"] == ci.p_va.estimate and d["resamples"] == 100
