"""Audio features per video frame: openSMILE MFCC 39 + eGeMAPS 23 (and VGGish 128), aligned to frames by time.

The recipe behind the BDCA paper's numbers (and the ABAW teams' public code): 16 kHz mono audio; openSMILE
MFCC12_0_D_A (13 cepstral coefficients 0-12 + deltas + delta-deltas = 39) and the eGeMAPS low-level descriptors
(23 for v01a/v01b), both on 25 ms-class frames at a 10 ms hop (MFCC columns in HTK order: c1..c12, c0, then their
deltas, then delta-deltas); VGGish 128-d on 0.96 s windows hopped once per video
frame (see `preprocessing.vggish`).

Alignment is by time, never by row number: openSMILE labels every row with its start time, some feature sets
repeat the last start time and the last partial frames are dropped, so row k is not always at k * 10 ms. Video
frame i (0-based) takes the row whose start time is nearest the frame's time t_i, i.e. row round(t_i / 0.01) on a
clean 10 ms grid (the field's convention), clamped to the last row when the video outlasts the audio. On a
constant-rate video t_i = i / fps. A variable-frame-rate video passes each frame's presentation time instead
(`frame_times_s`, seconds from the first frame): with the average rate, a frame after a change of rate would read
the audio of another moment.

Every entry point returns a dict of float32 arrays with one row per video frame plus `audio_mask` (N,) bool:
True for frames whose time lies inside the audio track. A video without an audio track (or with less than
`MIN_AUDIO_S` of it) gives all-zero features and an all-False mask, so the model sees "no audio" explicitly
instead of a crash or silently invented values.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.widths import EGEMAPS_DIM, MFCC_DIM, VGGISH_DIM
from preprocessing.timeline import AUDIO_SR, AudioError, frame_times, to_mono_16k

if TYPE_CHECKING:  # torch is imported only when VGGish is used
    from preprocessing.vggish import VGGishExtractor

MIN_AUDIO_S = 0.1
"""Shorter tracks count as missing: eGeMAPS needs 60 ms frames and openSMILE fills too-short input with NaN."""
MFCC_CONFIG = Path(__file__).resolve().parent / "opensmile_configs" / "mfcc39.conf"
"""The openSMILE config that yields the 39 MFCC columns (final level `lld`)."""
EGEMAPS_SETS = ("eGeMAPSv01a", "eGeMAPSv01b")
"""eGeMAPS versions with 23 LLD columns (v02 adds two formant bandwidths: 25 columns, not the paper's 23)."""
DEFAULT_EGEMAPS = "eGeMAPSv01a"
"""The version behind the field's published numbers (FACTS: 'eGeMAPS 23 (v01a LLDs)')."""


def align_rows_to_frames(
    row_times_s: np.ndarray, n_frames: int, fps: float, frame_times_s: np.ndarray | None = None
) -> np.ndarray:
    """Pick, for every video frame, the feature row whose start time is nearest the frame's time.

    Frame i (0-based) is at time i / fps, or at `frame_times_s[i]` when given. Ties (a frame exactly between two
    rows) go to the earlier row; frames after the last row take the last row. On a clean grid row_times = k * hop
    this is min(round(t_i / hop), last row), the field's convention.

    Args:
        row_times_s: start time in seconds of each feature row, non-decreasing (repeats allowed).
        n_frames: number of video frames.
        fps: video frame rate.
        frame_times_s: each frame's presentation time in seconds (variable frame rate), or None.

    Returns:
        (n_frames,) int64 row indices, non-decreasing, each in [0, len(row_times_s) - 1].
    """
    times = np.asarray(row_times_s, dtype=np.float64)
    if times.ndim != 1 or times.size == 0:
        raise AudioError(f"row times must be a non-empty 1-D array, got shape {times.shape}")
    if not np.all(np.isfinite(times)) or np.any(np.diff(times) < 0):
        raise AudioError("row times must be finite and non-decreasing")
    frame_t = frame_times(n_frames, fps, frame_times_s)
    right = np.searchsorted(times, frame_t, side="left")  # first row with start >= t
    right_c = np.minimum(right, times.size - 1)
    left_c = np.maximum(right - 1, 0)
    # An epsilon keeps the field's half-way rounding stable against float noise in i / fps.
    take_left = (frame_t - times[left_c]) <= (times[right_c] - frame_t) + 1e-9
    return np.where(take_left, left_c, right_c).astype(np.int64)


@functools.lru_cache(maxsize=4)
def _smile(feature_set: str):
    """One openSMILE extractor per feature set (building one costs ~0.5 s; processing reuses it)."""
    import opensmile

    with warnings.catch_warnings():
        # v01a/v01b are "deprecated" in favour of v02, which has 25 columns, not the paper's 23.
        warnings.simplefilter("ignore", UserWarning)
        if feature_set == "mfcc39":
            return opensmile.Smile(feature_set=str(MFCC_CONFIG), feature_level="lld")
        return opensmile.Smile(
            feature_set=opensmile.FeatureSet[feature_set], feature_level=opensmile.FeatureLevel.LowLevelDescriptors
        )


def _run_smile(feature_set: str, wave16k: np.ndarray, expected_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Run one openSMILE set; return (row start times in s, (rows, dim) float32 values)."""
    # openSMILE converts to int16 by multiplying with 32768: out-of-range samples would wrap around, so clip.
    clipped = np.clip(wave16k, -1.0, 32767.0 / 32768.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        df = _smile(feature_set).process_signal(clipped, AUDIO_SR)
    values = df.to_numpy(dtype=np.float32)
    if values.ndim != 2 or values.shape[1] != expected_dim:
        raise AudioError(f"openSMILE set {feature_set} gave {values.shape[-1]} columns, expected {expected_dim}")
    starts = df.index.get_level_values("start").total_seconds().to_numpy(dtype=np.float64)
    # openSMILE fills a too-short segment with NaN; silence gives finite values, so NaN means "no data".
    return starts, np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)


def frame_audio_mask(
    duration_s: float, n_frames: int, fps: float, frame_times_s: np.ndarray | None = None
) -> np.ndarray:
    """True for frames whose time (i / fps, or `frame_times_s[i]`) lies inside an audio track of the given length.

    Args:
        duration_s: audio length in seconds (0 for no audio track).
        n_frames: number of video frames.
        fps: video frame rate.
        frame_times_s: each frame's presentation time in seconds (variable frame rate), or None.
    """
    if duration_s < MIN_AUDIO_S:
        return np.zeros(n_frames, dtype=bool)
    return frame_times(n_frames, fps, frame_times_s) < duration_s


def extract_opensmile(
    wave: np.ndarray,
    sr: int,
    n_frames: int,
    fps: float,
    egemaps_set: str = DEFAULT_EGEMAPS,
    frame_times_s: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """openSMILE MFCC 39 and eGeMAPS 23 LLDs, one row per video frame.

    Args:
        wave: mono samples in [-1, 1] (resampled to 16 kHz when `sr` differs).
        sr: sample rate of `wave`.
        n_frames: number of video frames to align to.
        fps: video frame rate.
        egemaps_set: "eGeMAPSv01a" (default, the field's recipe) or "eGeMAPSv01b".
        frame_times_s: each frame's presentation time in seconds (variable frame rate), or None for i / fps.

    Returns:
        {"mfcc": (n_frames, 39) float32, "egemaps": (n_frames, 23) float32}; all zeros when the audio is shorter
        than `MIN_AUDIO_S`.
    """
    if egemaps_set not in EGEMAPS_SETS:
        raise AudioError(f"egemaps_set must be one of {EGEMAPS_SETS} (23 LLDs), got {egemaps_set!r}")
    wave16k = to_mono_16k(wave, sr)
    if frame_times_s is not None:  # bad times fail here, before openSMILE runs
        frame_times(n_frames, fps, frame_times_s)
    out = {
        "mfcc": np.zeros((n_frames, MFCC_DIM), np.float32),
        "egemaps": np.zeros((n_frames, EGEMAPS_DIM), np.float32),
    }
    if wave16k.size / AUDIO_SR < MIN_AUDIO_S or n_frames == 0:
        return out
    for key, fset, dim in (("mfcc", "mfcc39", MFCC_DIM), ("egemaps", egemaps_set, EGEMAPS_DIM)):
        starts, values = _run_smile(fset, wave16k, dim)
        out[key] = np.ascontiguousarray(values[align_rows_to_frames(starts, n_frames, fps, frame_times_s)])
    return out


def load_wave(path: str | Path) -> np.ndarray | None:
    """The audio track of a media file as 16 kHz mono float32, or None when the file has no audio track.

    Args:
        path: a video or audio file.

    Raises:
        VideoError: missing or unreadable file, or an audio stream of which nothing decodes.
    """
    from preprocessing.video import read_audio

    wave = read_audio(path, sr=AUDIO_SR)
    return None if wave is None else np.asarray(wave, dtype=np.float32)


def audio_feature_config(egemaps_set: str = DEFAULT_EGEMAPS, vggish_postprocess: bool = True) -> dict[str, dict]:
    """What determines each audio feature's values, per feature, for `preprocessing.cache.config_hash`.

    The MFCC entry carries the sha256 of `mfcc39.conf`, so editing the config invalidates cached MFCCs.

    Args:
        egemaps_set: eGeMAPS version.
        vggish_postprocess: post-processed (True) or raw (False) VGGish embeddings.
    """
    import hashlib
    from importlib.metadata import version

    common = {"sr": AUDIO_SR, "align": "nearest-row-start", "min_audio_s": MIN_AUDIO_S}
    smile = version("opensmile")
    return {
        "mfcc": {**common, "opensmile": smile, "config_sha256": hashlib.sha256(MFCC_CONFIG.read_bytes()).hexdigest()},
        "egemaps": {**common, "opensmile": smile, "set": egemaps_set},
        "vggish": {**common, "postprocess": vggish_postprocess, "window": "0.96s-centred", "pad": "log(0.01)"},
        "audio_mask": common,
    }


def compute_audio_features(
    source: str | Path | np.ndarray,
    n_frames: int,
    fps: float,
    sr: int | None = None,
    vggish_path: str | Path | VGGishExtractor | None = None,
    egemaps_set: str = DEFAULT_EGEMAPS,
    vggish_postprocess: bool = True,
    frame_times_s: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Every audio feature of one video, one row per video frame.

    Args:
        source: a media file path, or a mono waveform (then `sr` is required).
        n_frames: number of decoded video frames.
        fps: video frame rate.
        sr: sample rate of a waveform `source`.
        vggish_path: VGGish weights (file or folder, see `preprocessing.vggish`), or an extractor already loaded
            with `load_vggish` (reuse one across videos: loading reads 288 MB); None switches VGGish off, and so
            does a path whose files are missing (`vggish_status` says why).
        egemaps_set: eGeMAPS version with 23 LLDs.
        vggish_postprocess: when loading from a path: True for the released PCA + 8-bit embedding, False for
            the raw 128-d embedding.
        frame_times_s: (N,) presentation time of each frame in seconds from the first frame, for a video whose
            frame rate varies; None (constant rate) places frame i at i / fps.

    Returns:
        {"mfcc": (N, 39), "egemaps": (N, 23), ["vggish": (N, 128),] "audio_mask": (N,) bool}, float32 features;
        "vggish" only when VGGish is on. Without an audio track every feature is zero and `audio_mask` is all
        False; frames after the end of a shorter track repeat its last row and have `audio_mask` False.
    """
    if isinstance(source, np.ndarray):
        if sr is None:
            raise AudioError("a waveform source needs its sample rate `sr`")
        wave16k: np.ndarray | None = to_mono_16k(source, sr)
    else:
        wave16k = load_wave(source)
    extractor = None
    if vggish_path is not None:
        from preprocessing.vggish import VGGishExtractor, load_vggish, vggish_status

        if isinstance(vggish_path, VGGishExtractor):
            extractor = vggish_path
        elif vggish_status(vggish_path, postprocess=vggish_postprocess)[0]:
            extractor = load_vggish(vggish_path, postprocess=vggish_postprocess)
    if frame_times_s is not None:  # bad times fail before any work
        frame_times(n_frames, fps, frame_times_s)
    duration = 0.0 if wave16k is None else wave16k.size / AUDIO_SR
    feats: dict[str, np.ndarray]
    if wave16k is None or duration < MIN_AUDIO_S:
        feats = {
            "mfcc": np.zeros((n_frames, MFCC_DIM), np.float32),
            "egemaps": np.zeros((n_frames, EGEMAPS_DIM), np.float32),
        }
        if extractor is not None:
            feats["vggish"] = np.zeros((n_frames, VGGISH_DIM), np.float32)
    else:
        feats = extract_opensmile(wave16k, AUDIO_SR, n_frames, fps, egemaps_set=egemaps_set,
                                  frame_times_s=frame_times_s)  # fmt: skip
        if extractor is not None:
            feats["vggish"] = extractor.embed_frames(wave16k, AUDIO_SR, n_frames, fps, frame_times_s=frame_times_s)
    feats["audio_mask"] = frame_audio_mask(duration, n_frames, fps, frame_times_s)
    return feats
