"""The packages keep their layers: which of the project's packages each may import (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("core", "models", "preprocessing", "submissions", "harness")


def _imports(package: str) -> dict[str, set[str]]:
    """{file: the modules of ours it imports}, from the syntax trees (imports inside functions included)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        mods: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mods.add(node.module)
            elif isinstance(node, ast.Import):
                mods.update(a.name for a in node.names)
        found[str(path.relative_to(ROOT))] = {m for m in mods if m.split(".")[0] in OURS}
    return found


def _offenders(package: str, allowed: tuple[str, ...]) -> list[str]:
    return [f"{f}: {m}" for f, mods in _imports(package).items() for m in sorted(mods)
            if m.split(".")[0] != package and not any(m == a or m.startswith(a + ".") for a in allowed)]  # fmt: skip


@pytest.mark.parametrize(
    ("package", "allowed"),
    [
        ("core", ()),
        ("models", ("core",)),
        ("submissions", ("core",)),
        # the ABAW annotation format; and score_va, with which the demo corpus states its own oracle ceilings
        ("preprocessing", ("core", "submissions.formats", "submissions.metrics")),
    ],
)
def test_lower_packages_import_only_what_their_layer_allows(package: str, allowed: tuple[str, ...]) -> None:
    assert _offenders(package, allowed) == []


def test_the_foundation_helpers_are_imported_from_core_only() -> None:
    moved = ("submissions.atomic", "submissions.locking", "submissions.errors")
    users = [f"{f}: {m}" for pkg in ("models", "preprocessing", "harness") for f, mods in _imports(pkg).items()
             for m in mods if m in moved]  # fmt: skip
    assert users == []


def test_the_offender_check_sees_an_import() -> None:
    """The check above can fail: harness imports preprocessing, which a lower layer may not."""
    assert any(m.startswith("preprocessing") for mods in _imports("harness").values() for m in mods)
    assert _offenders("harness", ("core",)) != []


def test_submissions_knows_no_run_folder_layout() -> None:
    """A run folder's file names are `harness.runs`' alone: submissions/ is handed files and metadata, never a folder
    to look into (no string in it is one of those names)."""
    from harness import runs

    # File names are looked for anywhere in a string; the folder name `predictions` only as a path part (the word
    # itself is everywhere in the scoring messages).
    names = (runs.CONFIG_FILE, runs.GIT_FILE, runs.RUN_FILE, runs.METRICS_FILE, runs.BEST_WEIGHTS_FILE,
             runs.NORM_STATS_FILE, runs.SUBMISSION_FILE, runs.SUMMARY_FILE, runs.BOOTSTRAP_FILE,
             f"{runs.PREDICTIONS_DIR}/")  # fmt: skip
    found = [f"{path.relative_to(ROOT)}:{node.lineno}: {node.value[:60]!r}"
             for path in sorted((ROOT / "submissions").rglob("*.py"))
             for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, ast.Constant) and isinstance(node.value, str)
             and (node.value == runs.PREDICTIONS_DIR or any(n in node.value for n in names))]  # fmt: skip
    assert found == []


def test_no_test_module_imports_another() -> None:
    """Shared test helpers live in `tests/**/_*.py` (and the security corpus's cases.py, hostile.py): importing a
    test module would collect and run its tests' module-level code a second time under another name."""
    users = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            mods = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []  # fmt: skip
            users += [f"{path.relative_to(ROOT)}: {m}" for m in mods
                      if m.startswith("tests.") and m.rsplit(".", 1)[-1].startswith("test_")]  # fmt: skip
    assert users == []
