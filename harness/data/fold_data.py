"""One fold's stage-2 data, read once: the training windows over their targets, validation labels, normalisation
statistics, the test videos with features, and a reader of whole-video streams.

The config is consumed here, in one call (`read_fold_data`); the stage, its per-epoch validation and its final
predictions work from the returned `FoldData` and never pass the config back down to the data layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.config import Config
from harness.data.datasets import (
    CacheLike,
    NormStats,
    StreamReader,
    WindowDataset,
    compute_norm_stats,
    has_features,
    load_labels,
    video_frames,
)
from harness.data.refine import class_va_means, refine_labels, refined_frames
from harness.data.splits import Fold
from harness.runtime.distributed import Strategy
from preprocessing.affwild2 import AffWild2Layout


@dataclass(frozen=True)
class FoldData:
    """What stage 2 reads of one fold.

    Args:
        refined: label values the refinement filled in (0 without it).
        val_labels: validation video -> (N, 2) labels as the files give them (-5 kept): the best epoch is chosen,
            and the run scored, on the files' labels whatever the refinement.
        windows: the training windows over the fold's targets (`windows.labels`: the training videos' labels,
            refined where `data.refine_labels` is on).
        streams: whole-video streams for validation and prediction.
        length: window length of whole-video prediction (the training windows' length).
        stride: window stride of whole-video prediction.
        test: the fold's test videos whose features are cached, in the fold's order.
        missing_test: test videos without cached features (not predicted).
    """

    refined: int
    val_labels: dict[str, np.ndarray]
    windows: WindowDataset
    streams: StreamReader
    length: int
    stride: int
    test: tuple[str, ...]
    missing_test: int


def labels_of(layout: AffWild2Layout, cache: CacheLike, names: Sequence[str], feature: str) -> dict[str, np.ndarray]:
    """video -> (N, 2) labels from its annotation file, N = the video's cached frames of `feature`.

    Args:
        layout: the dataset layout.
        cache: the feature cache.
        names: video names.
        feature: the cached feature whose frame count sets N.
    """
    return {name: load_labels(layout.entry(name).annotation, video_frames(cache, name, feature)) for name in names}


def training_labels(cfg: Config, layout: AffWild2Layout,
                    labels: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:  # fmt: skip
    """The training targets of a fold: the files' labels, refined where `data.refine_labels` is on.

    Only the fold's training videos are read (their expression files and their labels give the class means), so
    nothing of a validation or test video reaches the targets.

    Args:
        cfg: the config.
        layout: the dataset layout (`AffWild2Layout.expressions` reads each video's expression file).
        labels: training video -> (N, 2) labels as read from the files.

    Returns:
        (video -> (N, 2) targets, label values refinement filled in).
    """
    if not cfg.data.refine_labels:
        return dict(labels), 0
    classes = {v: layout.expressions(layout.entry(v), lab.shape[0]) for v, lab in labels.items()}
    means = class_va_means((labels[v], classes[v]) for v in sorted(labels))
    out, filled = {}, 0
    for v in sorted(labels):
        out[v] = refine_labels(labels[v], classes[v], means, cfg.data.refine_tau)
        filled += refined_frames(labels[v], out[v])
    return out, filled


def read_fold_data(cfg: Config, layout: AffWild2Layout, cache: CacheLike, fold: Fold, stats_file: Path,
                   strategy: Strategy) -> FoldData:  # fmt: skip
    """Read one fold's stage-2 data.

    The normalisation statistics come from the fold's training videos only; rank 0 computes and writes them to
    `stats_file` and every process reads that file back, so all hold the same bytes.

    Args:
        cfg: the run config (`features`, `windows`, `data`).
        layout: the dataset layout: annotation and expression files.
        cache: the feature cache.
        fold: the fold's train/validation/test videos.
        stats_file: where the run keeps its statistics.
        strategy: the run's processes.
    """
    feature = cfg.features.visual
    targets, refined = training_labels(cfg, layout, labels_of(layout, cache, fold.train, feature))
    val_labels = labels_of(layout, cache, fold.val, feature)
    test = tuple(v for v in fold.test if has_features(cache, v, cfg.features))
    if strategy.on_main:
        compute_norm_stats(cache, list(fold.train), cfg.features).save(stats_file)
    strategy.barrier()
    stats = NormStats.load(stats_file)
    length, stride = cfg.windows.length, cfg.windows.stride
    windows = WindowDataset(cache, targets, cfg.features, stats, length, stride)
    return FoldData(refined, val_labels, windows, StreamReader(cache, cfg.features, stats), length, stride,
                    test, len(fold.test) - len(test))  # fmt: skip
