"""Variable frame rate: each video frame reads the audio row at its own presentation time, round(pts_i / 0.01),
not at i / (average fps); constant-rate videos keep i / fps and their cache hashes.

The end-to-end case is a video written here with PyAV with explicit timestamps: 12 frames 40 ms apart (25 fps),
then 24 frames 20 ms apart (50 fps), over a chirp (so every 10 ms row of MFCCs differs from its neighbours).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.hashing import stable_hash
from harness.stages.preprocess import PreprocessConfig, preprocess
from preprocessing.audio import (
    _run_smile,
    align_rows_to_frames,
    audio_feature_config,
    compute_audio_features,
    frame_audio_mask,
)
from preprocessing.cache import FeatureCache
from preprocessing.timeline import AUDIO_SR, AudioError
from preprocessing.vggish import example_centres
from preprocessing.video import read_audio, scan_packets
from tests._video import write_video

PTS_MS = [40 * i for i in range(12)] + [480 + 20 * j for j in range(24)]  # 25 fps, then 50 fps from frame 12
AUDIO_S = 1.0


def _chirp(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * AUDIO_SR)) / AUDIO_SR
    phase = 2 * np.pi * (150 * t + 900 * t**2)  # 150 Hz rising to 1950 Hz over the second
    return (0.4 * np.sin(phase) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def write_av(path: Path, pts_ms: list[int] | None, n_frames: int = len(PTS_MS)) -> Path:
    """A 64x48 mpeg4 video (frames at `pts_ms`, or at the constant 25 fps) with a 16 kHz AAC chirp of `AUDIO_S`."""
    frames = [np.full((48, 64, 3), 8 * (i % 30), np.uint8) for i in range(n_frames)]
    return write_video(path, frames, audio=_chirp(AUDIO_S), pts_ms=pts_ms)


def _nearest_row(starts: np.ndarray, t: float) -> int:
    """The openSMILE row whose start time is nearest t (the earlier one on a tie), found independently."""
    return int(np.argmin(np.abs(starts - t)))


def test_frame_times_choose_the_rows() -> None:
    rows = np.arange(100) * 0.01
    t = np.array([0.0, 0.04, 0.08, 0.10, 0.12, 0.14])  # 25 fps, then 50 fps
    assert align_rows_to_frames(rows, 6, 37.5, t).tolist() == [0, 4, 8, 10, 12, 14]
    assert align_rows_to_frames(rows, 6, 37.5).tolist() == [0, 3, 5, 8, 11, 13]  # i / average fps: other rows
    assert align_rows_to_frames(rows, 3, 25.0, np.arange(3) / 25.0).tolist() == [0, 4, 8]
    assert align_rows_to_frames(rows, 2, 25.0, np.array([5.0, 5.0])).tolist() == [99, 99]  # after the audio
    assert frame_audio_mask(0.11, 6, 37.5, t).tolist() == [True, True, True, True, False, False]
    assert frame_audio_mask(0.11, 6, 37.5).tolist() == [True, True, True, True, True, False]
    assert example_centres(6, 37.5, 1000, t).tolist() == [0, 4, 8, 10, 12, 14]
    assert example_centres(6, 37.5, 1000).tolist() == [0, 3, 5, 8, 11, 13]
    for bad, why in ((np.array([0.0, 0.1]), "expected 6 values"), (t[::-1].copy(), "non-decreasing"),
                     (np.array([0, 0.04, np.nan, 0.1, 0.12, 0.14]), "finite"), (t - 1.0, ">= 0")):  # fmt: skip
        with pytest.raises(AudioError, match=why):
            align_rows_to_frames(rows, 6, 37.5, bad)
        with pytest.raises(AudioError, match=why):
            compute_audio_features(_chirp(0.5), 6, 37.5, sr=AUDIO_SR, frame_times_s=bad)


def test_constant_times_give_the_constant_rate_result() -> None:
    wave = _chirp(1.0)
    plain = compute_audio_features(wave, 25, 25.0, sr=AUDIO_SR)
    timed = compute_audio_features(wave, 25, 25.0, sr=AUDIO_SR, frame_times_s=np.arange(25) / 25.0)
    for k in plain:
        np.testing.assert_array_equal(timed[k], plain[k], err_msg=k)


def test_vfr_video_frames_read_the_audio_of_their_real_time(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write_av(src / "vfr.mp4", PTS_MS)
    write_av(src / "cfr.mp4", None)
    out = tmp_path / "out"
    results = {r.video: r for r in preprocess(src, out, PreprocessConfig(faces=False))}
    vfr, cfr = results["vfr"], results["cfr"]
    assert vfr.error is None and cfr.error is None
    assert vfr.frames == len(PTS_MS) and any("presentation time" in n for n in vfr.notes), vfr.notes
    assert not any("variable frame rate" in n for n in cfr.notes)
    scan = scan_packets(src / "vfr.mp4")
    assert scan.variable_rate and np.allclose(np.asarray(scan.times) * 1000, PTS_MS)

    cache = FeatureCache(out / "features")
    got = cache.load("vfr", ["mfcc", "egemaps", "audio_mask"])
    wave = read_audio(src / "vfr.mp4", sr=AUDIO_SR)
    assert wave is not None
    assert got["audio_mask"].all()  # the last frame (0.94 s) lies inside the 1 s track
    for key, fset, dim in (("mfcc", "mfcc39", 39), ("egemaps", "eGeMAPSv01a", 23)):
        starts, values = _run_smile(fset, wave, dim)
        for i, ms in enumerate(PTS_MS):
            np.testing.assert_array_equal(got[key][i], values[_nearest_row(starts, ms / 1000)], err_msg=f"{key} {i}")
    # A frame after the change of rate: frame 30 is shown at 0.84 s; i / average fps (~37 fps) puts it 20-40 ms
    # earlier.
    starts, values = _run_smile("mfcc39", wave, 39)
    i = 30
    assert vfr.fps == pytest.approx(37.5, rel=0.05)
    real, average = _nearest_row(starts, PTS_MS[i] / 1000), _nearest_row(starts, i / vfr.fps)
    assert real == 84 and 2 <= real - average <= 4, (real, average)
    np.testing.assert_array_equal(got["mfcc"][i], values[real])
    assert np.abs(got["mfcc"][i] - values[average]).max() > 1.0  # the average-rate row is another sound

    # Constant rate: the features and cache hashes of the i / fps alignment, as before.
    cfg = audio_feature_config()
    assert cache.manifest("cfr")["features"]["mfcc"]["config_hash"] == stable_hash({"feature": cfg["mfcc"],
                                                                                    "vggish": None})  # fmt: skip
    assert cache.manifest("vfr")["features"]["mfcc"]["config_hash"] != stable_hash({"feature": cfg["mfcc"],
                                                                                    "vggish": None})  # fmt: skip
    cwave = read_audio(src / "cfr.mp4", sr=AUDIO_SR)
    want = compute_audio_features(cwave, cfr.frames, cfr.fps, sr=AUDIO_SR)
    have = cache.load("cfr", ["mfcc", "egemaps", "audio_mask"])
    for k in have:
        np.testing.assert_array_equal(have[k], want[k], err_msg=k)
