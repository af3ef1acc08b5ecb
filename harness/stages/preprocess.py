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

Scale-out: under `torchrun` every rank takes its share of the videos (balanced by frames, `harness.runtime.sharding`)
and
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

import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.atomic import atomic_write_text, remove_stale_temps
from core.errors import HarnessError
from core.isolation import ChildCrashedError, IsolatedWorker
from core.locking import FolderLock
from core.ownership import claim_folder
from core.safe_read import ReadError, read_json
from harness.config import PreprocessConfig, load_config
from harness.data.features import encode_videos, feature_hash
from harness.folders.cache import OUTPUT_LAYOUT, PreprocessDir
from harness.runtime.sharding import Shard, ShardError, shard_items
from harness.stages.preprocess_jobs import VideoJob, VideoResult, discover_jobs, job_frames
from harness.stages.preprocess_video import _crashed, process_video
from preprocessing.affwild2 import person_of
from preprocessing.cache import FeatureCache

if TYPE_CHECKING:  # annotations only: a one-process preprocess never imports torch for them
    import torch

    from harness.runtime.distributed import Strategy


def _visual(jobs: list[VideoJob], out: Path, cfg: PreprocessConfig, cache: FeatureCache,
            results: list[VideoResult], root: Path | None, device: torch.device | str | None = None,
            ) -> None:  # fmt: skip
    """CLS features of every frame with a crop (zeros + mask False elsewhere) from the given encoder checkpoint,
    on `device` (None: the GPU when there is one, else the CPU)."""
    import torch

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
            shipped = PreprocessDir(root).subject_crops(s) if root is not None and s in job.shipped_crops else None
            crops = shipped if shipped is not None and shipped.is_dir() else PreprocessDir(out).subject_crops(s)
            entries.append(VideoEntry(name=s, raw_video=job.path, crops_dir=crops if crops.is_dir() else None,
                                      annotation=None, person=person_of(s)))  # fmt: skip
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    encode_videos(run_cfg, entries, cache, {run_cfg.features.visual: (vit.to(device),
                                                                      feature_hash(run_cfg, weights=cfg.encoder))})


def _threads_per_rank() -> int:
    """This machine's cores shared among the ranks on it (`LOCAL_WORLD_SIZE`, set by torchrun): each rank's detector
    gets its share, since thread pools that together outnumber the cores slow every rank down (measured below)."""
    local = max(int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1), 1)
    return max((os.cpu_count() or 1) // local, 1)


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


def is_shard_summary(rec: dict[str, Any]) -> bool:
    """Whether a parsed shard summary has the shape `merge_shard_summaries` reads (a foreign file is skipped).

    >>> is_shard_summary({"shard": 0, "input": "d", "config": {}, "videos": [{"video": "a"}]})
    True
    >>> is_shard_summary({"shard": "0", "videos": [1, 2]})
    False
    """
    videos = rec.get("videos")
    return (isinstance(rec.get("shard"), int) and "input" in rec and "config" in rec and isinstance(videos, list)
            and all(isinstance(v, dict) and isinstance(v.get("video"), str) for v in videos))  # fmt: skip


def _json_text(data: Any) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def _write_summary(out: Path, shard: Shard, summary: dict[str, Any], order: list[str]) -> None:
    """Write `preprocess_summary.json`: this run's summary, or, for one shard of several, every finished shard's.

    A shard writes its own (`preprocess_summary.d/shard-000i-of-000n.json`), then merges every shard's present,
    both while holding `.locks/summary.lock` (waiting for it: merges are short), so shards that finish together
    each read the others' finished files, the last one to merge writes the whole summary, and the temporary file
    of a summary write a kill cut short is removed by the next writer, who alone writes there.
    """
    with FolderLock(PreprocessDir(out).summary_lock).acquire(wait=True):
        remove_stale_temps((out, PreprocessDir(out).shard_summaries))
        if shard.count > 1:
            own = _json_text({"shard": shard.index, **summary})
            atomic_write_text(PreprocessDir(out).shard_summary(shard.label), own)
            shards = []
            for f in sorted(PreprocessDir(out).shard_summaries.glob(f"shard-*-of-{shard.count:04d}.json")):
                try:
                    rec = read_json(f, "shard summary")
                except ReadError:  # written atomically: only a foreign file can be bad
                    continue
                if is_shard_summary(rec):
                    shards.append(rec)
            summary = merge_shard_summaries(shards, shard.count, order)
        atomic_write_text(PreprocessDir(out).summary_file, _json_text(summary))


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
    The videos are split by frames (`harness.runtime.sharding`), the same way in every process.

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
    cache = FeatureCache(PreprocessDir(out).features)
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
