"""The rival fusion models (`models.zoo`): BDCA's contract (shape, range, padding, gradients, learning from both
streams) for each, and one test per distinctive equation."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models import ModelConfigError, ModelError, create_model, list_models
from models.encoder import encoder_forward
from models.losses import va_ccc
from models.zoo import ZOO, CrossmodalLayer, joint_correlation, modality_attention, ssm_backend
from models.zoo.mamba import MambaSSM, mamba_layer
from models.zoo.tcn_transformer import positions

NAMES = list(ZOO)
DV, DA = 12, 6
SMALL: dict[str, dict] = {
    "lfan": {"attn_dim": 8},
    "jca": {"attn_dim": 8},
    "rjca": {"attn_dim": 8},
    "dca": {"attn_dim": 8},
    "mult": {"d_model": 16, "num_heads": 2, "dim_feedforward": 32, "conv_kernel": 3},
    "mamba_va": {"layers": 2, "d_state": 4},
    "tcn_transformer": {"num_heads": 2, "dim_feedforward": 32},
}
"""Per-model small sizes (the zoo's configs differ in their fields)."""


def _model(name: str, seed: int = 0, **overrides: object) -> torch.nn.Module:
    torch.manual_seed(seed)
    kw = {"visual_dim": DV, "audio_dim": DA, "tcn_channels": 8, "head_hidden": 8, **SMALL[name], **overrides}
    if name != "mult":
        kw.setdefault("tcn_dilations", (1, 2))
    return create_model(name, **kw)


def _inputs(B: int, T: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, DV, generator=g), torch.randn(B, T, DA, generator=g)


def test_the_seven_rivals_are_registered_with_citations() -> None:
    assert NAMES == ["lfan", "jca", "rjca", "dca", "mult", "mamba_va", "tcn_transformer"]
    assert list_models("zoo") == NAMES
    for name in NAMES:
        assert type(create_model(name, visual_dim=DV, audio_dim=DA, **SMALL[name])) is ZOO[name].model
        assert "et al." in ZOO[name].citation or "&" in ZOO[name].citation


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("T", [1, 7, 40])
def test_shape_range_and_finiteness(name: str, T: int) -> None:
    m = _model(name)
    v, a = _inputs(2, T)
    out = m(v * 5, a * 5)
    assert out.shape == (2, T, 2)
    assert torch.isfinite(out).all() and out.abs().max() <= 1.0


@pytest.mark.parametrize("name", NAMES)
def test_padded_frames_are_never_attended(name: str) -> None:
    """Valid frames come out the same whatever the padded frames hold, and as for the sequence cut at its end."""
    m = _model(name).eval()
    v, a = _inputs(3, 30)
    pad = torch.zeros(3, 30, dtype=torch.bool)
    pad[0, 21:] = True
    pad[2, 5:] = True
    out = m(v, a, pad)
    g = torch.Generator().manual_seed(9)
    v2 = torch.where(pad[..., None], torch.randn(v.shape, generator=g) * 100, v)
    a2 = torch.where(pad[..., None], torch.randn(a.shape, generator=g) * 100, a)
    out2 = m(v2, a2, pad)
    assert torch.allclose(out[~pad], out2[~pad], atol=1e-5)
    assert torch.allclose(out[0, :21], m(v[:1, :21], a[:1, :21])[0], atol=1e-5)
    assert torch.allclose(out[2, :5], m(v[2:, :5], a[2:, :5])[0], atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_fully_padded_sample_is_finite(name: str) -> None:
    m = _model(name).eval()
    v, a = _inputs(2, 9)
    pad = torch.zeros(2, 9, dtype=torch.bool)
    pad[1] = True
    assert torch.isfinite(m(v, a, pad)).all()


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name: str) -> None:
    m = _model(name)
    v, a = _inputs(3, 20)
    pad = torch.zeros(3, 20, dtype=torch.bool)
    pad[1, 15:] = True
    m(v, a, pad).pow(2).sum().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


@pytest.mark.parametrize("name", NAMES)
def test_learns_a_target_that_needs_both_streams(name: str) -> None:
    """Valence is read from the visual stream, arousal from the audio: both CCCs high needs both streams."""
    m = _model(name, dropout=0.0)
    if name != "mult":
        m = _model(name, dropout=0.0, tcn_dropout=0.0)
    g = torch.Generator().manual_seed(3)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)

    def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        v = torch.randn(8, 24, DV, generator=g)
        a = torch.randn(8, 24, DA, generator=g)
        y = torch.stack([torch.tanh(v[..., 0]), torch.tanh(a[..., 0])], dim=-1) * 0.8  # (B, T, 2)
        return v, a, y

    for _ in range(150):
        v, a, y = batch()
        loss = 1 - va_ccc(m(v, a), y).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    v, a, y = batch()
    with torch.no_grad():
        ccc = va_ccc(m(v, a), y)
    assert ccc[0] > 0.7 and ccc[1] > 0.7, ccc
    # The audio stream carries the arousal: shuffled across the batch, the arousal CCC falls.
    with torch.no_grad():
        shuffled = va_ccc(m(v, a.roll(1, dims=0)), y)
    assert shuffled[1] < ccc[1] - 0.3, (ccc, shuffled)


def test_inputs_of_the_wrong_shape_and_inner_padding_are_clear_errors() -> None:
    m = _model("jca")
    v, a = _inputs(2, 10)
    with pytest.raises(ModelError, match=r"visual \(B, T, 12\)"):
        m(v[..., :5], a)
    with pytest.raises(ModelError, match="pad_mask"):
        m(v, a, torch.zeros(2, 9, dtype=torch.bool))
    inner = torch.zeros(2, 10, dtype=torch.bool)
    inner[0, 3] = True
    for name in ("rjca", "mamba_va"):
        with pytest.raises(ModelError, match="at the end"):
            _model(name)(v, a, inner)


# -- one test per distinctive equation ---------------------------------------------------------------------------


def test_lfan_attention_runs_across_modalities_not_time() -> None:
    m = _model("lfan").eval()
    x_v, x_a = torch.randn(2, 10, 8), torch.randn(2, 10, 8)
    w = m.weights(x_v, x_a)
    assert w.shape == (2, 10, 2, 2)  # one 2 x 2 matrix (visual, audio tokens) per frame
    assert torch.allclose(w.sum(-1), torch.ones(2, 10, 2))  # each modality token's row over the modalities
    f = m.follower(x_v, x_a)
    x_v2 = x_v.clone()
    x_v2[:, 4] += 3.0  # another frame's features
    f2 = m.follower(x_v2, x_a)
    changed = (f - f2).abs().amax(dim=(0, 2)) > 1e-6
    assert changed.tolist() == [t == 4 for t in range(10)]
    # The leader joins unattended: the head reads [e_v ; f].
    e = torch.stack([x_v, x_a], dim=2)
    manual = torch.softmax(m.q(e) @ m.k(e).transpose(-1, -2) / m.q.out_features**0.5, dim=-1)
    assert torch.allclose(modality_attention(m.q(e), m.k(e)), manual, atol=1e-6)


def test_jca_joint_correlation_uses_both_modalities() -> None:
    m = _model("jca").eval()
    jca = m.jca
    x_v, x_a = torch.randn(2, 6, 8), torch.randn(2, 6, 8)
    c_v, c_a = jca.correlations(x_v, x_a)
    j = torch.cat([x_a, x_v], dim=-1)  # J = [X_a ; X_v]
    assert torch.allclose(c_a, torch.tanh(x_a @ jca.audio.w_j @ j.transpose(1, 2) / 16**0.5), atol=1e-6)
    assert torch.allclose(c_v, torch.tanh(x_v @ jca.visual.w_j @ j.transpose(1, 2) / 16**0.5), atol=1e-6)
    assert c_a.shape == (2, 6, 6) and c_a.abs().max() < 1.0
    # The audio correlation sees the visual stream through J.
    assert not torch.allclose(jca.correlations(x_v + 1.0, x_a)[1], c_a)
    # Padded frames' columns are 0 (never attended); attended features add back onto X.
    pad = torch.zeros(2, 6, dtype=torch.bool)
    pad[0, 4:] = True
    c = joint_correlation(x_a, j, jca.audio.w_j, pad)
    assert (c[0, :, 4:] == 0).all() and (c[0, :, :4] != 0).all()
    _, att_a = jca(x_v, x_a)
    h_a = torch.relu(jca.audio.w(x_a) + c_a @ jca.audio.w_c(j) / 6)
    assert torch.allclose(att_a, jca.audio.w_h(h_a) + x_a, atol=1e-5)


@pytest.mark.parametrize("recursions", [1, 2, 3])
def test_rjca_applies_the_block_recursions_times(recursions: int) -> None:
    m = _model("rjca", recursions=recursions).eval()
    calls = []
    m.jca.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape))
    v, a = _inputs(2, 8)
    out = m(v, a)
    assert len(calls) == recursions
    other = _model("rjca", recursions=recursions + 1).eval()
    assert not torch.allclose(out, other(v, a))  # the same weights, one more pass: another output


def test_dca_gate_rows_sum_to_one_and_mix_attended_with_unattended() -> None:
    m = _model("dca").eval()
    x_v, x_a = torch.randn(2, 7, 8), torch.randn(2, 7, 8)
    fused, gates = m.gated(x_v, x_a, None)
    assert gates, "the loop below checks nothing"
    for g in gates.values():
        assert g.shape == (2, 7, 2)
        assert torch.allclose(g.sum(-1), torch.ones(2, 7)) and (g >= 0).all()
    att_v, _ = m.jca(x_v, x_a)
    g = gates["visual"]
    assert torch.allclose(fused[..., :8], torch.relu(g[..., :1] * x_v + g[..., 1:] * att_v), atol=1e-6)


def test_mult_crossmodal_direction_queries_the_target() -> None:
    """CM_{alpha->beta}: queries from the target beta, keys and values from the source alpha; the output has the
    target's frames, and every target frame reads the source's frames through the weights."""
    torch.manual_seed(0)
    layer = CrossmodalLayer(16, 2, 32, 0.0).eval()
    target, source = torch.randn(2, 5, 16), torch.randn(2, 9, 16)
    out, w = layer(target, source, need_weights=True)
    assert out.shape == (2, 5, 16) and w.shape == (2, 5, 9)
    assert torch.allclose(w.sum(-1), torch.ones(2, 5), atol=1e-6)
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[:, 6:] = True
    _, wm = layer(target, source, mask, need_weights=True)
    assert (wm[:, :, 6:] == 0).all()
    m = _model("mult").eval()
    assert len(m.a_to_v) == len(m.v_to_a) == 1 + 1  # cross_layers of the default 2
    z_v, z_a = torch.randn(1, 6, 16), torch.randn(1, 4, 16)
    assert m.crossmodal(m.a_to_v, z_v, z_a, None).shape == (1, 6, 16)  # audio -> visual keeps the visual frames


def test_mamba_scan_is_causal_and_the_backend_is_named() -> None:
    assert ssm_backend("auto") == ("mamba_ssm" if MambaSSM is not None and torch.cuda.is_available() else "mambapy")
    m = _model("mamba_va")
    assert m.ssm_backend == ssm_backend("auto")
    torch.manual_seed(0)
    layer = mamba_layer(8, 4, 4, 2, "mambapy").eval()
    x = torch.randn(2, 20, 8)
    y = layer(x)
    x2 = x.clone()
    x2[:, 12:] = torch.randn(2, 8, 8) * 10
    y2 = layer(x2)
    assert torch.allclose(y[:, :12], y2[:, :12], atol=1e-6)  # frame t sees frames <= t only
    assert not torch.allclose(y[:, 12:], y2[:, 12:])
    if MambaSSM is None or not torch.cuda.is_available():
        with pytest.raises(ModelConfigError, match="mamba_ssm"):
            _model("mamba_va", backend="mamba_ssm")


@pytest.mark.skipif(MambaSSM is None or not torch.cuda.is_available(), reason="needs mamba-ssm installed with CUDA")
def test_mamba_backends_give_the_same_outputs_from_the_same_weights() -> None:
    torch.manual_seed(0)
    ref = mamba_layer(32, 16, 4, 2, "mambapy").cuda().eval()
    fast = mamba_layer(32, 16, 4, 2, "mamba_ssm").cuda().eval()
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(2, 64, 32, device="cuda")
    with torch.no_grad():
        assert torch.allclose(ref(x), fast(x), atol=1e-3, rtol=1e-3)


def test_tcn_transformer_encodes_the_concatenation_with_positions() -> None:
    m = _model("tcn_transformer").eval()
    v, a = _inputs(2, 11)
    x_v, x_a = m.visual_tcn(v), m.audio_tcn(a)
    assert torch.equal(m.concatenate(x_v, x_a), torch.cat([x_v, x_a], dim=-1))
    z0 = torch.cat([x_v, x_a], dim=-1) + positions(11, 16, x_v)  # Z_0 = [X_v ; X_a] + P
    assert torch.allclose(m(v, a), torch.tanh(m.head(encoder_forward(m.encoder, z0))), atol=1e-6)
    # The positions matter: the same frames in another order are not the same frames reordered.
    rev = m(v.flip(1), a.flip(1)).flip(1)
    assert not torch.allclose(rev[:, 4:7], m(v, a)[:, 4:7], atol=1e-4)


@settings(max_examples=15, deadline=None)
@given(T=st.integers(1, 25), cut=st.integers(0, 25), name=st.sampled_from(NAMES))
def test_batching_and_padding_never_change_a_valid_frame(T: int, cut: int, name: str) -> None:
    m = _model(name).eval()
    v, a = _inputs(2, T, seed=T)
    n = max(1, min(T, cut))
    pad = torch.zeros(2, T, dtype=torch.bool)
    pad[1, n:] = True
    out = m(v, a, pad)
    assert torch.allclose(out[1, :n], m(v[1:, :n], a[1:, :n])[0], atol=1e-5)
    assert torch.allclose(out[0], m(v[:1], a[:1])[0], atol=1e-5)
