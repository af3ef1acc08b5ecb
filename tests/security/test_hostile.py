"""Every case of the hostile-input corpus, run as `python -m harness.cli ...`: refused (or handled) cleanly, with one
located `path[:line]: error: message` line per problem and no traceback, within seconds and under 1 GB of memory."""

from __future__ import annotations

import pytest

from tests.security.cases import build_cases, make_world
from tests.security.hostile import Case, Outcome, judge, run_all

MAX_RSS_MB = 1024
"""Peak memory a bounded case may reach (they measure 35-190 MiB; the issue's bound is 1 GB)."""

MAX_ANY_RSS_MB = 2048
"""Peak memory any case may reach: the commands that load a run import torch, whose start-up alone is about 500 MiB
(torch 2.14 here), and predict/train reach about 850-950 MiB on the tiny run."""

BOUNDED = ("yaml_alias_bomb", "yaml_alias_bomb_as_base", "yaml_10000_deep", "zip_bomb_over_size", "zip_bomb_ratio",
           "validate_fifo", "score_fifo", "validate_1gb_nul", "score_1gb_nul", "validate_10mb_line",
           "validate_10mb_line_without_sample", "score_10mb_line", "score_zip_bomb", "validate_sample_1gb_nul",
           "score_annotation_10mb_line", "config_over_size_limit")  # fmt: skip
"""The cases of the issue's 'done when' and their kin: each answered within `MAX_SECONDS` and `MAX_RSS_MB`."""

MAX_SECONDS = 30.0
"""Wall time allowed for a bounded case on a loaded 2-core machine (about 2-4 s is the interpreter and imports)."""


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, tuple[Case, Outcome]]:
    world = make_world(tmp_path_factory.mktemp("hostile"))
    return run_all(build_cases(world))


def test_every_case_is_refused_or_handled_cleanly(results):
    faults = {name: judge(case, out) for name, (case, out) in results.items()}
    bad = {name: f for name, f in faults.items() if f}
    detail = "\n".join(f"{n}: {'; '.join(f)}\n  stderr: {results[n][1].stderr[-600:]!r}" for n, f in bad.items())
    assert not bad, f"{len(bad)} of {len(results)} cases not clean:\n{detail}"
    assert len(results) >= 60


def test_no_case_exhausts_memory_or_time(results):
    over = {n: round(results[n][1].rss_mb) for n in BOUNDED if not results[n][1].rss_mb <= MAX_RSS_MB}
    assert not over, f"peak RSS over {MAX_RSS_MB} MiB: {over}"
    over = {n: round(o.rss_mb) for n, (_, o) in results.items() if not o.rss_mb <= MAX_ANY_RSS_MB}
    assert not over, f"peak RSS over {MAX_ANY_RSS_MB} MiB: {over}"
    slow = {n: round(results[n][1].seconds, 1) for n in BOUNDED if results[n][1].seconds > MAX_SECONDS}
    assert not slow, f"bounded cases slower than {MAX_SECONDS} s: {slow}"


def test_the_pickle_payload_never_runs(results):
    """A run folder whose DeepSpeed checkpoint is a pickle with a __reduce__ payload: resume names the file and the
    type and exits 2; predict, doctor and submit never load it; the payload's sentinel never appears."""
    case, out = results["train_resume_pickle_payload"]
    assert out.rc == 2, out.stderr[-2000:]
    line = next(ln for ln in out.error_lines)
    assert "mp_rank_00_model_states.pt: error: refusing to load this checkpoint: it holds posix.system" in line
    for name in ("train_resume_pickle_payload", "predict_run_with_pickle_payload", "doctor_run_with_pickle_payload",
                 "submit_run_with_pickle_payload", "predict_best_weights_is_a_pickle"):  # fmt: skip
        case, out = results[name]
        assert case.check is not None
        case.check()  # the sentinel is absent


def test_messages_are_never_wrapped(results):
    """At COLUMNS=80 a long located message stays on one line (rich used to cut it mid-sentence)."""
    _, out = results["set_weight_decay_inf"]
    (line,) = out.error_lines
    assert len(line) > 80 and "stage2.weight_decay" in line and "not a finite number" in line
