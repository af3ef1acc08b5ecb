"""Properties of the pure parts of `core.ownership` and the lock names of `core.locking`."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from core.locking import lock_file_name
from core.ownership import Entry, parse_record, plan_claim, render_record

NAMES = st.sets(st.text(alphabet="abcxyz._-", min_size=1, max_size=6).filter(lambda n: n not in {".", ".."}),
                max_size=6)  # fmt: skip


@given(present=NAMES, recorded=st.one_of(st.none(), NAMES), names=NAMES, force=st.booleans())
def test_a_claim_never_takes_what_it_did_not_record(present, recorded, names, force) -> None:
    record = None if recorded is None else {n: Entry("file", 1, 2) for n in recorded}
    plan = plan_claim(present, record, names, force)
    assert plan.refused == (record is None and bool(present) and not force)
    assert set(plan.foreign) == present - set(record or {})
    assert set(plan.blocked) == names & set(plan.foreign)  # a user's file under a claimed name: never replaced
    assert set(plan.entries) == set(record or {}) | names
    assert not set(plan.foreign) & set(record or {})


@given(recorded=NAMES)
def test_a_record_reads_back_as_written(recorded) -> None:
    entries = {n: Entry("dir" if i % 2 else "file", i, 10 * i) for i, n in enumerate(sorted(recorded))}
    assert parse_record(render_record(entries, "test"), "rec") == entries


@given(st.text(min_size=0, max_size=400))
def test_lock_names_are_short_plain_and_distinct(video: str) -> None:
    name = lock_file_name(video)
    assert re.fullmatch(r"[0-9a-f]{32}\.lock", name)
    assert lock_file_name(video + "x") != name
