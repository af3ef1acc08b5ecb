"""An audio track's timeline against the video's: each frame's time, and a waveform checked and resampled to the
16 kHz every audio feature is computed at. Shared by the openSMILE features (`preprocessing.audio`) and VGGish
(`preprocessing.vggish`)."""

from __future__ import annotations

import math

import numpy as np

from core.errors import HarnessError
from preprocessing.video import MAX_AUDIO_SECONDS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

AUDIO_SR = 16000
"""Sample rate every audio feature here is computed at."""
HOP_S = 0.01
"""Hop of the openSMILE feature rows (and of VGGish's log-mel frames)."""

class AudioError(HarnessError):
    """Audio input or an openSMILE result that the feature pipeline cannot use."""


def frame_times(n_frames: int, fps: float, frame_times_s: np.ndarray | None = None) -> np.ndarray:
    """The time in seconds of each video frame: i / fps, or the given presentation times (variable frame rate).

    Args:
        n_frames: number of video frames.
        fps: video frame rate (the average rate of a variable-rate video).
        frame_times_s: (n_frames,) presentation times in seconds from the first frame, non-decreasing; None for
            a constant-rate video.

    Returns:
        (n_frames,) float64.

    Raises:
        AudioError: a bad frame count or rate, or frame times of another length, not finite, negative or
            decreasing.
    """
    if n_frames < 0 or not (math.isfinite(fps) and fps > 0):
        raise AudioError(f"need n_frames >= 0 and fps > 0, got n_frames={n_frames}, fps={fps}")
    if frame_times_s is None:
        return np.arange(n_frames, dtype=np.float64) / fps
    t = np.asarray(frame_times_s, dtype=np.float64)
    if t.shape != (n_frames,):
        raise AudioError(f"frame times: expected {n_frames} values (one per frame), got shape {t.shape}")
    if not np.all(np.isfinite(t)) or np.any(t < 0) or np.any(np.diff(t) < 0):
        raise AudioError("frame times must be finite, >= 0 and non-decreasing (presentation order)")
    return t


def to_mono_16k(wave: np.ndarray, sr: int) -> np.ndarray:
    """Validate a mono waveform and resample it to 16 kHz.

    Args:
        wave: mono samples in [-1, 1].
        sr: its sample rate in Hz.

    Returns:
        (n,) float32 at `AUDIO_SR`.
    """
    arr = np.asarray(wave)
    if arr.ndim != 1:
        raise AudioError(f"expected a mono waveform (1-D array), got shape {arr.shape}; mix channels down first")
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise AudioError(f"sample rate {sr} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz")
    if arr.size > MAX_AUDIO_SECONDS * sr:
        raise AudioError(f"a waveform of {arr.size / sr / 3600:.1f} hours, more than {MAX_AUDIO_SECONDS / 3600:.0f}")
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise AudioError("waveform holds NaN or inf samples")
    if sr != AUDIO_SR:
        from scipy.signal import resample_poly

        g = math.gcd(int(sr), AUDIO_SR)
        arr = resample_poly(arr, AUDIO_SR // g, int(sr) // g).astype(np.float32)
    return arr
