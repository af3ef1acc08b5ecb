"""`harness preprocess`: raw videos -> aligned face crops and per-frame audio features in the feature cache.

INPUT is an Aff-Wild2 root, a folder of videos, or one video. For every raw video:
1. probe it (fps, frame count, audio track);
2. faces: detect + align into `OUT/cropped_aligned/<name>/00001.jpg` (skipped for subjects whose crops the dataset
   already ships, like Aff-Wild2's own `cropped_aligned`, unless `--detect` is given);
3. audio: MFCC 39 + eGeMAPS 23 (+ VGGish 128 when its weights are given) with one row per video frame, saved in
   `OUT/features/<name>/` for every subject of the video (both people of a two-person video share its audio).
Every step is skipped when its outputs exist with the same configuration hash, so an interrupted run resumes
where it stopped. One bad video is reported and skipped (unless `strict`). Visual features need an encoder:
they are extracted by stage 1 (`harness train --stage 1`) or `preprocess --encoder CKPT`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from preprocessing.affwild2 import AffWild2Layout, LayoutError, person_of, strip_person
from preprocessing.audio import audio_feature_config, compute_audio_features
from preprocessing.cache import FeatureCache, config_hash
from preprocessing.video import probe
from submissions.atomic import atomic_write_text
from submissions.errors import HarnessError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mpg", ".mpeg", ".mov", ".mkv", ".webm")
AUDIO_FEATURES = ("mfcc", "egemaps", "vggish", "audio_mask")


@dataclass(frozen=True)
class PreprocessConfig:
    """What preprocessing does (hashed per step, so a change redoes only the affected step).

    Args:
        faces: run face detection + alignment where crops are not already present.
        detect: detect even for subjects whose crops the dataset ships.
        detector: detector name ("scrfd", "mtcnn", "retinaface").
        stride: detect every `stride` frames and interpolate landmarks between (2 keeps the landmarks within
            0.3 px of per-frame detection on the GRID clips, mean, and halves the detector's work).
        input_size: SCRFD's input side (320: 13 ms/frame on 2 cores, same detections as 640 on GRID within 1.5 px).
        audio: compute audio features.
        vggish: VGGish weights (file or folder); None switches VGGish off.
        egemaps_set: eGeMAPS version with 23 LLDs.
    """

    faces: bool = True
    detect: bool = False
    detector: str = "scrfd"
    stride: int = 2
    input_size: int = 320
    audio: bool = True
    vggish: str | None = None
    egemaps_set: str = "eGeMAPSv01a"


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


def discover_jobs(input_path: str | Path) -> tuple[list[VideoJob], Path | None]:
    """The videos under INPUT, and the dataset root when INPUT is one.

    Raises:
        HarnessError: INPUT does not exist or holds no video.
    """
    p = Path(input_path)
    if p.is_file():
        return [VideoJob(p, (p.stem,))], None
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
            shipped = tuple(s for s in subjects if (p / "cropped_aligned" / s).is_dir())
            jobs.append(VideoJob(path, subjects, shipped))
        return jobs, p
    vids = sorted(f for f in p.iterdir() if f.suffix.lower() in VIDEO_SUFFIXES)
    if not vids:
        raise HarnessError(f"{p}: no videos ({', '.join(VIDEO_SUFFIXES)}) and no Aff-Wild2 layout")
    return [VideoJob(f, (f.stem,)) for f in vids], None


def _faces(job: VideoJob, out: Path, cfg: PreprocessConfig, detector, res: VideoResult) -> None:
    from preprocessing.crops import extract_crops

    if not cfg.detect and job.shipped_crops and set(job.shipped_crops) == set(job.subjects):
        res.faces = "shipped crops"
        return
    report = extract_crops(job.path, out, video_name=job.name, detector=detector, stride=cfg.stride,
                           two_person=job.two_person)
    res.with_face, res.without_face = report.with_face, report.without_face
    res.faces = "cached" if report.skipped else f"detected ({report.fps:.0f} fps)"
    res.notes.extend(report.notes)


def _audio(job: VideoJob, cache: FeatureCache, cfg: PreprocessConfig, vggish, n_frames: int, fps: float,
           res: VideoResult) -> None:
    feats_cfg = audio_feature_config(cfg.egemaps_set)
    hashes = {k: config_hash({"feature": v, "vggish": cfg.vggish}) for k, v in feats_cfg.items()}
    names = ["mfcc", "egemaps"] + (["vggish"] if vggish is not None else [])
    if all(cache.has(s, n, hashes[n]) for s in job.subjects for n in names):
        res.audio = "cached"
        return
    feats = compute_audio_features(job.path, n_frames, fps, vggish_path=vggish, egemaps_set=cfg.egemaps_set)
    meta = {"n_frames": n_frames, "fps": fps}
    for n in names:
        cache.save_many(job.subjects, n, feats[n], hashes[n], meta)
    cache.save_many(job.subjects, "audio_mask", feats["audio_mask"], hashes["mfcc"], meta)
    res.audio = "+".join(names) + ("" if res.has_audio else " (no audio track: zeros, masked)")


def preprocess(
    input_path: str | Path,
    out: str | Path,
    cfg: PreprocessConfig = PreprocessConfig(),
    strict: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[VideoResult]:
    """Run the preprocessing steps over every video of INPUT; write `OUT/preprocess_summary.json`.

    Args:
        input_path: Aff-Wild2 root, folder of videos, or one video.
        out: output root (crops under `cropped_aligned/`, features under `features/`).
        cfg: what to do.
        strict: stop at the first bad video instead of reporting it and going on.
        progress: called with (video, done, total) after each video.
    """
    out = Path(out)
    jobs, _root = discover_jobs(input_path)
    detector = None
    if cfg.faces and any(cfg.detect or set(j.shipped_crops) != set(j.subjects) for j in jobs):
        from preprocessing.faces.detectors import get_detector

        options = {"input_size": cfg.input_size} if cfg.detector == "scrfd" else {}
        detector = get_detector(cfg.detector, **options)
    vggish = None
    if cfg.audio and cfg.vggish:
        from preprocessing.vggish import load_vggish, vggish_status

        ok, msg = vggish_status(cfg.vggish)
        if not ok:
            raise HarnessError(msg)
        vggish = load_vggish(cfg.vggish)
    results: list[VideoResult] = []
    with FeatureCache(out / "features") as cache:
        for i, job in enumerate(jobs):
            res = VideoResult(video=job.name, subjects=len(job.subjects))
            t0 = time.perf_counter()
            try:
                info = probe(job.path)
                res.frames, res.fps, res.has_audio = info.frames, info.fps, info.has_audio
                if cfg.faces:
                    _faces(job, out, cfg, detector, res)
                if cfg.audio:
                    _audio(job, cache, cfg, vggish, info.frames, info.fps, res)
            except HarnessError as exc:
                if strict:
                    raise
                res.error = str(exc)
            res.seconds = time.perf_counter() - t0
            results.append(res)
            if progress:
                progress(job.name, i + 1, len(jobs))
    summary = {"input": str(input_path), "config": asdict(cfg), "videos": [asdict(r) for r in results]}
    atomic_write_text(out / "preprocess_summary.json", json.dumps(summary, indent=1) + "\n")
    return results
