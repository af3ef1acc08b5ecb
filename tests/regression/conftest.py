"""The planted-regression battery's session pieces: the guarded run (made once), and its summary at the end of
the session (the catch rate and each mutation's catchers, printed whole)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.regression._guarded import RESULTS, GuardedRun, open_guarded_run, summary_lines
from tests.regression._mutations import MUTATIONS


@pytest.fixture(scope="session")
def guarded(quick_demo: Path) -> GuardedRun:
    """The quick demo, unmutated: the session's (tests/conftest.py), made once in a fresh process."""
    return open_guarded_run(quick_demo)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the battery's catch rate and catchers when any mutation ran (one whole line each)."""
    if not RESULTS:
        return
    terminalreporter.section("planted-regression battery")
    for line in summary_lines(RESULTS, len(MUTATIONS)):
        terminalreporter.write_line(line)
