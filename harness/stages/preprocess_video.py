"""One video's preprocessing, run in a child process kept for the run (`core.isolation`): probe, face crops, audio
features per frame, each skipped when its outputs exist with the same configuration hash; a native crash is that
video's located error.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import remove_stale_temps
from core.errors import HarnessError
from core.hashing import stable_hash
from core.isolation import ChildCrashedError
from core.locking import FolderLock
from harness.config import PreprocessConfig
from harness.folders.cache import PreprocessDir
from harness.stages.preprocess_jobs import VideoJob, VideoResult
from preprocessing.audio import audio_feature_config, compute_audio_features
from preprocessing.cache import CacheError, CacheLockedError, FeatureCache
from preprocessing.crops import CropsLockedError, lock_crops
from preprocessing.timeline import AUDIO_SR
from preprocessing.video import DecodeStats, PacketScan, VideoError, VideoInfo, probe, read_audio, scan_packets

LONGER_AUDIO_S = 0.25
"""Audio that outlasts the video by more than this is noted (AAC padding alone adds up to ~0.1 s)."""


def _faces(job: VideoJob, out: Path, cfg: PreprocessConfig, detector, res: VideoResult, expected: int) -> int | None:
    """Crops of one video; returns the number of frames decoded (None when the dataset's own crops are used)."""
    from preprocessing.crops import extract_crops

    if not cfg.detect and job.shipped_crops and set(job.shipped_crops) == set(job.subjects):
        res.faces = "shipped crops"
        return None
    report = extract_crops(job.path, out, video_name=job.name, detector=detector, stride=cfg.stride,
                           two_person=job.two_person)  # fmt: skip
    res.with_face, res.without_face = report.with_face, report.without_face
    res.faces = "cached" if report.skipped else f"detected ({report.fps:.0f} fps)"
    if report.frames < expected or report.decode_errors:
        damaged = f"; {report.decode_errors} damaged packet(s) skipped" if report.decode_errors else ""
        first = next((" " + n[n.index("(first"):] for n in report.notes if "(first" in n), "")  # fmt: skip
        res.notes.append(f"decoded {report.frames} of ~{expected} frames{damaged}{first}; crops and features "
                         "cover the decoded frames")  # fmt: skip
    return report.frames


def _cached(cache: FeatureCache, subjects: tuple[str, ...], names: list[str], hashes: dict[str, str],
            n_frames: int) -> bool:  # fmt: skip
    """Every audio feature present, undamaged, of this config and of this frame count."""
    try:
        return all(cache.has(s, n, hashes[n]) and cache.manifest(s).get("n_frames") == n_frames
                   for s in subjects for n in [*names, "audio_mask"])  # fmt: skip
    except CacheError:
        return False


def _audio(job: VideoJob, cache: FeatureCache, cfg: PreprocessConfig, vggish, n_frames: int, fps: float,
           res: VideoResult, frame_times_s: np.ndarray | None = None) -> None:  # fmt: skip
    feats_cfg = audio_feature_config(cfg.egemaps_set)
    if frame_times_s is not None:
        # Another alignment gives other rows: features cached by the average-rate alignment are computed again.
        feats_cfg = {k: {**v, "align": "nearest-row-start-pts"} for k, v in feats_cfg.items()}
    hashes = {k: stable_hash({"feature": v, "vggish": cfg.vggish}) for k, v in feats_cfg.items()}
    hashes["audio_mask"] = hashes["mfcc"]
    names = ["mfcc", "egemaps"] + (["vggish"] if vggish is not None else [])
    if _cached(cache, job.subjects, names, hashes, n_frames):
        res.audio = "cached"
        return
    stats = DecodeStats()
    wave: np.ndarray | None = None
    if res.has_audio:
        try:
            wave = read_audio(job.path, sr=AUDIO_SR, stats=stats)
        except VideoError as exc:  # an audio track of which nothing decodes: the video is still usable
            res.notes.append(f"audio track unusable ({exc.reason}): audio features are zero and masked")
    else:
        res.notes.append("no audio track: audio features are zero and audio_mask is False for every frame")
    if stats.errors:
        res.notes.append(f"audio: {stats.errors} damaged packet(s) skipped{stats.where()}")
    samples = wave if wave is not None else np.zeros(0, np.float32)
    feats = compute_audio_features(samples, n_frames, fps, sr=AUDIO_SR, vggish_path=vggish,
                                   egemaps_set=cfg.egemaps_set, frame_times_s=frame_times_s)  # fmt: skip
    if wave is not None and n_frames and fps > 0:
        audio_s, video_s = wave.size / AUDIO_SR, n_frames / fps
        masked = int(n_frames - feats["audio_mask"].sum())
        if masked:
            res.notes.append(f"audio track ({audio_s:.2f} s) is shorter than the video ({video_s:.2f} s): the last "
                             f"{masked} frame(s) have no audio (audio_mask False)")  # fmt: skip
        elif audio_s > video_s + LONGER_AUDIO_S:
            res.notes.append(f"audio track ({audio_s:.2f} s) is longer than the video ({video_s:.2f} s): the audio "
                             "after the last frame is not used")  # fmt: skip
    meta = {"n_frames": n_frames, "fps": fps}
    for n in [*names, "audio_mask"]:
        cache.save_many(job.subjects, n, feats[n], hashes[n], meta)
    missing = " (no audio track: zeros, masked)" if not res.has_audio else " (audio undecodable: zeros, masked)"
    res.audio = "+".join(names) + ("" if wave is not None else missing)


def _frame_times(scan: PacketScan, n_frames: int, fps: float) -> np.ndarray:
    """Presentation time of each of `n_frames` frames, in seconds from the first, for a variable-rate video.

    Decoded frames come out in presentation order, which is the sorted packet timestamps. Where decoding found
    fewer frames than packets (damaged packets), the first times are used; frames beyond the last timestamp
    (packets without one) continue at the average rate.

    Args:
        scan: the file's packets (`scan_packets`).
        n_frames: frames that features are computed for.
        fps: the average frame rate.
    """
    times = np.asarray(scan.times[:n_frames], dtype=np.float64)
    if times.size < n_frames:
        last = times[-1] if times.size else 0.0
        times = np.concatenate([times, last + np.arange(1, n_frames - times.size + 1) / fps])
    return times


def _stream_notes(job: VideoJob, info: VideoInfo, res: VideoResult) -> tuple[int, PacketScan]:
    """Notes on what the container says; returns the number of frames the file holds (packets, not decoded) and
    the packet scan (its timestamps time the frames of a variable-rate video)."""
    scan = scan_packets(job.path)
    held = scan.packets or info.frames
    if job.path.stem != job.name:
        res.notes.append(f"outputs are named {job.name!r} (from the file name {job.path.name!r})")
    if info.frames > scan.packets > 0:
        res.notes.append(f"the file holds {scan.packets} of the {info.frames} frames its header announces (it ends "
                         f"at {scan.end:.2f} s of {info.duration:.2f} s): truncated; the frames present are used, "
                         "copy or download the file again for the rest")  # fmt: skip
    if scan.demux_error:
        res.notes.append(f"reading stopped early at {scan.end:.2f} s: {scan.demux_error}")
    if scan.variable_rate:
        steps = scan.intervals() * 1000
        res.notes.append(f"variable frame rate (frame intervals {steps.min():.0f}-{steps.max():.0f} ms, average "
                         f"{info.fps:.2f} fps): frames are numbered in decode order and each frame takes the audio "
                         "at its own presentation time")  # fmt: skip
    if info.rotation:
        res.notes.append(f"display rotation {info.rotation} degrees: frames are turned upright before detection")
    return held, scan


def _process(job: VideoJob, out: Path, cfg: PreprocessConfig, detector, vggish, cache: FeatureCache,
             res: VideoResult) -> None:  # fmt: skip
    info = probe(job.path)
    res.fps, res.has_audio = info.fps, info.has_audio
    n_frames, scan = _stream_notes(job, info, res)
    if cfg.faces:
        decoded = _faces(job, out, cfg, detector, res, max(n_frames, info.frames))
        n_frames = decoded if decoded is not None else n_frames
    res.frames = n_frames
    if cfg.audio:
        # A constant rate keeps i / fps (the field's convention, bit for bit); a variable one times each frame.
        times = _frame_times(scan, n_frames, info.fps) if scan.variable_rate and info.fps > 0 else None
        _audio(job, cache, cfg, vggish, n_frames, info.fps, res, times)


def _with_file(job: VideoJob, exc: BaseException | str) -> str:
    """The error's text, starting with the file when the error does not name it."""
    text = str(exc)
    if str(job.path) in text or job.path.name in text:
        return text
    return f"{job.path}: {text}"


def _clean_video_temps(out: Path, job: VideoJob, crops: bool) -> int:
    """Delete the temporary files (`.NAME.XXXX.tmp`, see `core.atomic`) a killed run left in one video's folders.

    Only called while this process holds the video's locks (its features, and its crops when `crops`), so no other
    run is writing there: a sharded run cleans exactly its own videos.
    """
    folders = [PreprocessDir(out).subject_features(s) for s in job.subjects]
    if crops:
        folders += [PreprocessDir(out).subject_crops(s) for s in job.subjects]
    return remove_stale_temps(folders)


CRASH_TEST_ENV = "BDCA_TEST_DECODE_CRASH"
"""Test hook: a video whose file name contains this variable's value makes the decoding child kill itself with
SIGSEGV, as a codec's crash would (tests/security/test_isolation.py); unset in every real run."""
_WORKER_STATE: dict[tuple[Any, ...], Any] = {}
"""The decoding child's face detector and VGGish model, loaded at its first video and kept for the next ones."""


def _child_models(cfg: PreprocessConfig, threads: int | None, need_detector: bool) -> tuple[Any, Any]:
    """The detector and VGGish model of this child process (loaded once, reused for every video it gets)."""
    detector = None
    if need_detector:
        key = ("detector", cfg.detector, cfg.input_size, threads)
        if key not in _WORKER_STATE:
            from preprocessing.faces.detectors import get_detector

            options: dict[str, Any] = {"input_size": cfg.input_size} if cfg.detector == "scrfd" else {}
            if threads is not None:
                options["threads"] = threads
            _WORKER_STATE[key] = get_detector(cfg.detector, **options)
        detector = _WORKER_STATE[key]
    vggish = None
    if cfg.audio and cfg.vggish:
        key = ("vggish", cfg.vggish)
        if key not in _WORKER_STATE:
            from preprocessing.vggish import load_vggish

            _WORKER_STATE[key] = load_vggish(cfg.vggish)
        vggish = _WORKER_STATE[key]
    return detector, vggish


def process_video(job: VideoJob, out: Path, cfg: PreprocessConfig, strict: bool, threads: int | None,
                  ) -> VideoResult:  # fmt: skip
    """One video, start to end, as the decoding child runs it: take its locks, remove what a killed run left,
    decode, detect, compute and save, release its locks.

    Args:
        job: the video.
        out: the output root.
        cfg: what to do.
        strict: raise the video's error instead of reporting it in the result.
        threads: the detector's threads (None: its default).

    Raises:
        CacheLockedError, CropsLockedError: another run works on this video (the run stops).
        HarnessError: only when `strict`, the video's own error.
    """
    crash = os.environ.get(CRASH_TEST_ENV)
    if crash and crash in job.path.name:
        os.kill(os.getpid(), signal.SIGSEGV)
    res = VideoResult(video=job.name, subjects=len(job.subjects))
    t0 = time.perf_counter()
    cache = FeatureCache(PreprocessDir(out).features)
    crops_lock = _lock_video(job, out, cfg, cache)
    try:
        _clean_video_temps(out, job, crops=crops_lock is not None)
        detector, vggish = _child_models(cfg, threads, _takes_crops(job, cfg))
        _process(job, out, cfg, detector, vggish, cache, res)
    except HarnessError as exc:
        if strict:
            raise
        res.error = _with_file(job, exc)
    except Exception as exc:  # one video must not end a dataset-wide run
        if strict:
            raise
        res.error = _with_file(job, f"unexpected {type(exc).__name__}: {exc}; the other videos go on; "
                               "rerun this video with --strict for the traceback and report it")  # fmt: skip
    finally:
        if crops_lock is not None:
            crops_lock.release()
        cache.close()
    res.seconds = time.perf_counter() - t0
    return res


def _crashed(job: VideoJob, exc: ChildCrashedError, strict: bool) -> VideoResult:
    """The result of a video whose decoding child died (a native crash in a codec): its located error."""
    text = _with_file(job, f"the decoder crashed on this file ({exc}); it was read in a separate process, so the "
                      "other videos go on; re-encode the file (e.g. ffmpeg -i IN -c:v libx264 -c:a aac OUT.mp4) or "
                      "leave it out")  # fmt: skip
    if strict:
        raise HarnessError(text)
    return VideoResult(video=job.name, subjects=len(job.subjects), error=text)


def _takes_crops(job: VideoJob, cfg: PreprocessConfig) -> bool:
    """Whether this run writes the video's crops (detection on, and the dataset does not ship them all)."""
    return cfg.faces and (cfg.detect or set(job.shipped_crops) != set(job.subjects))


def _lock_video(job: VideoJob, out: Path, cfg: PreprocessConfig, cache: FeatureCache) -> FolderLock | None:
    """Take one video's feature locks (and its crops lock, where this run writes crops) while it is worked on: a
    run holds one video's locks at a time, so its open files do not grow with the dataset, and a run that overlaps
    another one stops at the video they share, with a message naming it and the holder.

    Returns:
        the crops lock taken, if any (the feature locks stay with `cache` until `cache.release`).

    Raises:
        CacheLockedError, CropsLockedError: another run holds one of them (nothing of this call stays held).
    """
    crops = None
    try:
        cache.lock_videos(job.subjects)
        if _takes_crops(job, cfg):
            crops = lock_crops(out, job.name)
    except (CacheLockedError, CropsLockedError) as exc:
        cache.release(job.subjects)
        raise type(exc)(f"cannot preprocess into {out}: another run is using it. {exc}") from None
    return crops
