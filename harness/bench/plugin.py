"""The pytest plugin behind `harness bench`'s resume: finished benchmark rows are kept as they finish.

`harness bench` runs the suite in a pytest process with `-p harness.bench.plugin` and `BDCA_BENCH_PARTIAL` naming
its partial-results file (`<out>/partial.json`, see `harness.bench.suite`). The plugin

- deselects the benchmarks the file already holds (rows an interrupted run finished: they are not measured again),
  by exact node id;
- after each benchmark whose test passed, appends its pytest-benchmark record (stats with every round's time, and
  `extra_info`) to the file, rewritten whole and atomically (`core.atomic`), so a process killed at any
  moment leaves the rows finished before the kill and nothing half-written.

pytest-benchmark itself writes its JSON only when the session ends, which a killed run never reaches.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.atomic import atomic_write_text
from core.safe_read import ReadError, read_json

if TYPE_CHECKING:  # `harness bench` imports this module; pytest is only needed in the pytest process itself
    import pytest

PARTIAL_ENV = "BDCA_BENCH_PARTIAL"
"""Environment variable naming the partial-results file; without it the plugin does nothing."""


def read_partial(path: Path) -> dict[str, Any] | None:
    """The partial-results file (`{"fingerprint": ..., "benchmarks": [...]}`), or None when absent or unreadable.

    Args:
        path: the file.
    """
    try:
        data = read_json(path, "benchmark partial results")
    except ReadError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        return None
    return data


def write_partial(path: Path, data: dict[str, Any]) -> None:
    """Replace the partial-results file atomically.

    Args:
        path: the file.
        data: `{"fingerprint": ..., "benchmarks": [...]}`.
    """
    try:  # pytest-benchmark's own encoder: values JSON cannot carry become their repr, as in its own files
        from pytest_benchmark.utils import safe_dumps
    except ImportError:  # harness bench, before pytest runs: rows read back from JSON are plain JSON
        safe_dumps = json.dumps
    atomic_write_text(path, safe_dumps(data, indent=1, sort_keys=True) + "\n")


class PartialResults:
    """Keeps the partial-results file up to date inside the pytest process of a `harness bench` run.

    Args:
        config: the pytest config (its pytest-benchmark session holds the measured rows).
        path: the partial-results file, written by `harness.bench.suite.run_benchmarks` before pytest starts.
    """

    def __init__(self, config: pytest.Config, path: Path):
        self.config = config
        self.path = path
        self.data = read_partial(path) or {"benchmarks": []}
        self.done = {b["fullname"] for b in self.data["benchmarks"]}
        self.passed: set[str] = set()

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        """Deselect the benchmarks an earlier, interrupted run finished (exact node ids, not prefixes)."""
        reused = [it for it in items if it.nodeid in self.done]
        if reused:
            items[:] = [it for it in items if it.nodeid not in self.done]
            config.hook.pytest_deselected(items=reused)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Record a benchmark once its test has passed and torn down (its stats are complete then)."""
        if report.when == "call" and report.passed:
            self.passed.add(report.nodeid)
        if report.when != "teardown" or report.nodeid not in self.passed or report.nodeid in self.done:
            return
        session = getattr(self.config, "_benchmarksession", None)
        rows = [] if session is None else [b for b in session.benchmarks if b.fullname == report.nodeid]
        rows = [b for b in rows if not b.has_error and b.stats]
        if not rows:  # a test without the benchmark fixture
            return
        self.data["benchmarks"].append(rows[-1].as_dict(include_data=True))
        self.done.add(report.nodeid)
        write_partial(self.path, self.data)


def pytest_configure(config: pytest.Config) -> None:
    """Register the recorder when `harness bench` named a partial-results file."""
    path = os.environ.get(PARTIAL_ENV)
    if path:
        config.pluginmanager.register(PartialResults(config, Path(path)), "bdca-bench-partial")
