"""`harness leaderboard --record`, `--record-quick` and `--check` on fake score sets: exit codes, the REGRESSION and
CHANGED lines, the refusal of a lower floor, the reason written, and a resumable quick recording."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import HarnessError
from harness.cli import main
from harness.reporting.recording import REFERENCE_SEED, plan_runs, record_quick
from harness.runtime.fingerprint import native_aten_levels
from submissions.leaderboard import load_recorded

PLAT = {"machine": "x86_64", "cpu_vendor": "AuthenticAMD", "cpu_model": "AMD EPYC", "cpu_isa": "avx512",
        "aten_capability": "avx512", "aten_capability_env": "", "torch": "2.14.1", "numpy": "2.4", "mkl": "2024.2",
        "onednn": "3.12.0", "threads": 1, "device": "cpu"}  # fmt: skip

BDCA = [0.50, 0.53, 0.47, 0.51, 0.49]
BASE = [0.30, 0.31, 0.29, 0.30, 0.32]


def _scores(folder: Path, bdca: float, base: float, platform: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "scores.json"
    path.write_text(json.dumps({"quick/test/bdca": {"ccc_v": bdca - 0.01, "ccc_a": bdca + 0.01, "p_va": bdca},
                                "quick/test/baseline": {"p_va": base}, "platform": platform or PLAT}))
    return path


def _seed_runs(root: Path, shift: float = 0.0) -> list[str]:
    return [str(_scores(root / f"s{i}", b + shift, c)) for i, (b, c) in enumerate(zip(BDCA, BASE, strict=True))]


def test_record_from_a_users_own_runs_then_check(tmp_path, capsys):
    rec = tmp_path / "floors.json"
    paths = _seed_runs(tmp_path / "runs")
    assert main(["leaderboard", "--record", "--scores", paths[0], "--seeds-from", *paths[1:],
                 "--recorded", str(rec)]) == 0  # fmt: skip
    assert "recorded floors of 4 keys from 5 runs" in capsys.readouterr().out
    q = load_recorded(rec)["quick"]
    assert [s["name"] for s in q["samples"]] == paths and q["scores"]["quick/test/bdca/p_va"] == BDCA[0]
    floor = q["keys"]["quick/test/bdca/p_va"]["floor"]
    ceiling = q["keys"]["quick/test/bdca/p_va"]["ceiling"]
    # Within the band: exit 0, OK.
    ok = _scores(tmp_path / "ok", floor + 1e-4, 0.30)
    assert main(["leaderboard", "--check", "--scores", str(ok), "--recorded", str(rec)]) == 0
    out = capsys.readouterr().out
    assert "mode: floors" in out and "OK: every key within its band" in out and "REGRESSION" not in out
    # Below the floor: exit 1, one REGRESSION line naming the key and its floor.
    low = _scores(tmp_path / "low", floor - 0.01, 0.30)
    assert main(["leaderboard", "--check", "--scores", str(low), "--recorded", str(rec)]) == 1
    out = capsys.readouterr().out
    assert f"REGRESSION: dropped quick/test/bdca/p_va: {floor - 0.01:.6g} below floor {floor:.6g}" in out
    assert "OK:" not in out and "CHANGED" not in out
    # Above the ceiling: exit 1, the CHANGED line.
    high = _scores(tmp_path / "high", ceiling + 0.01, 0.30)
    assert main(["leaderboard", "--check", "--scores", str(high), "--recorded", str(rec)]) == 1
    out = capsys.readouterr().out
    assert ("CHANGED: rose beyond the band - re-record deliberately, and say why: quick/test/bdca/p_va: "
            f"{ceiling + 0.01:.6g} above ceiling {ceiling:.6g}") in out
    assert "REGRESSION" not in out
    # A score that is not a number is a drop.
    nan = _scores(tmp_path / "nan", float("nan"), 0.30)
    assert main(["leaderboard", "--check", "--scores", str(nan), "--recorded", str(rec)]) == 1
    assert "REGRESSION: dropped quick/test/bdca/p_va: nan not a number" in capsys.readouterr().out


def test_record_refuses_a_lower_floor_until_a_reason_is_given(tmp_path, capsys):
    rec = tmp_path / "floors.json"
    first = _seed_runs(tmp_path / "a")
    assert main(["leaderboard", "--record", "--scores", first[0], "--seeds-from", *first[1:],
                 "--recorded", str(rec)]) == 0  # fmt: skip
    before = rec.read_bytes()
    lower = _seed_runs(tmp_path / "b", shift=-0.1)
    args = ["leaderboard", "--record", "--scores", lower[0], "--seeds-from", *lower[1:], "--recorded", str(rec)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "floors.json: error: the new recording lowers 3 floor(s)" in err and "--accept-drop REASON" in err
    assert "quick/test/bdca/p_va: floor" in err and rec.read_bytes() == before
    assert main([*args, "--accept-drop", "new corpus: harder test split"]) == 0
    drops = load_recorded(rec)["quick"]["accepted_drops"]
    assert len(drops) == 1 and drops[0]["reason"] == "new corpus: harder test split"
    assert sorted(drops[0]["keys"]) == ["quick/test/bdca/ccc_a", "quick/test/bdca/ccc_v", "quick/test/bdca/p_va"]
    assert len(drops[0]["date"]) == 10  # YYYY-MM-DD


def test_record_needs_five_runs_and_fingerprints(tmp_path, capsys):
    rec = tmp_path / "floors.json"
    paths = _seed_runs(tmp_path / "runs")
    assert main(["leaderboard", "--record", "--scores", paths[0], "--seeds-from", *paths[1:3],
                 "--recorded", str(rec)]) == 2  # fmt: skip
    assert "the spread needs at least 5 runs" in capsys.readouterr().err and not rec.exists()
    bare = tmp_path / "bare" / "scores.json"
    bare.parent.mkdir()
    bare.write_text(json.dumps({"quick/test/bdca": {"p_va": 0.5}}))
    assert main(["leaderboard", "--record", "--scores", str(bare), "--seeds-from", *paths[1:],
                 "--recorded", str(rec)]) == 2  # fmt: skip
    assert "bare/scores.json: error: no platform fingerprint" in capsys.readouterr().err and not rec.exists()
    assert main(["leaderboard", "--check", "--seeds-from", paths[1]]) == 2
    assert "--seeds-from goes with --record" in capsys.readouterr().err


def test_plan_runs_covers_seeds_levels_and_threads():
    plans = plan_runs([0, 1, 2, 3, 4], ["default", "avx2", "avx512"])
    names = [p.name for p in plans]
    assert names == ["seed0-native-t1", "seed0-native-t1-again", "seed1-native-t1", "seed2-native-t1",
                     "seed3-native-t1", "seed4-native-t1", "seed0-default-t1", "seed0-avx2-t1", "seed0-native-t2"]
    assert plans[-1].overrides == ("seed=0", "runtime.threads=2") and plans[2].overrides[0] == "seed=1"
    with pytest.raises(HarnessError, match="at least 5 training seeds"):
        plan_runs([0, 1, 2], ["default"])
    with pytest.raises(HarnessError, match=f"must include {REFERENCE_SEED}"):
        plan_runs([1, 2, 3, 4, 5], ["default"])
    with pytest.raises(HarnessError, match="a seed is repeated"):
        plan_runs([0, 1, 1, 2, 3], ["default"])


class FakeDemo:
    """Stands in for `harness demo --quick`: scores that move with the seed, the level and the threads."""

    def __init__(self, drift: float = 0.0) -> None:
        self.calls: list[str] = []
        self.drift = drift

    def __call__(self, out: Path, level: str | None, overrides) -> dict:
        sets = dict(o.split("=") for o in overrides)
        seed, threads = int(sets["seed"]), int(sets["runtime.threads"])
        self.calls.append(out.name)
        again = self.drift if out.name.endswith("-again") else 0.0
        v = 0.5 + 0.01 * seed + (0.003 if level else 0.0) + 0.001 * (threads - 1) + again
        data = {"quick/test/bdca": {"p_va": v}, "ceiling/quick/test/oracle": {"p_va": 0.9},
                "platform": {**PLAT, "threads": threads, "aten_capability_env": level or ""}}
        out.mkdir(parents=True, exist_ok=True)
        (out / "scores.json").write_text(json.dumps(data))
        return data


def test_record_quick_runs_every_plan_once_and_resumes(tmp_path):
    rec, work = tmp_path / "rec.json", tmp_path / "work"
    fake = FakeDemo()
    out = record_quick(work, rec, seeds=[0, 1, 2, 3, 4], runner=fake)
    levels = native_aten_levels()
    assert len(fake.calls) == 6 + (len(levels) - 1) + 1
    q = load_recorded(rec)["quick"]
    assert out["quick"] == q and len(q["samples"]) == 5 + (len(levels) - 1) + 1  # the repeat is no sample
    assert q["scores"]["quick/test/bdca/p_va"] == 0.5 and q["keys"]["ceiling/quick/test/oracle/p_va"]["band"] == 1e-6
    assert {s["threads"] for s in q["samples"]} == {1, 2} and q["samples"][0]["level"] == "native"
    # Interrupted and resumed: finished run folders are reused, nothing runs again.
    again = FakeDemo()
    record_quick(work, rec, seeds=[0, 1, 2, 3, 4], runner=again)
    assert again.calls == []
    # A folder made otherwise than its name says is not reused silently.
    (work / "seed0-native-t2" / "scores.json").write_text(json.dumps({"platform": {**PLAT, "threads": 1}}))
    with pytest.raises(HarnessError, match=r"seed0-native-t2/scores\.json: error: made with 1 thread"):
        record_quick(work, rec, seeds=[0, 1, 2, 3, 4], runner=again)


def test_record_quick_refuses_when_the_reference_does_not_repeat(tmp_path):
    rec = tmp_path / "rec.json"
    with pytest.raises(HarnessError, match="two native runs of seed 0 differ in 1 score"):
        record_quick(tmp_path / "work", rec, seeds=[0, 1, 2, 3, 4], runner=FakeDemo(drift=1e-9))
    assert not rec.exists()


def test_record_from_run_folders_reads_their_summaries(tmp_path, capsys):
    """A `harness train` run folder (summary.json, with its platform) is a run to record from, as a scores.json is."""
    runs = []
    for i, p in enumerate(BDCA):
        run = tmp_path / f"seed{i}"
        run.mkdir()
        (run / "summary.json").write_text(json.dumps({"fold": 0, "model": "bdca", "platform": PLAT,
                                                      "val": {"ccc_v": p, "ccc_a": p, "p_va": p}}))
        runs.append(str(run))
    rec = tmp_path / "floors.json"
    assert main(["leaderboard", "--record", "--scores", runs[0], "--seeds-from", *runs[1:], "--recorded",
                 str(rec)]) == 0, capsys.readouterr().err  # fmt: skip
    q = load_recorded(rec)["quick"]
    assert sorted(q["keys"]) == [f"fold0/bdca (validation)/{m}" for m in ("ccc_a", "ccc_v", "p_va")]
    assert q["platform"] == PLAT and q["keys"]["fold0/bdca (validation)/p_va"]["runs"] == 5
