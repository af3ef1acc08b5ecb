"""Video decoding with PyAV: stream facts, RGB frames, and the audio track as 16 kHz mono.

Conventions:
- Frames are numbered 0, 1, 2, ... in decode (presentation) order, one number per decoded frame: the numbering
  of frames extracted with ffmpeg at the native rate, which is the numbering of Aff-Wild2's annotation lines
  (frame i is line i + 1 and image `00000{i+1}.jpg`).
- A display rotation stored in the file (phone videos) is applied, in multiples of 90 degrees, so frames come out
  upright, the way players show them.
- A video with no audio track is not an error: `read_audio` returns None, and audio features are then marked
  missing downstream.
- A damaged stream is decoded as far as it goes: packets that fail to decode are skipped and counted in the
  `DecodeStats` the caller passes; only a file from which not a single frame decodes raises `VideoError`.
- Every `VideoError` names the file, the place when there is one, the reason, and what to do about it.
- `scan_packets` reads the video packets without decoding them (cheap): the frame count of a file whose header
  announces more frames than it holds (a truncated download), and the frame timestamps that tell a variable
  frame rate.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from core.errors import HarnessError, printable

REENCODE = "re-encode it, e.g. `ffmpeg -i IN -c:v libx264 -c:a aac OUT.mp4`"


class VideoError(HarnessError):
    """A video file that cannot be used; the message names the file, the problem and what to do.

    Args:
        path: the file.
        reason: what is wrong (with the place in the file when known).
        hint: what the user can do about it.
    """

    def __init__(self, path: str | Path, reason: str, hint: str | None = None):
        self.path = str(path)
        self.reason = reason
        self.hint = hint
        super().__init__(f"{printable(str(path))}: {reason}" + (f"; {hint}" if hint else ""))


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` finds in a video file.

    Args:
        path: the file.
        fps: average frame rate of the video stream.
        frames: number of video frames (from the container, else by counting packets without decoding).
        duration: seconds (container duration, else frames / fps).
        width: frame width as decoded (before rotation).
        height: frame height as decoded (before rotation).
        has_audio: whether there is an audio stream.
        audio_rate: sample rate of the first audio stream, 0 without audio.
        audio_channels: channels of the first audio stream, 0 without audio.
        rotation: display rotation in degrees counter-clockwise (0, 90, 180, 270) that frames get.
    """

    path: str
    fps: float
    frames: int
    duration: float
    width: int
    height: int
    has_audio: bool
    audio_rate: int
    audio_channels: int
    rotation: int

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) of the frames `iter_frames` yields, after rotation."""
        return (self.height, self.width) if self.rotation in (90, 270) else (self.width, self.height)


@dataclass
class DecodeStats:
    """Filled in by `iter_frames` / `read_audio` as they go: what decoded and what was skipped.

    Args:
        decoded: frames (or audio frames) decoded.
        errors: packets that failed to decode and were skipped.
        first_error: text of the first decode error, if any.
        first_error_at: stream time in seconds of the first undecodable packet, when it has a timestamp.
        messages: one line per problem, for the run's report.
    """

    decoded: int = 0
    errors: int = 0
    first_error: str | None = None
    first_error_at: float | None = None
    messages: list[str] = field(default_factory=list)

    def record_error(self, exc: Exception, packet: av.Packet | None = None) -> None:
        """Count one undecodable packet (and remember where the first one was)."""
        self.errors += 1
        if self.first_error is None:
            self.first_error = str(exc)
            if packet is not None and packet.pts is not None and packet.time_base:
                self.first_error_at = float(packet.pts * packet.time_base)

    def where(self) -> str:
        """' (first at 1.24 s: <error>)' for messages, or '' without errors."""
        if not self.errors:
            return ""
        at = f" at {self.first_error_at:.2f} s" if self.first_error_at is not None else ""
        return f" (first{at}: {self.first_error})"


def _mp4_without_index(p: Path) -> bool:
    """An MP4/MOV whose 'moov' box (the index of every frame) never got written: a cut-off download or recording."""
    size_total = p.stat().st_size
    with open(p, "rb") as fh:
        pos = 0
        first = True
        while pos + 8 <= size_total:  # walk the top-level boxes by their headers; no payload is read
            fh.seek(pos)
            head = fh.read(16)
            size, kind = int.from_bytes(head[:4], "big"), head[4:8]
            if first and kind != b"ftyp":
                return False
            first = False
            if kind == b"moov":
                return False
            if size == 1 and len(head) == 16:
                size = int.from_bytes(head[8:16], "big")
            elif size == 0:  # the box runs to the end of the file
                break
            if size < 8:
                break
            pos += size
    return not first


def _open(path: str | Path) -> av.container.InputContainer:
    p = Path(path)
    if not p.exists():
        raise VideoError(p, "file not found", "check the path and the file name")
    if not p.is_file():
        raise VideoError(p, "not a regular file", "give a video file")
    if p.stat().st_size == 0:
        raise VideoError(p, "empty file (0 bytes), not a video", "copy or download the file again")
    with open(p, "rb") as fh:  # a regular file (checked above): reading its head cannot block
        size = image_size(fh.read(1 << 16))
    if size is not None:
        check_frame_size(p, *size)
    try:
        return av.open(str(p), mode="r")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        if _mp4_without_index(p):
            raise VideoError(
                p,
                f"truncated MP4 ({p.stat().st_size} bytes): its index ('moov' box) is missing, so no frame can "
                "be located",
                "copy or download the file again; a recording cut off while writing needs a repair tool "
                "(e.g. untrunc with a good file from the same camera)",
            ) from exc
        raise VideoError(
            p, f"not a video or audio file that FFmpeg can read ({exc})", f"check it with `ffprobe`, or {REENCODE}"
        ) from exc


MAX_FRAME_PIXELS = 7680 * 4320
"""Largest frame decoded (8K UHD; Aff-Wild2's largest is 1920 x 1080): one RGB frame of this size is 100 MB, and a
16000 x 16000 image named .mp4 is refused from its header instead of allocating 768 MB per copy."""

MAX_AUDIO_SECONDS = 3600.0
"""Longest audio track read (Aff-Wild2's longest video is about 15 minutes): one hour at 16 kHz is 230 MB of
float32, checked from the stream's duration before decoding and again while decoding."""

MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 384_000
"""Audio sample rates accepted (telephone speech is 8 kHz, studio audio up to 384 kHz): a 1 Hz track would be
resampled 16,000-fold."""


def check_frame_size(path: str | Path, width: int, height: int) -> None:
    """Refuse a frame larger than `MAX_FRAME_PIXELS` before it is decoded or converted.

    Raises:
        VideoError: naming the file and the size.
    """
    if width * height > MAX_FRAME_PIXELS:
        raise VideoError(path, f"frames of {width} x {height} pixels, more than the {MAX_FRAME_PIXELS:,} pixels "
                         "(8K) a frame may have", f"scale the video down, or {REENCODE}")  # fmt: skip


def image_size(head: bytes) -> tuple[int, int] | None:
    r"""(width, height) of a still image from its first bytes (PNG, GIF, BMP, JPEG), or None for anything else.

    FFmpeg decodes a frame while it opens a file (to learn its stream's parameters), so an image named `.mp4` would
    be decoded whole before the stream could be checked: its size is read from its header first.

    >>> image_size(b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + (16000).to_bytes(4, "big") * 2)
    (16000, 16000)
    >>> image_size(b"GIF89a" + (640).to_bytes(2, "little") + (480).to_bytes(2, "little"))
    (640, 480)
    """
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
    if head.startswith(b"BM") and len(head) >= 26:
        return abs(int.from_bytes(head[18:22], "little", signed=True)), abs(int.from_bytes(head[22:26], "little",
                                                                                             signed=True))
    if head.startswith(b"\xff\xd8"):
        pos = 2
        while pos + 9 <= len(head) and head[pos] == 0xFF:
            marker, length = head[pos + 1], int.from_bytes(head[pos + 2 : pos + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start-of-frame segment
                return int.from_bytes(head[pos + 7 : pos + 9], "big"), int.from_bytes(head[pos + 5 : pos + 7], "big")
            pos += 2 + length
    return None


def check_audio_stream(path: str | Path, stream: av.audio.stream.AudioStream) -> None:
    """Refuse an audio stream whose sample rate or stated duration is outside the bounds, before decoding it.

    Raises:
        VideoError: naming the file, the value and the bound.
    """
    rate = int(stream.codec_context.sample_rate or stream.rate or 0)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise VideoError(path, f"an audio track at {rate} Hz (accepted: {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz)",
                         f"preprocess with --no-audio, or {REENCODE}")  # fmt: skip
    seconds = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
    if seconds > MAX_AUDIO_SECONDS:
        raise _audio_too_long(path, seconds)


def _audio_too_long(path: str | Path, seconds: float) -> VideoError:
    return VideoError(path, f"an audio track of {seconds / 3600:.1f} hours, more than the "
                      f"{MAX_AUDIO_SECONDS / 3600:.0f} hour(s) a video's audio may last",
                      "cut the video into parts, or preprocess with --no-audio")  # fmt: skip


def _video_stream(container: av.container.InputContainer, path: str | Path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        found = ", ".join(f"{st.type} ({getattr(st.codec_context, 'name', '?')})" for st in container.streams)
        raise VideoError(
            path,
            f"no video stream in the file (streams: {found or 'none'})",
            "faces and frame-aligned features need the video: give the original video file, not its audio",
        )
    stream = container.streams.video[0]
    check_frame_size(path, int(stream.codec_context.width or 0), int(stream.codec_context.height or 0))
    return stream


def _rotation_of(frame: av.VideoFrame) -> int:
    try:
        angle = float(frame.rotation or 0)
    except (AttributeError, TypeError, ValueError):
        return 0
    return round(angle / 90.0) % 4 * 90


def _fps_of(stream: av.video.stream.VideoStream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and float(rate) > 0:
            return float(rate)
    return 0.0


def probe(path: str | Path) -> VideoInfo:
    """Read a video's stream facts; decodes only the first frame (for its rotation).

    Raises:
        VideoError: missing file, not a media file, no video stream, or no frame that decodes.
    """
    with _open(path) as container:
        stream = _video_stream(container, path)
        fps = _fps_of(stream)
        frames = int(stream.frames or 0)
        rotation = 0
        first = None
        stats = DecodeStats()
        for first in _decode(container, stream, stats):
            rotation = _rotation_of(first)
            break
        if first is None:
            raise _no_frame(path, stats)
        if frames <= 0:
            # MPEG program streams and some others store no frame count: count packets without decoding,
            # in a fresh container (a seek back to 0 is not exact in every format).
            with _open(path) as again:
                frames = sum(1 for pkt in again.demux(again.streams.video[0]) if pkt.size)
        if container.duration:
            duration = container.duration / 1_000_000
        elif stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = frames / fps if fps else 0.0
        audio = container.streams.audio[0] if container.streams.audio else None
        return VideoInfo(
            path=str(path),
            fps=fps,
            frames=frames,
            duration=duration,
            width=int(stream.codec_context.width),
            height=int(stream.codec_context.height),
            has_audio=audio is not None,
            audio_rate=int(audio.rate or 0) if audio else 0,
            audio_channels=int(audio.channels or 0) if audio else 0,
            rotation=rotation,
        )


def _decode(
    container: av.container.InputContainer, stream: av.stream.Stream, stats: DecodeStats
) -> Iterator[av.VideoFrame | av.AudioFrame]:
    """Decode one stream packet by packet so that one bad packet costs one packet, not the rest of the file."""
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.FFmpegError as exc:
            stats.record_error(exc, packet)
            continue
        for frame in frames:
            stats.decoded += 1
            yield frame


def _no_frame(path: str | Path, stats: DecodeStats) -> VideoError:
    detail = f" ({stats.errors} packet(s) failed to decode{stats.where()})" if stats.errors else ""
    return VideoError(
        path,
        f"the video stream has no decodable frame{detail}",
        f"the file is empty or damaged from its start: copy or download it again, or {REENCODE}",
    )


@dataclass(frozen=True)
class PacketScan:
    """The video packets of a file, read without decoding (see `scan_packets`).

    Args:
        packets: non-empty video packets, i.e. frames the file holds.
        times: their presentation times in seconds, sorted (packets without a timestamp are left out).
        end: the end of the last frame in seconds (its time plus the median frame interval), 0 when empty.
        demux_error: text of the error that stopped reading early, if any.
    """

    packets: int
    times: tuple[float, ...]
    end: float
    demux_error: str | None = None

    def intervals(self) -> np.ndarray:
        """Seconds between consecutive frames."""
        return np.diff(np.asarray(self.times, dtype=np.float64))

    @property
    def variable_rate(self) -> bool:
        """True when frame intervals differ from their median by more than 10% (and 1 ms) somewhere."""
        steps = self.intervals()
        if steps.size < 2:
            return False
        med = float(np.median(steps))
        return bool(np.any(np.abs(steps - med) > max(0.1 * med, 0.001)))


def scan_packets(path: str | Path) -> PacketScan:
    """Read the first video stream's packets without decoding them: how many frames the file really holds.

    Args:
        path: the video file.

    Raises:
        VideoError: missing or unreadable file, or no video stream.
    """
    times: list[float] = []
    packets = 0
    error = None
    with _open(path) as container:
        stream = _video_stream(container, path)
        try:
            for pkt in container.demux(stream):
                if not pkt.size:
                    continue
                packets += 1
                if pkt.pts is not None and pkt.time_base:
                    times.append(float(pkt.pts * pkt.time_base))
        except av.FFmpegError as exc:  # a damaged container: keep what was read before
            error = str(exc)
    times.sort()
    start = times[0] if times else 0.0
    times = [t - start for t in times]
    steps = np.diff(times)
    end = times[-1] + float(np.median(steps)) if steps.size else 0.0
    return PacketScan(packets, tuple(times), end, error)


def iter_frames(
    path: str | Path, stride: int = 1, stats: DecodeStats | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Decode a video and yield (index, frame) for every `stride`-th frame, index 0-based in decode order.

    Args:
        path: the video file.
        stride: yield frames 0, stride, 2*stride, ... (all frames are decoded; only these are converted to RGB).
        stats: filled in with the frames decoded and the packets skipped as undecodable.

    Yields:
        (index, HxWx3 uint8 RGB array), rotated upright when the file says so.

    Raises:
        VideoError: missing or unreadable file, no video stream, or not a single decodable frame.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    stats = stats if stats is not None else DecodeStats()
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        index = 0
        for frame in _decode(container, stream, stats):
            if index % stride == 0:
                check_frame_size(path, frame.width, frame.height)  # a stream may change size mid-way
                rgb = frame.to_ndarray(format="rgb24")
                k = _rotation_of(frame) // 90
                if k:
                    rgb = np.ascontiguousarray(np.rot90(rgb, k))
                yield index, rgb
            index += 1
    if index == 0:
        raise _no_frame(path, stats)
    if stats.errors:
        stats.messages.append(f"{path}: skipped {stats.errors} undecodable video packet(s){stats.where()}")


def read_frames(path: str | Path, indices: list[int] | None = None) -> dict[int, np.ndarray]:
    """Decode and keep the frames with the given 0-based indices (all frames when None); for small clips."""
    wanted = None if indices is None else set(indices)
    out: dict[int, np.ndarray] = {}
    for i, frame in iter_frames(path):
        if wanted is None or i in wanted:
            out[i] = frame
    return out


def read_audio(path: str | Path, sr: int = 16000, stats: DecodeStats | None = None) -> np.ndarray | None:
    """The first audio track, resampled with FFmpeg's resampler and mixed down to mono by averaging channels.

    Averaging (rather than FFmpeg's mono downmix, which sums stereo at -3 dB and goes up to 1.41) keeps the
    level of the input; only the resampling filter's ringing can overshoot [-1, 1] slightly on clipped input.

    Args:
        path: a video (or audio) file.
        sr: output sample rate in Hz.
        stats: filled in with audio frames decoded and packets skipped.

    Returns:
        (samples,) float32 in [-1, 1], or None when the file has no audio stream (not an error).

    Raises:
        VideoError: missing or unreadable file, or an audio stream of which nothing decodes.
    """
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    stats = stats if stats is not None else DecodeStats()
    with _open(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        check_audio_stream(path, stream)
        # Packed (interleaved) float at the target rate, channel layout unchanged; the mono mix is done below.
        # Packed, not planar: a packed frame is one plane whatever its channel count, while PyAV's to_ndarray of
        # a planar frame of 8 or more channels (7.1, 16-channel) reads past FFmpeg's 8 inline planes: SIGSEGV.
        resampler = av.AudioResampler(format="flt", rate=sr)
        chunks: list[np.ndarray] = []
        budget = [int(MAX_AUDIO_SECONDS * sr)]

        def take(frames: list[av.AudioFrame]) -> None:
            for f in frames:
                channels = f.layout.nb_channels
                # (1, n * channels) interleaved -> (n, channels) -> (n,): the same mean as over planar rows.
                chunks.append(f.to_ndarray().reshape(-1, channels).mean(axis=1))
                budget[0] -= chunks[-1].size
                if budget[0] < 0:  # a stream whose header understates its length
                    raise _audio_too_long(path, sum(c.size for c in chunks) / sr)

        for frame in _decode(container, stream, stats):
            frame.pts = None  # let the resampler count samples itself; damaged timestamps do not matter
            take(resampler.resample(frame))
        take(resampler.resample(None))
    if stats.decoded == 0:
        detail = f" ({stats.errors} packet(s) failed to decode{stats.where()})" if stats.errors else ""
        raise VideoError(
            path,
            f"the audio stream has no decodable sample{detail}",
            f"preprocess with --no-audio to use the video without its audio, or {REENCODE}",
        )
    if stats.errors:
        stats.messages.append(f"{path}: skipped {stats.errors} undecodable audio packet(s){stats.where()}")
    audio = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    return audio
