"""Shared fixtures for the benchmarks: they report, they never assert a time."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def fp32_peak() -> float:
    from harness.bench.suite import matmul_peak_flops

    return matmul_peak_flops("float32", seconds=0.5)
