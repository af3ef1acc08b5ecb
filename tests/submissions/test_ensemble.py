"""Ensemble math: weighted averages and the simplex search equal hand computations and the challenge's own CCC."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from submissions.ensemble import (
    MAX_GRID_POINTS,
    check_weights,
    combine,
    combine_videos,
    equal_weights,
    fusion_stats,
    fusion_stats_videos,
    grid_ccc,
    nested_search,
    search_space,
    search_weights,
    simplex_grid,
    video_groups,
)
from submissions.errors import MetricError
from submissions.metrics import score_va

# Hand example: valence truth (-0.5, 0, 0.5); member A doubles it, member B says 0 throughout; arousal: A is exact,
# B mirrors the truth.
TRUTH = np.array([[-0.5, -0.5], [0.0, 0.0], [0.5, 0.5]])
A = np.array([[-1.0, -0.5], [0.0, 0.0], [1.0, 0.5]])
B = np.array([[0.0, 0.5], [0.0, 0.0], [0.0, -0.5]])


def _members(seed: int, m: int, n: int, unannotated: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    truth = rng.uniform(-1, 1, (n, 2))
    truth[rng.choice(n, size=min(unannotated, n - 3), replace=False)] = -5.0
    members = [np.clip(truth * rng.uniform(0, 1) + rng.normal(0, rng.uniform(0.1, 0.8), (n, 2)), -1, 1)
               for _ in range(m)]  # fmt: skip
    return truth, members


def test_combine_equals_hand_computation() -> None:
    # 0.25 A + 0.75 B, by hand: valence (-0.25, 0, 0.25), arousal (0.25, 0, -0.25).
    got = combine([A, B], np.array([0.25, 0.75]))
    np.testing.assert_allclose(got, [[-0.25, 0.25], [0.0, 0.0], [0.25, -0.25]])
    # Per dimension: valence all A, arousal all B.
    got = combine([A, B], np.array([[1.0, 0.0], [0.0, 1.0]]))
    np.testing.assert_allclose(got, np.stack([A[:, 0], B[:, 1]], axis=1))
    # The plain mean.
    np.testing.assert_allclose(combine([A, B], equal_weights(2)), (A + B) / 2)


def test_search_equals_hand_computation() -> None:
    stats = fusion_stats(TRUTH, [A, B])
    # Step 0.5: the points are the mean, A alone, B alone. Valence CCC: mean 1 (it is the truth), A 0.8
    # (2 cov / (var_x + var_y) = (4/6) / (5/6)), B 0 (constant). Arousal: mean 0 (constant 0), A 1, B -1.
    scores = grid_ccc(stats, np.array([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]]))
    np.testing.assert_allclose(scores, [[1.0, 0.0], [0.8, 1.0], [0.0, -1.0]], atol=1e-12)
    joint = search_weights(stats, step=0.5)
    np.testing.assert_allclose(joint.weights, [[1.0, 1.0], [0.0, 0.0]])  # P_VA: 0.5, 0.9, -0.5
    assert joint.score == pytest.approx((0.8, 1.0, 0.9))
    per = search_weights(stats, step=0.5, per_dimension=True)
    np.testing.assert_allclose(per.weights, [[0.5, 1.0], [0.5, 0.0]])
    assert per.score == pytest.approx((1.0, 1.0, 1.0))
    assert per.points == 3 and per.frames == 3
    assert "step 0.5" in per.space() and "per dimension" in per.space()


def test_ties_go_to_equal_weights() -> None:
    # Two identical members: every point scores the same; the mean wins.
    stats = fusion_stats(TRUTH, [A, A])
    np.testing.assert_allclose(search_weights(stats, 0.1).weights, 0.5)


def test_simplex_grid_hand_listing_and_bounds() -> None:
    assert simplex_grid(3, 0.5).tolist() == [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 1.0, 0.0],
                                             [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]]  # fmt: skip
    assert search_space(3, 0.5)[0].tolist() == pytest.approx([1 / 3] * 3)
    assert search_space(2, 0.5).shape == (3, 2)  # the mean is a grid point here: not listed twice
    with pytest.raises(MetricError, match="does not divide 1"):
        simplex_grid(3, 0.3)
    with pytest.raises(MetricError, match="points, more than"):
        simplex_grid(30, 0.01)
    assert math.comb(10 + 9, 9) < MAX_GRID_POINTS  # 10 members at the default step fit


@given(m=st.integers(1, 5), parts=st.sampled_from([1, 2, 4, 5, 10]))
@settings(max_examples=30, deadline=None)
def test_simplex_grid_is_the_whole_simplex(m: int, parts: int) -> None:
    grid = simplex_grid(m, 1.0 / parts)
    assert grid.shape == (math.comb(parts + m - 1, m - 1), m)
    np.testing.assert_allclose(grid.sum(axis=1), 1.0)
    assert (grid >= 0).all()
    assert len({tuple(np.round(r * parts).astype(int)) for r in grid}) == grid.shape[0]


@given(seed=st.integers(0, 10_000), m=st.integers(1, 4), n=st.integers(5, 60), gaps=st.integers(0, 3))
@settings(max_examples=40, deadline=None)
def test_grid_ccc_equals_the_challenge_score(seed: int, m: int, n: int, gaps: int) -> None:
    truth, members = _members(seed, m, n, gaps)
    w = np.random.default_rng(seed + 1).dirichlet(np.ones(m), size=3)
    got = grid_ccc(fusion_stats(truth, members), w)
    for i in range(3):
        s = score_va(truth, combine(members, w[i]))
        assert got[i] == pytest.approx([s.ccc_v, s.ccc_a], abs=1e-9)


@given(seed=st.integers(0, 10_000), m=st.integers(2, 4), per=st.booleans())
@settings(max_examples=30, deadline=None)
def test_search_beats_every_member_and_every_point(seed: int, m: int, per: bool) -> None:
    truth, members = _members(seed, m, 50, 2)
    found = search_weights(fusion_stats(truth, members), 0.25, per_dimension=per)
    s = score_va(truth, combine(members, found.weights))
    assert found.score == pytest.approx((s.ccc_v, s.ccc_a, s.p_va), abs=1e-9)
    check_weights(found.weights, m)
    space = search_space(m, 0.25)
    assert len(space) > 0 and len(members) == m
    for p in space:
        assert score_va(truth, combine(members, p)).p_va <= found.score[2] + 1e-9
    for single in members:
        assert score_va(truth, single).p_va <= found.score[2] + 1e-9


@given(seed=st.integers(0, 10_000), cut=st.integers(3, 37))
@settings(max_examples=30, deadline=None)
def test_statistics_of_parts_add_up(seed: int, cut: int) -> None:
    truth, members = _members(seed, 3, 40, 4)
    whole = fusion_stats(truth, members)
    parts = fusion_stats(truth[:cut], [p[:cut] for p in members]) + fusion_stats(
        truth[cut:], [p[cut:] for p in members]
    )
    assert parts.frames == whole.frames
    np.testing.assert_allclose(parts.sums, whole.sums, atol=1e-9)
    np.testing.assert_allclose(parts.products, whole.products, atol=1e-9)


@given(seed=st.integers(0, 10_000), k=st.integers(2, 4), held=st.integers(0, 3), per=st.booleans())
@settings(max_examples=30, deadline=None)
def test_nested_weights_never_see_their_own_part(seed: int, k: int, held: int, per: bool) -> None:
    """Leak detector: shuffling (or replacing) the labels of the part a search reports leaves its weights unchanged."""
    held %= k
    rng = np.random.default_rng(seed)
    parts = [_members(seed + j, 3, 30, 2) for j in range(k)]
    stats = [fusion_stats(t, ms) for t, ms in parts]
    before = nested_search(stats, 0.2, per)
    truth, ms = parts[held]
    shuffled = truth[rng.permutation(truth.shape[0])]
    after = nested_search([*stats[:held], fusion_stats(shuffled, ms), *stats[held + 1 :]], 0.2, per)
    np.testing.assert_array_equal(after[held].weights, before[held].weights)
    assert after[held].score == before[held].score


def test_refusals_name_the_problem() -> None:
    with pytest.raises(MetricError, match="sum to 1"):
        combine([A, B], np.array([0.5, 0.6]))
    with pytest.raises(MetricError, match="non-negative"):
        combine([A, B], np.array([1.5, -0.5]))
    with pytest.raises(MetricError, match="member 1: predictions of shape"):
        combine([A, B[:2]], np.array([0.5, 0.5]))
    with pytest.raises(MetricError, match="different videos"):
        combine_videos([{"x": A}, {"y": A}], np.array([0.5, 0.5]))
    with pytest.raises(MetricError, match="does not predict video 'y'"):
        fusion_stats_videos({"x": TRUTH, "y": TRUTH}, [{"x": A, "y": A}, {"x": B}])
    with pytest.raises(MetricError, match="at least 2 parts"):
        nested_search([fusion_stats(TRUTH, [A, B])])


def test_video_groups_keep_the_persons_of_a_video_together() -> None:
    videos = ["v1_left", "v1_right", "v2", "v3", "v4_left", "v4_right", "v5", "v6"]
    groups = video_groups(videos, 3)
    assert sorted(v for g in groups for v in g) == sorted(videos)
    for g in groups:
        assert ("v1_left" in g) == ("v1_right" in g) and ("v4_left" in g) == ("v4_right" in g)
    assert groups == video_groups(list(reversed(videos)), 3)
    assert video_groups(["a", "b"], 5) == [["a"], ["b"]]
