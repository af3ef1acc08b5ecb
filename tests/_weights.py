"""Skips for tests that need detector weights, which `harness fetch-weights` installs (CI runs it first)."""

from __future__ import annotations

from pathlib import Path

import pytest

from preprocessing.faces import WeightsMissingError, weight_path
from preprocessing.faces.weights import WEIGHT_FILES

HOW = "run `harness fetch-weights` (CI does, before the tests)"


def installed(key: str) -> Path | None:
    """The installed weights file `key` (a key of `WEIGHT_FILES`: "scrfd", "mtcnn_pnet", ...), or None."""
    try:
        return weight_path(key)
    except WeightsMissingError:
        return None


def require_scrfd() -> Path:
    """The SCRFD weights file; skips the calling test or fixture when it is not installed."""
    path = installed("scrfd")
    if path is None:
        pytest.skip(f"SCRFD weights absent: {HOW}")
    return path


def require_mtcnn() -> None:
    """Skip the calling test or fixture unless all three MTCNN networks' weights are installed."""
    if any(installed(key) is None for key in WEIGHT_FILES if key.startswith("mtcnn_")):
        pytest.skip(f"MTCNN weights absent: {HOW}")


needs_scrfd = pytest.mark.skipif(installed("scrfd") is None, reason=f"SCRFD weights absent: {HOW}")
"""Mark for tests that need the SCRFD weights (`require_scrfd` inside fixtures)."""
