"""Skips for tests that need detector weights, which `harness fetch-weights` installs (CI runs it first)."""

from __future__ import annotations

import pytest

from preprocessing.faces import WeightsMissingError, weight_path


def require_scrfd() -> None:
    """Skip the calling test or fixture when the SCRFD weights are not installed."""
    try:
        weight_path("scrfd")
    except WeightsMissingError:
        pytest.skip("SCRFD weights absent: run `harness fetch-weights` (CI does, before the tests)")
