"""The battery's own machinery, without a run: planting reaches every binding and undoes; the check's verdict names
the keys below their floor and above their ceiling; the summary names each mutation's catchers and a miss."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from submissions.leaderboard import load_recorded
from tests.regression._guarded import Outcome, summary_lines, verdict
from tests.regression._mutations import BY_NAME, MUTATIONS, mutation, plant


def test_plant_replaces_every_binding_and_undo_restores(monkeypatch):
    owner, user = types.ModuleType("_battery_owner"), types.ModuleType("_battery_user")

    def f() -> str:
        return "real"

    owner.f = user.g = f  # `from _battery_owner import f as g` in another module
    monkeypatch.setitem(sys.modules, owner.__name__, owner)
    monkeypatch.setitem(sys.modules, user.__name__, user)
    mp = pytest.MonkeyPatch()
    assert plant(mp, owner, "f", lambda: "planted") == 2
    assert owner.f() == user.g() == "planted"
    mp.undo()
    assert owner.f is f and user.g is f


def test_every_area_of_the_issue_has_a_mutation_with_a_catcher():
    areas = {m.area for m in MUTATIONS}
    assert areas >= {"preprocessing alignment", "fusion math", "masking", "windowing and averaging", "normalisation",
                     "submission writer", "freezing", "loss", "train/eval mode", "schedule", "best-epoch selection",
                     "fold assignment"}  # fmt: skip
    assert len(MUTATIONS) >= 12 and len(BY_NAME) == len(MUTATIONS)
    assert all(m.tests or m.part for m in MUTATIONS)
    with pytest.raises(pytest.UsageError, match="no such mutation"):
        mutation("no_such_bug")


def test_verdict_names_keys_below_their_floor_and_above_their_ceiling():
    keys = load_recorded()["quick"]["keys"]
    held, low, high = sorted(k for k in keys if k.endswith("/p_va"))[:3]
    scores = {held: keys[held]["value"], low: keys[low]["floor"] - 0.01, high: keys[high]["ceiling"] + 0.01}
    v = verdict(scores)
    assert (v.dropped, v.rose, sorted(v.compared)) == ([low], [high], sorted(scores))
    assert not v.ok and verdict({held: keys[held]["value"]}).ok


def test_summary_counts_catches_and_names_a_miss():
    results = [Outcome("bug_a", "loss", ["test t::x", "check (band): dropped k (+0.5000 -> +0.1000)"], [], True, True),
               Outcome("bug_b", "schedule", [], ["check (band): every compared key held"], True, False)]  # fmt: skip
    lines = summary_lines(results, planned=3)
    assert lines[0] == ("planted-regression battery: 1 of 2 caught (1 of the battery's 3 mutations not run in "
                        "this session)")  # fmt: skip
    assert lines[1] == "  by the leaderboard check: 1 of the 2 rerun on the guarded run; by named unit tests: 1 of 1"
    assert "  caught: bug_a (loss)" in lines and "  MISSED: bug_b (schedule)" in lines
    assert "      by check (band): dropped k (+0.5000 -> +0.1000)" in lines


def test_every_named_test_file_exists():
    """A named test whose file moved makes every catch through named tests fail unmutated (a moved module once did)."""
    root = Path(__file__).resolve().parents[2]
    named = sorted({t for m in MUTATIONS for t in m.tests})
    assert named, "no named tests to look for"
    assert [t for t in named if not (root / t.split("::")[0]).is_file()] == []
