"""The planted-regression battery: each mutation of `tests.regression._mutations` must be caught, by the
recorded leaderboard's check of the guarded run's part it affects (a key dropped or rose) or by a named unit test
that fails with it planted. Both controls run first: unmutated, the part passes the check and the named tests pass
(else a catch would prove nothing). The session's summary prints the catch rate (`conftest.py`)."""

from __future__ import annotations

import pytest

from tests.regression._guarded import (
    RESULTS,
    GuardedRun,
    NamedRun,
    Outcome,
    Verdict,
    check_catch,
    prepare_part,
    rerun_part,
    run_named_tests,
    verdict,
)
from tests.regression._mutations import MUTATIONS, Mutation

PARTS = sorted({m.part for m in MUTATIONS if m.part})
NAMED = sorted({t for m in MUTATIONS for t in m.tests})


@pytest.fixture(scope="session")
def unmutated(guarded: GuardedRun, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Verdict, dict]]:
    """Each part rerun without a mutation: part -> (the check's verdict, its flat scores)."""
    out = {}
    for part in PARTS:
        work = tmp_path_factory.mktemp(f"unmutated_{part}")
        prepare_part(guarded, work)
        scores = rerun_part(part, guarded, work)
        out[part] = (verdict(scores), scores)
    return out


@pytest.fixture(scope="session")
def named_unmutated() -> NamedRun:
    """Every named unit test run with the battery's plugin loaded and nothing planted."""
    return run_named_tests(NAMED, None)


@pytest.mark.slow
def test_unmutated_parts_pass_the_check(guarded, unmutated):
    assert unmutated, "the loop below checks nothing"
    for part, (v, scores) in unmutated.items():
        assert v.compared, f"{part}: the check compared none of its keys ({sorted(scores)})"
        moved = {k: (guarded.scores.get(k), scores[k]) for k in v.dropped + v.rose}
        assert v.ok, f"{part}: unmutated, the check ({v.mode}) fails: {moved}"


@pytest.mark.slow
def test_named_tests_pass_unmutated(named_unmutated):
    assert named_unmutated.returncode == 0, named_unmutated.tail


@pytest.mark.slow
@pytest.mark.parametrize("m", MUTATIONS, ids=[m.name for m in MUTATIONS])
def test_mutation_is_caught(m: Mutation, guarded, unmutated, named_unmutated, tmp_path):
    outcome = Outcome(m.name, m.area, checked=m.part is not None, tested=bool(m.tests))
    RESULTS.append(outcome)
    if m.tests:
        run = run_named_tests(m.tests, m.name)
        assert run.returncode in (0, 1), f"{m.name}: the named tests did not run:\n{run.tail}"
        if named_unmutated.returncode == 0:  # a test that fails unmutated too proves nothing
            outcome.catchers += [f"test {t}" for t in run.failed]
        elif run.failed:
            outcome.notes.append(f"failed {', '.join(run.failed)}, but the named tests fail unmutated too")
    if m.part:
        control, _ = unmutated[m.part]
        prepare_part(guarded, tmp_path)
        with pytest.MonkeyPatch.context() as mp:
            m.apply(mp)
            scores = rerun_part(m.part, guarded, tmp_path)
        v = verdict(scores)
        if control.ok:  # a check that fails unmutated proves nothing
            outcome.catchers += check_catch(v, scores, guarded)
        if v.ok:
            outcome.notes.append(f"check ({v.mode}): every compared key of {m.part} held")
    assert outcome.catchers, f"{m.name} ({m.what}) was caught by nothing: {outcome.notes}"
