"""A preprocess output folder's layout (a dataset's cache): the face crops, the feature cache, the summary.

    <out>/cropped_aligned/<subject>/   aligned 224x224 face crops (per-video locks under .locks/)
    <out>/features/                    the feature cache (`preprocessing.cache.FeatureCache`)
    <out>/preprocess_summary.json      what the run did (shards' own under preprocess_summary.d/)

`PreprocessDir` is the only code that spells these names.
"""

from __future__ import annotations

from pathlib import Path

from core.locking import LOCKS_DIR

CROPS_DIR = "cropped_aligned"
"""Aligned face crops, one folder per subject (also where a dataset ships its own crops)."""
FEATURES_DIR = "features"
"""The feature cache."""
SUMMARY = "preprocess_summary.json"
"""What a preprocess run did."""
SHARD_SUMMARIES = "preprocess_summary.d"
"""Each shard's own summary (`shard-0003-of-0008.json`), merged into SUMMARY as the shards finish."""
OUTPUT_LAYOUT = (CROPS_DIR, FEATURES_DIR, SUMMARY, SHARD_SUMMARIES, LOCKS_DIR)
"""What preprocess writes in its output folder (claimed in the folder's ownership record)."""


class PreprocessDir:
    """The files and folders of a preprocess output folder (or a dataset root holding shipped crops)."""

    def __init__(self, path: str | Path) -> None:
        """Args:
        path: the folder.
        """
        self.path = Path(path)

    @property
    def features(self) -> Path:
        """The feature cache's folder."""
        return self.path / FEATURES_DIR

    @property
    def crops(self) -> Path:
        """The face crops' folder."""
        return self.path / CROPS_DIR

    def subject_crops(self, subject: str) -> Path:
        """One subject's face crops."""
        return self.crops / subject

    def subject_features(self, subject: str) -> Path:
        """One subject's feature folder."""
        return self.features / subject

    @property
    def summary_file(self) -> Path:
        """The run's summary."""
        return self.path / SUMMARY

    @property
    def shard_summaries(self) -> Path:
        """The shards' own summaries."""
        return self.path / SHARD_SUMMARIES

    @property
    def summary_lock(self) -> Path:
        """The lock shards take to merge their summaries."""
        return self.path / LOCKS_DIR / "summary.lock"

    def shard_summary(self, label: str) -> Path:
        """One shard's summary (`label`: `shard-0003-of-0008`)."""
        return self.shard_summaries / f"{label}.json"
