"""Data for training and scoring: windows, datasets and normalisation, the visual feature extractor, folds and label
refinement.

Public names are re-exported lazily (PEP 562): `from harness.data import X` imports only X's module.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "CacheLike": "harness.data.datasets",
    "DataError": "harness.data.datasets",
    "FEATURE_VERSION": "harness.data.features",
    "Fold": "harness.data.splits",
    "FoldError": "harness.data.splits",
    "FoldData": "harness.data.fold_data",
    "FrameDataset": "harness.data.datasets",
    "FrameItem": "harness.data.datasets",
    "MASK_HASH": "harness.data.features",
    "MAX_STATS_BYTES": "harness.data.datasets",
    "NormStats": "harness.data.datasets",
    "StreamReader": "harness.data.datasets",
    "VISUAL_MASK": "harness.data.datasets",
    "WindowDataset": "harness.data.datasets",
    "class_va_means": "harness.data.refine",
    "compute_norm_stats": "harness.data.datasets",
    "crop_files": "harness.data.datasets",
    "encode_videos": "harness.data.features",
    "evenly_spaced": "harness.data.datasets",
    "feature_hash": "harness.data.features",
    "fold_split": "harness.data.splits",
    "frame_count": "harness.data.features",
    "frame_transform": "harness.data.datasets",
    "group_key": "harness.data.splits",
    "has_features": "harness.data.datasets",
    "labelled_frames": "harness.data.datasets",
    "labels_of": "harness.data.fold_data",
    "load_labels": "harness.data.datasets",
    "load_video_streams": "harness.data.datasets",
    "make_folds": "harness.data.splits",
    "normalised_streams": "harness.data.datasets",
    "open_dataset": "harness.data.datasets",
    "read_crop": "harness.data.datasets",
    "refine_labels": "harness.data.refine",
    "refined_frames": "harness.data.refine",
    "read_fold_data": "harness.data.fold_data",
    "reserve_videos": "harness.data.splits",
    "stage1_reserved": "harness.data.splits",
    "stream_arrays": "harness.data.datasets",
    "training_labels": "harness.data.fold_data",
    "valid_label_mask": "harness.data.datasets",
    "video_batches": "harness.data.features",
    "video_frames": "harness.data.datasets",
    "window_count": "harness.data.windows",
    "window_starts": "harness.data.windows",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness.data' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
