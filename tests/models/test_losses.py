"""The torch CCC equals the challenge's numpy CCC; the loss is 1 - mean CCC over valid frames; gradients check."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models import ccc, ccc_loss, va_ccc
from submissions.metrics import ccc as numpy_ccc


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 300),
    seed=st.integers(0, 2**16),
    scale=st.floats(1e-3, 1e3),
    shift=st.floats(-10, 10),
    corr=st.floats(-1, 1),
)
def test_torch_ccc_equals_numpy_ccc(n: int, seed: int, scale: float, shift: float, corr: float) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=n)
    pred = corr * truth + scale * rng.normal(size=n) + shift
    ours = ccc(torch.from_numpy(truth), torch.from_numpy(pred)).item()
    assert ours == pytest.approx(numpy_ccc(truth, pred), abs=1e-10)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(4, 200), seed=st.integers(0, 2**16))
def test_masked_ccc_equals_numpy_on_the_kept_frames(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth, pred = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
    keep = rng.uniform(size=n) < 0.7
    keep[:2] = True
    t = torch.from_numpy(np.where(keep, truth, np.nan))  # dropped frames may hold anything, NaN included
    p = torch.from_numpy(np.where(keep, pred, -5.0))
    ours = ccc(t, p, torch.from_numpy(keep)).item()
    assert ours == pytest.approx(numpy_ccc(truth[keep], pred[keep]), abs=1e-10)


def test_population_variance_by_hand() -> None:
    # means 0.5 and 1; population variances 0.25 and 1; covariance 0.5: 2 * 0.5 / (0.25 + 1 + 0.25) = 2/3.
    value = ccc(torch.tensor([0.0, 1.0], dtype=torch.float64), torch.tensor([0.0, 2.0], dtype=torch.float64))
    assert value.item() == pytest.approx(2.0 / 3.0, abs=1e-15)


def test_loss_is_one_minus_mean_ccc_over_flattened_valid_frames() -> None:
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(3, 50, 2, generator=g, dtype=torch.float64) * 2 - 1
    target = torch.rand(3, 50, 2, generator=g, dtype=torch.float64) * 2 - 1
    mask = torch.rand(3, 50, generator=g) < 0.8
    loss = ccc_loss(pred, target, mask, eps=0.0)
    flat = mask.reshape(-1).numpy()
    p, t = pred.reshape(-1, 2).numpy()[flat], target.reshape(-1, 2).numpy()[flat]
    expected = 1 - (numpy_ccc(t[:, 0], p[:, 0]) + numpy_ccc(t[:, 1], p[:, 1])) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    assert loss.item() == pytest.approx(1 - va_ccc(pred, target, mask).mean().item(), abs=1e-15)
    # (B, T, 2) and (N, 2) give the same loss; the default eps changes it only negligibly.
    assert ccc_loss(pred.reshape(-1, 2), target.reshape(-1, 2), mask.reshape(-1), eps=0.0).item() == pytest.approx(
        loss.item(), abs=1e-15
    )
    assert ccc_loss(pred, target, mask).item() == pytest.approx(loss.item(), abs=1e-6)


def test_loss_extremes() -> None:
    target = torch.linspace(-1, 1, 40, dtype=torch.float64).reshape(20, 2)
    target = target - target.mean(dim=0)  # zero-mean columns: -target has CCC exactly -1
    assert ccc_loss(target, target, eps=0.0).item() == pytest.approx(0.0, abs=1e-15)
    assert ccc_loss(-target, target, eps=0.0).item() == pytest.approx(2.0, abs=1e-15)


def test_loss_on_an_imperfect_predictor_by_hand() -> None:
    # Valence: truth (-1, 0, 1), prediction 0.5 truth + 0.5 = (0, 0.5, 1): means 0 and 0.5, population variances
    # 2/3 and 1/6, covariance 1/3, so CCC = (2/3) / (2/3 + 1/6 + 1/4) = 8/13. Arousal predicted exactly: CCC 1.
    # The loss is 1 - (8/13 + 1) / 2 = 5/26; MSE would be (1 + 1/4 + 0) / 6 = 5/24, another number (where both
    # are 0, on a perfect predictor, a test cannot tell them apart).
    truth = torch.tensor([[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    pred = torch.stack([0.5 * truth[:, 0] + 0.5, truth[:, 1]], dim=1)
    assert va_ccc(pred, truth).tolist() == pytest.approx([8 / 13, 1.0], abs=1e-15)
    assert ccc_loss(pred, truth, eps=0.0).item() == pytest.approx(5 / 26, abs=1e-15)
    assert torch.mean((pred - truth) ** 2).item() == pytest.approx(5 / 24, abs=1e-15)


def test_constant_batch_gives_nan_without_eps_and_finite_with_it() -> None:
    const = torch.zeros(10, 2, dtype=torch.float64)
    assert torch.isnan(ccc(const[:, 0], const[:, 0]))
    assert torch.isfinite(ccc_loss(const, const))


def test_gradcheck_float64() -> None:
    g = torch.Generator().manual_seed(1)
    pred = (torch.rand(2, 6, 2, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    target = torch.rand(2, 6, 2, generator=g, dtype=torch.float64) * 2 - 1
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    assert torch.autograd.gradcheck(lambda p: ccc_loss(p, target, mask), (pred,))
    assert torch.autograd.gradcheck(lambda p: ccc(target[..., 0], p[..., 0], mask, eps=0.0), (pred,))


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        ccc(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        ccc_loss(torch.zeros(3, 3), torch.zeros(3, 3))
