"""The packages keep their layers: which of the project's packages each may import (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
import re
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
    """A run folder's file names are `harness.folders.run`' alone: submissions/ is handed files and metadata, never a
    folder
    to look into (no string in it is one of those names)."""
    import harness.folders.run as runs

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


# ---------------------------------------------------------------------------------------------------------------
# Inside harness/: sub-packages in layers (docs/ARCHITECTURE.md). A module may import its own package and the
# packages of lower layers only; two packages of one layer do not import each other.
# ---------------------------------------------------------------------------------------------------------------

HARNESS_LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli", "commands"),  # thin: parse, call, print
    ("experiments",),  # Tables I-IV, the comparison, the demo
    ("bench", "ops"),  # benchmarks and the GPU check; doctor and clean
    ("stages",),  # stage 1, stage 2, the baseline, predict, preprocess, one stage skeleton
    ("reporting",),  # the HTML report, plots, tables, the leaderboard, its recording and floors
    ("train",),  # the loop, its strategy, sampler, optimiser, precision, checkpoints, weights, schedule
    ("data",),  # windows, datasets, features, folds, label refinement
    ("folders",),  # RunDir, ExperimentDir, DemoDir, PreprocessDir: the only code that spells a file or folder name
    ("config",),
    ("runtime",),  # distribution, child env, safe I/O, resources, fingerprint, progress, findings, events, sharding
)
"""Top to bottom."""

ACROSS = {("cli", "commands")}
"""Imports within one layer: the CLI discovers the command modules."""

NEVER: dict[str, tuple[str, ...]] = {"train": ("stages", "data")}
"""Lower packages a package still may not import: the loop knows no stage and no dataset."""

HEAVY = ("torch", "deepspeed", "scipy", "matplotlib", "timm", "torchvision", "av", "opensmile", "onnxruntime")
"""Third-party packages whose import costs seconds. A command module (and `harness/cli.py`) may import a harness
module that pulls one of them in (at import time, through its imports) inside `run`, so that `harness --help`, which
imports every command module, and a refused argument stay fast: the one documented exception to "no
harness-internal import inside a function"."""

LAZY_IMPORTERS = ("harness/cli.py", "harness/commands/")
"""Where those optional heavy imports may sit."""


def _harness_package(module: str) -> str:
    """`harness.stages.stage2` -> `stages`; `harness.cli` -> `cli`; `harness` -> ``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _rank(package: str) -> int:
    return next(i for i, layer in enumerate(HARNESS_LAYERS) if package in layer)


def _import_nodes(tree: ast.AST) -> list[tuple[ast.Import | ast.ImportFrom, bool, bool]]:
    """Every import with (inside a function, under `if TYPE_CHECKING`)."""
    out: list[tuple[ast.Import | ast.ImportFrom, bool, bool]] = []

    def visit(node: ast.AST, in_function: bool, typing_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                out.append((child, in_function, typing_only))
            fn = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            tc = typing_only or (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
            visit(child, fn, tc)

    visit(tree, False, False)
    return out


def _targets(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import statement names (for `from pkg import name`, `pkg.name` where that is a module)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.module is None or node.level:
        return []
    subs = [f"{node.module}.{a.name}" for a in node.names]
    return [node.module, *(s for s in subs if _path_of(s) is not None)]


def _path_of(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _harness_files() -> list[Path]:
    return sorted((ROOT / "harness").rglob("*.py"))


def test_every_harness_module_is_in_a_layer() -> None:
    """A new sub-package or top-level module must be placed in `HARNESS_LAYERS` (and in docs/ARCHITECTURE.md)."""
    known = {p for layer in HARNESS_LAYERS for p in layer}
    found = {_harness_package(_module_of(p)) for p in _harness_files()} - {""}
    assert found - known == set()
    assert "__init__" not in found


def test_harness_imports_only_go_down() -> None:
    """Each import inside harness/ goes to the module's own package or a package of a lower layer."""
    bad = []
    for path in _harness_files():
        me = _harness_package(_module_of(path))
        if not me:
            continue
        for node, _fn, _tc in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            for target in _targets(node):
                if not target.startswith("harness."):
                    continue
                them = _harness_package(target)
                if them == me or (me, them) in ACROSS:
                    continue
                if _rank(them) <= _rank(me) or them in NEVER.get(me, ()):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {me} -> {target}")
    assert bad == []


def _top_level_imports(module: str) -> set[str]:
    """The modules `module` imports when it is imported (not inside functions, not for type checkers), with the
    packages above it that Python imports first."""
    path = _path_of(module)
    if path is None:
        return set()
    out = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
    for node, in_function, typing_only in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if not in_function and not typing_only:
            out.update(_targets(node))
    return out


def _pulls_heavy(module: str, seen: dict[str, bool]) -> bool:
    """Whether importing `module` imports one of `HEAVY` (through our packages' top-level imports)."""
    if module in seen:
        return seen[module]
    seen[module] = False
    heavy = False
    for target in _top_level_imports(module):
        root = target.split(".")[0]
        if root in HEAVY or (root in OURS and _pulls_heavy(target, seen)):
            heavy = True
            break
    seen[module] = heavy
    return heavy


def test_no_harness_import_hides_inside_a_function() -> None:
    """Imports of harness modules are at the top of the module, where they show the graph; the one exception is a
    command's import of a module that pulls in a heavy package (`HEAVY`, `LAZY_IMPORTERS`)."""
    seen: dict[str, bool] = {}
    bad = []
    for path in _harness_files():
        rel = str(path.relative_to(ROOT))
        for node, in_function, _tc in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            targets = [t for t in _targets(node) if t.split(".")[0] == "harness"]
            if not in_function or not targets:
                continue
            lazy_ok = rel.startswith(LAZY_IMPORTERS) and all(_pulls_heavy(t, seen) for t in targets)
            if not lazy_ok:
                bad.append(f"{rel}:{node.lineno}: {', '.join(targets)}")
    assert bad == []


def test_the_heavy_check_sees_torch() -> None:
    """The exception above is narrow: stage 2 pulls torch in, the findings module does not."""
    seen: dict[str, bool] = {}
    assert _pulls_heavy("harness.stages.stage2", seen)
    assert not _pulls_heavy("harness.runtime.findings", seen)


def test_no_private_name_crosses_a_package_boundary() -> None:
    """`from harness.<pkg>.<mod> import _name` only from inside <pkg>: a private name is its package's own."""
    bad = []
    for path in _harness_files():
        me = _harness_package(_module_of(path))
        for node, _fn, _tc in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness."):
                private = [a.name for a in node.names if a.name.startswith("_")]
                if private and _harness_package(node.module) != me:
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.module}: {', '.join(private)}")
    assert bad == []


def _layout_names() -> set[str]:
    """The file names folders/ defines (module-level string constants with a suffix, such as `summary.json`)."""
    names: set[str] = set()
    for path in sorted((ROOT / "harness" / "folders").glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                value = node.value.value
                if isinstance(value, str) and "." in value and " " not in value and not value.startswith("."):
                    names.add(value)
    return names


def test_only_folders_spells_a_layout_file_name() -> None:
    """A run, experiment, demo or preprocess folder's file names are spelled in harness/folders/ only: everything
    else asks `RunDir`, `ExperimentDir`, `DemoDir` or `PreprocessDir` (help texts and docstrings may name them)."""
    names = _layout_names()
    assert {"summary.json", "scores.json", "config.yaml", "preprocess_summary.json"} <= names
    bad = []
    for path in _harness_files():
        if path.parent.name == "folders":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = {id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef) and n.body
                and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}  # fmt: skip
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs \
                    and node.value in names:  # fmt: skip
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert bad == []


# ---------------------------------------------------------------------------------------------------------------
# Tests that check inside a loop first check that the loop runs: an empty iterable would pass them silently.
# ---------------------------------------------------------------------------------------------------------------


def _literal(node: ast.expr) -> bool:
    """An iterable that cannot be empty by accident: a literal, `range` of constants, an UPPER_CASE constant, or
    `enumerate`/`zip`/`sorted` of those."""
    if isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Constant):
        return True
    if isinstance(node, ast.Name):
        return node.id.isupper()
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id == "range":
            return all(isinstance(a, ast.Constant) for a in node.args)
        if node.func.id in ("enumerate", "zip", "sorted", "reversed"):
            return all(_literal(a) for a in node.args)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
        return node.func.value.id.isupper()  # CONSTANT.items()
    return False


def _unchecked_loops(path: Path, root: Path = ROOT) -> list[str]:
    """Loops with an assert inside whose iterable no earlier assert of the test names."""
    bad = []
    for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(fn, ast.FunctionDef) or not fn.name.startswith("test"):
            continue
        seen: list[str] = []

        def walk(body: list[ast.stmt], seen: list[str], test: str) -> None:
            for st in body:
                if isinstance(st, ast.For) and not _literal(st.iter) \
                        and any(isinstance(n, ast.Assert) for n in ast.walk(st)):  # fmt: skip
                    names = {n.id for n in ast.walk(st.iter) if isinstance(n, ast.Name)}
                    if not any(re.search(rf"\b{re.escape(n)}\b", a) for n in names for a in seen):
                        where = f"{path.relative_to(root)}:{st.lineno}: {test}"
                        bad.append(f"{where}: for ... in {ast.unparse(st.iter)}")
                if isinstance(st, ast.Assert):
                    seen.append(ast.unparse(st))
                if not isinstance(st, ast.For):
                    for field in ("body", "orelse", "finalbody"):
                        walk(getattr(st, field, []), seen, test)

        walk(fn.body, seen, fn.name)
    return bad


def test_a_test_that_asserts_in_a_loop_first_asserts_that_the_loop_runs() -> None:
    bad = [line for path in sorted((ROOT / "tests").rglob("test_*.py")) for line in _unchecked_loops(path)]
    assert bad == []


def test_the_loop_check_sees_an_unchecked_loop(tmp_path: Path) -> None:
    probe = tmp_path / "test_probe.py"
    probe.write_text("def test_x(rows):\n    for r in rows:\n        assert r\n", encoding="utf-8")
    assert _unchecked_loops(probe, tmp_path) == ["test_probe.py:2: test_x: for ... in rows"]
    probe.write_text("def test_x(rows):\n    assert rows\n    for r in rows:\n        assert r\n", encoding="utf-8")
    assert _unchecked_loops(probe, tmp_path) == []
