"""Media bounds: frame size from the header (an image named .mp4), audio sample rate and duration."""

from __future__ import annotations

import resource
import wave

import numpy as np
import pytest

from preprocessing.timeline import AudioError, to_mono_16k
from preprocessing.video import MAX_AUDIO_SECONDS, VideoError, image_size, probe, read_audio
from tests.security._reads import huge_png


def test_a_16000_square_png_named_mp4_is_refused_from_its_header(tmp_path):
    path = huge_png(tmp_path / "clip.mp4")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(VideoError, match=r"clip\.mp4: frames of 16000 x 16000 pixels, more than the 33,177,600"):
        probe(path)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 100  # decoding it would take 768 MiB per copy


def test_image_sizes_are_read_from_headers():
    jpeg = b"\xff\xd8" + b"\xff\xe0\x00\x10" + b"\0" * 14 + b"\xff\xc0\x00\x11\x08" + (1080).to_bytes(2, "big") \
        + (1920).to_bytes(2, "big") + b"\x03"  # fmt: skip
    assert image_size(jpeg) == (1920, 1080)
    assert image_size(b"BM" + b"\0" * 16 + (640).to_bytes(4, "little") + (-480).to_bytes(4, "little", signed=True)) \
        == (640, 480)  # fmt: skip
    assert image_size(b"\0\0\0\x18ftypmp42") is None  # a video container: FFmpeg reads it


def test_a_1_hz_audio_track_is_refused_not_resampled(tmp_path):
    path = tmp_path / "slow.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(1)
        w.writeframes(np.zeros(36_000, dtype=np.int16).tobytes())  # 10 hours at 1 Hz
    with pytest.raises(VideoError, match=r"slow\.wav: an audio track at 1 Hz \(accepted: 1000-384000 Hz\)"):
        read_audio(path)


def test_waveforms_beyond_the_bounds_are_refused():
    with pytest.raises(AudioError, match="sample rate 1 Hz is outside 1000-384000 Hz"):
        to_mono_16k(np.zeros(10, np.float32), 1)
    with pytest.raises(AudioError, match="more than 1"):
        to_mono_16k(np.zeros(int(MAX_AUDIO_SECONDS * 1000) + 1, np.float32), 1000)
    assert to_mono_16k(np.zeros(8000, np.float32), 8000).shape == (16000,)
