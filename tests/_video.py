"""Small test videos made with PyAV from the GRID clips the corpus ships: frames, then an mpeg4 (+ AAC) file.

Shared by the preprocessing tests (bad and awkward videos, variable frame rate audio) and the harness tests that
preprocess a real file (face lock, resume, doctor).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

GRID = Path(__file__).resolve().parents[1] / "preprocessing" / "assets" / "grid"
SIZE = (160, 128)  # (w, h): GRID's 360x288 scaled down; the face stays about 45 px wide
FPS = 25


def grid_frames(n: int, size: tuple[int, int] = SIZE, start: int = 0, clip: str = "bbaf2n.mpg") -> list[np.ndarray]:
    """Frames start..start+n-1 of a GRID clip, resized to `size` (w, h), as RGB arrays."""
    out = []
    with av.open(str(GRID / clip)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i >= start + n:
                break
            if i >= start:
                out.append(np.asarray(Image.fromarray(f.to_ndarray(format="rgb24")).resize(size, Image.BILINEAR)))
    return out


def write_video(
    path: Path,
    frames: list[np.ndarray],
    audio_s: float | None = None,
    pts_ms: list[int] | None = None,
    rotation: int | None = None,
    faststart: bool = False,
    tone_hz: float = 220.0,
    audio: np.ndarray | None = None,
) -> Path:
    """An mpeg4 (+ AAC 16 kHz mono) file; `pts_ms` gives irregular frame times, `rotation` display metadata.

    The audio track is a tone of `audio_s` seconds, or the 16 kHz samples `audio` when given.
    """
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", options={"movflags": "+faststart"} if faststart else {}) as out:
        vs = out.add_stream("mpeg4", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.bit_rate = 2_000_000
        if pts_ms is not None:
            vs.codec_context.time_base = Fraction(1, 1000)
            vs.time_base = Fraction(1, 1000)
        if rotation is not None:
            vs.set_display_rotation(rotation)
        aus = out.add_stream("aac", rate=16000, layout="mono") if audio_s or audio is not None else None
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            for pkt in vs.encode(frame):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
        if aus is not None:
            if audio is None:
                audio = 0.3 * np.sin(2 * np.pi * tone_hz * np.arange(int(audio_s * 16000)) / 16000)
            mux_audio(out, aus, audio)
    return path


def mux_audio(out: av.container.OutputContainer, stream: av.audio.stream.AudioStream, audio: np.ndarray) -> None:
    """Encode a 16 kHz mono wave into an AAC stream of `out`, 1024 samples a frame, and mux every packet."""
    wave = np.asarray(audio, dtype=np.float32)[None]  # (1, n)
    for k in range(0, wave.shape[1], 1024):
        af = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, k : k + 1024]), format="fltp", layout="mono")
        af.sample_rate, af.pts, af.time_base = 16000, k, Fraction(1, 16000)
        for pkt in stream.encode(af):
            out.mux(pkt)
    for pkt in stream.encode():
        out.mux(pkt)


def write_multichannel_video(path: Path, frames: list[np.ndarray], layout: str, codec: str = "aac",
                             seconds: float = 1.0, tone_hz: float = 220.0) -> Path:  # fmt: skip
    """An mpeg4 video whose 16 kHz audio track has every channel of `layout` ("7.1": 8, "hexadecagonal": 16)
    carrying the same tone; `codec` "aac" (planar float) or "pcm_s16le" (packed, in .mkv).

    Frames are built packed (one plane whatever the channel count) and converted by FFmpeg's resampler to the
    encoder's format, since PyAV's planar `from_ndarray` cannot fill more than 8 planes.
    """
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        vs = out.add_stream("mpeg4", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        aus = out.add_stream(codec, rate=16000, layout=layout)
        channels = aus.codec_context.layout.nb_channels
        for img in frames:
            for pkt in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
        n = int(seconds * 16000)
        wave = (0.3 * np.sin(2 * np.pi * tone_hz * np.arange(n) / 16000)).astype(np.float32)
        to_codec = av.AudioResampler(format=aus.codec_context.format.name, layout=layout, rate=16000)
        for k in range(0, n, 1024):
            packed = np.repeat(wave[k : k + 1024, None], channels, axis=1).reshape(1, -1)
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(packed), format="flt", layout=layout)
            af.sample_rate, af.pts, af.time_base = 16000, k, Fraction(1, 16000)
            for f in to_codec.resample(af):
                for pkt in aus.encode(f):
                    out.mux(pkt)
        for pkt in aus.encode():
            out.mux(pkt)
    return path
