"""`harness preprocess`: raw videos -> aligned face crops and per-frame audio features in the feature cache.

INPUT is an Aff-Wild2 root, a folder of videos, or one video. For every raw video:
1. probe it (fps, frame count, audio track);
2. faces: detect + align into `OUT/cropped_aligned/<name>/00001.jpg` (skipped for subjects whose crops the dataset
   already ships, like Aff-Wild2's own `cropped_aligned`, unless `--detect` is given);
3. audio: MFCC 39 + eGeMAPS 23 (+ VGGish 128 when its weights are given) with one row per video frame, saved in
   `OUT/features/<name>/` for every subject of the video (both people of a two-person video share its audio).
Every step is skipped when its outputs exist with the same configuration hash, so an interrupted run (even one
killed with SIGKILL) resumes where it stopped: finished videos are not redone, a half-done one is redone from
its start, and temporary files left by the killed run are removed. The run holds a video's locks (its features,
and its crops where it detects faces, the lock `harness faces` takes too) while it works on that video, so its open
files do not grow with the dataset, and a second run on the same videos stops at the first video they share with
a message naming the video and the other run's pid. Lock files are named by a hash of the video's name.

Isolation: each video is decoded and processed in a child process kept for the whole run (`core.isolation`); a
native crash in a codec (SIGSEGV) becomes that video's located error, a fresh child takes the next video, and the
summary is written. The out folder must be new, empty, or one the harness wrote (`core.ownership`).

Scale-out: under `torchrun` every rank takes its share of the videos (balanced by frames, `harness.sharding`) and
writes into the same OUT; rank 0 reports every rank's results. `--shard i/n` does the same split without a
launcher, for job arrays; each shard writes `preprocess_summary.d/shard-000i-of-000n.json`, and the shards merge
them into `preprocess_summary.json` as they finish (`shards.complete` once all are in). A killed rank loses only
the video it was writing.

Bad input: one bad video is reported in its `VideoResult.error` (file, reason, what to do) and the run goes on
(unless `strict`). What a video only partly allows is used and said in `VideoResult.notes`: the decodable part of
a truncated or damaged file (frames and features cover the frames that decode), a missing or undecodable audio
track (audio features zero, `audio_mask` False), audio shorter than the video (the tail frames masked) or longer
(cut at the last frame), a variable frame rate (each frame then takes the audio at its presentation time, not at
i / average fps), a display rotation, a file name the outputs cannot carry.
Frames: features have one row per decoded frame (per demuxed frame when faces are off, which decodes nothing).

Visual features need an encoder: they are extracted by stage 1 (`harness train --stage 1`) or
`preprocess --encoder CKPT`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import time
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.atomic import atomic_write_text, remove_stale_temps
from core.errors import HarnessError
from core.hashing import stable_hash
from core.isolation import ChildCrashedError, IsolatedWorker
from core.locking import LOCKS_DIR, FolderLock
from core.ownership import claim_folder
from harness.config import PreprocessConfig
from harness.sharding import Shard, ShardError, shard_items
from preprocessing.affwild2 import AffWild2Layout, LayoutError, person_of, strip_person
from preprocessing.audio import AUDIO_SR, audio_feature_config, compute_audio_features
from preprocessing.cache import CacheError, CacheLockedError, FeatureCache
from preprocessing.crops import CropsLockedError, lock_crops
from preprocessing.video import DecodeStats, PacketScan, VideoError, VideoInfo, probe, read_audio, scan_packets

VIDEO_SUFFIXES = (".mp4", ".avi", ".mpg", ".mpeg", ".mov", ".mkv", ".webm")
AUDIO_FEATURES = ("mfcc", "egemaps", "vggish", "audio_mask")
SUMMARY = "preprocess_summary.json"
SHARD_SUMMARIES = "preprocess_summary.d"
"""Each shard's own summary (`shard-0003-of-0008.json`), merged into SUMMARY as the shards finish."""
OUTPUT_LAYOUT = ("cropped_aligned", "features", SUMMARY, SHARD_SUMMARIES, LOCKS_DIR)
"""What `harness preprocess` writes in its --out folder (claimed in its ownership record, `core.ownership`)."""
LONGER_AUDIO_S = 0.25
"""Audio that outlasts the video by more than this is noted (AAC padding alone adds up to ~0.1 s)."""
_SAFE = re.compile(r"[^A-Za-z0-9_.\-]+")

if TYPE_CHECKING:  # annotations only: a one-process preprocess never imports torch for them
    import torch

    from harness.distributed import Strategy


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
            shipped = tuple(s for s in subjects if (p / "cropped_aligned" / s).is_dir())
            jobs.append(VideoJob(path, subjects, shipped))
        return jobs, p
    vids = sorted(f for f in p.iterdir() if f.suffix.lower() in VIDEO_SUFFIXES)
    if not vids:
        raise HarnessError(f"{p}: no videos ({', '.join(VIDEO_SUFFIXES)}) and no Aff-Wild2 layout")
    return [VideoJob(f, (safe_name(f.stem),)) for f in vids], None


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
    folders = [out / "features" / s for s in job.subjects]
    if crops:
        folders += [out / "cropped_aligned" / s for s in job.subjects]
    return remove_stale_temps(folders)


def _visual(jobs: list[VideoJob], out: Path, cfg: PreprocessConfig, cache: FeatureCache,
            results: list[VideoResult], root: Path | None, device: torch.device | str | None = None,
            ) -> None:  # fmt: skip
    """CLS features of every frame with a crop (zeros + mask False elsewhere) from the given encoder checkpoint,
    on `device` (None: the GPU when there is one, else the CPU)."""
    import torch

    from harness.config import load_config
    from harness.features import encode_videos, feature_hash
    from models.checkpoints import load_checkpoint
    from models.registry import build_model
    from preprocessing.affwild2 import VideoEntry

    run_cfg = load_config(cfg.encoder_config)
    vit = build_model(run_cfg.vit_config())
    report = load_checkpoint(vit, cfg.encoder)
    for r in results:
        r.notes.append(f"visual features from {cfg.encoder} ({len(report.loaded)} tensors loaded)")
    ok = {r.video for r in results}
    entries = []
    for job in jobs:
        if job.name not in ok:
            continue
        for s in job.subjects:
            # Crops the dataset ships are used where detection was skipped; our own crops elsewhere.
            shipped = root / "cropped_aligned" / s if root is not None and s in job.shipped_crops else None
            crops = shipped if shipped is not None and shipped.is_dir() else out / "cropped_aligned" / s
            entries.append(VideoEntry(name=s, raw_video=job.path, crops_dir=crops if crops.is_dir() else None,
                                      annotation=None, person=person_of(s)))  # fmt: skip
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    encode_videos(run_cfg, entries, cache, {run_cfg.features.visual: (vit.to(device),
                                                                      feature_hash(run_cfg, weights=cfg.encoder))})


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
    cache = FeatureCache(out / "features")
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


def job_frames(job: VideoJob) -> int:
    """The work a video is counted as when videos are split across shards: the frames its header announces.

    A file that cannot be probed counts 0 (it fails fast, in whichever shard gets it)."""
    try:
        return max(probe(job.path).frames, 0)
    except (HarnessError, OSError):
        return 0


def _threads_per_rank() -> int:
    """This machine's cores shared among the ranks on it (`LOCAL_WORLD_SIZE`, set by torchrun): each rank's detector
    gets its share, since thread pools that together outnumber the cores slow every rank down (measured below)."""
    local = max(int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1), 1)
    return max((os.cpu_count() or 1) // local, 1)


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


def _summary(input_path: str | Path, cfg: PreprocessConfig, results: list[VideoResult]) -> dict[str, Any]:
    return {"input": str(input_path), "config": asdict(cfg), "failed": [r.video for r in results if r.error],
            "videos": [asdict(r) for r in results]}  # fmt: skip


def merge_shard_summaries(shards: list[dict[str, Any]], count: int, order: list[str]) -> dict[str, Any]:
    """One summary from the shards' own (pure): every finished shard's videos in the dataset's order.

    Args:
        shards: the shard summaries found (each with `shard`, `input`, `config`, `videos`).
        count: the number of shards of the run.
        order: every video's name, in discovery order.
    """
    rank = {name: i for i, name in enumerate(order)}
    videos = sorted((v for s in shards for v in s["videos"]), key=lambda v: rank.get(v["video"], len(rank)))
    done = sorted(int(s["shard"]) for s in shards)
    first = shards[0] if shards else {"input": "", "config": {}}
    return {"input": first["input"], "config": first["config"],
            "shards": {"count": count, "done": done, "complete": done == list(range(count))},
            "failed": [v["video"] for v in videos if v.get("error")], "videos": videos}  # fmt: skip


def _json_text(data: Any) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def _write_summary(out: Path, shard: Shard, summary: dict[str, Any], order: list[str]) -> None:
    """Write `preprocess_summary.json`: this run's summary, or, for one shard of several, every finished shard's.

    A shard writes its own (`preprocess_summary.d/shard-000i-of-000n.json`), then merges every shard's present,
    both while holding `.locks/summary.lock` (waiting for it: merges are short), so shards that finish together
    each read the others' finished files, the last one to merge writes the whole summary, and the temporary file
    of a summary write a kill cut short is removed by the next writer, who alone writes there.
    """
    with FolderLock(out / LOCKS_DIR / "summary.lock").acquire(wait=True):
        remove_stale_temps((out, out / SHARD_SUMMARIES))
        if shard.count > 1:
            own = _json_text({"shard": shard.index, **summary})
            atomic_write_text(out / SHARD_SUMMARIES / f"{shard.label}.json", own)
            shards = []
            for f in sorted((out / SHARD_SUMMARIES).glob(f"shard-*-of-{shard.count:04d}.json")):
                try:
                    shards.append(json.loads(f.read_text(encoding="utf-8")))
                except (OSError, json.JSONDecodeError):  # written atomically: only a foreign file can be bad
                    continue
            summary = merge_shard_summaries(shards, shard.count, order)
        atomic_write_text(out / SUMMARY, _json_text(summary))


def preprocess(
    input_path: str | Path,
    out: str | Path,
    cfg: PreprocessConfig = PreprocessConfig(),
    strict: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    *,
    shard: Shard | None = None,
    strategy: Strategy | None = None,
    force: bool = False,
    warn: Callable[[str], None] | None = None,
    isolate: bool = True,
) -> list[VideoResult]:
    """Run the preprocessing steps over every video of INPUT (or this process's shard); write the summary.

    Several processes may share one OUT: each takes the locks of its own videos only, so the ranks of a torchrun
    job (or the tasks of a job array, `shard`) write side by side into one crops folder and one feature cache.
    The videos are split by frames (`harness.sharding`), the same way in every process.

    Args:
        input_path: Aff-Wild2 root, folder of videos, or one video.
        out: output root (crops under `cropped_aligned/`, features under `features/`).
        cfg: what to do.
        strict: stop at the first bad video instead of reporting it and going on.
        progress: called with (video, done, total) after each video of this process.
        shard: this process's share of the videos (`--shard i/n`, a job array's task); None: all of them.
        strategy: the processes of a torchrun job: each rank takes shard rank/world, and rank 0 gets every
            rank's results back; None: this process alone.
        force: write into an `out` the harness did not write (no ownership record), beside what it holds.
        warn: called with the warning naming what `force` leaves untouched.
        isolate: process each video in the decoding child (`core.isolation`); False runs the same per-video
            function in this process (for tests that patch its parts; a native crash then ends the run).

    Returns:
        this process's results; on rank 0 of a torchrun job, every rank's, in the videos' order.

    Raises:
        ShardError: both `shard` and a multi-process `strategy`.
        CacheLockedError, CropsLockedError: another run writes one of this run's videos.
        OwnershipError: `out` is a non-empty folder the harness did not write (without `force`).
    """
    out = Path(out)
    jobs, root = discover_jobs(input_path)
    claim_folder(out, OUTPUT_LAYOUT, what="preprocess output folder", force=force, warn=warn)
    spread = strategy is not None and strategy.world_size > 1
    if spread and shard is not None and shard.count > 1:
        raise ShardError("--shard splits videos without torchrun; under torchrun every rank takes its own shard")
    if spread:
        shard = Shard(strategy.rank, strategy.world_size)
    shard = shard or Shard()
    mine = jobs if shard.count == 1 else shard_items(jobs, [job_frames(j) for j in jobs], shard)
    cache = FeatureCache(out / "features")
    threads = _threads_per_rank() if spread and cfg.detector in ("scrfd", "mtcnn") else None
    try:
        if cfg.audio and cfg.vggish:
            from preprocessing.vggish import vggish_status

            ok, msg = vggish_status(cfg.vggish)
            if not ok:
                raise HarnessError(msg)
        results: list[VideoResult] = []
        # Every video is decoded in one child process (kept for the whole run): a codec's native crash on one file
        # becomes that file's error, and the next video gets a fresh child.
        with IsolatedWorker() as worker:
            for i, job in enumerate(mine):
                try:
                    if isolate:
                        res = worker.call(process_video, job, out, cfg, strict, threads)
                    else:
                        res = process_video(job, out, cfg, strict, threads)
                except ChildCrashedError as exc:
                    res = _crashed(job, exc, strict)
                results.append(res)
                if progress:
                    progress(job.name, i + 1, len(mine))
        if cfg.encoder:
            device = strategy.device if strategy is not None else None
            _visual(mine, out, cfg, cache, [r for r in results if not r.error], root, device)
        _write_summary(out, shard, _summary(input_path, cfg, results), [j.name for j in jobs])
    finally:
        cache.close()
    if spread:
        strategy.barrier()
        gathered = strategy.all_gather([asdict(r) for r in results])
        if strategy.on_main:
            order = {j.name: k for k, j in enumerate(jobs)}
            every = sorted((VideoResult(**r) for part in gathered for r in part), key=lambda r: order[r.video])
            return every
    return results
