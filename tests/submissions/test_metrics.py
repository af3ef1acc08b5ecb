"""CCC exactly as the challenge scores it: properties, edge cases, agreement with independent implementations."""

from __future__ import annotations

import math

import audmetric
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from submissions import MetricError
from submissions.metrics import annotated_mask, ccc, score_va

finite = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False, width=64)


def series(n_min: int = 2, n_max: int = 60):
    return st.integers(n_min, n_max).flatmap(lambda n: st.tuples(arrays(np.float64, n, elements=finite),
                                                                 arrays(np.float64, n, elements=finite)))


def nonconstant(x: np.ndarray) -> bool:
    return float(np.var(x)) > 1e-6


def textbook_ccc(x: np.ndarray, y: np.ndarray) -> float:
    """Lin (1989) written from the definition with Python floats (an independent implementation)."""
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sx = sum((a - mx) ** 2 for a in x) / n
    sy = sum((b - my) ** 2 for b in y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / n
    return 2 * sxy / (sx + sy + (mx - my) ** 2)


@given(series())
def test_symmetry(xy):
    x, y = xy
    assume(nonconstant(x) or nonconstant(y))
    assert ccc(x, y) == pytest.approx(ccc(y, x), abs=1e-12)


@given(arrays(np.float64, st.integers(2, 60), elements=finite))
def test_self_agreement_is_one(x):
    assume(nonconstant(x))
    assert ccc(x, x) == pytest.approx(1.0, abs=1e-12)


@given(series())
def test_bounds_and_below_pearson(xy):
    x, y = xy
    assume(nonconstant(x) and nonconstant(y))
    c = ccc(x, y)
    assert -1.0 <= c <= 1.0
    pearson = float(np.corrcoef(x, y)[0, 1])
    assert abs(c) <= abs(pearson) + 1e-9


@given(series(), st.floats(-5, 5), st.floats(0.1, 10))
def test_invariant_under_shared_shift_and_scale(xy, shift, scale):
    x, y = xy
    assume(nonconstant(x) and nonconstant(y))
    assert ccc(x * scale + shift, y * scale + shift) == pytest.approx(ccc(x, y), abs=1e-9)


@given(arrays(np.float64, st.integers(2, 60), elements=finite), st.floats(0.01, 3.0), st.booleans())
def test_bias_lowers_ccc(x, b, negative):
    assume(nonconstant(x))
    b = -b if negative else b
    assert ccc(x, x + b) < 1.0


@settings(max_examples=50)
@given(st.integers(0, 10_000), st.integers(2, 500))
def test_agrees_with_textbook_and_audmetric(seed, n):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, n)
    y = 0.5 * x + rng.normal(0, 0.3, n) + rng.uniform(-0.3, 0.3)
    ours = ccc(x, y)
    assert ours == pytest.approx(textbook_ccc(list(x), list(y)), abs=1e-10)
    assert ours == pytest.approx(float(audmetric.concordance_cc(x, y)), abs=1e-10)


def test_known_value():
    # x = [1,2,3], y = [2,3,4]: var 2/3 each, cov 2/3, mean gap 1 -> 2*(2/3) / (4/3 + 1) = 4/7.
    assert ccc([1, 2, 3], [2, 3, 4]) == pytest.approx(4 / 7, abs=1e-15)


@pytest.mark.parametrize(
    ("truth", "pred", "match"),
    [
        ([0.1, 0.2, 0.3], [0.1, 0.2], "length mismatch"),
        ([0.1], [0.2], "at least 2 frames"),
        ([], [], "at least 2 frames"),
        ([0.1, np.nan], [0.1, 0.2], "NaN or inf"),
        ([0.1, 0.2], [0.1, np.inf], "NaN or inf"),
        ([[0.1, 0.2]], [[0.1, 0.2]], "one-dimensional"),
    ],
)
def test_undefined_inputs_raise(truth, pred, match):
    with pytest.raises(MetricError, match=match):
        ccc(truth, pred)


def test_constant_series_documented():
    assert math.isnan(ccc([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]))  # both constant and equal: undefined
    assert ccc([0.5, 0.5], [0.1, 0.1]) == 0.0  # constant but apart: no covariance
    assert ccc([0.1, 0.9], [0.5, 0.5]) == 0.0


def test_score_drops_minus_five_in_either_column_and_is_global():
    labels = np.array([[0.1, 0.2], [-5, 0.3], [0.3, -5], [0.5, 0.6], [0.7, 0.1], [-5, -5]])
    preds = np.array([[0.2, 0.1], [0.9, 0.9], [0.9, 0.9], [0.4, 0.5], [0.6, 0.3], [0.0, 0.0]])
    s = score_va(labels, preds)
    keep = [0, 3, 4]
    assert s.frames == 3 and s.dropped == 3
    assert s.ccc_v == pytest.approx(ccc(labels[keep, 0], preds[keep, 0]))
    assert s.ccc_a == pytest.approx(ccc(labels[keep, 1], preds[keep, 1]))
    assert s.p_va == pytest.approx((s.ccc_v + s.ccc_a) / 2)
    assert annotated_mask(labels).tolist() == [True, False, False, True, True, False]


def test_global_score_differs_from_mean_of_videos():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(-1, 1, (50, 2)), rng.uniform(-1, 1, (50, 2))
    pa, pb = a + 0.5, b - 0.5
    glob = score_va(np.concatenate([a, b]), np.concatenate([pa, pb])).p_va
    mean = (score_va(a, pa).p_va + score_va(b, pb).p_va) / 2
    assert abs(glob - mean) > 1e-3


def test_score_shape_mismatch():
    with pytest.raises(MetricError, match="shape mismatch"):
        score_va(np.zeros((3, 2)), np.zeros((4, 2)))
