"""The examples in the docstrings of the foundation (`core`) and the challenge formats and metrics (`submissions`) run
as tests: an example that no longer holds fails here.

A test module rather than `--doctest-modules` in pyproject.toml: that option applies to every path pytest collects,
so the README's `python -m pytest -q` (what `.ci/run` runs) would import every test module a second time as a
doctest module, and would still not reach these two packages, which are outside `testpaths`.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType

import pytest

PACKAGES = ("core", "submissions")
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        pkg = importlib.import_module(package)
        names.append(package)
        names += [m.name for m in pkgutil.walk_packages(pkg.__path__, f"{package}.")]
    return sorted(names)


def _run(module: ModuleType) -> doctest.TestResults:
    return doctest.testmod(module, optionflags=OPTIONS, report=False, raise_on_error=False, verbose=False)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_hold(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    result = _run(importlib.import_module(name))
    # A failing example's report (expected and got) is printed by doctest; show it with the failure.
    assert result.failed == 0, capsys.readouterr().out


def test_the_metrics_have_examples() -> None:
    """The challenge metrics are documented by example (CCC, P_VA, the -5 mask), so a run of none is a failure."""
    from submissions import metrics

    assert _run(metrics).attempted >= 10
