"""Scale to the real dataset (issue 25, item 2): `harness preprocess` of 1,000 videos under `ulimit -n 256` (a run
holds one video's locks at a time), long and odd file names, and an overlapping run stopped at the video it
shares with the first, each a real process."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core.locking import LOCKS_DIR, FolderLock, lock_file_name
from harness.runtime.childenv import child_env
from tests._video import grid_frames, write_video
from tests.security.hostile import LAUNCHER, REPO

VIDEOS = 1000
OPEN_FILES = 256
MAX_SECONDS = 300.0
"""1,000 videos (probe, packet scan and audio features of a silent track each) on a loaded 2-core machine: 25-54 s
measured here at load 5.5-8 (peak RSS 99 MiB)."""
MAX_RSS_MIB = 1024


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))


def _cli(*argv: str, timeout: float = MAX_SECONDS) -> tuple[subprocess.CompletedProcess, float]:
    """Run the CLI under the open-file limit; its result and peak RSS in MiB. The limit is set in a small launcher
    interpreter that forks the command and reads its `os.wait4` rusage (`tests.security.hostile`): forked straight
    from this test process, the command's peak would count the pages it inherits from it (1.2 GB inside the whole
    suite, where this process holds torch and more)."""
    rss_file = Path(tempfile.gettempdir()) / f"scale-{os.getpid()}-{time.monotonic_ns()}.rss"
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(rss_file), *argv], cwd=REPO,
                                stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, text=True, preexec_fn=_limited,
                                start_new_session=True, env=child_env({"COLUMNS": "200"}))  # fmt: skip
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher and the command it forked
            proc.wait()
        fo.seek(0), fe.seek(0)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, fo.read(), fe.read())
    rss_kb = float(rss_file.read_text() or "nan") if rss_file.is_file() else float("nan")
    rss_file.unlink(missing_ok=True)
    return result, rss_kb / 1024


def test_a_thousand_videos_under_ulimit_256_with_long_and_odd_names(tmp_path: Path) -> None:
    src = tmp_path / "videos"
    src.mkdir()
    one = write_video(tmp_path / "one.mp4", grid_frames(3, (64, 48)))
    names = [f"v{i:04d}.mp4" for i in range(VIDEOS - 2)] + ["x" * 247 + ".mp4", "bad\nname.mp4"]
    for name in names:
        os.link(one, src / name)
    out = tmp_path / "out"
    t0 = time.perf_counter()
    proc, rss_mib = _cli("preprocess", str(src), "--out", str(out), "--no-faces")
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr and seconds < MAX_SECONDS and rss_mib < MAX_RSS_MIB, (seconds, rss_mib)
    summary = json.loads((out / "preprocess_summary.json").read_text())
    assert len(summary["videos"]) == VIDEOS and summary["failed"] == []
    assert (out / "features" / ("x" * 247) / "manifest.json").is_file()
    # Every lock file is named by a hash: none of them carries a video's own (long or odd) name.
    locks = sorted(p.name for p in (out / "features" / LOCKS_DIR).iterdir())
    assert len(locks) == VIDEOS and all(len(n) == 37 for n in locks)


def test_an_overlapping_run_stops_at_the_video_it_shares(tmp_path: Path) -> None:
    src = tmp_path / "videos"
    src.mkdir()
    one = write_video(tmp_path / "one.mp4", grid_frames(3, (64, 48)))
    for i in range(6):
        shutil.copy(one, src / f"v{i}.mp4")
    out = tmp_path / "out"
    assert _cli("preprocess", str(src / "v0.mp4"), "--out", str(out), "--no-faces")[0].returncode == 0
    # Another process writes v3's features now: this run does v0-v2, then stops on v3 with the holder's pid.
    with FolderLock(out / "features" / LOCKS_DIR / lock_file_name("v3")):
        t0 = time.perf_counter()
        proc, _ = _cli("preprocess", str(src), "--out", str(out), "--no-faces", timeout=120)
    assert time.perf_counter() - t0 < 30.0
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    err = " ".join(proc.stderr.split())
    assert "the features of 'v3' are being written by another process" in err, err
    assert f"holder pid {os.getpid()}" in err
    assert (out / "features" / "v2" / "manifest.json").is_file() and not (out / "features" / "v4").exists()
