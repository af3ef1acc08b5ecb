"""The training package's errors."""

from __future__ import annotations

from core.errors import HarnessError


class TrainError(HarnessError):
    """A training phase that cannot run as configured (e.g. too little data for one optimiser step)."""
