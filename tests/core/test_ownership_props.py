"""Properties of the pure parts of `core.ownership` and the lock names of `core.locking`."""

from __future__ import annotations

import json
import os
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.locking import lock_file_name
from core.ownership import (
    MAX_RECORD_BYTES,
    OWNERSHIP_FILE,
    Entry,
    OwnershipError,
    parse_record,
    plan_claim,
    read_record,
    render_record,
)

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


def test_a_record_is_read_bounded_and_a_link_is_never_followed(tmp_path) -> None:
    good = render_record({"a": Entry("file", 3, 7)}, "run folder")
    (tmp_path / OWNERSHIP_FILE).write_text(good)
    assert read_record(tmp_path) == {"a": Entry("file", 3, 7)}
    # A size of 1,000 digits is a number json would take; the bounded parser refuses it as damage.
    (tmp_path / OWNERSHIP_FILE).write_text(good.replace('"size": 3', '"size": ' + "9" * 1000))
    with pytest.raises(OwnershipError, match=r"damaged ownership record \(not valid JSON \(an integer of 1000 digits"):
        read_record(tmp_path)
    (tmp_path / OWNERSHIP_FILE).write_text(json.dumps({"pad": "x" * MAX_RECORD_BYTES}))
    with pytest.raises(OwnershipError, match=f"larger than {MAX_RECORD_BYTES} bytes"):
        read_record(tmp_path)
    (tmp_path / "elsewhere.json").write_text(good)
    (tmp_path / OWNERSHIP_FILE).unlink()
    os.symlink(tmp_path / "elsewhere.json", tmp_path / OWNERSHIP_FILE)
    with pytest.raises(OwnershipError, match="a symbolic link where the harness keeps its ownership record"):
        read_record(tmp_path)
    (tmp_path / OWNERSHIP_FILE).unlink()
    os.mkfifo(tmp_path / OWNERSHIP_FILE)
    with pytest.raises(OwnershipError, match="not a regular file"):  # returns at once: the FIFO is never opened
        read_record(tmp_path)
