"""What `harness preprocess` works on: the videos of an input (an Aff-Wild2 root, a folder, one file) as jobs, the
file-system-safe names their outputs carry, and each video's result.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import HarnessError
from harness.folders.cache import PreprocessDir
from preprocessing.affwild2 import AffWild2Layout, LayoutError, person_of, strip_person
from preprocessing.video import probe

VIDEO_SUFFIXES = (".mp4", ".avi", ".mpg", ".mpeg", ".mov", ".mkv", ".webm")
AUDIO_FEATURES = ("mfcc", "egemaps", "vggish", "audio_mask")
"""What `harness preprocess` writes in its --out folder (claimed in its ownership record, `core.ownership`)."""
_SAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


@dataclass(frozen=True)
class VideoJob:
    """One raw video and the subject names it carries.

    Args:
        path: the raw video.
        subjects: names used by crops/annotations/features (`<video>`, or `<video>_left` and `<video>_right`).
        shipped_crops: subjects whose crops the dataset already has.
    """

    path: Path
    subjects: tuple[str, ...]
    shipped_crops: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return strip_person(self.subjects[0])

    @property
    def two_person(self) -> bool:
        return any(person_of(s) for s in self.subjects)


@dataclass
class VideoResult:
    """What happened to one video (one row of the summary)."""

    video: str
    subjects: int = 0
    frames: int = 0
    fps: float = 0.0
    has_audio: bool = False
    with_face: int | None = None
    without_face: int | None = None
    faces: str = "-"
    audio: str = "-"
    error: str | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def safe_name(stem: str) -> str:
    """A name the outputs can carry (folder names, cache keys, submission rows): the stem itself when it is made
    of ASCII letters, digits, `_`, `.` and `-`; otherwise its ASCII transliteration with other characters as `_`,
    plus a short hash of the original so that two names folding to the same text stay apart.

    Args:
        stem: the video file's name without its suffix.
    """
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", stem):
        return stem
    ascii_text = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    base = _SAFE.sub("_", ascii_text).strip("_.-") or "video"
    return f"{base}-{hashlib.sha1(stem.encode('utf-8')).hexdigest()[:6]}"


def discover_jobs(input_path: str | Path) -> tuple[list[VideoJob], Path | None]:
    """The videos under INPUT, and the dataset root when INPUT is one.

    Videos of a plain folder (or a single file) are named after their file stem, made safe with `safe_name`.

    Raises:
        HarnessError: INPUT does not exist or holds no video.
    """
    p = Path(input_path)
    if p.is_file():
        return [VideoJob(p, (safe_name(p.stem),))], None
    if not p.is_dir():
        raise HarnessError(f"{p}: no such video file or folder")
    try:
        layout = AffWild2Layout.discover(p)
    except LayoutError:
        layout = None
    if layout is not None and layout.raw_videos:
        names: dict[str, set[str]] = {}
        for entries in layout.splits.values():
            for e in entries:
                names.setdefault(strip_person(e.name), set()).add(e.name)
        jobs = []
        for raw, path in sorted(layout.raw_videos.items()):
            subjects = tuple(sorted(names.get(raw, {raw})))
            shipped = tuple(s for s in subjects if PreprocessDir(p).subject_crops(s).is_dir())
            jobs.append(VideoJob(path, subjects, shipped))
        return jobs, p
    vids = sorted(f for f in p.iterdir() if f.suffix.lower() in VIDEO_SUFFIXES)
    if not vids:
        raise HarnessError(f"{p}: no videos ({', '.join(VIDEO_SUFFIXES)}) and no Aff-Wild2 layout")
    return [VideoJob(f, (safe_name(f.stem),)) for f in vids], None


def job_frames(job: VideoJob) -> int:
    """The work a video is counted as when videos are split across shards: the frames its header announces.

    A file that cannot be probed counts 0 (it fails fast, in whichever shard gets it)."""
    try:
        return max(probe(job.path).frames, 0)
    except (HarnessError, OSError):
        return 0
