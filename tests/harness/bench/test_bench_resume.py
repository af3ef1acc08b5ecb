"""`harness bench` killed with SIGKILL and run again measures only the benchmarks it had not finished: the report
has every row of an uninterrupted run, the finished row exactly as measured before the kill, and says it was reused.

The killed run is a real process (`python -m harness.cli bench --suite DIR ...`, its own process group, so the
pytest process it starts dies with it) on a three-benchmark suite written here. Each benchmark appends to a call
log whenever its body runs, which is how the test knows what was measured again. The second benchmark waits for a
gate file before measuring: the first run is killed while it waits (a deterministic point, with the first row
finished); the rerun and the uninterrupted reference find the gate open.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.bench.suite import PARTIAL_FILE, bench_fingerprint, prepare_partial
from harness.runtime.childenv import child_env

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
SUITE = """
import os
import time
from pathlib import Path

CALLS = Path(os.environ["TINY_BENCH_CALLS"])
GATE = Path(os.environ["TINY_BENCH_GATE"])


def _log(what):
    with open(CALLS, "a") as fh:
        fh.write(what + "\\n")


def _sum_of_squares(n, tag):
    _log(tag)
    return sum(i * i for i in range(n))


def test_bench_first(benchmark):
    benchmark.extra_info.update(shapes="200", precision="int", unit="items/s", items=200)
    out = benchmark.pedantic(_sum_of_squares, args=(200, "first"), rounds=3, iterations=1)
    benchmark.extra_info["result"] = out
    assert out == 2646700


def test_bench_second(benchmark):
    _log("second waits")
    deadline = time.monotonic() + 120
    while not GATE.exists():  # the first run is killed here
        assert time.monotonic() < deadline, "nobody opened the gate"
        time.sleep(0.01)
    benchmark.extra_info.update(shapes="300", precision="int", unit="items/s", items=300)
    out = benchmark.pedantic(_sum_of_squares, args=(300, "second"), rounds=2, iterations=1)
    benchmark.extra_info["result"] = out
    assert out == 8955050


def test_bench_third(benchmark):
    benchmark.extra_info.update(shapes="400", precision="int", unit="items/s", items=400)
    out = benchmark.pedantic(_sum_of_squares, args=(400, "third"), rounds=2, iterations=1)
    benchmark.extra_info["result"] = out
    assert out == 21253400
"""
NAMES = ["test_bench_first", "test_bench_second", "test_bench_third"]
ROUNDS = {"first": 3, "second": 2, "third": 2}


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    folder = tmp_path / "suite"
    folder.mkdir()
    (folder / "test_tiny_bench.py").write_text(SUITE)
    return folder


def _env(calls: Path, gate: Path) -> dict[str, str]:
    return child_env({"TINY_BENCH_CALLS": str(calls), "TINY_BENCH_GATE": str(gate), "COLUMNS": "200"})


def _bench(suite: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "bench", "--suite", str(suite), "--out", str(out)]


def _calls(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.is_file() else []


def _rows(out: Path) -> list[dict]:
    return json.loads((out / "pytest-benchmark.json").read_text())["benchmarks"]


def test_killed_bench_resumes_without_measuring_finished_rows_again(suite: Path, tmp_path: Path) -> None:
    out, calls, gate, log = tmp_path / "out", tmp_path / "calls.txt", tmp_path / "gate", tmp_path / "bench.log"
    partial = out / PARTIAL_FILE
    with open(log, "wb") as fh:
        proc = subprocess.Popen(_bench(suite, out), cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                                env=_env(calls, gate), start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while "second waits" not in _calls(calls):
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"the run never reached the second benchmark:\n{log.read_text()[-3000:]}")
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    cut = json.loads(partial.read_text())
    assert [b["name"] for b in cut["benchmarks"]] == ["test_bench_first"]  # the finished row, kept at once
    assert cut["benchmarks"][0]["stats"]["rounds"] == ROUNDS["first"]
    assert not (out / "report.md").exists() and not (out / "pytest-benchmark.json").exists()
    assert _calls(calls) == ["first"] * ROUNDS["first"] + ["second waits"]

    gate.touch()
    again = subprocess.run(_bench(suite, out), cwd=ROOT, capture_output=True, text=True, env=_env(calls, gate),
                           timeout=300)  # fmt: skip
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "reusing 1 finished row(s), not measured again: test_bench_first" in again.stdout
    # The first benchmark's body never ran again; the one cut short ran again from its start, the third once.
    assert _calls(calls) == (["first"] * ROUNDS["first"] + ["second waits"] * 2 + ["second"] * ROUNDS["second"]
                             + ["third"] * ROUNDS["third"])  # fmt: skip
    rows = _rows(out)
    assert [b["name"] for b in rows] == NAMES
    assert rows[0] == cut["benchmarks"][0]  # every round's time, exactly as measured before the kill
    report = json.loads((out / "report.json").read_text())
    assert report["meta"]["reused_rows"] == ["test_bench_first"]
    assert [r["benchmark"] for r in report["rows"]] == NAMES
    assert "reused (their times are from that run): test_bench_first." in (out / "report.md").read_text()
    assert not partial.exists()  # the report is complete: the next run measures everything again
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".pytest-benchmark")]

    # An uninterrupted run: the same rows, rounds and results (times are measurements, never equal).
    ref_out = tmp_path / "reference"
    ref = subprocess.run(_bench(suite, ref_out), cwd=ROOT, capture_output=True, text=True,
                         env=_env(tmp_path / "ref_calls.txt", gate), timeout=300)  # fmt: skip
    assert ref.returncode == 0, ref.stdout[-3000:] + ref.stderr[-3000:]
    assert "reusing" not in ref.stdout
    ref_rows = _rows(ref_out)
    assert [b["fullname"] for b in ref_rows] == [b["fullname"] for b in rows]
    assert [b["extra_info"] for b in ref_rows] == [b["extra_info"] for b in rows]
    assert [b["stats"]["rounds"] for b in ref_rows] == [b["stats"]["rounds"] for b in rows] == [3, 2, 2]
    assert json.loads((ref_out / "report.json").read_text())["meta"]["reused_rows"] == []
    ref_report = json.loads((ref_out / "report.json").read_text())["rows"]
    for a, b in zip(report["rows"], ref_report, strict=True):
        assert {k: a[k] for k in ("benchmark", "shapes", "precision", "unit")} == {
            k: b[k] for k in ("benchmark", "shapes", "precision", "unit")}  # fmt: skip


def test_partial_rows_are_reused_only_from_the_same_device_and_suite(suite: Path, tmp_path: Path) -> None:
    partial, said = tmp_path / PARTIAL_FILE, []
    row = {"name": "test_bench_first", "fullname": "test_tiny_bench.py::test_bench_first", "stats": {"rounds": 3}}
    here = bench_fingerprint(suite)
    partial.write_text(json.dumps({"fingerprint": here, "benchmarks": [row]}))
    assert prepare_partial(partial, here, False, said.append) == [row]
    assert json.loads(partial.read_text())["benchmarks"] == [row]  # kept for the plugin to extend
    assert said == ["resuming an interrupted run (" + str(partial) + "): reusing 1 finished row(s), not measured "
                    "again: test_bench_first"]  # fmt: skip

    other = {**here, "device": {**here["device"], "cpu": "another CPU"}}
    said.clear()
    partial.write_text(json.dumps({"fingerprint": other, "benchmarks": [row]}))
    assert prepare_partial(partial, here, False, said.append) == []
    assert said == [f"{partial}: rows of an interrupted run on another device or suite; measuring everything again"]
    assert json.loads(partial.read_text())["benchmarks"] == []

    said.clear()
    partial.write_text(json.dumps({"fingerprint": here, "benchmarks": [row]}))
    assert prepare_partial(partial, here, True, said.append) == []  # --fresh
    assert said == [f"--fresh: the rows in {partial} are discarded; measuring everything again"]
    assert json.loads(partial.read_text())["benchmarks"] == []

    partial.write_text('{"fingerprint": {}, "benchm')  # damaged (not written by us: ours are atomic)
    assert prepare_partial(partial, here, False, said.append) == []


def test_second_bench_on_the_same_folder_is_turned_away(suite: Path, tmp_path: Path) -> None:
    out, calls, gate, log = tmp_path / "out", tmp_path / "calls.txt", tmp_path / "gate", tmp_path / "bench.log"
    with open(log, "wb") as fh:
        first = subprocess.Popen(_bench(suite, out), cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                                 env=_env(calls, gate), start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while "second waits" not in _calls(calls):  # the first run holds the folder, halfway through its suite
            assert first.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.01)
        before = (out / PARTIAL_FILE).read_bytes()
        second = subprocess.run(_bench(suite, out), cwd=ROOT, capture_output=True, text=True,
                                env=_env(tmp_path / "calls2.txt", gate), timeout=120)  # fmt: skip
        assert second.returncode == 2
        said = " ".join((second.stdout + second.stderr).split())
        assert str(out) in said and f"pid {first.pid}" in said and "another `harness bench`" in said
        assert not (tmp_path / "calls2.txt").exists()  # it measured nothing
        assert (out / PARTIAL_FILE).read_bytes() == before  # and wrote nothing
        gate.touch()
        assert first.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert [b["name"] for b in _rows(out)] == NAMES  # the first run's report is whole
