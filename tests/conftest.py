"""Session-wide fixtures: the quick demo, made once per test session and read by every test that needs a whole run
(the end-to-end test, the determinism test, the planted-regression battery)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.reporting.recording import run_quick_demo
from tests._demo import caller_level


@pytest.fixture(scope="session")
def quick_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`harness demo --quick` in a fresh process, as a user runs it (the scores must not depend on what earlier tests
    left in this one), at the caller's kernel level; its folder. Tests read it and copy it, never write into it."""
    out = tmp_path_factory.mktemp("quick_demo") / "demo"
    run_quick_demo(out, level=caller_level())
    return out
