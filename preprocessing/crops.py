"""Write `cropped_aligned/<video>/00001.jpg ...`: one aligned 224x224 face per frame, as the ABAW organisers do.

For every decoded frame of a video, the tracked subject's face (see `preprocessing.faces.track`) is aligned to
the 5-point template (`preprocessing.faces.align`) and saved as JPEG; the file name is the 1-based frame number
with 5 digits, the numbering of the annotation lines. A frame without a face gets no file; it is counted and
listed in the manifest, and downstream the frame's visual features are marked missing.

With `two_person=True` the two largest faces are written to `<video>_left/` and `<video>_right/` (Aff-Wild2 names
the annotations of its 16 two-person videos that way).

Each file is written atomically. When a video is finished, `.done.json` is written in its folder with the
configuration hash and the counts; a later run with the same configuration skips the video, and a run with a
different one clears the folder's JPEGs first so no stale frame survives.

One writer per video: `harness faces` and `harness preprocess` hold `cropped_aligned/.locks/<hash>.lock`
(`lock_crops`) while they write that video's crops, so a second run on the same video stops at once with a message
naming the folder and the video, while the ranks of a sharded preprocess write their own videos side by side.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.atomic import atomic_write_bytes, atomic_write_text
from core.errors import HarnessError
from core.locking import LOCKS_DIR, FolderLock, video_lock
from core.ownership import check_plain_name, claim_folder
from preprocessing.faces.align import align_face
from preprocessing.faces.base import FaceDetector
from preprocessing.faces.detectors import get_detector
from preprocessing.faces.track import SUBJECT, FaceTracker
from preprocessing.video import DecodeStats, iter_frames, probe

CROPS_DIR = "cropped_aligned"
MANIFEST = ".done.json"
MANIFEST_VERSION = 1

class CropsLockedError(HarnessError):
    """Another process is writing face crops into the same `cropped_aligned` folder."""


def lock_crops(out_root: str | Path, video: str) -> FolderLock:
    """Take the write lock of one video's crops in `<out_root>/cropped_aligned` without waiting.

    Two runs writing the same video's crops would interleave their JPEGs and manifests; the lock turns the
    second run away before it detects anything, while runs on other videos (the ranks of a sharded preprocess)
    go on beside it. The kernel frees the lock when its holder dies, even by SIGKILL.

    Args:
        out_root: the folder that receives `cropped_aligned/`.
        video: the raw video's name (a two-person video's `_left` and `_right` crops share its lock).

    Returns:
        the held lock: keep it while writing, then `release()` it (or use it as a context manager).

    Raises:
        CropsLockedError: another process holds it (the message names the folder, the video, the lock and the
            holder).
    """
    folder = Path(out_root) / CROPS_DIR
    check_plain_name(video, "the video name")
    claim_folder(folder, (LOCKS_DIR,), what="face crops folder")

    def held(path: Path, holder: str) -> CropsLockedError:
        return CropsLockedError(
            f"{folder}: another run (pid {holder}) is writing the face crops of {video!r} into this folder (lock "
            f"{path}); wait for it to finish or use another --out"
        )

    return video_lock(folder, video, held).acquire()


@dataclass(frozen=True)
class CropConfig:
    """Everything that changes the crops' pixels (hashed into the manifest).

    Args:
        size: side of the square crop.
        quality: JPEG quality.
        stride: detect faces every `stride` frames and interpolate between (1 = every frame).
        two_person: write `_left` / `_right` subjects instead of one.
    """

    size: int = 224
    quality: int = 95
    stride: int = 1
    two_person: bool = False


@dataclass(frozen=True)
class SubjectCrops:
    """The crops of one subject.

    Args:
        name: folder name under cropped_aligned (the video name, or with `_left` / `_right`).
        out_dir: the folder.
        with_face: frames written.
        without_face: frames with no face (no file).
        missing: 1-based numbers of the frames without a file.
    """

    name: str
    out_dir: Path
    with_face: int
    without_face: int
    missing: tuple[int, ...] = ()


@dataclass(frozen=True)
class CropReport:
    """What `extract_crops` did for one video.

    Args:
        video: the video's name.
        frames: frames decoded.
        subjects: one SubjectCrops per output folder.
        detector_calls: frames the detector ran on.
        seconds: wall time (0 when skipped).
        skipped: True when a manifest with the same configuration was found and nothing was done.
        config_hash: hash of the configuration and detector settings.
        decode_errors: packets skipped as undecodable.
    """

    video: str
    frames: int
    subjects: tuple[SubjectCrops, ...]
    detector_calls: int
    seconds: float
    skipped: bool
    config_hash: str
    decode_errors: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def with_face(self) -> int:
        """Crops written, over all subjects."""
        return sum(s.with_face for s in self.subjects)

    @property
    def without_face(self) -> int:
        """Subject-frames without a face, over all subjects."""
        return sum(s.without_face for s in self.subjects)

    @property
    def fps(self) -> float:
        """Frames processed per second of wall time (0 when skipped)."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def detector_settings(detector: FaceDetector) -> dict[str, Any]:
    """The settings of a detector that change its output, for the configuration hash."""
    settings: dict[str, Any] = {"name": getattr(detector, "name", type(detector).__name__)}
    for attr in ("input_size", "score_threshold", "nms_threshold", "min_size"):
        if hasattr(detector, attr):
            settings[attr] = getattr(detector, attr)
    weights = getattr(detector, "weights", None)
    if weights is not None:
        settings["weights"] = Path(str(weights)).name
    return settings


def config_hash(config: CropConfig, detector: FaceDetector) -> str:
    """Short hash of the crop configuration and the detector settings."""
    blob = json.dumps(
        {"version": MANIFEST_VERSION, "config": asdict(config), "detector": detector_settings(detector)},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def frame_filename(index0: int) -> str:
    """JPEG name of a 0-based frame index: frame 0 -> '00001.jpg'."""
    return f"{index0 + 1:05d}.jpg"


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    """JPEG bytes of an HxWx3 uint8 RGB image."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _subject_names(video: str, two_person: bool) -> dict[str, str]:
    return {"_left": f"{video}_left", "_right": f"{video}_right"} if two_person else {SUBJECT: video}


def extract_crops(
    video_path: str | Path,
    out_root: str | Path,
    video_name: str | None = None,
    detector: FaceDetector | str = "scrfd",
    stride: int = 1,
    two_person: bool = False,
    progress: Callable[[int, int], None] | None = None,
    size: int = 224,
    quality: int = 95,
) -> CropReport:
    """Detect, align and save the subject's face in every frame of a video (resumable; see the module docstring).

    Args:
        video_path: the video.
        out_root: folder that receives `cropped_aligned/<video>/`.
        video_name: name of the output folder; the file stem by default.
        detector: a FaceDetector, or a detector name for `get_detector` (weights from the weights folder).
        stride: detect every `stride` frames and interpolate landmarks between.
        two_person: write `<video>_left` and `<video>_right`.
        progress: called with (frames done, frames expected) after each frame.
        size: crop side.
        quality: JPEG quality.

    Returns:
        The CropReport; `skipped` is True when the same configuration had already finished.
    """
    video_path = Path(video_path)
    name = video_name or video_path.stem
    config = CropConfig(size=size, quality=quality, stride=stride, two_person=two_person)
    if isinstance(detector, str):
        detector = get_detector(detector)
    digest = config_hash(config, detector)
    check_plain_name(name, "the video name")
    names = _subject_names(name, two_person)
    crops_root = Path(out_root) / CROPS_DIR
    dirs = {slot: crops_root / folder for slot, folder in names.items()}
    # The subject folders are cleared below only because the crops folder's ownership record holds them.
    owned = claim_folder(crops_root, (LOCKS_DIR, *names.values()), what="face crops folder")

    manifests = [_read_manifest(d / MANIFEST) for d in dirs.values()]
    if all(m is not None and m.get("config_hash") == digest for m in manifests):
        subjects = tuple(
            SubjectCrops(
                names[slot], dirs[slot], int(m["with_face"]), int(m["without_face"]), tuple(m.get("missing", ()))
            )
            for slot, m in zip(dirs, manifests, strict=True)
            if m is not None
        )
        first = manifests[0] or {}
        return CropReport(
            name, int(first.get("frames", 0)), subjects, 0, 0.0, True, digest, int(first.get("decode_errors", 0))
        )

    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
        owned.note(d.name)
        (d / MANIFEST).unlink(missing_ok=True)
        for old in d.glob("*.jpg"):  # crops of another configuration: stale
            old.unlink()

    expected = probe(video_path).frames
    stats = DecodeStats()
    tracker = FaceTracker(detector, stride=stride, two_person=two_person)
    written = dict.fromkeys(dirs, 0)
    missing: dict[str, list[int]] = {slot: [] for slot in dirs}
    frames = 0
    start = time.perf_counter()
    for tracked in tracker.track(iter_frames(video_path, stats=stats)):
        frames += 1
        for slot, face in tracked.faces.items():
            if face is None:
                missing[slot].append(tracked.index + 1)
                continue
            crop = align_face(tracked.image, face.landmarks, size)
            atomic_write_bytes(dirs[slot] / frame_filename(tracked.index), encode_jpeg(crop, quality))
            written[slot] += 1
        if progress is not None:
            progress(frames, max(expected, frames))
    seconds = time.perf_counter() - start

    subjects = []
    for slot, d in dirs.items():
        manifest = {
            "video": name,
            "source": video_path.name,
            "config_hash": digest,
            "config": asdict(config),
            "detector": detector_settings(detector),
            "frames": frames,
            "with_face": written[slot],
            "without_face": len(missing[slot]),
            "missing": missing[slot],
            "decode_errors": stats.errors,
        }
        atomic_write_text(d / MANIFEST, json.dumps(manifest, indent=1, default=str) + "\n")
        subjects.append(SubjectCrops(names[slot], d, written[slot], len(missing[slot]), tuple(missing[slot])))
    return CropReport(
        name,
        frames,
        tuple(subjects),
        tracker.detector_calls,
        seconds,
        False,
        digest,
        stats.errors,
        tuple(stats.messages),
    )
