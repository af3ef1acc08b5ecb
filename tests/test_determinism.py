"""Same commit + seed + thread count -> bitwise-identical scores and tables, also beside a CPU-burning process; on
the recording platform the run equals the recorded reference run (1e-6); and the recorded floors hold on another
machine's arithmetic (`ATEN_CPU_CAPABILITY=default`).

Every run here is a fresh `python -m harness.cli demo --quick` process (`harness.reporting.recording.run_quick_demo`),
so
nothing of the test process (threads, RNG state, loaded kernels) reaches it.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import pytest

from harness.reporting.leaderboard import check, load_platform, load_scores
from harness.reporting.recording import flat_scores, run_quick_demo
from harness.runtime.fingerprint import same_platform
from submissions.leaderboard import exact_differences, load_recorded
from tests._demo import caller_level

TABLES = ("table_I.csv", "table_IV.csv", "table_I.md", "table_IV.md")  # the quick config has no Table III


def _burn(stop_at: float) -> None:
    x = 0
    while time.monotonic() < stop_at:
        x = (x * 31 + 7) % 1_000_003


@pytest.fixture(scope="module")
def first_run(quick_demo) -> Path:
    """The session's quick demo (tests/conftest.py), at the caller's kernel level."""
    return quick_demo


@pytest.mark.slow
def test_quick_demo_is_bitwise_identical_beside_a_cpu_burner(first_run, tmp_path):
    second = tmp_path / "second"
    ctx = mp.get_context("spawn")
    # One burner per core: the demo's processes compete for every CPU the whole time.
    burners = [ctx.Process(target=_burn, args=(time.monotonic() + 900,), daemon=True)
               for _ in range(os.cpu_count() or 1)]  # fmt: skip
    for b in burners:
        b.start()
    try:
        run_quick_demo(second, level=caller_level())
        assert all(b.is_alive() for b in burners), "the competitor stopped before the demo finished"
    finally:
        for b in burners:
            b.terminate()
            b.join()
    a = (first_run / "scores.json").read_text()
    b = (second / "scores.json").read_text()
    assert a == b  # the whole file, fingerprint included: bitwise the same
    assert len(flat_scores(json.loads(a))) >= 20
    for name in TABLES:
        # Bitwise, though the two demos ran in different folders: the tables name run folders relative to theirs.
        assert (first_run / "experiments" / name).read_bytes() == (second / "experiments" / name).read_bytes(), name
    sub_a = (first_run / "experiments" / "folds" / "fold0" / "predictions" / "submission.csv").read_bytes()
    sub_b = (second / "experiments" / "folds" / "fold0" / "predictions" / "submission.csv").read_bytes()
    assert sub_a == sub_b


@pytest.mark.slow
def test_recorded_floors_hold_on_another_machines_arithmetic(first_run, tmp_path, capsys):
    """`ATEN_CPU_CAPABILITY=default` (no vectorised ATen kernels) emulates another CPU: every key holds its floor and
    ceiling, and the reason names the field that differs."""
    from harness.cli import main

    other = tmp_path / "default"
    run_quick_demo(other, level="default")
    plat = load_platform(other)
    assert plat is not None and plat["aten_capability"] == "default"
    df, res = check(load_scores(other), platform=plat)
    assert res.mode == "floors" and "aten_capability" in res.reason
    assert not res.absent and res.ok, df.filter(~df["ok"])
    # The native run holds the floors too; on the recording platform it is moreover the recorded reference run.
    native_plat = load_platform(first_run)
    df, res = check(load_scores(first_run), platform=native_plat)
    assert res.ok, df.filter(~df["ok"])
    recorded = load_recorded()
    if same_platform(native_plat, recorded["quick"]["platform"]):
        assert exact_differences(load_scores(first_run), recorded) == []
    # The CLI says what it compared and why.
    assert main(["leaderboard", "--check", "--scores", str(other / "scores.json")]) == 0
    out = capsys.readouterr().out
    assert "mode: floors" in out and "aten_capability" in out and "OK: every key within its band" in out


@pytest.mark.slow
def test_a_cleaned_demo_reruns_without_training_and_gives_the_same_scores(first_run, tmp_path):
    """`harness clean` drops only what a rerun does not need: the rerun trains nothing and writes the same scores."""
    import shutil

    from harness.ops.clean import clean_checkpoints

    copy = tmp_path / "copy"
    shutil.copytree(first_run, copy)
    folders = sorted(d for d in copy.rglob("checkpoints") if d.is_dir())
    size = sum(f.stat().st_size for d in folders for f in d.rglob("*") if f.is_file() and not f.is_symlink())
    rep = clean_checkpoints(copy)
    # Every run's checkpoints go, and only they (a third of the quick demo's bytes since it trains with torch).
    assert sorted(rep.removed) == folders and not rep.kept and rep.freed_bytes == size > 0
    before = (copy / "scores.json").read_text()
    run_quick_demo(copy, level=caller_level())
    assert (copy / "scores.json").read_text() == before
    assert not list(copy.rglob("checkpoints")), "a run trained again after clean"
