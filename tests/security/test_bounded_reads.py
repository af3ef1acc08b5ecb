"""Issue 25's read-side classes, each case a real `harness` process: refused or handled with located error lines,
no traceback, no hang, under 1 GB of peak memory and 30 s."""

from __future__ import annotations

import pytest

from tests.security._reads import build_read_cases
from tests.security.cases import make_world
from tests.security.hostile import Case, Outcome, judge, run_all

MAX_RSS_MB = 1024
"""Peak memory of any case (the issue's bound)."""

MAX_SECONDS = 30.0
"""Wall time of any case on a loaded 2-core machine."""


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, tuple[Case, Outcome]]:
    world = make_world(tmp_path_factory.mktemp("reads"))
    return run_all(build_read_cases(world))


def test_every_case_is_refused_or_handled_cleanly(results):
    faults = {name: judge(case, out) for name, (case, out) in results.items()}
    bad = {name: f for name, f in faults.items() if f}
    detail = "\n".join(f"{n}: {'; '.join(f)}\n  stderr: {results[n][1].stderr[-600:]!r}\n  stdout: "
                       f"{results[n][1].stdout[-300:]!r}" for n, f in bad.items())  # fmt: skip
    assert not bad, f"{len(bad)} of {len(results)} cases not clean:\n{detail}"
    assert len(results) >= 60


def test_every_case_stays_under_1_gb_and_30_s(results):
    over = {n: round(o.rss_mb) for n, (_, o) in results.items() if not o.rss_mb <= MAX_RSS_MB}
    assert not over, f"peak RSS over {MAX_RSS_MB} MiB: {over}"
    slow = {n: round(o.seconds, 1) for n, (_, o) in results.items() if o.seconds > MAX_SECONDS}
    assert not slow, f"cases slower than {MAX_SECONDS} s: {slow}"


def test_messages_name_the_users_path_never_a_temporary_one(results):
    _, out = results["validate_package_names_member"]
    assert "!predictions.csv:3:" in out.stdout + out.stderr
    _, out = results["score_package_names_member"]
    assert "submission.zip!predictions.csv: error: no predictions" in out.stderr
    assert results, "the loop below checks nothing"
    for name, (_, o) in results.items():
        assert "/harness-" not in o.stdout + o.stderr, name  # harness-validate-XXXX, harness-score-XXXX ...


def test_blank_lines_are_counted_not_listed(results):
    """100 MiB of blank lines: at most 1,000 listed, the rest counted in one line (validate prints 20 of them)."""
    _, out = results["validate_100mib_empty_lines"]
    assert out.rc == 1 and "more problem(s)" in out.stdout
