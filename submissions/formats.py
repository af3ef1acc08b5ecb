"""ABAW valence-arousal files: annotation files, the single-file submission (5th-9th ABAW) and the per-video layout.

Pure parsers work on text and return arrays or problems; thin wrappers read and (atomically) write files.

- Annotation file `<video>.txt`: header `valence,arousal`, then one `v,a` line per frame; line i (1-based, after
  the header) is frame `<i:05d>.jpg`; -5 marks an unannotated frame. Two-person videos are `<video>_left` and
  `<video>_right`.
- Submission file: header `image_location,valence,arousal`, rows `<video>/<00001.jpg>,v,a`, one per row of the
  organisers' sample file, each video a contiguous run of frames 1..N.
- Per-video layout (ABAW2): a folder of `<video>.txt` files in the annotation format, one line per frame.
- Expression annotation file `<video>.txt` (the EXPR challenge's, read beside V/A for label refinement): header
  `Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other`, then one class index 0-7 per frame, -1 where the
  frame has no expression annotation.

Predictions in memory are `dict[video, np.ndarray (N, 2)]`, row k being frame k+1.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl

from core.atomic import atomic_open
from core.errors import HarnessError
from submissions.errors import FormatError, Problem
from submissions.limits import (
    BYTES_PER_FRAME,
    MAX_ANNOTATION_BYTES,
    MAX_LINE_CHARS,
    MAX_PREDICTION_BYTES,
    read_text_bounded,
    shorten,
)
from submissions.metrics import UNANNOTATED  # the annotation files' "no label" value, re-exported here

ANNOTATION_HEADER = "valence,arousal"
EXPR_CLASSES = ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other")
"""Aff-Wild2's expression classes, in the order of the EXPR files' header (index = class)."""
EXPR_HEADER = ",".join(EXPR_CLASSES)
EXPR_UNANNOTATED = -1
"""The class index of a frame without an expression annotation."""
SUBMISSION_HEADER = "image_location,valence,arousal"
_LOCATION_RE = r"^(?P<video>[^/\\]+)/(?P<frame>\d{5})\.jpg$"
_LOCATION = re.compile(_LOCATION_RE)

Predictions = dict[str, np.ndarray]


def image_location(video: str, frame: int) -> str:
    """The ABAW image location of a 1-based frame: `video/00001.jpg`."""
    if frame < 1:
        raise ValueError(f"frames are 1-based, got {frame}")
    return f"{video}/{frame:05d}.jpg"


def parse_location(location: str) -> tuple[str, int]:
    """Split `video/00001.jpg` into (video, 1-based frame); ValueError when it is not that shape."""
    m = _LOCATION.match(location)
    if not m:
        raise ValueError(f"not an image location of the form video/00001.jpg: {location!r}")
    return m["video"], int(m["frame"])


# ---------------------------------------------------------------------------------------------------------------
# Annotation files
# ---------------------------------------------------------------------------------------------------------------


def parse_annotation(text: str, path: str = "<annotation>") -> np.ndarray:
    """Parse the text of an annotation file into an (N, 2) float64 array.

    Args:
        text: the whole file.
        path: the file's name, for messages.

    Raises:
        FormatError: listing every bad line (header, column count, non-numeric, NaN/inf, out of [-1, 1] and not -5).
    """
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    problems: list[Problem] = []
    if not lines:
        raise FormatError([Problem(path, 0, "empty file: expected the header 'valence,arousal'", "empty")])
    header = lines[0].strip().lstrip("\ufeff").replace(" ", "").lower()
    if header != ANNOTATION_HEADER:
        problems.append(
            Problem(path, 1, f"header is {shorten(lines[0].strip())!r}, expected {ANNOTATION_HEADER!r}", "bad_header")
        )
        # A file with no header whose first line is numeric would otherwise lose a frame silently.
        return _raise(problems)
    values = np.empty((len(lines) - 1, 2), dtype=np.float64)
    for i, line in enumerate(lines[1:]):
        lineno = i + 2
        if len(line) > MAX_LINE_CHARS:
            problems.append(Problem(path, lineno, f"line of {len(line)} characters (at most {MAX_LINE_CHARS})",
                                    "long_line"))
            continue
        cells = line.split(",")
        if len(cells) != 2:
            problems.append(Problem(path, lineno, f"expected 2 columns (valence,arousal), got {len(cells)}", "columns"))
            continue
        try:
            v, a = float(cells[0]), float(cells[1])
        except ValueError:
            problems.append(Problem(path, lineno, f"non-numeric value in {shorten(line.strip())!r}", "non_numeric"))
            continue
        if not (np.isfinite(v) and np.isfinite(a)):
            problems.append(Problem(path, lineno, f"NaN or inf in {line.strip()!r}", "non_finite"))
            continue
        for name, x in (("valence", v), ("arousal", a)):
            if x != UNANNOTATED and not -1.0 <= x <= 1.0:
                problems.append(
                    Problem(path, lineno, f"{name} {x} is outside [-1, 1] and is not -5 (unannotated)", "range")
                )
        values[i] = (v, a)
    if problems:
        _raise(problems)
    if values.shape[0] == 0:
        raise FormatError([Problem(path, 0, "no frames after the header", "no_frames")])
    return values


def _raise(problems: list[Problem]) -> np.ndarray:
    raise FormatError(problems)


def read_annotation(path: str | Path) -> np.ndarray:
    """Read an annotation file `<video>.txt` into an (N, 2) float64 array (-5 kept for unannotated frames)."""
    text = read_text_bounded(path, "annotation file", MAX_ANNOTATION_BYTES)
    return parse_annotation(text, str(path))


def format_annotation(labels: np.ndarray) -> str:
    """The text of an annotation (or per-video prediction) file for an (N, 2) array."""
    labels = np.asarray(labels, dtype=np.float64)
    if labels.ndim != 2 or labels.shape[1] != 2:
        raise ValueError(f"labels must have shape (N, 2), got {labels.shape}")
    body = "\n".join(f"{_fmt(v)},{_fmt(a)}" for v, a in labels)
    return f"{ANNOTATION_HEADER}\n{body}\n"


def _fmt(x: float) -> str:
    # -5 stays an integer the way the organisers write it; other values keep 6 significant decimals.
    return "-5" if x == UNANNOTATED else f"{x:.6f}"


def write_annotation(path: str | Path, labels: np.ndarray) -> Path:
    """Write an annotation file atomically."""
    with atomic_open(path) as fh:
        fh.write(format_annotation(labels))
    return Path(path)


def read_annotation_dir(folder: str | Path) -> Predictions:
    """Read every `<video>.txt` of a folder (annotations, or per-video predictions) into a dict."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FormatError(f"not a folder of <video>.txt files: {folder}", folder)
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise FormatError(f"no <video>.txt files in {folder}", folder)
    problems: list[Problem] = []
    out: Predictions = {}
    for f in files:
        try:
            out[f.stem] = read_annotation(f)
        except FormatError as exc:
            problems.extend(exc.problems)
    if problems:
        raise FormatError(problems)
    return out


def parse_expr_annotation(text: str, path: str = "<expression annotation>") -> np.ndarray:
    """Parse the text of an expression annotation file into an (N,) int64 array of class indices (-1 kept).

    Args:
        text: the whole file.
        path: the file's name, for messages.

    Raises:
        FormatError: listing every bad line (header, column count, not an integer, outside -1..7).
    """
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise FormatError([Problem(path, 0, f"empty file: expected the header {EXPR_HEADER!r}", "empty")])
    header = lines[0].strip().lstrip("\ufeff").replace(" ", "")
    if header.lower() != EXPR_HEADER.lower():
        # Without the header a numeric first line would lose a frame silently.
        raise FormatError([Problem(path, 1, f"header is {shorten(lines[0].strip())!r}, expected {EXPR_HEADER!r}",
                                   "bad_header")])  # fmt: skip
    values = np.empty(len(lines) - 1, dtype=np.int64)
    problems: list[Problem] = []
    top = len(EXPR_CLASSES) - 1
    for i, line in enumerate(lines[1:]):
        lineno = i + 2
        if len(line) > MAX_LINE_CHARS:
            problems.append(Problem(path, lineno, f"line of {len(line)} characters (at most {MAX_LINE_CHARS})",
                                    "long_line"))  # fmt: skip
            continue
        cell = line.strip()
        if "," in cell:
            problems.append(Problem(path, lineno, f"expected 1 column (a class index), got {cell.count(',') + 1}",
                                    "columns"))  # fmt: skip
            continue
        try:
            c = int(cell)
        except ValueError:
            problems.append(Problem(path, lineno, f"not a class index: {shorten(cell)!r}", "non_numeric"))
            continue
        if c != EXPR_UNANNOTATED and not 0 <= c <= top:
            problems.append(Problem(path, lineno, f"class {c} is outside 0..{top} and is not -1 (unannotated)",
                                    "range"))  # fmt: skip
            continue
        values[i] = c
    if problems:
        raise FormatError(problems)
    if values.shape[0] == 0:
        raise FormatError([Problem(path, 0, "no frames after the header", "no_frames")])
    return values


def read_expr_annotation(path: str | Path) -> np.ndarray:
    """Read an expression annotation file `<video>.txt` into an (N,) int64 array (-1 kept for unannotated)."""
    text = read_text_bounded(path, "expression annotation file", MAX_ANNOTATION_BYTES)
    return parse_expr_annotation(text, str(path))


def format_expr_annotation(classes: np.ndarray) -> str:
    """The text of an expression annotation file for an (N,) array of class indices (-1: unannotated)."""
    classes = np.asarray(classes)
    if classes.ndim != 1:
        raise ValueError(f"expression classes must have shape (N,), got {classes.shape}")
    if classes.size and (classes.min() < EXPR_UNANNOTATED or classes.max() >= len(EXPR_CLASSES)):
        raise ValueError(f"expression classes must be -1..{len(EXPR_CLASSES) - 1}")
    body = "\n".join(str(int(c)) for c in classes)
    return f"{EXPR_HEADER}\n{body}\n"


def write_expr_annotation(path: str | Path, classes: np.ndarray) -> Path:
    """Write an expression annotation file atomically."""
    with atomic_open(path) as fh:
        fh.write(format_expr_annotation(classes))
    return Path(path)


# ---------------------------------------------------------------------------------------------------------------
# Single-file submissions
# ---------------------------------------------------------------------------------------------------------------


def _split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def parse_submission_table(text: str, path: str = "<submission>") -> tuple[pl.DataFrame, list[Problem]]:
    """Parse a submission file's text into a table and the problems found in its own structure.

    The table has one row per data line: `line` (1-based line number in the file), `location`, `video`, `frame`,
    `valence`, `arousal` (null where the cell is not a number). Structural problems (header, column count,
    non-numeric, NaN/inf, out of range, malformed location, duplicated frames) are listed; checks against the
    sample file are in `validate_submission_text`. Vectorised with polars: a million rows in about a second.
    """
    lines = _split_lines(text)
    problems: list[Problem] = []
    if not lines:
        problems.append(Problem(path, 0, f"empty file: expected the header {SUBMISSION_HEADER!r}", "empty"))
        return _empty_table(), problems
    header = lines[0].lstrip("\ufeff").strip()
    if header.replace(" ", "") != SUBMISSION_HEADER:
        problems.append(Problem(path, 1, f"header is {shorten(header)!r}, expected {SUBMISSION_HEADER!r}",
                                "bad_header"))
    raw = pl.DataFrame({"text": lines[1:]}, schema={"text": pl.Utf8}).with_row_index("idx")
    raw = raw.with_columns((pl.col("idx") + 2).cast(pl.Int64).alias("line"), pl.col("text").str.len_bytes().alias("n"))
    # A line no real row comes near (a 10 MB line, a binary blob) is one problem and is never parsed further.
    _collect(problems, path, raw.filter(pl.col("n") > MAX_LINE_CHARS),
             lambda r: f"line of {r['n']} bytes (a row is at most {MAX_LINE_CHARS})", "long_line")
    raw = raw.filter(pl.col("n") <= MAX_LINE_CHARS)
    raw = raw.with_columns(pl.col("text").str.count_matches(",").alias("commas"))
    bad_cols = raw.filter(pl.col("commas") != 2)
    for row in bad_cols.head(1000).iter_rows(named=True):
        problems.append(
            Problem(path, row["line"], f"expected 3 columns (image_location,valence,arousal), got "
                    f"{row['commas'] + 1}", "columns")
        )
    good = raw.filter(pl.col("commas") == 2)
    parts = good.select(
        "line",
        pl.col("text").str.split_exact(",", 2).struct.rename_fields(["location", "v", "a"]).alias("p"),
    ).unnest("p")
    parts = parts.with_columns(
        pl.col("location").str.strip_chars(),
        pl.col("v").str.strip_chars().cast(pl.Float64, strict=False).alias("valence"),
        pl.col("a").str.strip_chars().cast(pl.Float64, strict=False).alias("arousal"),
    )
    parts = parts.with_columns(
        pl.col("location").str.extract(r"^([^/\\]+)/\d{5}\.jpg$", 1).alias("video"),
        pl.col("location").str.extract(r"^[^/\\]+/(\d{5})\.jpg$", 1).cast(pl.Int64, strict=False).alias("frame"),
    )
    _collect(problems, path, parts.filter(pl.col("video").is_null()),
             lambda r: f"image location {shorten(r['location'])!r} is not of the form video/00001.jpg", "location")
    _collect(problems, path, parts.filter(pl.col("valence").is_null() | pl.col("arousal").is_null()),
             lambda r: f"non-numeric value in {shorten(r['v'])!r},{shorten(r['a'])!r}", "non_numeric")
    finite = pl.col("valence").is_finite() & pl.col("arousal").is_finite()
    numeric = parts.filter(pl.col("valence").is_not_null() & pl.col("arousal").is_not_null())
    _collect(problems, path, numeric.filter(~finite),
             lambda r: f"NaN or inf value: {r['v']},{r['a']}", "non_finite")
    in_range = (pl.col("valence").abs() <= 1.0) & (pl.col("arousal").abs() <= 1.0)
    _collect(problems, path, numeric.filter(finite & ~in_range),
             lambda r: f"value outside [-1, 1]: {r['valence']},{r['arousal']}", "range")
    dup = parts.filter(pl.col("location").is_duplicated() & pl.col("video").is_not_null())
    dup = dup.filter(pl.col("location").cum_count().over("location") > 1)
    _collect(problems, path, dup, lambda r: f"frame {r['location']} appears more than once", "duplicate")
    table = parts.select("line", "location", "video", "frame", "valence", "arousal")
    return table, problems


def _empty_table() -> pl.DataFrame:
    return pl.DataFrame(
        schema={"line": pl.Int64, "location": pl.Utf8, "video": pl.Utf8, "frame": pl.Int64,
                "valence": pl.Float64, "arousal": pl.Float64}
    )


def _collect(problems: list[Problem], path: str, rows: pl.DataFrame, reason, code: str, limit: int = 1000) -> None:
    """Append one Problem per offending row (at most `limit`, then one summary line)."""
    for row in rows.head(limit).iter_rows(named=True):
        problems.append(Problem(path, row["line"], reason(row), code))
    if rows.height > limit:
        problems.append(Problem(path, 0, f"... {rows.height - limit} more rows with the same problem", code))


def read_sample_locations(path: str | Path) -> list[str]:
    """The frame list of the organisers' sample file: its `image_location` column, in order.

    Accepts the sample prediction file (header `image_location,valence,arousal`) or a bare list with header
    `image_location`.
    """
    path = Path(path)
    lines = _split_lines(read_text_bounded(path, "sample file", MAX_PREDICTION_BYTES))
    long = next((i for i, ln in enumerate(lines) if len(ln) > MAX_LINE_CHARS), None)
    if long is not None:
        raise FormatError([Problem(str(path), long + 1, f"line of {len(lines[long])} characters (at most "
                                   f"{MAX_LINE_CHARS})", "long_line")])
    if not lines or not lines[0].lstrip("\ufeff").strip().startswith("image_location"):
        raise FormatError([Problem(str(path), 1, "sample file must start with the header 'image_location...'",
                                   "bad_header")])
    locs = [ln.split(",", 1)[0].strip() for ln in lines[1:] if ln.strip()]
    bad = [i for i, loc in enumerate(locs) if not _LOCATION.match(loc)]
    if bad:
        raise FormatError([Problem(str(path), i + 2, f"not an image location: {shorten(locs[i])!r}", "location")
                           for i in bad[:100]])
    return locs


def validate_submission_text(text: str, sample: list[str] | None, path: str = "<submission>") -> list[Problem]:
    """Every problem of a submission's text, checked against the sample frame list when given.

    Checks: header, column count, location shape, non-numeric, NaN/inf, range, duplicates, and against the
    sample: unknown video, missing rows, extra rows, and order (rows must follow the sample file's order).
    Returns an empty list for a valid file. Never modifies anything.
    """
    table, problems = parse_submission_table(text, path)
    if sample is None:
        return problems
    sample_df = pl.DataFrame({"location": sample}, schema={"location": pl.Utf8}).with_row_index("want")
    sample_videos = set(pl.Series(sample).str.extract(r"^([^/\\]+)/", 1).unique().to_list())
    located = table.filter(pl.col("video").is_not_null())
    unknown = located.filter(~pl.col("video").is_in(list(sample_videos)))
    first_unknown = unknown.unique("video", keep="first", maintain_order=True)
    _collect(problems, path, first_unknown,
             lambda r: f"unknown video {shorten(r['video'])!r} (not in the sample file)", "unknown_video")
    known = located.filter(pl.col("video").is_in(list(sample_videos)))
    joined = known.join(sample_df, on="location", how="left")
    extra = joined.filter(pl.col("want").is_null())
    _collect(problems, path, extra, lambda r: f"extra row {r['location']} (not in the sample file)", "extra")
    missing = sample_df.join(known.select("location"), on="location", how="anti")
    if missing.height:
        # Report missing frames as runs per video: a missing video is one line, not 10,000.
        runs = (
            missing.with_columns(pl.col("location").str.extract(r"^([^/\\]+)/", 1).alias("video"))
            .group_by("video", maintain_order=True)
            .agg(pl.len().alias("n"), pl.col("location").first().alias("first"), pl.col("location").last()
                 .alias("last"))
        )
        for r in runs.iter_rows(named=True):
            problems.append(Problem(path, 0, f"missing {r['n']} row(s) of video {r['video']!r} "
                                    f"({r['first']} .. {r['last']})", "missing"))
    # Order: the rows that match the sample must appear in the sample's order.
    matched = joined.filter(pl.col("want").is_not_null()).unique("location", keep="first", maintain_order=True)
    if matched.height > 1:
        wants = matched.get_column("want").to_numpy()
        drops = np.flatnonzero(np.diff(wants.astype(np.int64)) < 0)
        lines = matched.get_column("line").to_numpy()
        for k in drops[:100]:
            problems.append(Problem(path, int(lines[k + 1]), "row out of order: "
                                    f"{matched['location'][int(k) + 1]} comes after {matched['location'][int(k)]}; "
                                    "rows must follow the sample file's order", "order"))
    return sorted(problems, key=lambda p: (p.line == 0, p.line))


def validate_submission(path: str | Path, sample: str | Path | list[str] | None = None) -> list[Problem]:
    """Validate a submission file (and, if given, against the sample file or frame list). Empty list = valid."""
    path = Path(path)
    if isinstance(sample, str | Path):
        sample = read_sample_locations(sample)
    text = read_text_bounded(path, "prediction file", prediction_bound(None if sample is None else len(sample)))
    return validate_submission_text(text, sample, str(path))


def prediction_bound(frames: int | None) -> int:
    """The largest prediction file accepted: `BYTES_PER_FRAME` per frame when the frame count is known.

    Args:
        frames: rows of the sample file (or annotated frames), None when unknown.
    """
    if frames is None:
        return MAX_PREDICTION_BYTES
    return min(MAX_PREDICTION_BYTES, (frames + 1) * BYTES_PER_FRAME + 4096)


def read_submission(path: str | Path) -> Predictions:
    """Read a single-file submission into per-video arrays; raise FormatError listing every structural problem.

    Frames of each video must be contiguous from 1 to N (the challenge format); gaps are an error.
    """
    path = Path(path)
    text = read_text_bounded(path, "prediction file", MAX_PREDICTION_BYTES)
    table, problems = parse_submission_table(text, str(path))
    if problems:
        raise FormatError(problems)
    return _table_to_predictions(table, str(path))


def _table_to_predictions(table: pl.DataFrame, path: str) -> Predictions:
    out: Predictions = {}
    problems: list[Problem] = []
    for (video,), grp in table.group_by("video", maintain_order=True):
        grp = grp.sort("frame")
        frames = grp.get_column("frame").to_numpy()
        expected = np.arange(1, len(frames) + 1)
        if not np.array_equal(frames, expected):
            gap = int(np.flatnonzero(frames != expected)[0])
            problems.append(Problem(path, int(grp["line"][gap]), f"video {video!r}: frames are not contiguous from 1 "
                                    f"(expected frame {gap + 1}, found {int(frames[gap])})", "gap"))
            continue
        out[str(video)] = grp.select("valence", "arousal").to_numpy().astype(np.float64)
    if problems:
        raise FormatError(problems)
    return out


def _check_array(video: str, arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise HarnessError(f"predictions for {video!r} must have shape (N, 2), got {arr.shape}")
    return arr


def build_submission_rows(
    preds: Predictions,
    sample: list[str] | None = None,
    *,
    pad: bool = False,
    clip: bool = False,
    log: list[str] | None = None,
) -> pl.DataFrame:
    """The rows of a submission, following the sample file's frame list when given.

    Args:
        preds: per-video (N, 2) arrays, row k = frame k+1.
        sample: the organisers' frame list; rows are emitted in its order.
        pad: when a video's predictions are shorter than the sample needs, repeat its last row (logged).
            Without it, a short or missing video is an error.
        clip: clip values to [-1, 1] (logged with the count). Without it, out-of-range values are an error.
        log: receives one line per explicit fix applied.
    """
    log = log if log is not None else []
    preds = {v: _check_array(v, a) for v, a in preds.items()}
    for v, arr in preds.items():
        if not np.isfinite(arr).all():
            raise HarnessError(f"predictions for {v!r} hold NaN or inf values")
        outside = int((np.abs(arr) > 1.0).sum())
        if outside:
            if not clip:
                raise HarnessError(f"predictions for {v!r} hold {outside} values outside [-1, 1]; pass clip=True "
                                   "(--clip) to clip them explicitly")
            preds[v] = np.clip(arr, -1.0, 1.0)
            log.append(f"clipped {outside} values of {v!r} to [-1, 1]")
    if sample is None:
        videos, frames, vals = [], [], []
        for v in sorted(preds):
            n = preds[v].shape[0]
            videos.append(np.full(n, v, dtype=object))
            frames.append(np.arange(1, n + 1))
            vals.append(preds[v])
        if not vals:
            raise HarnessError("no predictions to write")
        df = pl.DataFrame({"video": np.concatenate(videos).tolist(), "frame": np.concatenate(frames)})
        arr = np.concatenate(vals)
    else:
        df = pl.DataFrame({"location": sample}, schema={"location": pl.Utf8}).with_columns(
            pl.col("location").str.extract(r"^([^/\\]+)/", 1).alias("video"),
            pl.col("location").str.extract(r"/(\d{5})\.jpg$", 1).cast(pl.Int64).alias("frame"),
        )
        need = df.group_by("video", maintain_order=True).agg(pl.col("frame").max().alias("n"))
        arr = np.empty((df.height, 2), dtype=np.float64)
        for v, n in need.iter_rows():
            if v not in preds:
                raise HarnessError(f"no predictions for video {v!r} of the sample file")
            have = preds[v].shape[0]
            if have < n:
                if not pad:
                    raise HarnessError(f"video {v!r}: {have} predicted frames, the sample file needs {n}; pass "
                                       "pad=True (--pad) to repeat the last prediction explicitly")
                preds[v] = np.concatenate([preds[v], np.repeat(preds[v][-1:], n - have, axis=0)])
                log.append(f"padded {v!r} from {have} to {n} frames with its last prediction")
        fr = df.get_column("frame").to_numpy() - 1
        # Group by video so that each video's array is indexed once (vectorised, not per row).
        order = df.with_row_index("i").group_by("video", maintain_order=True).agg(pl.col("i"))
        for v, idx in order.iter_rows():
            idx = np.asarray(idx)
            arr[idx] = preds[v][fr[idx]]
    return df.select(
        pl.format("{}/{}.jpg", pl.col("video"), pl.col("frame").cast(pl.Utf8).str.zfill(5)).alias("image_location")
    ).with_columns(pl.Series("valence", arr[:, 0]), pl.Series("arousal", arr[:, 1]))


def write_submission(
    path: str | Path,
    preds: Predictions,
    sample: str | Path | list[str] | None = None,
    *,
    pad: bool = False,
    clip: bool = False,
    log: list[str] | None = None,
) -> Path:
    """Write a single-file submission atomically (see `build_submission_rows` for the explicit fixes)."""
    if isinstance(sample, str | Path):
        sample = read_sample_locations(sample)
    rows = build_submission_rows(preds, sample, pad=pad, clip=clip, log=log)
    with atomic_open(path, "w") as fh:
        fh.write(SUBMISSION_HEADER + "\n")
        rows.write_csv(fh, include_header=False, float_precision=6)
    return Path(path)


def write_per_video(folder: str | Path, preds: Predictions) -> Path:
    """Write predictions in the ABAW2 per-video layout: one `<video>.txt` per video (annotation format)."""
    folder = Path(folder)
    for v, arr in preds.items():
        arr = _check_array(v, arr)
        write_annotation(folder / f"{v}.txt", arr)
    return folder


def read_predictions(path: str | Path) -> Predictions:
    """Read predictions in either layout: a single submission file, or a folder of `<video>.txt` files."""
    path = Path(path)
    if path.is_dir():
        return read_annotation_dir(path)
    return read_submission(path)
