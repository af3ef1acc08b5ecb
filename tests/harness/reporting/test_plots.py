"""Every plot writes a real PNG, labels every axis with its quantity and unit, and the gate plot covers the whole
video (gates stitched over prediction's windows)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib import pyplot as plt
from PIL import Image

from harness.experiments.demo import gate_stats, gate_traces
from harness.reporting.plots import (
    curves_figure,
    gates_figure,
    histograms_figure,
    plot_curves,
    plot_gates,
    plot_histograms,
    plot_traces,
    traces_figure,
)
from models.configs import TemporalConfig
from models.temporal import AVTemporalModel


def _png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = Image.open(path).size
    assert w > 300 and h > 150
    return w, h


def _data():
    rng = np.random.default_rng(0)
    lab = np.clip(rng.normal(0.2, 0.3, (200, 2)), -1, 1)
    lab[50:70] = -5
    pred = np.clip(lab + rng.normal(0, 0.1, lab.shape), -1, 1)
    gates = {"visual": rng.dirichlet([1, 1], 200), "audio": rng.dirichlet([1, 1], 200)}
    recs = [{"epoch": 0, "train_loss": 0.9, "val_p_va": 0.1, "lr": 1e-3},
            {"epoch": 1, "train_loss": 0.5, "val_p_va": 0.4, "lr": 5e-4}]  # fmt: skip
    return lab, pred, gates, recs


def test_plots(tmp_path):
    lab, pred, gates, recs = _data()
    _, h1 = _png(plot_traces(tmp_path / "t.png", {"a": (lab, pred), "b": (lab, pred)}))
    _, h_one = _png(plot_traces(tmp_path / "t1.png", {"a": (lab, pred)}))
    assert h1 > h_one  # one row per video
    _png(plot_histograms(tmp_path / "h.png", lab, pred))
    _png(plot_gates(tmp_path / "g.png", gates))
    _png(plot_curves(tmp_path / "c.png", recs, keys=("train_loss", "val_p_va", "lr")))


def _boxes_overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_every_axis_is_labelled_and_titles_do_not_overlap():
    lab, pred, gates, recs = _data()
    figs = [traces_figure({"a": (lab, pred), "b": (lab, pred)}), histograms_figure(lab, pred),
            gates_figure(gates), curves_figure(recs, keys=("train_loss", "val_p_va", "lr"))]  # fmt: skip
    units = ("[s]", "[-1, 1]", "[0, 1]", "CCC", "learning rate", "[1 / unit]", "epoch")
    assert figs, "the loop below checks nothing"
    for fig in figs:
        assert fig.get_layout_engine() is not None  # constrained layout
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        axes = fig.get_axes()
        for ax in axes:
            x, y = ax.get_xlabel(), ax.get_ylabel()
            assert x and y, f"unlabelled axis in {ax.get_title()!r}: x {x!r}, y {y!r}"
            assert any(u in x for u in units) and any(u in y for u in units), (x, y)
        titles = [ax.title.get_window_extent(renderer) for ax in axes if ax.get_title()]
        for i, a in enumerate(titles):
            for b in titles[i + 1:]:
                assert not _boxes_overlap(a, b)
        plt.close(fig)


@pytest.mark.parametrize("n", [30, 200, 241])
def test_gate_trace_covers_every_frame_and_matches_windowed_prediction(n):
    torch.manual_seed(0)
    cfg = TemporalConfig(fusion="bdca", visual_dim=6, audio_dim=5, tcn_channels=8, num_layers=1, num_heads=2,
                         dim_feedforward=16, head_hidden=8)  # fmt: skip
    model = AVTemporalModel(cfg).eval()
    rng = np.random.default_rng(n)
    visual, audio = rng.normal(size=(n, 6)).astype(np.float32), rng.normal(size=(n, 5)).astype(np.float32)
    traces = gate_traces(model, visual, audio, length=48, stride=32)
    assert set(traces) == {"visual", "audio"}
    for g in traces.values():
        assert g.shape == (n, 2)  # the whole video, not its first window
        np.testing.assert_allclose(g.sum(1), 1.0, atol=1e-6)
    # The frames of the first window that no other window covers carry that window's gates exactly.
    if n >= 48:
        with torch.inference_mode():
            _, gates = model.forward_with_gates(torch.from_numpy(visual[None, :48]), torch.from_numpy(audio[None, :48]))
        first = gates["visual"][0].numpy()
        np.testing.assert_allclose(traces["visual"][:32], first[:32], rtol=0, atol=1e-6)
    st = gate_stats({"v": traces})
    assert st["visual"]["frames"] == n
    assert st["visual"]["mean"] == pytest.approx(float(traces["visual"][:, 1].mean()))
    assert st["audio"]["std"] == pytest.approx(float(traces["audio"][:, 1].std()))


def test_models_without_gates_give_none():
    cfg = TemporalConfig(fusion="concat", visual_dim=6, audio_dim=5, tcn_channels=8, num_layers=1, num_heads=2,
                         dim_feedforward=16, head_hidden=8)  # fmt: skip
    x = np.zeros((60, 6), np.float32)
    assert gate_traces(AVTemporalModel(cfg), x, np.zeros((60, 5), np.float32), 48, 32) is None
