"""The byte-mask dropout: rate, expectation, gradient, reproducibility, and eval identity."""

from __future__ import annotations

import pytest
import torch

from models.dropout import ByteDropout, byte_dropout, relu_dropout


@pytest.mark.parametrize("p", [0.05, 0.1, 0.5, 0.9])
def test_drop_rate_and_scale(p: float) -> None:
    torch.manual_seed(0)
    x = torch.ones(1_000_003)  # odd size: the last int64 word is only partly used
    y = byte_dropout(x, p)
    q = round(256 * p) / 256  # the quantised probability
    dropped = (y == 0).double().mean().item()
    assert dropped == pytest.approx(q, abs=5 * (q * (1 - q) / x.numel()) ** 0.5)
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - q)))
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)


def test_gradient_is_the_scaled_mask() -> None:
    torch.manual_seed(1)
    x = torch.randn(4, 50, 3, requires_grad=True)
    y = byte_dropout(x, 0.25)
    y.sum().backward()
    mask = (y != 0).float() / (1 - 64 / 256)
    torch.testing.assert_close(x.grad, mask)


def test_reproducible_with_the_seed_and_different_without() -> None:
    x = torch.randn(1000)
    torch.manual_seed(5)
    a = byte_dropout(x, 0.3)
    torch.manual_seed(5)
    b = byte_dropout(x, 0.3)
    c = byte_dropout(x, 0.3)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_eval_and_zero_rate_are_identity() -> None:
    x = torch.randn(7, 9)
    m = ByteDropout(0.5).eval()
    assert m(x) is x
    assert byte_dropout(x, 0.0) is x
    assert byte_dropout(x, 0.001) is x  # rounds to 0/256
    with pytest.raises(ValueError):
        ByteDropout(1.0)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_relu_dropout_is_byte_dropout_of_relu_with_the_same_draws(p: float) -> None:
    x = torch.randn(3, 41, 5, dtype=torch.float64)
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    torch.manual_seed(9)
    ya = byte_dropout(torch.relu(a), p)
    torch.manual_seed(9)
    yb = relu_dropout(b, p)
    assert torch.equal(ya, yb)
    g = torch.randn_like(ya)
    ya.backward(g)
    yb.backward(g)
    assert torch.equal(a.grad, b.grad)


def test_relu_dropout_without_dropout_is_relu_and_inplace_only_when_asked() -> None:
    x = torch.randn(6, 7)
    assert torch.equal(relu_dropout(x, 0.3, training=False), torch.relu(x)) and (x < 0).any()
    y = x.clone()
    out = relu_dropout(y, 0.0, inplace=True)
    assert out.data_ptr() == y.data_ptr() and torch.equal(out, torch.relu(x))
    with pytest.raises(ValueError):
        relu_dropout(x, 1.0)
