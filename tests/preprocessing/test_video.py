"""Video decoding: stream facts, frames, audio, and clear errors for bad files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from preprocessing.video import DecodeStats, VideoError, iter_frames, probe, read_audio, read_frames

GRID = Path(__file__).resolve().parents[2] / "preprocessing" / "assets" / "grid"


def make_video(
    path: Path,
    frames: int = 12,
    size: tuple[int, int] = (64, 48),
    fps: int = 25,
    audio_rate: int | None = 48000,
    tone_hz: float = 440.0,
    rotation: int | None = None,
) -> Path:
    """A tiny mp4: frame i is a flat grey of level 10 * i (so frames are identifiable), plus an optional tone."""
    w, h = size
    with av.open(str(path), mode="w") as out:
        vs = out.add_stream("mpeg4", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.bit_rate = 4_000_000  # near-lossless at this size, so grey levels survive
        if rotation is not None:
            vs.set_display_rotation(rotation)
        aus = None
        if audio_rate:
            aus = out.add_stream("aac", rate=audio_rate, layout="stereo")
        for i in range(frames):
            img = np.full((h, w, 3), 10 * i, dtype=np.uint8)
            img[:4, :8] = 255  # a mark in the top-left corner, to see rotation
            for pkt in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
        if aus is not None:
            n = int(audio_rate * frames / fps)
            t = np.arange(n) / audio_rate
            tone = (0.5 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
            stereo = np.stack([tone, tone])  # (2, n) planar
            step = 1024
            for k in range(0, n, step):
                chunk = np.ascontiguousarray(stereo[:, k : k + step])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                frame.sample_rate = audio_rate
                frame.pts = k
                frame.time_base = Fraction(1, audio_rate)
                for pkt in aus.encode(frame):
                    out.mux(pkt)
            for pkt in aus.encode():
                out.mux(pkt)
    return path


def test_grid_clip_probe() -> None:
    info = probe(GRID / "bbaf2n.mpg")
    assert (info.width, info.height, info.fps, info.frames) == (360, 288, 25.0, 75)
    assert info.duration == pytest.approx(2.98, abs=0.01)
    assert info.has_audio and info.audio_rate == 44100 and info.audio_channels == 2
    assert info.rotation == 0 and info.display_size == (360, 288)


def test_grid_clip_frames_and_stride() -> None:
    frames = list(iter_frames(GRID / "lbax4n.mpg"))
    assert [i for i, _ in frames] == list(range(75))
    assert all(f.shape == (288, 360, 3) and f.dtype == np.uint8 for _, f in frames)
    strided = list(iter_frames(GRID / "lbax4n.mpg", stride=4))
    assert [i for i, _ in strided] == list(range(0, 75, 4))
    np.testing.assert_array_equal(strided[3][1], frames[12][1])
    # A talking face: consecutive frames differ, but not wildly.
    diff = np.abs(frames[10][1].astype(int) - frames[11][1].astype(int)).mean()
    assert 0.1 < diff < 20


def test_grid_clip_audio_is_16k_mono_with_speech() -> None:
    audio = read_audio(GRID / "bbaf2n.mpg")
    assert audio is not None and audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 2.98 * 16000) < 0.01 * 16000
    assert np.abs(audio).max() < 1.1
    # Speech is louder in the middle of the clip than in its first 100 ms of silence.
    rms = lambda x: float(np.sqrt(np.mean(x**2)))  # noqa: E731
    assert rms(audio[16000:32000]) > 3 * rms(audio[:1600])


def test_synthetic_video_with_audio(tmp_path: Path) -> None:
    path = make_video(tmp_path / "tone.mp4", frames=12, audio_rate=48000, tone_hz=440.0)
    info = probe(path)
    assert (info.width, info.height, info.frames, info.fps) == (64, 48, 12, 25.0)
    assert info.has_audio and info.audio_rate == 48000 and info.audio_channels == 2
    frames = read_frames(path)
    assert sorted(frames) == list(range(12))
    # Frame i was painted grey 10 * i: decoded in order, lossy within a few levels.
    means = [frames[i][8:, 8:].mean() for i in range(12)]
    np.testing.assert_allclose(means, [10 * i for i in range(12)], atol=3)
    audio = read_audio(path, sr=16000)
    assert audio is not None
    # AAC adds about 1024-2048 priming/padding samples at 48 kHz (a third of that at 16 kHz).
    assert 12 / 25 * 16000 <= len(audio) <= 12 / 25 * 16000 + 1000
    spectrum = np.abs(np.fft.rfft(audio[2000:6000]))
    peak_hz = np.argmax(spectrum) * 16000 / 4000
    assert abs(peak_hz - 440) <= 8
    assert 0.3 < np.abs(audio[2000:6000]).max() < 0.6  # channels averaged, not summed


def test_video_without_audio_is_not_an_error(tmp_path: Path) -> None:
    path = make_video(tmp_path / "silent.mp4", frames=5, audio_rate=None)
    info = probe(path)
    assert not info.has_audio and info.audio_rate == 0 and info.audio_channels == 0
    assert read_audio(path) is None
    assert len(list(iter_frames(path))) == 5


def test_rotation_is_applied(tmp_path: Path) -> None:
    path = make_video(tmp_path / "rotated.mp4", frames=3, size=(64, 48), audio_rate=None, rotation=90)
    info = probe(path)
    assert info.rotation == 90 and info.display_size == (48, 64)
    _, first = next(iter_frames(path))
    assert first.shape == (64, 48, 3)
    # The white mark of the top-left corner moves to the bottom-left after a 90-degree counter-clockwise turn.
    assert first[-8:, :4].mean() > 200 and first[:8, :4].mean() < 100


def test_not_a_video_names_the_file(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("this is not a video\n" * 50)
    with pytest.raises(VideoError, match=r"notes\.mp4.*not a video"):
        probe(bogus)
    with pytest.raises(VideoError, match=r"notes\.mp4"):
        list(iter_frames(bogus))
    with pytest.raises(VideoError, match=r"notes\.mp4"):
        read_audio(bogus)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match=r"nothere\.mp4: file not found"):
        probe(tmp_path / "nothere.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match=r"empty\.mp4: empty file"):
        probe(tmp_path / "empty.mp4")


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "speech.wav"
    with av.open(str(path), mode="w") as out:
        st = out.add_stream("pcm_s16le", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1600), dtype=np.int16), format="s16", layout="mono")
        frame.sample_rate = 16000
        for pkt in st.encode(frame):
            out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    with pytest.raises(VideoError, match=r"speech\.wav: no video stream"):
        probe(path)
    audio = read_audio(path)
    assert audio is not None and len(audio) == 1600


def test_truncated_video_decodes_what_it_can(tmp_path: Path) -> None:
    whole = (GRID / "bbaf2n.mpg").read_bytes()
    cut = tmp_path / "cut.mpg"
    cut.write_bytes(whole[: len(whole) // 2])
    stats = DecodeStats()
    frames = list(iter_frames(cut, stats=stats))
    assert 20 < len(frames) < 75
    assert stats.decoded == len(frames)


def test_garbage_in_the_middle_is_skipped_and_counted(tmp_path: Path) -> None:
    data = bytearray((GRID / "bbaf2n.mpg").read_bytes())
    rng = np.random.default_rng(0)
    start = len(data) // 3
    data[start : start + 20000] = rng.integers(0, 256, 20000, dtype=np.uint8).tobytes()
    bad = tmp_path / "damaged.mpg"
    bad.write_bytes(bytes(data))
    stats = DecodeStats()
    frames = list(iter_frames(bad, stats=stats))
    assert 40 <= len(frames) <= 80  # the damaged stretch costs some frames, the rest decodes
    assert all(f.shape == (288, 360, 3) for _, f in frames)


def test_stride_must_be_positive() -> None:
    with pytest.raises(ValueError, match="stride"):
        next(iter_frames(GRID / "bbaf2n.mpg", stride=0))


def test_video_stream_with_zero_frames(tmp_path: Path) -> None:
    path = tmp_path / "hollow.mkv"
    with av.open(str(path), mode="w") as out:
        vs = out.add_stream("mpeg4", rate=25)
        vs.width, vs.height, vs.pix_fmt = 32, 32, "yuv420p"
        aus = out.add_stream("pcm_s16le", rate=8000, layout="mono")  # audio packets make the muxer write a file
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), dtype=np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for pkt in [*aus.encode(frame), *aus.encode(), *vs.encode()]:
            out.mux(pkt)
    assert path.stat().st_size > 0
    with pytest.raises(VideoError, match=r"hollow\.mkv: the video stream has no decodable frame"):
        probe(path)
    with pytest.raises(VideoError, match=r"hollow\.mkv"):
        list(iter_frames(path))
