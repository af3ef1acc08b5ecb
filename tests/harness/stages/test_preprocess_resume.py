"""`harness preprocess` killed with SIGKILL resumes to the result of an uninterrupted run, redoing no finished
video; a second run on the same output folder is turned away at once by the lock and damages nothing.

The killed run is a real process (`python -m harness.cli preprocess ...`) on six small GRID-face videos with
audio, faces on (SCRFD at 160 px, stride 2).
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

from core.locking import LOCKS_DIR, lock_file_name
from harness.folders.cache import SUMMARY
from harness.runtime.childenv import child_env
from harness.stages.preprocess import PreprocessConfig, VideoResult, preprocess
from preprocessing.cache import CacheLockedError
from preprocessing.crops import CROPS_DIR
from preprocessing.crops import MANIFEST as CROPS_MANIFEST
from tests._video import FPS, grid_frames, write_video
from tests._weights import require_scrfd
from tests.harness._preprocess import assert_same_outputs, finished, snapshot

ROOT = Path(__file__).resolve().parents[3]
CFG = PreprocessConfig(stride=2, input_size=160)
CLI_ARGS = ["--stride", "2", "--input-size", "160"]
VIDEOS = [f"v{i}" for i in range(6)]
FEATURES = ["mfcc", "egemaps", "audio_mask"]


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_scrfd()
    folder = tmp_path_factory.mktemp("src")
    frames = grid_frames(48) + grid_frames(24, clip="lbax4n.mpg")
    for i, name in enumerate(VIDEOS):
        clip = frames[i * 12 : i * 12 + 12]
        write_video(folder / f"{name}.mp4", clip, audio_s=len(clip) / FPS, tone_hz=200.0 + 50 * i)
    return folder


@pytest.fixture(scope="module")
def reference(src: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run."""
    out = tmp_path_factory.mktemp("reference")
    assert all(r.error is None for r in preprocess(src, out, CFG))
    return out


def _start(src: Path, out: Path, log: Path) -> subprocess.Popen:
    with open(log, "wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "harness.cli", "preprocess", str(src), "--out", str(out), *CLI_ARGS],
            cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=child_env({"COLUMNS": "200"}),
            start_new_session=True,  # its own process group: the run and its decoding child stop and go together
        )  # fmt: skip


def _half_done(out: Path) -> set[str]:
    """Videos with some crops written but not finished."""
    return {d.name for d in (out / CROPS_DIR).glob("*") if not (d / CROPS_MANIFEST).exists() and any(d.glob("*.jpg"))}


def _wait_for(condition, proc: subprocess.Popen, log: Path, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (status {proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def test_killed_run_resumes_to_the_uninterrupted_result(src: Path, reference: Path, tmp_path: Path) -> None:
    out, log = tmp_path / "out", tmp_path / "run.log"
    proc = _start(src, out, log)
    # Kill in the middle of a video (crops half written) once at least two videos are finished.
    _wait_for(lambda: len(finished(out)) >= 2 and (_half_done(out) or len(finished(out)) >= 4), proc, log,
              "two videos were finished")  # fmt: skip
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    done = finished(out)
    assert 2 <= len(done) < len(VIDEOS), done
    before = snapshot(out, done)
    assert not (out / SUMMARY).exists()  # the killed run never got to its end
    # What a kill inside an atomic write leaves behind: temporary files next to their targets.
    todo = sorted(set(VIDEOS) - done)[0]
    (out / CROPS_DIR / todo).mkdir(parents=True, exist_ok=True)
    (out / CROPS_DIR / todo / ".00007.jpg.k1ll3d.tmp").write_bytes(b"half a jpeg")
    (out / "features" / todo).mkdir(parents=True, exist_ok=True)
    (out / "features" / todo / ".mfcc.npy.k1ll3d.tmp").write_bytes(b"half an array")
    (out / f".{SUMMARY}.k1ll3d.tmp").write_text("half a summary")

    results: dict[str, VideoResult] = {r.video: r for r in preprocess(src, out, CFG)}  # the kernel freed the lock

    assert all(r.error is None for r in results.values())
    for v in VIDEOS:
        if v in done:
            assert (results[v].faces, results[v].audio) == ("cached", "cached"), v
        else:  # its crops may have been finished just before the kill; its features were not
            assert results[v].audio == "mfcc+egemaps", v
    assert any(results[v].faces.startswith("detected") for v in VIDEOS)
    assert snapshot(out, done) == before  # finished videos: not one file rewritten
    assert_same_outputs(out, reference, VIDEOS, FEATURES, 13)  # 12 crops + manifest


def test_second_run_on_the_same_folder_is_locked_out(src: Path, reference: Path, tmp_path: Path) -> None:
    out, log = tmp_path / "out", tmp_path / "run.log"
    proc = _start(src, out, log)
    # A run holds a video's lock only while it works on it; the lock file is named by a hash of the video's name.
    lock = out / "features" / LOCKS_DIR / lock_file_name(VIDEOS[0])
    _wait_for(lambda: lock.is_file() and lock.read_text().strip() == str(proc.pid), proc, log, "the lock was taken")
    # Frozen (with its decoding child, which holds the lock) while it holds v0's lock, so that the second run meets
    # it there whatever the machine's load (running, it may finish v0 before the second run gets to it).
    os.killpg(proc.pid, signal.SIGSTOP)
    try:
        t0 = time.perf_counter()
        with pytest.raises(CacheLockedError) as err:
            preprocess(src, out, CFG)
        assert time.perf_counter() - t0 < 30.0
    finally:
        os.killpg(proc.pid, signal.SIGCONT)
    msg = str(err.value)
    assert f"cannot preprocess into {out}: another run is using it" in msg
    assert f"pid {proc.pid}" in msg and "wait for it to finish or use another" in msg and "'v0'" in msg
    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    assert_same_outputs(out, reference, VIDEOS, FEATURES, 13)  # nothing the first run lacks
    summary = json.loads((out / SUMMARY).read_text())
    assert summary["failed"] == [] and [v["video"] for v in summary["videos"]] == VIDEOS
