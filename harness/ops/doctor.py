"""`harness doctor`: check a dataset root, a run folder or a submission file and list every problem found.

Each check returns `Finding`s (`harness.runtime.findings`: severity, path, line, message); nothing is modified. On a
dataset root every raw video is opened (container, first frame, frame count and fps; never decoded whole) and each
annotation file's row count is compared with its video's frame count: the challenge labels one row per frame.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from core.errors import HarnessError
from core.safe_read import MAX_JSONL_BYTES, ReadError, iter_lines, parse_json
from harness.folders.run import RunDir
from harness.runtime.findings import Finding, from_problems
from preprocessing.affwild2 import AffWild2Layout, LayoutError
from submissions import FormatError
from submissions.formats import read_annotation, read_expr_annotation, read_sample_frames, validate_submission
from submissions.metrics import annotated_mask
from submissions.package import is_zip_file


def probe_video(path: Path) -> tuple[int | None, Finding | None]:
    """Open a raw video cheaply (container, video stream, first decoded frame, frame count and fps).

    Args:
        path: the raw video.

    Returns:
        (frame count, None), or (None, an error finding naming the file) when it cannot be decoded.
    """
    from preprocessing.video import VideoError, probe

    try:
        info = probe(path)
    except VideoError as exc:
        hint = f"; {exc.hint}" if exc.hint else ""
        return None, Finding("error", str(path), f"cannot decode: {exc.reason}{hint}")
    except OSError as exc:  # unreadable (permissions, a vanished network mount): named, not a traceback
        return None, Finding("error", str(path), f"cannot decode: {exc.strerror or exc}")
    if info.fps <= 0:
        return info.frames, Finding("warning", str(path), "no frame rate in the file: frame times cannot be known")
    return info.frames, None


def label_rows_finding(annotation: Path, rows: int, video: Path, frames: int) -> Finding | None:
    """Compare an annotation file's rows with its video's frames (the challenge labels one row per frame).

    More rows than frames is an error (rows without a frame; training drops them); fewer is a warning (the frames
    past the last row count as unannotated, -5).

    Args:
        annotation: the label file.
        rows: its label rows.
        video: the raw video it labels.
        frames: the video's frame count.
    """
    if frames <= 0 or rows == frames:
        return None
    counts = f"{rows} label rows for the {frames} frames of {video.name}"
    if rows > frames:
        return Finding("error", str(annotation), f"{counts}: {rows - frames} row(s) more than the video has frames "
                       "(one row per frame); check that the file belongs to this video")  # fmt: skip
    return Finding("warning", str(annotation), f"{counts}: the last {frames - rows} frame(s) have no row and count "
                   "as unannotated (-5)")  # fmt: skip


def _check_videos(layout: AffWild2Layout) -> tuple[dict[Path, int | None], list[Finding]]:
    """Probe every raw video of the layout once (a two-person video's `_left`/`_right` share one file)."""
    frames: dict[Path, int | None] = {}
    out: list[Finding] = []
    for path in sorted(set(layout.raw_videos.values())):
        frames[path], finding = probe_video(path)
        if finding is not None:
            out.append(finding)
    return frames, out


def check_dataset(root: Path) -> list[Finding]:
    """Every problem of an Aff-Wild2 root: layout, V/A and expression annotations, crops against labels, the sample
    file."""
    try:
        layout = AffWild2Layout.discover(root)
    except LayoutError as exc:
        return [Finding("error", str(root), str(exc))]
    video_frames, out = _check_videos(layout)
    for split, entries in layout.splits.items():
        if not entries:
            out.append(Finding("warning", str(root), f"the {split} split is empty"))
        for e in entries:
            if e.raw_video is None:
                out.append(Finding("warning", e.name, f"{split}: no raw video (videos/[batch1|batch2]/"
                                   f"{e.name.removesuffix('_left').removesuffix('_right')}.mp4|.avi)"))
            if e.crops_dir is None:
                out.append(Finding("warning", e.name, f"{split}: no cropped_aligned/{e.name} folder"))
            classes = None
            if e.expr_annotation is not None:
                try:
                    classes = read_expr_annotation(e.expr_annotation)
                except FormatError as exc:
                    out.extend(from_problems(exc.problems))
            if e.annotation is None:
                continue
            try:
                labels = read_annotation(e.annotation)
            except FormatError as exc:
                out.extend(from_problems(exc.problems))
                continue
            if classes is not None and classes.shape[0] != labels.shape[0]:
                out.append(Finding("warning", str(e.expr_annotation), f"{classes.shape[0]} expression lines for "
                                   f"{labels.shape[0]} V/A lines ({e.annotation.name}): lengths differ (reconciled "
                                   "to the video's frames, -1 padding)"))  # fmt: skip
            n_frames = video_frames.get(e.raw_video) if e.raw_video is not None else None
            if n_frames is not None and e.raw_video is not None:
                rows = label_rows_finding(e.annotation, labels.shape[0], e.raw_video, n_frames)
                if rows is not None:
                    out.append(rows)
            if not annotated_mask(labels).any():
                out.append(Finding("warning", str(e.annotation), "every frame is -5 (unannotated): "
                                   "the video adds nothing to training or scoring"))
            frames = layout.crop_frames(e.name)
            if frames.size and frames.max() > labels.shape[0]:
                out.append(Finding("warning", str(e.annotation), f"{labels.shape[0]} label lines but crops up to "
                                   f"frame {int(frames.max())}: lengths differ (reconciled with -5 padding)"))
    if layout.sample_file is not None:
        try:
            vids = set(read_sample_frames(layout.sample_file).videos)
            listed = {e.name for e in layout.test}
            if listed and vids != listed:
                out.append(Finding("error", str(layout.sample_file), "sample file videos differ from the test "
                                   f"list: {len(vids - listed)} extra, {len(listed - vids)} missing"))
        except FormatError as exc:
            out.extend(from_problems(exc.problems))
    elif layout.test:
        out.append(Finding("warning", str(root), "no VA_test_set_sample.txt: submissions cannot be validated"))
    return out


MAX_LINE_FINDINGS = 100
"""Bad lines of a metrics file reported one by one (the rest are counted)."""


def _metrics_findings(metrics: Path) -> list[Finding]:
    """Problems of a metrics.jsonl, read a line at a time: bad lines (at most `MAX_LINE_FINDINGS`), NaN values."""
    out: list[Finding] = []
    bad = 0
    try:
        for i, line in iter_lines(metrics, "metrics file", MAX_JSONL_BYTES):
            if not line.strip():
                continue
            try:
                rec = parse_json(line, metrics, "metrics line", line=i)
            except ReadError as exc:
                bad += 1
                if bad <= MAX_LINE_FINDINGS:
                    why = f"not a JSON line: {exc.reason} (a write was interrupted?)"
                    out.append(Finding("error", str(metrics), why, i))
                continue
            for k, v in rec.items():
                if isinstance(v, float) and not np.isfinite(v):
                    out.append(Finding("warning", str(metrics), f"{k} is {v}", i))
    except ReadError as exc:
        out.append(Finding("error", exc.path, exc.reason, exc.line))
    if bad > MAX_LINE_FINDINGS:
        out.append(Finding("error", str(metrics), f"... and {bad - MAX_LINE_FINDINGS} more bad lines"))
    return out


def check_run(run: Path, sample: Path | None = None) -> list[Finding]:
    """Every problem of a run folder: resolved config, git hash, metrics lines, checkpoints, predictions."""
    out: list[Finding] = []
    folder = RunDir(run)
    for f in (folder.config_file, folder.git_file):
        if not f.is_file():
            out.append(Finding("warning", str(f), "missing: the run cannot be reproduced exactly"))
    metrics = folder.metrics_file
    if os.path.lexists(metrics):
        out.extend(_metrics_findings(metrics))
    else:
        out.append(Finding("warning", str(metrics), "missing: no epoch finished yet"))
    for tmp in run.rglob(".*.tmp"):
        out.append(Finding("warning", str(tmp), "a temporary file left by an interrupted write (safe to delete)"))
    pred = folder.submission_file
    if pred.is_file() and sample is not None:
        try:
            out.extend(from_problems(validate_submission(pred, sample)))
        except FormatError as exc:
            out.extend(from_problems(exc.problems))
    return out


def check_package(path: Path, sample: Path | None = None) -> list[Finding]:
    """Every problem of a submission package: unsafe or damaged archive, manifest, checksums, prediction file.

    Args:
        path: the `.zip` a `harness submit` wrote.
        sample: the organisers' sample file; None checks the prediction file's own structure only.
    """
    from submissions.package import PREDICTION_NAME, inspect_package

    with tempfile.TemporaryDirectory(prefix="harness-doctor-") as work:
        try:
            _, problems = inspect_package(path, sample, work)
        except FormatError as exc:
            return from_problems(exc.problems)
        except HarnessError as exc:
            return [Finding("error", str(path), str(exc).removeprefix(f"{path}: "))]
    inside = f"{path}!{PREDICTION_NAME}"
    return [Finding("error", inside, p.reason, p.line or None, p.code) for p in problems]


def check_path(path: Path, sample: Path | None = None) -> list[Finding]:
    """Dispatch on what `path` is: a submission package, a run folder, a dataset root, or a prediction file."""
    if not path.exists():
        raise HarnessError(f"{path}: no such file or folder")
    if is_zip_file(path):
        return check_package(path, sample)
    if not path.is_dir():
        # validate_submission refuses a FIFO, a device or an oversized file without reading it.
        return from_problems(validate_submission(path, sample))
    if RunDir(path).config_file.is_file() or RunDir(path).metrics_file.is_file():
        return check_run(path, sample)
    return check_dataset(path)
