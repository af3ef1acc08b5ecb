"""openSMILE MFCC/eGeMAPS per video frame, time alignment, and the audio pipeline entry point."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import HarnessError
from preprocessing.audio import (
    VGGISH_DIM,
    align_rows_to_frames,
    audio_feature_config,
    compute_audio_features,
    extract_opensmile,
    frame_audio_mask,
    load_wave,
)
from preprocessing.timeline import AUDIO_SR, AudioError

REPO = Path(__file__).resolve().parents[2]
# The GRID sample clips (real speech): $BDCA_GRID_DIR, else the two embedded in the package (always there).
_GRID_DIRS = [Path(d) for d in (os.environ.get("BDCA_GRID_DIR"),) if d] + [
    REPO / "preprocessing" / "assets" / "grid",
]
GRID_CLIP = next((p for d in _GRID_DIRS for p in sorted(d.glob("*.mpg"))), None)


def _tone(seconds: float, sr: int = AUDIO_SR, onset_s: float = 0.0, seed: int = 0) -> np.ndarray:
    """Silence (faint noise) until `onset_s`, then a loud voiced-like harmonic tone."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    harmonics = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 6))
    wave = 0.3 * harmonics * (t >= onset_s) + 1e-4 * rng.standard_normal(t.size)
    return wave.astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# align_rows_to_frames
# ---------------------------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    n_rows=st.integers(1, 400),
    n_frames=st.integers(0, 200),
    fps=st.floats(1.0, 120.0),
    jitter=st.lists(st.floats(0.0, 0.02), min_size=1, max_size=400),
)
def test_alignment_is_monotone_and_in_range(n_rows: int, n_frames: int, fps: float, jitter: list[float]) -> None:
    times = np.cumsum(np.resize(np.asarray(jitter), n_rows))  # non-decreasing, repeats allowed (jitter 0)
    rows = align_rows_to_frames(times, n_frames, fps)
    assert rows.shape == (n_frames,)
    assert rows.dtype == np.int64
    assert np.all(np.diff(rows) >= 0)
    assert rows.min(initial=0) >= 0 and rows.max(initial=0) <= n_rows - 1
    # nearest: no other row start is strictly closer to the frame time
    t = np.arange(n_frames) / fps
    best = np.min(np.abs(times[None, :] - t[:, None]), axis=1) if n_frames else np.zeros(0)
    assert np.allclose(np.abs(times[rows] - t), best, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(n_rows=st.integers(1, 3000), n_frames=st.integers(1, 600), fps=st.sampled_from([10, 24, 25, 29.97, 30, 50, 60]))
def test_alignment_is_the_field_rule_on_a_10ms_grid(n_rows: int, n_frames: int, fps: float) -> None:
    times = np.arange(n_rows) * 0.01
    rows = align_rows_to_frames(times, n_frames, fps)
    exact = np.arange(n_frames) / fps / 0.01
    expected = np.minimum(np.rint(exact), n_rows - 1).astype(np.int64)
    clear = np.abs(exact - np.floor(exact) - 0.5) > 1e-6  # exact half-way ties are a documented choice
    assert np.array_equal(rows[clear], expected[clear])


def test_alignment_known_values_and_repeated_last_start() -> None:
    times = np.array([0.0, 0.01, 0.02, 0.03, 0.03])  # last start repeated, as some openSMILE sets do
    assert align_rows_to_frames(times, 5, 100.0).tolist() == [0, 1, 2, 3, 4]
    # 25 fps: 0, 0.04 (-> clamped to the last row), ...
    assert align_rows_to_frames(times, 3, 25.0).tolist() == [0, 4, 4]
    # ties go to the earlier row: 0.005 is half-way between rows 0 and 1
    assert align_rows_to_frames(np.array([0.0, 0.01]), 2, 200.0).tolist() == [0, 0]


@pytest.mark.parametrize(
    ("times", "n", "fps"),
    [(np.array([]), 3, 25.0), (np.array([0.0, 0.02, 0.01]), 3, 25.0), (np.array([0.0, np.nan]), 3, 25.0),
     (np.array([0.0]), 3, 0.0), (np.array([0.0]), -1, 25.0)],
)
def test_alignment_rejects_bad_input(times: np.ndarray, n: int, fps: float) -> None:
    with pytest.raises(AudioError):
        align_rows_to_frames(times, n, fps)


def test_frame_audio_mask() -> None:
    assert frame_audio_mask(1.0, 30, 25.0).tolist() == [True] * 25 + [False] * 5
    assert not frame_audio_mask(0.05, 10, 25.0).any()


# ---------------------------------------------------------------------------------------------------------------
# openSMILE
# ---------------------------------------------------------------------------------------------------------------


def test_extract_opensmile_shapes_and_time_alignment() -> None:
    fps, n = 25.0, 75
    feats = extract_opensmile(_tone(3.0, onset_s=1.5), AUDIO_SR, n, fps)
    assert feats["mfcc"].shape == (n, 39) and feats["mfcc"].dtype == np.float32
    assert feats["egemaps"].shape == (n, 23) and feats["egemaps"].dtype == np.float32
    assert np.isfinite(feats["mfcc"]).all() and np.isfinite(feats["egemaps"]).all()
    loudness = feats["egemaps"][:, 0]  # Loudness_sma3
    # the tone starts at 1.5 s = frame 37.5: frames up to 36 are quiet, frames from 39 on are loud
    assert loudness[:36].max() < 0.1 * loudness[40:].min()
    c0_or_c1 = feats["mfcc"][:, :13]
    assert np.abs(c0_or_c1[45] - c0_or_c1[10]).max() > 1.0


@pytest.mark.filterwarnings("ignore:Feature set")
def test_extract_opensmile_rows_are_the_nearest_opensmile_rows() -> None:
    import opensmile

    wave = _tone(2.0, seed=3) + 0.05 * np.random.default_rng(3).standard_normal(32000).astype(np.float32)
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv01a,
                            feature_level=opensmile.FeatureLevel.LowLevelDescriptors)
    df = smile.process_signal(wave, AUDIO_SR)
    fps, n = 30.0, 60
    got = extract_opensmile(wave, AUDIO_SR, n, fps)["egemaps"]
    for i in (0, 1, 17, 31, 59):
        row = min(round(i / fps / 0.01), len(df) - 1)
        np.testing.assert_allclose(got[i], df.to_numpy(np.float32)[row], rtol=1e-6)


def test_extract_opensmile_resamples_and_clips() -> None:
    wave = _tone(1.0)
    at_8k = extract_opensmile(wave[::2], AUDIO_SR // 2, 10, 10.0)
    assert at_8k["mfcc"].shape == (10, 39)
    loud = 2.5 * wave
    # openSMILE casts to int16: without clipping 2.5x would wrap around and change the features
    np.testing.assert_array_equal(
        extract_opensmile(loud, AUDIO_SR, 10, 10.0)["mfcc"],
        extract_opensmile(np.clip(loud, -1.0, 32767 / 32768), AUDIO_SR, 10, 10.0)["mfcc"],
    )


def test_extract_opensmile_too_short_audio_is_zeros() -> None:
    feats = extract_opensmile(np.zeros(800, np.float32), AUDIO_SR, 4, 25.0)
    assert not feats["mfcc"].any() and not feats["egemaps"].any()


def test_extract_opensmile_bad_input() -> None:
    with pytest.raises(AudioError, match="mono"):
        extract_opensmile(np.zeros((2, 16000), np.float32), AUDIO_SR, 4, 25.0)
    with pytest.raises(AudioError, match="NaN"):
        extract_opensmile(np.full(16000, np.nan, np.float32), AUDIO_SR, 4, 25.0)
    with pytest.raises(AudioError, match="23"):
        extract_opensmile(np.zeros(16000, np.float32), AUDIO_SR, 4, 25.0, egemaps_set="eGeMAPSv02")


# ---------------------------------------------------------------------------------------------------------------
# compute_audio_features
# ---------------------------------------------------------------------------------------------------------------


def _video_without_audio(path: Path, n_frames: int = 10) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=Fraction(25, 1))
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 20, np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_compute_audio_features_from_a_waveform() -> None:
    feats = compute_audio_features(_tone(1.0), 30, 25.0, sr=AUDIO_SR)
    assert set(feats) == {"mfcc", "egemaps", "audio_mask"}
    assert feats["mfcc"].shape == (30, 39) and feats["egemaps"].shape == (30, 23)
    assert feats["audio_mask"].tolist() == [True] * 25 + [False] * 5
    with pytest.raises(AudioError, match="sample rate"):
        compute_audio_features(_tone(1.0), 30, 25.0)


def test_compute_audio_features_without_audio_track(tmp_path: Path) -> None:
    video = _video_without_audio(tmp_path / "silent.mp4")
    assert load_wave(video) is None
    feats = compute_audio_features(video, 10, 25.0)
    assert feats["mfcc"].shape == (10, 39) and not feats["mfcc"].any()
    assert feats["egemaps"].shape == (10, 23) and not feats["egemaps"].any()
    assert feats["audio_mask"].dtype == np.bool_ and not feats["audio_mask"].any()


def test_compute_audio_features_missing_file(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="file not found"):
        compute_audio_features(tmp_path / "nope.mp4", 10, 25.0)


@pytest.mark.skipif(GRID_CLIP is None, reason="GRID sample clips not available")
def test_compute_audio_features_on_a_real_clip() -> None:
    feats = compute_audio_features(GRID_CLIP, 75, 25.0)
    assert feats["mfcc"].shape == (75, 39) and feats["egemaps"].shape == (75, 23)
    assert feats["audio_mask"].all()
    # speech: loudness varies across the sentence
    assert feats["egemaps"][:, 0].std() > 0.05


def test_compute_audio_features_with_vggish(tmp_path: Path) -> None:
    from preprocessing.vggish import save_random_weights

    save_random_weights(tmp_path)
    feats = compute_audio_features(_tone(0.5), 5, 10.0, sr=AUDIO_SR, vggish_path=tmp_path)
    assert feats["vggish"].shape == (5, 128) and feats["vggish"].dtype == np.float32
    assert feats["vggish"].min() >= 0 and feats["vggish"].max() <= 255
    # a loaded extractor is reused as is and gives the same values
    from preprocessing.vggish import EMBEDDING_DIM, load_vggish

    again = compute_audio_features(_tone(0.5), 5, 10.0, sr=AUDIO_SR, vggish_path=load_vggish(tmp_path))
    np.testing.assert_array_equal(again["vggish"], feats["vggish"])
    assert EMBEDDING_DIM == VGGISH_DIM
    # VGGish off when its files are missing: the key is absent rather than zero-filled
    off = compute_audio_features(_tone(0.5), 5, 10.0, sr=AUDIO_SR, vggish_path=tmp_path / "missing")
    assert "vggish" not in off
    # no audio: VGGish on still gives a (N, 128) block of zeros so the feature width stays fixed
    silent = compute_audio_features(np.zeros(100, np.float32), 5, 10.0, sr=AUDIO_SR, vggish_path=tmp_path)
    assert silent["vggish"].shape == (5, 128) and not silent["vggish"].any() and not silent["audio_mask"].any()


def test_audio_feature_config_hashes_differ_by_setting() -> None:
    from core.hashing import stable_hash

    a = audio_feature_config()
    assert set(a) == {"mfcc", "egemaps", "vggish", "audio_mask"}
    assert len(a["mfcc"]["config_sha256"]) == 64
    b = audio_feature_config(egemaps_set="eGeMAPSv01b", vggish_postprocess=False)
    assert stable_hash(a["mfcc"]) == stable_hash(b["mfcc"])
    assert stable_hash(a["egemaps"]) != stable_hash(b["egemaps"])
    assert stable_hash(a["vggish"]) != stable_hash(b["vggish"])


def test_audio_shorter_than_video_repeats_the_last_row() -> None:
    feats = compute_audio_features(_tone(1.0), 40, 25.0, sr=AUDIO_SR)
    assert feats["audio_mask"].sum() == 25
    np.testing.assert_array_equal(feats["mfcc"][30], feats["mfcc"][39])
