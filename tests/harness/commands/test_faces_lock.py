"""`harness faces` holds its video's lock in the crops folder: a second run on the same video, while the first runs,
stops at once with a message naming the folder, the video and the holder, loads no detector and writes nothing; the
first run ends with all its crops. `harness preprocess` with face detection respects the same lock.

The first run is a real process (`python -m harness.cli faces ...`), paused with SIGSTOP once it holds the lock, so
it is certainly still running when the second one starts (a deterministic overlap), then let go with SIGCONT.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.locking import LOCKS_DIR, lock_file_name
from core.ownership import OWNERSHIP_FILE
from harness.cli import main
from harness.runtime.childenv import child_env
from harness.stages.preprocess import PreprocessConfig, preprocess
from preprocessing.crops import CROPS_DIR, MANIFEST, CropsLockedError
from tests._video import FPS, grid_frames, write_video
from tests._weights import require_scrfd

ROOT = Path(__file__).resolve().parents[3]
FRAMES = 24
ARGS = ["--input-size", "160", "--stride", "2"]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_scrfd()
    return write_video(tmp_path_factory.mktemp("src") / "clip.mp4", grid_frames(FRAMES), audio_s=FRAMES / FPS)


def _no_detector(*args: object, **kwargs: object) -> None:
    raise AssertionError("the second run got past the lock to its detector")


def test_second_faces_run_on_the_same_folder_is_turned_away(
    video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import harness.commands.faces
    import preprocessing.faces.detectors

    out, log = tmp_path / "out", tmp_path / "first.log"
    lock = out / CROPS_DIR / LOCKS_DIR / lock_file_name("clip")
    cmd = [sys.executable, "-m", "harness.cli", "faces", str(video), "--out", str(out), *ARGS]
    with open(log, "wb") as fh:
        first = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=child_env())
    try:
        deadline = time.monotonic() + 60
        # The pid is written into the lock file only after the lock is taken, and stays until the run ends.
        while not (lock.is_file() and lock.read_text().strip() == str(first.pid)):
            assert first.poll() is None, f"the first run ended first:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.005)
        first.send_signal(signal.SIGSTOP)
        assert first.poll() is None, "the first run ended before it could be paused"

        monkeypatch.setattr(harness.commands.faces, "get_detector", _no_detector)
        monkeypatch.setattr(preprocessing.faces.detectors, "get_detector", _no_detector)
        # Turned away before its slow set-up: the detector patched above would fail the test if it were reached.
        assert main(["faces", str(video), "--out", str(out), *ARGS]) == 2
        err = re.sub(r"\s+", "", capsys.readouterr().err)
        want = (f"{out / CROPS_DIR}:error:anotherrun(pid{first.pid})iswritingthefacecropsof'clip'intothisfolder(lock"
                f"{lock});"
                "waitforittofinishoruseanother--out")  # fmt: skip
        assert want in err, err
        # preprocess, which would detect faces into the same folder, is turned away by the same lock.
        with pytest.raises(CropsLockedError, match=re.escape(f"cannot preprocess into {out}: another run is using")):
            preprocess(video, out, PreprocessConfig(stride=2, input_size=160))
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=120) == 0, log.read_text()[-3000:]
    manifest = json.loads((out / CROPS_DIR / "clip" / MANIFEST).read_text())
    crops = sorted(p.name for p in (out / CROPS_DIR / "clip").glob("*.jpg"))
    assert manifest["frames"] == FRAMES and manifest["with_face"] == len(crops) == FRAMES
    assert crops == [f"{i:05d}.jpg" for i in range(1, FRAMES + 1)]
    assert sorted(p.name for p in (out / CROPS_DIR).iterdir()) == [OWNERSHIP_FILE, LOCKS_DIR, "clip"]  # nothing else
    assert not list(out.rglob("*.tmp")) and not (out / "features" / "clip").exists()
