"""Shared settings of the models tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Run each test on one intra-op thread, restoring the setting afterwards.

    These tests use tiny tensors: with two OpenMP threads on a busy two-core machine every small op waits at a
    barrier for a descheduled thread (measured: a 10-step tiny-MAE loop took 10 s instead of under 1 s).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
