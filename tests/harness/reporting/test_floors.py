"""Quality floors: the band math (`harness.reporting.floors`), the recorded file (`submissions.leaderboard`: record,
refuse a
lower floor, read format 1) and the check's statuses."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import HarnessError
from harness.reporting.floors import MIN_RUNS, Run, choose_k, key_floor, loo_deviation, measure_floors, prediction_k
from submissions.leaderboard import (
    BAND_CAP,
    BAND_FACTOR,
    FORMAT,
    MIN_BAND,
    STATUSES,
    band_status,
    check_recorded,
    exact_differences,
    fixture_scores,
    floor_drops,
    load_recorded,
    record_scores,
)

PLAT = {"machine": "x86_64", "cpu_vendor": "AuthenticAMD", "cpu_model": "AMD EPYC", "cpu_isa": "avx512",
        "aten_capability": "avx512", "aten_capability_env": "", "torch": "2.14.1", "numpy": "2.4", "mkl": "2024.2",
        "onednn": "3.12.0", "threads": 1, "device": "cpu"}  # fmt: skip

finite = st.floats(-1, 1, allow_nan=False)


def _runs(values: dict[str, list[float]]) -> list[Run]:
    n = len(next(iter(values.values())))
    return [Run(f"seed{i}", {k: v[i] for k, v in values.items()}, seed=i, threads=1) for i in range(n)]


def _record(path, values: dict[str, list[float]], accept_drop: str | None = None, cap: float = BAND_CAP) -> dict:
    runs = _runs(values)
    floors, k, reason = measure_floors(runs, cap=cap)
    return record_scores({**fixture_scores(), **runs[0].scores}, PLAT, path,
                         floors={key: f.to_json() for key, f in floors.items()}, samples=[r.to_json() for r in runs],
                         k=k, k_reason=reason, cap=cap, accept_drop=accept_drop, today="2026-12-07")  # fmt: skip


# --- the math -------------------------------------------------------------------------------------------------


def test_prediction_k_is_the_t_prediction_factor_with_bonferroni():
    # t(0.995, 7) = 3.4995 (printed tables); one new run of a sample of 8: x sqrt(1 + 1/8).
    assert prediction_k(8, 1, 0.01) == pytest.approx(3.4995 * math.sqrt(1.125), abs=1e-3)
    # Sharing alpha over more keys widens each key's band; more runs narrow it.
    assert prediction_k(8, 40) > prediction_k(8, 10) > prediction_k(8, 1)
    assert prediction_k(30, 10) < prediction_k(8, 10)
    with pytest.raises(HarnessError, match="n >= 2"):
        prediction_k(1, 1)


def test_loo_deviation_skips_runs_whose_others_agree_exactly():
    # Leaving out the 1 leaves four zeros (no spread: skipped); leaving out a 0 leaves [0, 0, 0, 1].
    rest_sd = float(np.std([0, 0, 0, 1], ddof=1))
    assert loo_deviation([0, 0, 0, 0, 1]) == pytest.approx(0.25 / (rest_sd * math.sqrt(1.25)))
    assert loo_deviation([0.3, 0.3, 0.3]) == 0.0 and loo_deviation([0.1, 0.9]) == 0.0


def test_choose_k_follows_heavy_tails_and_says_why():
    normal = {"a": [0.50, 0.52, 0.48, 0.51, 0.49, 0.50], "b": [0.3] * 6}
    k, reason = choose_k(normal)
    assert k == pytest.approx(prediction_k(6, 1))  # only "a" varies; its runs are no wider than a normal's
    assert "1 of 2 keys vary" in reason and "leave-one-out" in reason
    # A score repeated under another name is one test: it does not widen the others' bands.
    assert choose_k({**normal, "a_again": list(normal["a"])})[0] == pytest.approx(k)
    assert choose_k({**normal, "c": [0.3, 0.31, 0.29, 0.3, 0.3, 0.3]})[0] == pytest.approx(prediction_k(6, 2))
    # One run far out of the others: k follows the measured deviation, not the normal factor.
    tail = {"a": [0.50, 0.501, 0.499, 0.5, 0.5005, 0.9]}
    k2, reason2 = choose_k(tail)
    assert k2 == pytest.approx(loo_deviation(tail["a"])) and k2 > prediction_k(6, 1)
    assert f"{k2:.3f}" in reason2
    assert choose_k({"c": [0.1] * 5})[0] == 0.0


@settings(max_examples=200, deadline=None)
@given(st.lists(finite, min_size=MIN_RUNS, max_size=10), st.floats(0, 20), st.floats(MIN_BAND, 2))
def test_key_floor_band_is_k_times_spread_within_bounds(values, k, cap):
    f = key_floor(values, k, cap)
    sd = float(np.std(values, ddof=1))
    assert f.value == pytest.approx(float(np.mean(values))) and f.spread == pytest.approx(sd)
    assert MIN_BAND <= f.band <= cap
    assert f.band == pytest.approx(min(cap, max(MIN_BAND, k * sd)))
    assert f.capped == (k * sd > cap)
    assert f.guarded == (not f.capped or cap >= prediction_k(len(values), 1) * sd)
    assert f.floor == pytest.approx(f.value - f.band) and f.ceiling == pytest.approx(f.value + f.band)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(finite, min_size=3, max_size=3), min_size=MIN_RUNS, max_size=10))
def test_every_recorded_run_passes_its_own_recording(rows):
    """No false alarm on the runs measured: each lies within value +- k x spread (Samuelson: at most
    (n - 1)/sqrt(n) spreads from the mean, below the prediction factor for n <= 10)."""
    values = {f"k{j}": [r[j] for r in rows] for j in range(3)}
    floors, _k, _ = measure_floors(_runs(values), cap=10.0)
    assert values, "the loop below checks nothing"
    for key, vals in values.items():
        for v in vals:
            assert band_status(v, floors[key].floor, floors[key].ceiling) == "ok", (key, v)


@settings(max_examples=300, deadline=None)
@given(finite, st.floats(MIN_BAND, 0.5), st.floats(0, 1))
def test_band_status_inside_passes_below_drops_above_rises(value, band, where):
    floor, ceiling = value - band, value + band
    assert band_status(floor + where * (ceiling - floor), floor, ceiling) == "ok"
    assert band_status(floor, floor, ceiling) == band_status(ceiling, floor, ceiling) == "ok"
    step = max(1e-9, where * band)
    assert band_status(floor - step, floor, ceiling) == "dropped"
    assert band_status(ceiling + step, floor, ceiling) == "rose"
    assert band_status(float("nan"), floor, ceiling) == "dropped"
    assert band_status(None, floor, ceiling) == "absent"


def test_measure_floors_refuses_too_few_or_unlike_runs():
    with pytest.raises(HarnessError, match=f"at least {MIN_RUNS} runs"):
        measure_floors(_runs({"a": [0.1, 0.2, 0.3, 0.4]}))
    runs = _runs({"a": [0.1, 0.2, 0.3, 0.4, 0.5], "b": [0.5] * 5})
    runs[2] = Run("seed2", {"a": 0.3}, seed=2)
    with pytest.raises(HarnessError, match=r"seed2: error: lacks 1 key\(s\) the other runs hold \(b\)"):
        measure_floors(runs)
    runs[2] = Run("seed2", {"a": float("nan"), "b": 0.5}, seed=2)
    with pytest.raises(HarnessError, match="seed2: error: non-finite score"):
        measure_floors(runs)


# --- the recorded file ----------------------------------------------------------------------------------------

VALUES = {"quick/a/p_va": [0.50, 0.52, 0.47, 0.51, 0.49, 0.50], "quick/b/p_va": [0.30] * 6,
          "quick/c/p_va": [-0.9, 0.9, 0.0, 0.5, -0.5, 0.2]}  # fmt: skip


def test_recording_keeps_value_spread_band_floor_and_every_sample(tmp_path):
    path = tmp_path / "rec.json"
    _record(path, VALUES)
    rec = load_recorded(path)
    q = rec["quick"]
    assert rec["format"] == FORMAT and q["platform"] == PLAT and q["cap"] == BAND_CAP
    a, b, c = (q["keys"][f"quick/{x}/p_va"] for x in "abc")
    assert a["value"] == pytest.approx(np.mean(VALUES["quick/a/p_va"]))
    assert a["spread"] == pytest.approx(np.std(VALUES["quick/a/p_va"], ddof=1))
    assert a["band"] == pytest.approx(q["k"] * a["spread"]) and a["floor"] == pytest.approx(a["value"] - a["band"])
    assert b["band"] == MIN_BAND and b["spread"] == 0  # a key no run moved: the narrowest band
    assert c["band"] == BAND_CAP and c["capped"]  # a key that varies by more than the cap: the cap
    assert not c["guarded"] and a["guarded"] and b["guarded"]  # c varies too much even for the cap
    # Every run is kept, so the spread can be recomputed from the file alone.
    assert [s["seed"] for s in q["samples"]] == list(range(6))
    recomputed = np.std([s["scores"]["quick/a/p_va"] for s in q["samples"]], ddof=1)
    assert recomputed == pytest.approx(a["spread"], abs=1e-15)
    assert q["scores"]["quick/a/p_va"] == 0.50  # the reference run, kept exactly
    assert "t(1 - 0.01/(2 x 2)" in q["k_reason"] and "2 distinct value series" in q["k_reason"]
    assert "leave-one-out" in q["k_reason"]
    assert rec["fixture"]["scores"] == pytest.approx(fixture_scores(), abs=1e-12)


def test_check_names_dropped_and_rose_keys(tmp_path):
    path = tmp_path / "rec.json"
    _record(path, VALUES)
    rec = load_recorded(path)
    a = rec["quick"]["keys"]["quick/a/p_va"]
    fx = fixture_scores()
    good = {**fx, "quick/a/p_va": a["floor"] + 1e-9, "quick/b/p_va": 0.3, "quick/c/p_va": 0.0}
    res = check_recorded(good, rec, PLAT)
    assert res.ok and res.mode == "floors" and not res.dropped and not res.rose and not res.absent
    assert {r.status for r in res.rows} == {"ok", "noisy"} and "the recording platform" in res.reason
    # c's band is wider than the cap: listed as noisy wherever it lands, never failed; a NaN of it still drops.
    assert res.noisy == ["quick/c/p_va"]
    far = check_recorded({**good, "quick/c/p_va": -5.0}, rec, PLAT)
    assert far.ok and far.noisy == ["quick/c/p_va"] and not far.dropped
    assert check_recorded({**good, "quick/c/p_va": float("nan")}, rec, PLAT).dropped == ["quick/c/p_va"]
    bad = {**good, "quick/a/p_va": a["floor"] - 1e-6, "quick/b/p_va": 0.3 + 2e-6}
    res = check_recorded(bad, rec, {**PLAT, "aten_capability": "default", "aten_capability_env": "default"})
    assert not res.ok and res.dropped == ["quick/a/p_va"] and res.rose == ["quick/b/p_va"]
    assert "aten_capability: avx512 != default" in res.reason
    row = next(r for r in res.rows if r.key == "quick/a/p_va")
    assert (row.floor, row.ceiling, row.status) == (a["floor"], a["ceiling"], "dropped")
    # A key the scores lack is listed as absent, not failed; a NaN drops.
    part = check_recorded({**fx, "quick/a/p_va": 0.5}, rec, PLAT)
    assert part.ok and part.absent == ["quick/b/p_va", "quick/c/p_va"]
    assert [r.status for r in part.rows if r.key in part.absent] == ["absent", "absent"]
    assert {r.status for r in [*res.rows, *part.rows]} == set(STATUSES)
    assert check_recorded({**good, "quick/b/p_va": float("nan")}, rec, PLAT).dropped == ["quick/b/p_va"]
    # The fixture stays exact (1e-9), both ways.
    moved = check_recorded({**good, "fixture/p_va": fx["fixture/p_va"] + 2e-9}, rec, PLAT)
    assert moved.rose == ["fixture/p_va"]
    # The reference run is compared exactly only by exact_differences (the determinism test's).
    assert exact_differences({"quick/a/p_va": 0.5, "quick/b/p_va": 0.3, "quick/c/p_va": -0.9}, rec) == []
    assert exact_differences({"quick/a/p_va": 0.5 + 2e-6, "quick/b/p_va": 0.3}, rec) == [
        "quick/a/p_va: 0.5 -> 0.500002", "quick/c/p_va: -0.9 -> None"]


def test_a_lower_floor_is_refused_without_a_reason_and_recorded_with_one(tmp_path):
    path = tmp_path / "rec.json"
    _record(path, VALUES)
    before = path.read_bytes()
    worse = {**VALUES, "quick/a/p_va": [v - 0.05 for v in VALUES["quick/a/p_va"]]}
    with pytest.raises(HarnessError, match=r"rec\.json: error: the new recording lowers 1 floor\(s\) "
                                           r"\(quick/a/p_va: floor .* -> .*\); nothing recorded.*--accept-drop"):
        _record(path, worse)
    assert path.read_bytes() == before
    with pytest.raises(HarnessError, match="lowers 1 floor"):
        _record(path, worse, accept_drop="  ")  # a blank reason is no reason
    _record(path, worse, accept_drop="corpus v3: harder test videos")
    q = load_recorded(path)["quick"]
    assert q["accepted_drops"] == [{"date": "2026-12-07", "reason": "corpus v3: harder test videos",
                                    "keys": {"quick/a/p_va": pytest.approx(q["accepted_drops"][0]["keys"]
                                                                            ["quick/a/p_va"])}}]  # fmt: skip
    assert list(q["accepted_drops"][0]["keys"]) == ["quick/a/p_va"]
    # A higher floor needs no reason, and the history of accepted drops stays.
    _record(path, VALUES)
    assert len(load_recorded(path)["quick"]["accepted_drops"]) == 1
    # A key no longer guarded is a drop too.
    fewer = {k: v for k, v in VALUES.items() if k != "quick/b/p_va"}
    assert "quick/b/p_va" in floor_drops(load_recorded(path)["quick"], {k: {"floor": 1.0} for k in fewer})
    with pytest.raises(HarnessError, match="quick/b/p_va: no longer recorded"):
        _record(path, fewer)
    # So is a key whose band grows past the cap (it would no longer be guarded); a key that was capped guarded
    # nothing, so no recording weakens it.
    old = load_recorded(path)["quick"]
    widened = floor_drops(old, {**old["keys"], "quick/a/p_va": {"floor": 1.0, "capped": True, "guarded": False}})
    assert list(widened) == ["quick/a/p_va"] and "no longer guarded" in widened["quick/a/p_va"]
    assert "quick/c/p_va" not in floor_drops(old, {**old["keys"], "quick/c/p_va": {"floor": -9.0, "guarded": False}})


def test_format_1_is_read_with_its_level_bands(tmp_path):
    """A recording from before floors (scores + kernel levels + band_factor) still checks: band = band_factor x the
    range over the levels, within [MIN_BAND, BAND_CAP]."""
    v1 = {"fixture": {"scores": {}}, "quick": {
        "platform": {**PLAT, "aten_capability": "avx2"}, "band_factor": BAND_FACTOR,
        "scores": {"quick/a/p_va": 0.70, "quick/b/p_va": 0.5, "quick/c/p_va": 0.1},
        "levels": {"default": {"quick/a/p_va": 0.68, "quick/b/p_va": 0.5, "quick/c/p_va": -0.1},
                   "avx2": {"quick/a/p_va": 0.70, "quick/b/p_va": 0.5, "quick/c/p_va": 0.1}}}}  # fmt: skip
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(v1))
    q = load_recorded(path)["quick"]
    assert q["migrated_from"] == 1 and q["k"] == BAND_FACTOR
    assert q["keys"]["quick/a/p_va"]["band"] == pytest.approx(BAND_FACTOR * 0.02)
    assert q["keys"]["quick/b/p_va"]["band"] == MIN_BAND
    assert q["keys"]["quick/c/p_va"]["band"] == BAND_CAP and q["keys"]["quick/c/p_va"]["capped"]
    assert [s["level"] for s in q["samples"]] == ["avx2", "default"]
    assert q["keys"]["quick/a/p_va"]["runs"] == 2  # the recorded run is the avx2 level's run
    res = check_recorded({"quick/a/p_va": 0.70 - 0.099, "quick/b/p_va": 0.5, "quick/c/p_va": 0.1}, {"fixture": {
        "scores": {}}, "quick": q}, PLAT)  # fmt: skip
    assert res.ok
    # The committed recording loads, whatever its format, and every key has a floor below its ceiling.
    committed = load_recorded()["quick"]
    assert committed["keys"] and all(e["floor"] < e["ceiling"] for e in committed["keys"].values())


def test_load_recorded_names_a_bad_keys_entry(tmp_path):
    path = tmp_path / "rec.json"
    _record(path, VALUES)
    data = json.loads(path.read_text())
    del data["quick"]["keys"]["quick/a/p_va"]["floor"]
    path.write_text(json.dumps(data))
    with pytest.raises(HarnessError, match=r"rec\.json: error: 'quick.keys' entries need value, floor and ceiling: "
                                           r"quick/a/p_va"):
        load_recorded(path)


def test_a_capped_key_stays_guarded_while_the_cap_keeps_its_own_false_alarms_rare():
    """k shares alpha among every key, so it can exceed the cap for a key the cap still guards well: BDCA's P_VA
    in the recording of issue 24 (spread 0.058, k 6.69: 0.39 > 0.25, but the one-key factor x spread is 0.22)."""
    steady = [0.45, 0.40, 0.50, 0.42, 0.48, 0.38, 0.52, 0.44]  # sd 0.049
    f = key_floor(steady, 6.69)
    assert f.capped and f.guarded and f.band == BAND_CAP
    assert prediction_k(8, 1) * f.spread <= BAND_CAP < 6.69 * f.spread
    wild = [0.45, -0.10, 0.60, 0.05, 0.50, -0.20, 0.70, 0.10]
    g = key_floor(wild, 6.69)
    assert g.capped and not g.guarded and prediction_k(8, 1) * g.spread > BAND_CAP
