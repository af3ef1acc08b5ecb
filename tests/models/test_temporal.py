"""The stage-2 temporal model: every Table IV variant, shapes, gradients, determinism, batching and padding, the
returned gates, and windows of a long sequence computed with their shared TCN work (`forward_windows`)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models import (
    FUSIONS,
    TCN,
    AVTemporalModel,
    ModelError,
    TemporalBlock,
    create_model,
    list_models,
    tap_sum,
    tap_weights,
)

SMALL = {"visual_dim": 24, "audio_dim": 10, "tcn_channels": 16, "num_heads": 2, "dim_feedforward": 32,
         "head_hidden": 8}  # fmt: skip
TEMPORAL = list_models("temporal")


def _inputs(B: int, T: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, 24, generator=g), torch.randn(B, T, 10, generator=g)


def test_every_table_iv_row_is_registered_as_one_class() -> None:
    assert set(TEMPORAL) == set(FUSIONS) == {"audio_only", "visual_only", "concat", "bdca_no_dw", "bdca"}
    for name in TEMPORAL:
        m = create_model(name, **SMALL)
        assert type(m) is AVTemporalModel and m.config.fusion == name
    assert create_model("visual_only", **SMALL).audio_tcn is None
    assert create_model("audio_only", **SMALL).visual_tcn is None
    assert create_model("concat", **SMALL).bdca is None
    assert create_model("bdca_no_dw", **SMALL).bdca.gate_v is None
    assert create_model("bdca", **SMALL).bdca.gate_v is not None


@pytest.mark.parametrize("name", TEMPORAL)
@pytest.mark.parametrize("T", [1, 7, 300])
def test_shape_range_and_finiteness(name: str, T: int) -> None:
    torch.manual_seed(0)
    m = create_model(name, **SMALL)
    v, a = _inputs(2, T)
    out = m(v * 5, a * 5)
    assert out.shape == (2, T, 2)
    assert torch.isfinite(out).all() and out.abs().max() <= 1.0


@pytest.mark.parametrize("name", TEMPORAL)
def test_gradients_reach_every_trainable_parameter(name: str) -> None:
    torch.manual_seed(1)
    m = create_model(name, **SMALL)
    v, a = _inputs(3, 20)
    m(v, a).square().sum().backward()
    assert list(m.named_parameters()), "the loop below checks nothing"
    for pname, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", TEMPORAL)
def test_same_seed_same_output(name: str) -> None:
    v, a = _inputs(2, 15)
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        m = create_model(name, **SMALL).train()  # dropout active: the seed must fix it too
        outs.append(m(v, a))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


@pytest.mark.parametrize("name", TEMPORAL)
def test_batch_of_one_equals_a_row_of_the_batch(name: str) -> None:
    torch.manual_seed(2)
    m = create_model(name, **SMALL).eval()
    v, a = _inputs(4, 30)
    with torch.no_grad():
        full = m(v, a)
        row = m(v[2:3], a[2:3])
    torch.testing.assert_close(row[0], full[2], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", TEMPORAL)
def test_padding_leaves_valid_frames_as_if_unpadded(name: str) -> None:
    torch.manual_seed(3)
    m = create_model(name, **SMALL).eval()
    v, a = _inputs(2, 40)
    pad = torch.zeros(2, 40, dtype=torch.bool)
    pad[1, 25:] = True
    noisy_v, noisy_a = v.clone(), a.clone()
    noisy_v[1, 25:] = 1e3  # whatever sits in padded frames must not leak into valid ones
    noisy_a[1, 25:] = -1e3
    with torch.no_grad():
        padded = m(noisy_v, noisy_a, pad)
        alone = m(v[1:2, :25], a[1:2, :25])
        unpadded_row0 = m(v[:1], a[:1])
    torch.testing.assert_close(padded[1, :25], alone[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(padded[0], unpadded_row0[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", TEMPORAL)
def test_fully_padded_sample_is_finite(name: str) -> None:
    m = create_model(name, **SMALL).train()
    v, a = _inputs(2, 9)
    pad = torch.zeros(2, 9, dtype=torch.bool)
    pad[0] = True
    out = m(v, a, pad)
    assert torch.isfinite(out).all()


def test_single_modality_models_ignore_the_other_input() -> None:
    torch.manual_seed(4)
    v, a = _inputs(2, 12)
    vis = create_model("visual_only", **SMALL).eval()
    aud = create_model("audio_only", **SMALL).eval()
    with torch.no_grad():
        torch.testing.assert_close(vis(v, a), vis(v, torch.randn(2, 12, 10)), rtol=0, atol=0)
        torch.testing.assert_close(vis(v, a), vis(v, torch.zeros(2, 12, 0)), rtol=0, atol=0)
        torch.testing.assert_close(aud(v, a), aud(torch.randn(2, 12, 24), a), rtol=0, atol=0)


def test_gates_are_returned_for_bdca_only() -> None:
    torch.manual_seed(5)
    v, a = _inputs(2, 11)
    m = create_model("bdca", **SMALL).eval()
    out, gates = m.forward_with_gates(v, a)
    torch.testing.assert_close(out, m(v, a), rtol=0, atol=0)  # the predictions are forward's
    assert set(gates) == {"visual", "audio"}
    for g in gates.values():
        assert g.shape == (2, 11, 2) and g.requires_grad  # in the graph, like the predictions
        torch.testing.assert_close(g.sum(-1), torch.ones(2, 11))
        assert bool(((g > 0) & (g < 1)).all())
    assert not hasattr(m, "last_gates")  # returned, not left on the module
    for name in ("concat", "bdca_no_dw", "visual_only", "audio_only"):
        other = create_model(name, **SMALL).eval()
        out, gates = other.forward_with_gates(v, a)
        assert gates is None
        torch.testing.assert_close(out, other(v, a), rtol=0, atol=0)


def test_transformer_width_override_adds_a_projection() -> None:
    m = create_model("bdca", d_model=48, num_heads=4, **{k: v for k, v in SMALL.items() if k != "num_heads"})
    assert isinstance(m.proj, torch.nn.Linear) and m.proj.in_features == 32 and m.proj.out_features == 48
    assert m(*_inputs(1, 5)).shape == (1, 5, 2)
    no_encoder = create_model("concat", num_layers=0, **SMALL)
    assert no_encoder.encoder is None and no_encoder(*_inputs(1, 5)).shape == (1, 5, 2)


def test_paper_dimensions() -> None:
    with torch.device("meta"):
        m = create_model("bdca")
    assert m.config.visual_dim == 1024 and m.config.audio_dim == 190 and m.config.tcn_channels == 128
    assert m.config.model_dim == 256 and m.config.num_layers == 2 and m.config.temperature == 0.5
    assert len(m.visual_tcn.blocks) == 4 and m.visual_tcn.receptive_field == 61


def test_input_shape_errors_are_clear() -> None:
    m = create_model("bdca", **SMALL)
    v, a = _inputs(2, 8)
    with pytest.raises(ModelError, match=r"visual input must have shape \(2, 8, 24\), got \(2, 8, 23\)"):
        m(torch.randn(2, 8, 23), a)
    with pytest.raises(ModelError, match=r"audio input must have shape \(2, 8, 10\)"):
        m(v, a[:, :7])
    with pytest.raises(ModelError, match="pad_mask"):
        m(v, a, torch.zeros(2, 7, dtype=torch.bool))


def test_tcn_is_non_causal_with_the_documented_receptive_field() -> None:
    torch.manual_seed(6)
    tcn = TCN(6, channels=32, dilations=(1, 2, 4, 8), dropout=0.0)
    assert tcn.receptive_field == 61
    x = torch.randn(1, 101, 6, requires_grad=True)
    (grad,) = torch.autograd.grad(tcn(x)[0, 50].sum(), x)
    reach = grad[0].abs().sum(-1) > 0  # (T,)
    assert bool(reach[20:81].all()), "every frame within +-30 (past and future) influences frame 50"
    assert not bool(reach[:20].any()) and not bool(reach[81:].any())


@settings(max_examples=40, deadline=None)
@given(
    k=st.sampled_from([1, 3, 5]),
    dilation=st.integers(1, 6),
    T=st.integers(1, 14),
    c_in=st.integers(1, 5),
    c_out=st.integers(1, 4),
    extra=st.integers(0, 3),
)
def test_tap_sum_of_per_tap_products_is_a_centred_conv1d(
    k: int, dilation: int, T: int, c_in: int, c_out: int, extra: int
) -> None:
    torch.manual_seed(k * 100 + T)
    conv = torch.nn.Conv1d(c_in, c_out, k, padding=dilation * (k - 1) // 2, dilation=dilation).double()
    x = torch.randn(2, T, c_in, dtype=torch.float64)
    tail = torch.randn(2, T, extra, dtype=torch.float64)
    y = torch.cat([x @ tap_weights(conv).T, tail], dim=-1)  # (B, T, k C_out + E)
    out, passed = tap_sum(y, conv.bias, k, dilation, c_out)
    torch.testing.assert_close(out, conv(x.transpose(1, 2)).transpose(1, 2))
    assert torch.equal(passed, tail)


def test_tap_sum_gradients() -> None:
    y = torch.randn(2, 9, 3 * 4 + 2, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(4, dtype=torch.float64, requires_grad=True)
    for dilation in (1, 3, 9):
        assert torch.autograd.gradcheck(lambda y, b, d=dilation: tap_sum(y, b, 3, d, 4), (y, bias))
        assert torch.autograd.gradcheck(lambda y, b, d=dilation: tap_sum(y, b, 3, d, 4)[0], (y, bias))


def _starts(n: int, length: int, stride: int) -> list[int]:
    """Windows every `stride` frames plus one aligned to the end (`harness.data.windows.window_starts` for n >=
    length)."""
    return sorted(set(range(0, n - length + 1, stride)) | {n - length})


def _each_window(m: AVTemporalModel, v: torch.Tensor, a: torch.Tensor, starts: list[int], length: int) -> torch.Tensor:
    """The plain windowed forward: the windows stacked, with the all-False pad mask whole-video prediction passes."""
    wv = torch.stack([v[s : s + length] for s in starts])  # (W, L, Dv)
    wa = torch.stack([a[s : s + length] for s in starts])  # (W, L, Da)
    return m(wv, wa, torch.zeros(len(starts), length, dtype=torch.bool))  # (W, L, 2)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(TEMPORAL), n=st.integers(1, 90), data=st.data())
def test_forward_windows_equals_forward_on_each_window(name: str, n: int, data) -> None:
    """Every registered temporal model: the shared computation gives each window's own predictions (to 1e-6), with
    windows long enough to share (length >= 2 edges) and not, stride == length, a single window."""
    length = data.draw(st.integers(1, n), label="length")
    stride = data.draw(st.integers(1, length), label="stride")
    dilations = data.draw(st.sampled_from([(1,), (1, 2), (1, 2, 4)]), label="dilations")
    kernel = data.draw(st.sampled_from([1, 3, 5]), label="kernel")
    batch = data.draw(st.integers(1, 5), label="batch")
    torch.manual_seed(n)
    m = create_model(name, **{**SMALL, "tcn_dilations": dilations, "tcn_kernel": kernel}).eval()
    v, a = (x[0] for x in _inputs(1, n, seed=n))  # (N, Dv), (N, Da)
    starts = _starts(n, length, stride)
    with torch.inference_mode():
        got = m.forward_windows(v, a, starts, length, batch)
        want = _each_window(m, v, a, starts, length)
    assert got.shape == (len(starts), length, 2)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", TEMPORAL)
def test_forward_windows_shares_the_tcns_at_the_paper_stride(name: str) -> None:
    """300/200-like windows (scaled down) with the paper's four dilations: the TCNs' whole-sequence outputs are
    used inside each window and only its ends are recomputed; still each window's own predictions."""
    torch.manual_seed(8)
    m = create_model(name, **SMALL).eval()
    v, a = (x[0] for x in _inputs(1, 400, seed=8))
    starts = _starts(400, 90, 60)
    tcn = m.visual_tcn or m.audio_tcn
    assert tcn.edge == 30 and 2 * tcn.edge <= 90  # the shared path
    with torch.inference_mode():
        torch.testing.assert_close(m.forward_windows(v, a, starts, 90, 4), _each_window(m, v, a, starts, 90),
                                   rtol=0, atol=1e-6)  # fmt: skip
        x = v if m.visual_tcn is not None else a
        outs = tcn.forward_windows(x, starts, 90)
        alone = tcn(torch.stack([x[s : s + 90] for s in starts]))  # (W, L, C)
        torch.testing.assert_close(outs.windows(0, len(starts)), alone, rtol=0, atol=1e-6)
        torch.testing.assert_close(outs.windows(2, 5), alone[2:5], rtol=0, atol=1e-6)
        # Away from its ends a window's TCN output is the whole sequence's.
        torch.testing.assert_close(alone[1, 30:60], outs.full[starts[1] + 30 : starts[1] + 60], rtol=0, atol=1e-6)


def test_forward_windows_refuses_training_mode_and_windows_outside() -> None:
    m = create_model("bdca", **SMALL)
    v, a = (x[0] for x in _inputs(1, 50))
    with pytest.raises(ModelError, match="eval mode"):
        m.train().forward_windows(v, a, [0], 50)
    m.eval()
    with pytest.raises(ModelError, match="do not fit"):
        m.forward_windows(v, a, [0, 10], 45)
    with pytest.raises(ModelError, match=r"visual input must have shape \(1, 50, 24\)"):
        m.forward_windows(v[:, :20], a, [0], 50)
    with pytest.raises(ValueError, match="shorter than"):
        m.visual_tcn.forward_windows(v, [0], 40)  # 2 edges = 60 frames
    with pytest.raises(ValueError, match="outside"):
        m.visual_tcn.forward_windows(torch.randn(100, 24), [50], 61)
    assert m.forward_windows(v, a, [], 50).shape == (0, 50, 2)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 120), frames=st.integers(1, 40), dilation=st.integers(1, 4))
def test_a_block_over_a_long_sequence_in_calls_is_its_forward(n: int, frames: int, dilation: int) -> None:
    torch.manual_seed(n)
    blk = TemporalBlock(6, 8, 3, dilation, 0.1).eval()
    x = torch.randn(n, 6)
    with torch.no_grad():
        torch.testing.assert_close(blk.forward_long(x, frames), blk(x[None])[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["bdca", "audio_only"])
def test_forward_windows_in_short_calls(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole-sequence passes and the Transformer in calls of a few frames (`PASS_FRAMES`): the same windows."""
    import models.tcn
    import models.temporal

    torch.manual_seed(9)
    m = create_model(name, **{**SMALL, "tcn_dilations": (1, 2)}).eval()
    v, a = (x[0] for x in _inputs(1, 200, seed=9))
    starts = _starts(200, 30, 17)
    with torch.inference_mode():
        want = _each_window(m, v, a, starts, 30)
        monkeypatch.setattr(models.tcn, "PASS_FRAMES", 25)
        monkeypatch.setattr(models.temporal, "PASS_FRAMES", 25)  # one window per Transformer call
        torch.testing.assert_close(m.forward_windows(v, a, starts, 30, 16), want, rtol=0, atol=1e-6)
