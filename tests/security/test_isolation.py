"""One file never kills the run (issue 25, item 3): audio of 8 (7.1) and 16 channels is read, and a native crash
(a real SIGSEGV) while one video is decoded becomes that video's error while the others are done and the summary
is written; each run is `python -m harness.cli preprocess ...` as a real process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from core.isolation import ChildCrashedError, IsolatedWorker
from harness.stages.preprocess_video import CRASH_TEST_ENV
from preprocessing.video import read_audio
from tests._video import grid_frames, write_multichannel_video, write_video
from tests.security.hostile import REPO, run_case

MAX_SECONDS = 60.0
"""Three short videos through preprocess (audio features, no faces) on a loaded 2-core machine."""


def _preprocess(src: Path, out: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", "preprocess", str(src), "--out", str(out),
                           "--no-faces"], cwd=REPO, capture_output=True, text=True, timeout=MAX_SECONDS * 2,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})  # fmt: skip


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return grid_frames(25, (64, 48))


@pytest.mark.parametrize(("layout", "codec", "suffix"),
                         [("7.1", "aac", ".mp4"), ("hexadecagonal", "pcm_s16le", ".mkv")])  # fmt: skip
def test_many_channel_audio_is_read_as_mono(tmp_path: Path, frames, layout: str, codec: str, suffix: str) -> None:
    path = write_multichannel_video(tmp_path / f"clip{suffix}", frames, layout, codec)
    assert av.open(str(path)).streams.audio[0].codec_context.layout.nb_channels in (8, 16)
    # In a child: on the old code this is a SIGSEGV, which must fail the test rather than end pytest.
    with IsolatedWorker() as worker:
        wave = worker.call(read_audio, path)
    assert wave.ndim == 1 and abs(wave.size - 16000) < 1100
    assert 0.25 < np.abs(wave).max() < 0.32  # every channel carries the 0.3 tone: the mean keeps its level


def test_mono_and_stereo_read_as_before(tmp_path: Path, frames) -> None:
    """The packed read gives the same samples, bit for bit, as the planar mean it replaced (features unchanged)."""
    for layout in ("mono", "stereo"):
        path = write_multichannel_video(tmp_path / f"{layout}.mp4", frames, layout)
        with av.open(str(path)) as c:
            rs = av.AudioResampler(format="fltp", rate=16000)
            ref = [f.to_ndarray().mean(axis=0) for fr in c.decode(audio=0) for f in rs.resample(fr)]
            ref += [f.to_ndarray().mean(axis=0) for f in rs.resample(None)]
        np.testing.assert_array_equal(read_audio(path), np.concatenate(ref).astype(np.float32))


def test_good_71_16ch_good_all_processed(tmp_path: Path, frames) -> None:
    src = tmp_path / "videos"
    src.mkdir()
    write_video(src / "a_good.mp4", frames, audio_s=1.0)
    write_multichannel_video(src / "b_surround.mp4", frames, "7.1")
    write_multichannel_video(src / "c_sixteen.mkv", frames, "hexadecagonal", "pcm_s16le")
    write_video(src / "d_good.mp4", frames, audio_s=1.0)
    t0 = time.perf_counter()
    proc = _preprocess(src, tmp_path / "out")
    assert time.perf_counter() - t0 < MAX_SECONDS
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    summary = json.loads((tmp_path / "out" / "preprocess_summary.json").read_text())
    assert summary["failed"] == [] and [v["video"] for v in summary["videos"]] == [
        "a_good", "b_surround", "c_sixteen", "d_good"]  # fmt: skip
    assert all(v["audio"] == "mfcc+egemaps" for v in summary["videos"]), summary["videos"]


def test_a_real_sigsegv_in_one_video_is_that_videos_error(tmp_path: Path, frames) -> None:
    src = tmp_path / "videos"
    src.mkdir()
    for name in ("a.mp4", "crashme.mp4", "c.mp4"):
        write_video(src / name, frames, audio_s=1.0)
    proc = _preprocess(src, tmp_path / "out", {CRASH_TEST_ENV: "crashme"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, (proc.stdout[-3000:], proc.stderr[-3000:])
    summary = json.loads((tmp_path / "out" / "preprocess_summary.json").read_text())
    assert summary["failed"] == ["crashme"]
    by = {v["video"]: v for v in summary["videos"]}
    assert by["a"]["audio"] == by["c"]["audio"] == "mfcc+egemaps"
    assert "crashme.mp4" in by["crashme"]["error"] and "SIGSEGV" in by["crashme"]["error"]
    assert "SIGSEGV" in " ".join(proc.stdout.split())
    # The rerun redoes only the crashed video (the others are cached) and, without the crash, finishes it.
    again = _preprocess(src, tmp_path / "out")
    assert again.returncode == 0, again.stdout[-3000:]
    summary = json.loads((tmp_path / "out" / "preprocess_summary.json").read_text())
    assert {v["video"]: v["audio"] for v in summary["videos"]} == {"a": "cached", "crashme": "mfcc+egemaps",
                                                                    "c": "cached"}  # fmt: skip


def test_the_worker_survives_a_crash_and_names_the_signal() -> None:
    with IsolatedWorker() as worker:
        assert worker.call(shutil.which, "sh")
        with pytest.raises(ChildCrashedError, match=r"SIGSEGV \(11\)"):
            worker.call(_segfault)
        assert worker.call(abs, -3) == 3 and worker.started == 2


def _segfault() -> None:
    import signal

    os.kill(os.getpid(), signal.SIGSEGV)


def test_a_crash_case_stays_bounded(tmp_path: Path, frames) -> None:
    src = tmp_path / "one"
    src.mkdir()
    write_video(src / "crashme.mp4", frames, audio_s=1.0)
    os.environ[CRASH_TEST_ENV] = "crashme"
    try:
        out = run_case(["preprocess", str(src), "--out", str(tmp_path / "out"), "--no-faces"])
    finally:
        del os.environ[CRASH_TEST_ENV]
    assert out.rc == 1 and out.seconds < 30 and out.rss_mb < 1024, (out.rc, out.seconds, out.rss_mb)
    assert "Traceback" not in out.stderr
