"""Every plot writes a real PNG (magic bytes, plausible size) from the arrays it is given."""

from __future__ import annotations

import numpy as np
from PIL import Image

from harness.plots import plot_curves, plot_gates, plot_histograms, plot_traces


def _png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = Image.open(path).size
    assert w > 300 and h > 150
    return w, h


def test_plots(tmp_path):
    rng = np.random.default_rng(0)
    lab = np.clip(rng.normal(0.2, 0.3, (200, 2)), -1, 1)
    lab[50:70] = -5
    pred = np.clip(lab + rng.normal(0, 0.1, lab.shape), -1, 1)
    _, h1 = _png(plot_traces(tmp_path / "t.png", {"a": (lab, pred), "b": (lab, pred)}))
    _, h_one = _png(plot_traces(tmp_path / "t1.png", {"a": (lab, pred)}))
    assert h1 > h_one  # one row per video
    _png(plot_histograms(tmp_path / "h.png", lab, pred))
    _png(plot_gates(tmp_path / "g.png", {"visual": rng.dirichlet([1, 1], 200), "audio": rng.dirichlet([1, 1], 200)}))
    _png(plot_curves(tmp_path / "c.png", [{"epoch": 0, "train_loss": 0.9, "p_va": 0.1},
                                          {"epoch": 1, "train_loss": 0.5, "p_va": 0.4}]))
