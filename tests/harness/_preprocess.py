"""Helpers of the preprocess resume and sharding tests: what a run has finished, file identities, equal outputs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from preprocessing.cache import MANIFEST as FEATURES_MANIFEST
from preprocessing.cache import FeatureCache
from preprocessing.crops import CROPS_DIR


def finished(out: Path) -> set[str]:
    """Videos whose crops and audio features are done (the audio mask is the last audio feature saved; visual
    features, where asked for, come after every video of the process)."""
    done = set()
    for manifest in (out / "features").glob(f"*/{FEATURES_MANIFEST}"):
        try:
            if "audio_mask" in json.loads(manifest.read_text())["features"]:
                done.add(manifest.parent.name)
        except (OSError, ValueError, KeyError):
            continue
    return done


def snapshot(out: Path, videos: set[str]) -> dict[str, tuple[int, int]]:
    """(inode, mtime in ns) of every file of these videos: a rewrite (atomic rename) changes both."""
    files = [f for v in videos for d in (out / CROPS_DIR / v, out / "features" / v) for f in d.iterdir()]
    return {str(f.relative_to(out)): (f.stat().st_ino, f.stat().st_mtime_ns) for f in files}


def assert_same_outputs(out: Path, reference: Path, videos: Sequence[str], features: Sequence[str],
                        crop_files: int | None = None) -> None:  # fmt: skip
    """Crop files (names and bytes, their manifests included), feature arrays and feature manifests of `out` equal
    the reference's, and no temporary file is left.

    Args:
        out: the output root checked.
        reference: an uninterrupted one-process run's output root.
        videos: every video, in the cache's sorted order.
        features: the cached features compared.
        crop_files: the number of files in each crops folder (None: at least one crop and its manifest).
    """
    ref_cache, cache = FeatureCache(reference / "features"), FeatureCache(out / "features")
    assert cache.videos() == ref_cache.videos() == sorted(videos)
    for v in videos:
        a, b = out / CROPS_DIR / v, reference / CROPS_DIR / v
        names = sorted(p.name for p in b.iterdir())
        assert sorted(p.name for p in a.iterdir()) == names
        assert len(names) == crop_files if crop_files is not None else len(names) >= 2
        for name in names:
            assert (a / name).read_bytes() == (b / name).read_bytes(), f"{v}/{name}"
        got, want = cache.load(v, features), ref_cache.load(v, features)
        for k in features:
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"{v}/{k}")
        assert cache.manifest(v) == ref_cache.manifest(v)
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
