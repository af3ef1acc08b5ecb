"""Plots people would rather look at than read: traces (paper Fig. 4), histograms (Fig. 5), gates, curves.

Each `plot_*` function takes arrays, writes one PNG atomically and returns its path; the `*_figure` function beside
it builds the figure (what tests inspect). Every axis names its quantity and unit; constrained layout keeps titles
and labels apart. matplotlib runs headless (Agg).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from core.atomic import atomic_write_bytes
from submissions.metrics import UNANNOTATED

QUANTITIES = {
    "train_loss": "training loss (1 - CCC)",
    "val_loss": "validation loss (1 - CCC)",
    "p_va": "P_VA (mean CCC)",
    "val_p_va": "validation P_VA (mean CCC)",
    "ccc_v": "CCC valence",
    "ccc_a": "CCC arousal",
    "val_ccc_v": "validation CCC valence",
    "val_ccc_a": "validation CCC arousal",
    "lr": "learning rate",
    "time_s": "epoch time [s]",
    "epoch": "epoch",
}
"""Axis labels (quantity and unit) of metrics.jsonl keys; other keys are labelled by their name."""

DIMS = ("valence", "arousal")


def _save(fig: plt.Figure, path: str | Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def traces_figure(videos: Mapping[str, tuple[np.ndarray, np.ndarray]], fps: float = 30.0) -> plt.Figure:
    """The figure of `plot_traces` (every axes labelled: time [s], valence or arousal [-1, 1])."""
    n = max(1, len(videos))
    fig, axes = plt.subplots(n, 2, figsize=(12, 2.6 * n), squeeze=False, sharey=True, layout="constrained")
    for row, (name, (lab, pred)) in enumerate(videos.items()):
        t = np.arange(lab.shape[0]) / fps
        for col, dim in enumerate(DIMS):
            ax = axes[row, col]
            truth = np.where(lab[:, col] == UNANNOTATED, np.nan, lab[:, col])
            ax.plot(t, truth, color="black", lw=1.2, label="true")
            ax.plot(t, pred[:, col], color="tab:red" if col == 0 else "tab:blue", lw=1.0, alpha=0.85,
                    label="predicted")
            ax.set_ylim(-1.05, 1.05)
            ax.set_title(f"{name}: {dim}", fontsize=9)
            ax.set_xlabel("time [s]")
            ax.set_ylabel(f"{dim} [-1, 1]")
            ax.yaxis.set_tick_params(labelleft=True)  # sharey hides the right column's ticks; the label needs them
            ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="lower left", fontsize=8)
    return fig


def plot_traces(path: str | Path, videos: Mapping[str, tuple[np.ndarray, np.ndarray]], fps: float = 30.0) -> Path:
    """Predicted vs true valence and arousal over time, one row per video (like the paper's Fig. 4).

    Args:
        path: PNG to write.
        videos: name -> (labels (N, 2) with -5 for unannotated, predictions (N, 2)).
        fps: frame rate for the time axis.

    Returns:
        The PNG's path.
    """
    return _save(traces_figure(videos, fps), path)


def histograms_figure(labels: np.ndarray, preds: np.ndarray | None = None, bins: int = 40) -> plt.Figure:
    """The figure of `plot_histograms` (x: valence or arousal [-1, 1], y: density [1 / unit])."""
    keep = ~(labels == UNANNOTATED).any(axis=1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
    edges = np.linspace(-1, 1, bins + 1)
    for col, dim in enumerate(DIMS):
        ax = axes[col]
        ax.hist(labels[keep, col], bins=edges, alpha=0.7, color="gray", label="labels", density=True)
        if preds is not None:
            ax.hist(preds[keep, col], bins=edges, alpha=0.5, color="tab:red", label="predictions", density=True)
        ax.set_title(f"{dim}: {int(keep.sum())} annotated frames")
        ax.set_xlabel(f"{dim} [-1, 1]")
        ax.set_ylabel("density [1 / unit]")
        ax.legend(fontsize=8)
    return fig


def plot_histograms(path: str | Path, labels: np.ndarray, preds: np.ndarray | None = None, bins: int = 40) -> Path:
    """Histograms of valence and arousal labels (-5 dropped), and of predictions when given (paper Fig. 5).

    Args:
        path: PNG to write.
        labels: (N, 2) labels, -5 for unannotated.
        preds: (N, 2) predictions on the same frames.
        bins: bins over [-1, 1].

    Returns:
        The PNG's path.
    """
    return _save(histograms_figure(labels, preds, bins), path)


def gates_figure(gates: Mapping[str, np.ndarray], fps: float = 30.0, title: str = "") -> plt.Figure:
    """The figure of `plot_gates`: one panel per stream, time [s] against the weight G_1 in [0, 1]."""
    n = max(1, len(gates))
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.2 * n + 0.4), squeeze=False, sharex=True, layout="constrained")
    for ax, (name, g) in zip(axes[:, 0], gates.items(), strict=False):
        t = np.arange(g.shape[0]) / fps
        ax.plot(t, g[:, 1], lw=1.0, color="tab:purple")
        ax.set_ylim(0, 1)
        ax.axhline(0.5, color="gray", lw=0.6, ls="--")
        ax.set_title(f"{name}: mean {float(np.mean(g[:, 1])):.3f}, std {float(np.std(g[:, 1])):.3f} "
                     f"over {g.shape[0]} frames", fontsize=9)
        ax.set_xlabel("time [s]")
        ax.set_ylabel("G1, cross-attended\nweight [0, 1]")
        ax.grid(alpha=0.3)
    fig.suptitle(title or "BDCA dynamic weights over time (eq. 4; the original features get 1 - G1)")
    return fig


def plot_gates(path: str | Path, gates: Mapping[str, np.ndarray], fps: float = 30.0, title: str = "") -> Path:
    """BDCA's dynamic weights over time: weight of the cross-attended features (G_1) for each stream.

    Args:
        path: PNG to write.
        gates: stream name ("visual", "audio") -> (T, 2) gate values (G_0 original, G_1 cross-attended).
        fps: frame rate for the time axis.
        title: figure title.

    Returns:
        The PNG's path.
    """
    return _save(gates_figure(gates, fps, title), path)


CURVE_KEYS = ("train_loss", "val_p_va", "p_va", "lr")
"""metrics.jsonl keys drawn as training curves (the demo's plot and the report's)."""


def curve_keys(records: Sequence[Mapping[str, float]]) -> list[str]:
    """The `CURVE_KEYS` present in `records` (the training loss alone when none is)."""
    return [k for k in CURVE_KEYS if any(k in r for r in records)] or ["train_loss"]


def curves_figure(records: Sequence[Mapping[str, float]], keys: Sequence[str] = ("train_loss", "p_va")
                  ) -> plt.Figure:  # fmt: skip
    """The figure of `plot_curves`: one panel per key present, epoch against the key's quantity."""
    keys = [k for k in keys if any(k in r for r in records)] or ["epoch"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.2), squeeze=False, layout="constrained")
    for ax, k in zip(axes[0], keys, strict=True):
        xs = [r.get("epoch", i) + 1 for i, r in enumerate(records) if k in r]
        ys = [r[k] for r in records if k in r]
        ax.plot(xs, ys, marker="o", ms=3)
        label = QUANTITIES.get(k, k)
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        if k == "lr":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
        ax.grid(alpha=0.3)
    return fig


def plot_curves(path: str | Path, records: Sequence[Mapping[str, float]], keys: Sequence[str] = ("train_loss", "p_va")
                ) -> Path:
    """Training curves over epochs (1-based) from metrics.jsonl records (one panel per key present).

    Args:
        path: PNG to write.
        records: metrics.jsonl records with `epoch` (0-based) and the keys.
        keys: keys to plot.

    Returns:
        The PNG's path.
    """
    return _save(curves_figure(records, keys), path)
