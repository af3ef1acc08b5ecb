"""The real faces under the demo corpus: GRID clips shipped in `preprocessing/assets/grid/`, and their landmarks.

Each clip is a frontal speaker reading a short sentence (360x288, 25 fps, 75 frames; CC BY 4.0, see the NOTICE.md
beside the clips). The corpus only uses the clip's quiet frames (before or after the sentence, found from the
clip's own audio) so that the mouth moves only where the synthetic voice speaks.

Landmarks come, in order of preference, from:
1. `grid_landmarks.json` beside this module: per-frame landmarks measured once with SCRFD and keyed by the clip
   file's SHA-256 (so a corpus does not depend on whether detector weights are installed);
2. the project's SCRFD detector, when the clip is not in the table and the weights are installed;
3. the typical GRID layout (mean of the table), scaled to the frame: a rough last resort, flagged in the result.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from core.errors import HarnessError

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets" / "grid"
"""Where the shipped GRID clips and their NOTICE.md live."""

NOTICE_NAME = "NOTICE.md"
_TABLE = Path(__file__).resolve().parent / "grid_landmarks.json"


class SourceError(HarnessError):
    """The GRID clips the corpus is rendered from are missing or unreadable."""


@dataclass(frozen=True)
class SourceClip:
    """One real face clip, restricted to its quiet frames.

    Args:
        name: file name of the clip.
        sha256: digest of the clip file.
        frames: (T, H, W, 3) uint8 RGB quiet frames.
        landmarks: (T, 5, 2) float32 landmarks of those frames (image convention of `preprocessing.faces`).
        landmark_source: "table", "detector" or "typical".
        quiet: (first, last + 1) frame range of the clip that `frames` holds.
    """

    name: str
    sha256: str
    frames: np.ndarray
    landmarks: np.ndarray
    landmark_source: str
    quiet: tuple[int, int]

    @property
    def interocular(self) -> float:
        """Median distance between the eyes, in source pixels."""
        return float(np.median(np.linalg.norm(self.landmarks[:, 1] - self.landmarks[:, 0], axis=1)))


def clip_paths(directory: Path | None = None) -> list[Path]:
    """The GRID clips (`*.mpg`) of a folder, sorted by name; the shipped assets by default."""
    folder = Path(directory) if directory else ASSETS_DIR
    paths = sorted(folder.glob("*.mpg"))
    if not paths:
        raise SourceError(f"{folder}: no GRID clips (*.mpg) found; the demo corpus renders its faces from them")
    return paths


def notice_path(directory: Path | None = None) -> Path:
    """The licence notice that travels with the clips."""
    path = (Path(directory) if directory else ASSETS_DIR) / NOTICE_NAME
    if not path.is_file():
        raise SourceError(f"{path}: the GRID NOTICE.md is missing (CC BY 4.0 requires it beside the clips)")
    return path


@lru_cache(maxsize=1)
def _table() -> dict[str, np.ndarray]:
    data = json.loads(_TABLE.read_text(encoding="utf-8"))
    return {k: np.asarray(v["landmarks"], dtype=np.float32).reshape(-1, 5, 2) for k, v in data["clips"].items()}


def typical_landmarks(width: int, height: int) -> np.ndarray:
    """The mean GRID landmark layout of the table, scaled to a frame of the given size: (5, 2) float32."""
    mean = np.mean([v.mean(axis=0) for v in _table().values()], axis=0)  # (5, 2) in 360x288 frames
    return (mean * np.array([width / 360.0, height / 288.0], dtype=np.float32)).astype(np.float32)


def quiet_range(audio: np.ndarray, sr: int, n_frames: int, fps: float, margin: int = 5) -> tuple[int, int]:
    """The longest run of video frames without speech, shortened by `margin` frames next to speech.

    Lips move before a sound starts and after it stops, hence the margin. A frame is quiet when its audio RMS is
    more than 25 dB below the loudest frame's.

    Args:
        audio: (S,) mono samples.
        sr: their sample rate.
        n_frames: video frames of the clip.
        fps: its frame rate.
        margin: frames dropped at each end of the run that borders speech.

    Returns:
        (start, end) half-open; the whole clip when no run of at least 6 quiet frames remains.
    """
    hop = sr / fps
    rms = np.array(
        [
            np.sqrt(np.mean(audio[int(i * hop) : max(int((i + 1) * hop), int(i * hop) + 1)] ** 2))
            for i in range(n_frames)
        ]
    )
    db = 20.0 * np.log10(rms + 1e-12)
    quiet = db < db.max() - 25.0
    best = (0, 0)
    start = None
    for i, q in enumerate([*quiet.tolist(), False]):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    s, e = best
    s = s + margin if s > 0 else s
    e = e - margin if e < n_frames else e
    return (s, e) if e - s >= 6 else (0, n_frames)


def _decode(path: Path) -> tuple[np.ndarray, np.ndarray, int, float]:
    import av

    try:
        with av.open(str(path)) as container:
            vstream = container.streams.video[0]
            fps = float(vstream.average_rate or 25)
            frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
        with av.open(str(path)) as container:
            chunks, sr = [], 0
            for f in container.decode(audio=0):
                arr = f.to_ndarray().astype(np.float64)
                sr = f.sample_rate
                # Planar audio is (channels, n); packed is (1, n * channels).
                chunks.append(
                    arr.mean(axis=0) if f.format.is_planar else arr.reshape(-1, len(f.layout.channels)).mean(1)
                )
            audio = np.concatenate(chunks) if chunks else np.zeros(0)
    except (OSError, av.error.FFmpegError, IndexError) as exc:
        raise SourceError(f"{path}: cannot decode as a GRID clip: {exc}") from exc
    return frames, audio, sr, fps


def _detect(frames: np.ndarray) -> np.ndarray | None:
    try:
        from preprocessing.faces import get_detector

        detector = get_detector("scrfd")
    except (ImportError, HarnessError, OSError):
        return None
    out = []
    for im in frames:
        faces = detector.detect(im)
        if not faces:
            return None
        out.append(np.asarray(faces[0].landmarks, dtype=np.float32))
    return np.stack(out)


@lru_cache(maxsize=8)
def load_clip(path: Path) -> SourceClip:
    """Decode one GRID clip, keep its quiet frames and attach their landmarks (see the module docstring)."""
    path = Path(path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    frames, audio, sr, fps = _decode(path)
    n = frames.shape[0]
    table = _table().get(sha)
    if table is not None and table.shape[0] == n:
        landmarks, source = table, "table"
    else:
        detected = _detect(frames)
        if detected is not None:
            landmarks, source = detected, "detector"
        else:
            h, w = frames.shape[1:3]
            landmarks, source = np.repeat(typical_landmarks(w, h)[None], n, axis=0), "typical"
    s, e = quiet_range(audio, sr, n, fps) if sr else (0, n)
    return SourceClip(
        name=path.name,
        sha256=sha,
        frames=np.ascontiguousarray(frames[s:e]),
        landmarks=np.ascontiguousarray(landmarks[s:e], dtype=np.float32),
        landmark_source=source,
        quiet=(s, e),
    )


def load_clips(directory: Path | None = None) -> list[SourceClip]:
    """Every GRID clip of a folder (the shipped assets by default), ready to render."""
    return [load_clip(p) for p in clip_paths(directory)]
