"""BDCA math (eqs. 1-6): attention rows, permutation invariance, full dependence, the dynamic-weight gate."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from models import BDCA, CrossModalAttention, DynamicWeight, apply_gates, attention_weights, cross_attention
from models import gate_weights as gates_of

SEEDS = st.integers(0, 2**16)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@settings(max_examples=30, deadline=None)
@given(seed=SEEDS, T=st.integers(1, 20), temperature=st.floats(0.05, 20.0))
def test_gate_rows_sum_to_one_and_lie_in_open_interval(seed: int, T: int, temperature: float) -> None:
    g = _gen(seed)
    x_att = torch.randn(2, T, 8, generator=g, dtype=torch.float64)
    w = torch.randn(8, 2, generator=g, dtype=torch.float64) * 0.5
    gates = gates_of(x_att, w, temperature)
    assert gates.shape == (2, T, 2)
    # Mathematically always in (0, 1); in float64 a logit gap beyond ~36 rounds the larger gate to exactly 1.
    gap = ((x_att @ w)[..., 0] - (x_att @ w)[..., 1]).abs().max().item() / temperature
    assume(gap < 30)
    torch.testing.assert_close(gates.sum(-1), torch.ones(2, T, dtype=torch.float64), rtol=0, atol=1e-12)
    assert bool((gates > 0).all() and (gates < 1).all())


@settings(max_examples=30, deadline=None)
@given(seed=SEEDS)
def test_small_temperature_approaches_a_hard_choice(seed: int) -> None:
    g = _gen(seed)
    x_att = torch.randn(1, 6, 8, generator=g, dtype=torch.float64)
    w = torch.randn(8, 2, generator=g, dtype=torch.float64)
    logits = x_att @ w
    gap = (logits[..., 0] - logits[..., 1]).abs()
    assume(bool((gap > 0.05).all()))
    hard = torch.nn.functional.one_hot(logits.argmax(-1), 2).to(torch.float64)
    torch.testing.assert_close(gates_of(x_att, w, 1e-3), hard, rtol=0, atol=1e-9)
    # Sharper with every decrease of T.
    err = [(gates_of(x_att, w, t) - hard).abs().max().item() for t in (2.0, 0.5, 0.1)]
    assert err[0] > err[1] > err[2]


@settings(max_examples=30, deadline=None)
@given(seed=SEEDS)
def test_large_temperature_approaches_half_half(seed: int) -> None:
    g = _gen(seed)
    x_att = torch.randn(1, 6, 8, generator=g, dtype=torch.float64)
    w = torch.randn(8, 2, generator=g, dtype=torch.float64)
    torch.testing.assert_close(gates_of(x_att, w, 1e6), torch.full((1, 6, 2), 0.5, dtype=torch.float64),
                               rtol=0, atol=1e-4)  # fmt: skip


def test_forced_gates_select_original_or_attended() -> None:
    g = _gen(0)
    x = torch.randn(2, 5, 8, generator=g)
    x_att = torch.randn(2, 5, 8, generator=g)
    first = torch.tensor([1.0, 0.0]).expand(2, 5, 2)
    second = torch.tensor([0.0, 1.0]).expand(2, 5, 2)
    torch.testing.assert_close(apply_gates(x, x_att, first), torch.relu(x), rtol=0, atol=0)
    torch.testing.assert_close(apply_gates(x, x_att, second), torch.relu(x_att), rtol=0, atol=0)
    half = torch.full((2, 5, 2), 0.5)
    torch.testing.assert_close(apply_gates(x, x_att, half), torch.relu(0.5 * x + 0.5 * x_att))


def test_dynamic_weight_module_follows_eqs_3_to_5() -> None:
    torch.manual_seed(1)
    dw = DynamicWeight(8, temperature=0.5).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    x_att = torch.randn(2, 5, 8, dtype=torch.float64)
    out, gates = dw(x, x_att)
    W = dw.gate.weight.T  # (8, 2) = W_gl
    G = torch.exp(x_att @ W / 0.5) / torch.exp(x_att @ W / 0.5).sum(-1, keepdim=True)
    torch.testing.assert_close(gates, G)
    torch.testing.assert_close(out, torch.relu(x * G[..., :1] + x_att * G[..., 1:]))
    assert dw.gate.bias is None


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS, Tq=st.integers(1, 12), Tk=st.integers(1, 12), padded=st.integers(0, 11))
def test_attention_rows_sum_to_one_and_padding_gets_no_weight(seed: int, Tq: int, Tk: int, padded: int) -> None:
    g = _gen(seed)
    q = torch.randn(2, Tq, 4, generator=g, dtype=torch.float64)
    k = torch.randn(2, Tk, 4, generator=g, dtype=torch.float64)
    pad = torch.zeros(2, Tk, dtype=torch.bool)
    pad[1, Tk - min(padded, Tk - 1) :] = True
    w = attention_weights(q, k, 0.5, pad)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, Tq, dtype=torch.float64), rtol=0, atol=1e-12)
    assert bool((w[pad.unsqueeze(1).expand_as(w)] == 0).all())
    v = torch.randn(2, Tk, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(cross_attention(q, k, v, 0.5, pad, use_sdpa=True), w @ v)
    torch.testing.assert_close(cross_attention(q, k, v, 0.5, pad, use_sdpa=False), w @ v)


def test_fully_padded_sample_stays_finite() -> None:
    q = torch.randn(2, 4, 8)
    pad = torch.zeros(2, 4, dtype=torch.bool)
    pad[0] = True
    for sdpa in (True, False):
        assert torch.isfinite(cross_attention(q, q, q, 0.3, pad, use_sdpa=sdpa)).all()


@pytest.mark.parametrize("use_sdpa", [True, False])
def test_vdaa_matches_eq_1_and_2(use_sdpa: bool) -> None:
    torch.manual_seed(2)
    d_v, d_a = 8, 6
    vdaa = CrossModalAttention(d_v, d_a, use_sdpa=use_sdpa).double()
    x_v = torch.randn(2, 7, d_v, dtype=torch.float64)
    x_a = torch.randn(2, 9, d_a, dtype=torch.float64)
    Q, K, V = vdaa.q(x_v), vdaa.k(x_a), vdaa.v(x_a)
    A = torch.softmax(Q @ K.transpose(1, 2) / math.sqrt(d_a), dim=-1) @ V
    torch.testing.assert_close(vdaa.attend(x_v, x_a), A)
    torch.testing.assert_close(vdaa(x_v, x_a), torch.relu(A + x_v))
    torch.testing.assert_close(vdaa.weights(x_v, x_a).sum(-1), torch.ones(2, 7, dtype=torch.float64))


@pytest.mark.parametrize("use_sdpa", [True, False])
def test_permuting_key_steps_leaves_vdaa_unchanged(use_sdpa: bool) -> None:
    torch.manual_seed(3)
    vdaa = CrossModalAttention(8, 6, use_sdpa=use_sdpa)
    x_v, x_a = torch.randn(2, 10, 8), torch.randn(2, 10, 6)
    perm = torch.randperm(10)
    torch.testing.assert_close(vdaa(x_v, x_a[:, perm]), vdaa(x_v, x_a), rtol=1e-5, atol=1e-6)


def test_each_query_step_depends_on_every_key_step() -> None:
    torch.manual_seed(4)
    vdaa = CrossModalAttention(8, 6)
    x_v = torch.randn(1, 10, 8)
    x_a = torch.randn(1, 10, 6, requires_grad=True)
    for t in (0, 4, 9):
        (grad,) = torch.autograd.grad(vdaa.attend(x_v, x_a)[0, t].sum(), x_a)
        assert bool((grad[0].abs().sum(-1) > 0).all()), t


@pytest.mark.parametrize("gated", [True, False])
def test_bdca_fused_sequence_is_eq_6(gated: bool) -> None:
    torch.manual_seed(5)
    bdca = BDCA(8, 8, temperature=0.5, gated=gated)
    x_v, x_a = torch.relu(torch.randn(2, 6, 8)), torch.relu(torch.randn(2, 6, 8))
    fused, gates = bdca(x_v, x_a)
    att_v, att_a = bdca.vdaa(x_v, x_a), bdca.adva(x_a, x_v)
    assert fused.shape == (2, 6, 16)
    if gated:
        assert gates is not None and set(gates) == {"visual", "audio"}
        torch.testing.assert_close(fused[..., :8], bdca.gate_v(x_v, att_v)[0])
        torch.testing.assert_close(fused[..., 8:], bdca.gate_a(x_a, att_a)[0])
    else:
        assert gates is None
        torch.testing.assert_close(fused, torch.cat([att_v, att_a], -1))


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match="cross-attention"):
        CrossModalAttention(8, 6)(torch.randn(1, 3, 8), torch.randn(1, 3, 5))
    with pytest.raises(ValueError, match="differ"):
        BDCA(8, 8)(torch.randn(1, 3, 8), torch.randn(1, 4, 8))


@pytest.mark.parametrize("seed", range(5))
def test_gates_respond_to_their_input(seed: int) -> None:
    """At the default initialisation the gates move with the input: frame to frame, and when either stream changes.

    Measured over seeds 0-4: the visual G_1 varies over frames with std 0.13-0.21; tripling the visual stream moves
    it by 0.14-0.18 on average, replacing the audio stream (its keys and values) by 0.05-0.10; the audio gates by
    0.26-0.35. The bounds below are about half of the smallest.
    """
    torch.manual_seed(seed)
    bdca = BDCA(16, 16).eval()
    g = _gen(seed)
    x_v, x_a = torch.relu(torch.randn(2, 40, 16, generator=g)), torch.relu(torch.randn(2, 40, 16, generator=g))
    other_a = torch.relu(torch.randn(2, 40, 16, generator=g)) * 3
    with torch.no_grad():
        _, base = bdca(x_v, x_a)
        _, new_audio = bdca(x_v, other_a)
        _, new_visual = bdca(x_v * 3, x_a)
    assert base["visual"][..., 1].std().item() > 0.06  # not one value for every frame
    assert (new_visual["visual"] - base["visual"]).abs().mean().item() > 0.07
    assert (new_audio["visual"] - base["visual"]).abs().mean().item() > 0.02  # through VDAA's keys and values
    assert (new_audio["audio"] - base["audio"]).abs().mean().item() > 0.1


def test_gates_learn_to_select_either_side() -> None:
    """A gate that cannot move fails: trained on two kinds of frames, it opens for one and closes for the other."""
    torch.manual_seed(0)
    dw = DynamicWeight(16, temperature=0.5)
    g = _gen(0)
    x = torch.relu(torch.randn(1, 64, 16, generator=g))
    x_att = torch.relu(torch.randn(1, 64, 16, generator=g))
    x_att[:, :32, :8] += 1.0  # kind A: take the cross-attended features
    x_att[:, 32:, 8:] += 1.0  # kind B: keep the original ones
    target = torch.cat([torch.ones(32), torch.zeros(32)])
    opt = torch.optim.Adam(dw.parameters(), lr=0.05)
    for _ in range(100):
        _, gates = dw(x, x_att)
        loss = ((gates[0, :, 1] - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        g1 = dw(x, x_att)[1][0, :, 1]
    assert g1[:32].min().item() > 0.9 and g1[32:].max().item() < 0.1
