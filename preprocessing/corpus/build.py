"""`make_corpus`: plan, render and write a demo corpus, or reuse the complete one already there.

Videos are rendered independently from their own seeds, in worker processes when there is more than one core to
use, so the corpus is the same whatever the number of workers. The manifest goes last: a corpus without it is
incomplete, and the next call rebuilds it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.atomic import atomic_write_text
from core.errors import HarnessError
from core.ownership import Ownership, OwnershipError, claim_folder
from preprocessing.corpus import grid
from preprocessing.corpus.ceilings import ceiling_scores, modality_views
from preprocessing.corpus.manifest import (
    GENERATOR_VERSION,
    MANIFEST_FILE,
    CorpusManifest,
    ManifestError,
    OracleScore,
    PersonEntry,
    SourceEntry,
    VideoEntry,
    read_manifest,
    write_manifest,
)
from preprocessing.corpus.render import render_frames, script_video
from preprocessing.corpus.spec import SPLITS, VideoSpec, plan_corpus, preset
from preprocessing.corpus.voice import SAMPLE_RATE
from preprocessing.corpus.writer import (
    CROPS_DIR,
    NOTICE_FILE,
    SAMPLE_FILE,
    TEST_LIST_FILE,
    CropWriter,
    Mp4Writer,
    crop_dir,
    label_path,
    video_path,
    write_expressions,
    write_labels,
    write_notice,
    write_test_files,
)
from preprocessing.faces.align import align_face
from submissions.metrics import score_va

Progress = Callable[[int, int, str], None]
"""progress(frames_done, frames_total, what): called as videos finish."""

BUILDING_MARKER = ".corpus_building"
_OWNED = ("videos", CROPS_DIR, "annotations", "organiser", TEST_LIST_FILE, SAMPLE_FILE, NOTICE_FILE, MANIFEST_FILE)


class CorpusError(HarnessError):
    """The output folder cannot take a corpus (it holds something else)."""


@dataclass(frozen=True)
class VideoResult:
    """What rendering one video returns to the coordinator.

    Args:
        entry: its manifest entry.
        labels: annotation name -> (N, 2) labels as written.
        clean: annotation name -> (N, 2) clean latent.
        views: what the ideal one-modality readers predict (`ceilings.modality_views`).
    """

    entry: VideoEntry
    labels: dict[str, np.ndarray]
    clean: dict[str, np.ndarray]
    views: dict[str, dict[str, np.ndarray]]


def _expr_counts(split: str, labels: np.ndarray, expr: np.ndarray | None) -> dict[str, int]:
    """The manifest's expression counts of one person (a Test video has no expression file: zeros)."""
    if expr is None or split == "Test":
        return {"expr_unannotated_frames": 0, "refinable_frames": 0}
    missing_va = labels[:, 0] == -5
    return {"expr_unannotated_frames": int((expr < 0).sum()), "refinable_frames": int((missing_va & (expr >= 0)).sum())}


def build_video(spec: VideoSpec, root: Path, clips_dir: Path | None = None) -> VideoResult:
    """Render one video and write its mp4, crops and label files.

    Args:
        spec: the plan of the video.
        root: corpus root.
        clips_dir: folder of GRID clips (the shipped assets by default).
    """
    clips = grid.load_clips(clips_dir)
    script = script_video(spec, clips)
    writers = [CropWriter(root, tr.name) for tr in script.persons]
    with contextlib.ExitStack() as stack:
        mp4 = stack.enter_context(
            Mp4Writer(video_path(root, spec.name), spec.width, spec.height, spec.fps, script.audio, SAMPLE_RATE)
        )
        for w in writers:
            stack.enter_context(w)
        for t, (frame, marks) in enumerate(render_frames(script, clips)):
            mp4.write(frame)
            for w, lm in zip(writers, marks, strict=True):
                if lm is not None:
                    w.write(t + 1, align_face(frame, lm.astype(np.float32)))
    crops = [w.count for w in writers]
    persons = []
    for k, tr in enumerate(script.persons):
        write_labels(root, spec.split, tr.name, tr.labels)
        if tr.expr is not None:
            write_expressions(root, spec.split, tr.name, tr.expr)
        persons.append(
            PersonEntry(
                name=tr.name,
                subject=tr.spec.subject,
                source_clip=clips[tr.spec.clip].name,
                mirror=tr.spec.mirror,
                face_px=round(tr.spec.face_px, 2),
                base_f0=tr.spec.base_f0,
                crops=crops[k],
                missing_faces=spec.n_frames - crops[k],
                unannotated_frames=int((tr.labels[:, 0] == -5).sum()),
                unannotated=tuple(tr.unannotated),
                occluded=tuple(tr.occluded),
                no_face=tuple(tr.no_face),
                **_expr_counts(spec.split, tr.labels, tr.expr),
            )
        )
    entry = VideoEntry(
        name=spec.name,
        split=spec.split,
        fps=spec.fps,
        frames=spec.n_frames,
        width=spec.width,
        height=spec.height,
        two_person=spec.two_person,
        audio=spec.audio,
        silent=tuple(script.silent),
        annotation_noise_sd=spec.annotation_sd,
        snr_db=spec.snr_db,
        persons=tuple(persons),
    )
    return VideoResult(
        entry=entry,
        labels={tr.name: tr.labels for tr in script.persons},
        clean={tr.name: tr.clean for tr in script.persons},
        views=modality_views(script),
    )


def oracle_scores(results: list[VideoResult]) -> dict[str, OracleScore]:
    """The oracle's CCC per split and over all splits (see `manifest.ORACLE_MEANING`)."""
    out: dict[str, OracleScore] = {}
    for split in (*SPLITS, "all"):
        chosen = [r for r in results if split in ("all", r.entry.split)]
        labels = np.concatenate([r.labels[n] for r in chosen for n in r.labels])
        clean = np.concatenate([r.clean[n] for r in chosen for n in r.clean])
        s = score_va(labels, clean)
        out[split] = OracleScore(round(s.ccc_v, 6), round(s.ccc_a, 6), round(s.p_va, 6), s.frames)
    return out


def _modality_ceilings(results: list[VideoResult]) -> dict[str, dict[str, OracleScore]]:
    ceilings = ceiling_scores([(r.entry.split, r.labels, r.views, r.clean) for r in results], SPLITS)
    return {"oracle_visual": ceilings["visual"], "oracle_audio": ceilings["audio"]}


def is_complete(root: Path, manifest: CorpusManifest) -> bool:
    """Whether every file the manifest promises is on disk (videos, label files, the crop counts)."""
    root = Path(root)
    for f in (TEST_LIST_FILE, SAMPLE_FILE, NOTICE_FILE):
        if not (root / f).is_file():
            return False
    for v in manifest.videos:
        if not video_path(root, v.name).is_file():
            return False
        for p in v.persons:
            if not label_path(root, v.split, p.name).is_file():
                return False
            folder = crop_dir(root, p.name)
            n = sum(1 for _ in folder.glob("*.jpg")) if folder.is_dir() else 0
            if n != p.crops:
                return False
    return True


def find_corpus(root: Path, seed: int, size: str) -> CorpusManifest | None:
    """The complete corpus at `root` made with this seed, size and generator version, or None."""
    try:
        m = read_manifest(root)
    except ManifestError:
        return None
    if (m.seed, m.size, m.generator_version) != (seed, size, GENERATOR_VERSION):
        return None
    return m if is_complete(root, m) else None


def _claim(root: Path) -> Ownership:
    """Claim `root` for a corpus (`core.ownership`): a new or empty folder, or one a corpus build recorded."""
    try:
        return claim_folder(root, (*_OWNED, BUILDING_MARKER), what="demo corpus")
    except OwnershipError as exc:
        raise CorpusError(str(exc)) from None


def _prepare(root: Path) -> None:
    # Only ever delete what the folder's ownership record says a corpus build wrote: never by name alone.
    owned = _claim(root)
    atomic_write_text(root / BUILDING_MARKER, "a corpus build started here and has not finished\n")
    owned.remove(*_OWNED)
    owned.note(BUILDING_MARKER)


def default_workers(size: str) -> int:
    """Worker processes: one for the small corpus (start-up would cost more than it saves), else up to 2."""
    return 1 if size == "small" else max(1, min(2, os.cpu_count() or 1))


def make_corpus(
    out: Path,
    seed: int = 0,
    size: str = "default",
    progress: Progress | None = None,
    *,
    workers: int | None = None,
    force: bool = False,
    clips_dir: Path | None = None,
) -> CorpusManifest:
    """Generate the demo corpus (a mini Aff-Wild2) at `out`, or return the complete one already there.

    Args:
        out: corpus root (created; must be empty, new, or hold an earlier corpus, which is replaced).
        seed: corpus seed; the same seed and size give byte-identical labels, crops and manifest.
        size: "small" (tests, seconds), "ci" (the quick demo), "medium" or "default" (the demo).
        progress: optional progress(frames_done, frames_total, what) callback.
        workers: processes rendering videos (default: `default_workers(size)`).
        force: rebuild even when a complete corpus with this seed, size and version is there.
        clips_dir: folder of GRID clips (default: the copies shipped in `preprocessing/assets/grid`).

    Returns:
        The manifest, also written to `<out>/corpus_manifest.json`.
    """
    root = Path(out)
    preset(size)
    _claim(root)  # a folder the harness did not write is refused before anything in it is read or reused
    if not force:
        found = find_corpus(root, seed, size)
        if found is not None:
            if progress:
                total = sum(v.frames for v in found.videos)
                progress(total, total, "reused the existing corpus")
            return found
    paths = grid.clip_paths(clips_dir)
    notice = grid.notice_path(clips_dir)
    clips = grid.load_clips(clips_dir)
    plan = plan_corpus(seed, size, len(paths))
    _prepare(root)
    total = sum(v.n_frames for v in plan)
    done = 0
    results: dict[int, VideoResult] = {}
    n_workers = workers or default_workers(size)
    if n_workers <= 1:
        for spec in plan:
            results[spec.index] = build_video(spec, root, clips_dir)
            done += spec.n_frames
            if progress:
                progress(done, total, spec.name)
    else:
        ctx = multiprocessing.get_context("spawn")  # no fork: the caller may hold threads (torch, onnxruntime)
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
            # Longest first, so the last worker does not start a long video alone.
            futures = {
                pool.submit(build_video, spec, root, clips_dir): spec
                for spec in sorted(plan, key=lambda v: -v.n_frames * len(v.persons))
            }
            for fut in as_completed(futures):
                spec = futures[fut]
                results[spec.index] = fut.result()
                done += spec.n_frames
                if progress:
                    progress(done, total, spec.name)
    ordered = [results[i] for i in sorted(results)]
    test_frames = {name: r.entry.frames for r in ordered if r.entry.split == "Test" for name in sorted(r.labels)}
    write_test_files(root, dict(sorted(test_frames.items())))
    write_notice(root, notice)
    manifest = CorpusManifest(
        generator_version=GENERATOR_VERSION,
        seed=seed,
        size=size,
        sample_rate=SAMPLE_RATE,
        videos=tuple(r.entry for r in ordered),
        oracle=oracle_scores(ordered),
        **_modality_ceilings(ordered),
        sources=tuple(SourceEntry(c.name, c.sha256, c.landmark_source, c.quiet) for c in clips),
    )
    write_manifest(root, manifest)
    owned = _claim(root)
    owned.note(*_OWNED)
    owned.remove(BUILDING_MARKER)
    return manifest
