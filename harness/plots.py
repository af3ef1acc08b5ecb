"""Plots people would rather look at than read: traces (paper Fig. 4), histograms (Fig. 5), gates, curves.

Each function takes arrays, writes one PNG atomically and returns its path. matplotlib runs headless (Agg).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from submissions.atomic import atomic_write_bytes
from submissions.metrics import UNANNOTATED


def _save(fig: plt.Figure, path: str | Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def plot_traces(path: str | Path, videos: Mapping[str, tuple[np.ndarray, np.ndarray]], fps: float = 30.0) -> Path:
    """Predicted vs true valence and arousal over time, one row per video (like the paper's Fig. 4).

    Args:
        path: PNG to write.
        videos: name -> (labels (N, 2) with -5 for unannotated, predictions (N, 2)).
        fps: frame rate for the time axis.
    """
    n = max(1, len(videos))
    fig, axes = plt.subplots(n, 2, figsize=(12, 2.4 * n), squeeze=False, sharey=True)
    for row, (name, (lab, pred)) in enumerate(videos.items()):
        t = np.arange(lab.shape[0]) / fps
        for col, dim in enumerate(("valence", "arousal")):
            ax = axes[row, col]
            truth = np.where(lab[:, col] == UNANNOTATED, np.nan, lab[:, col])
            ax.plot(t, truth, color="black", lw=1.2, label="true")
            ax.plot(t, pred[:, col], color="tab:red" if col == 0 else "tab:blue", lw=1.0, alpha=0.85,
                    label="predicted")
            ax.set_ylim(-1.05, 1.05)
            ax.set_title(f"{name}: {dim}", fontsize=9)
            ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="lower left", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    return _save(fig, path)


def plot_histograms(path: str | Path, labels: np.ndarray, preds: np.ndarray | None = None, bins: int = 40) -> Path:
    """Histograms of valence and arousal labels (-5 dropped), and of predictions when given (paper Fig. 5)."""
    keep = ~(labels == UNANNOTATED).any(axis=1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    edges = np.linspace(-1, 1, bins + 1)
    for col, dim in enumerate(("valence", "arousal")):
        ax = axes[col]
        ax.hist(labels[keep, col], bins=edges, alpha=0.7, color="gray", label="labels", density=True)
        if preds is not None:
            ax.hist(preds[keep, col], bins=edges, alpha=0.5, color="tab:red", label="predictions", density=True)
        ax.set_title(dim)
        ax.set_xlabel(dim)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("density")
    return _save(fig, path)


def plot_gates(path: str | Path, gates: Mapping[str, np.ndarray], fps: float = 30.0, title: str = "") -> Path:
    """BDCA's dynamic weights over time: weight of the cross-attended features (G_1) for each stream.

    Args:
        path: PNG to write.
        gates: stream name ("visual", "audio") -> (T, 2) gate values (G_0 original, G_1 cross-attended).
        fps: frame rate for the time axis.
        title: figure title.
    """
    fig, ax = plt.subplots(figsize=(10, 2.8))
    for name, g in gates.items():
        t = np.arange(g.shape[0]) / fps
        ax.plot(t, g[:, 1], lw=1.0, label=f"{name}: weight of cross-attended (G1)")
    ax.set_ylim(0, 1)
    ax.axhline(0.5, color="gray", lw=0.6, ls="--")
    ax.set_xlabel("time (s)")
    ax.set_title(title or "BDCA dynamic weights over time")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_curves(path: str | Path, records: Sequence[Mapping[str, float]], keys: Sequence[str] = ("train_loss", "p_va")
                ) -> Path:
    """Training curves over epochs from metrics.jsonl records (one panel per key present)."""
    keys = [k for k in keys if any(k in r for r in records)] or ["epoch"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3), squeeze=False)
    for ax, k in zip(axes[0], keys, strict=True):
        xs = [r.get("epoch", i) for i, r in enumerate(records) if k in r]
        ys = [r[k] for r in records if k in r]
        ax.plot(xs, ys, marker="o", ms=3)
        ax.set_title(k)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    return _save(fig, path)
