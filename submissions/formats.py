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
from collections.abc import Iterable, Sequence
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
    MAX_SAMPLE_BYTES,
    read_line_blocks,
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
_LOCATION_RE = r"^(?P<video>[^/\\]+)/(?P<frame>[0-9]{5})\.jpg$"
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


NUMBER_PATTERN = r"^[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:nan|inf|infinity))$"
"""The one number grammar of every ABAW file the harness reads (annotation and prediction files alike): ASCII
digits with an optional sign, point and exponent, or `nan`/`inf`/`infinity` (read, then refused as not finite).
Spaces and tabs around a cell are ignored; `_` separators, other scripts' digits (`٠.٥`) and Unicode spaces or line
separators (U+2028) are not numbers."""

_NUMBER = re.compile(NUMBER_PATTERN)
_INTEGER = re.compile(r"^[+-]?[0-9]+$")
"""A class index of an expression file: ASCII digits only (the number grammar's integers)."""


def number_cells(cells: pl.Expr) -> pl.Expr:
    """Text cells as Float64 under `NUMBER_PATTERN` (null where a cell is not a number): the one parser of numbers
    that the annotation and the prediction readers share.

    Args:
        cells: a text column.
    """
    text = cells.str.strip_chars(" \t")
    return pl.when(text.str.contains(NUMBER_PATTERN)).then(text.cast(pl.Float64, strict=False))


def parse_number(text: str) -> float:
    """One number under `NUMBER_PATTERN` (what `number_cells` reads, for a single value).

    >>> parse_number(" -0.25 "), parse_number("1e-1")
    (-0.25, 0.1)
    >>> parse_number("1_0e-1")
    Traceback (most recent call last):
    ...
    ValueError: not a number: '1_0e-1'
    """
    cell = text.strip(" \t")
    if not _NUMBER.match(cell):
        raise ValueError(f"not a number: {shorten(text)!r}")
    return float(cell)


def _lines_frame(text: str, first_line: int = 1) -> pl.DataFrame:
    """`line` (1-based number) and `text` of every line of `text` (split at `\\n` only; a `\\r` before it dropped),
    built in polars (no Python string per line). A final newline ends the last line; it does not start another."""
    if text.endswith("\n"):
        text = text[:-1]
    lines = pl.Series("text", [text], dtype=pl.Utf8).str.split("\n").explode()
    return lines.to_frame().with_row_index("idx").select(
        (pl.col("idx").cast(pl.Int64) + first_line).alias("line"), pl.col("text").str.strip_suffix("\r"))


def parse_annotation(text: str, path: str = "<annotation>") -> np.ndarray:
    """Parse the text of an annotation file into an (N, 2) float64 array (vectorised: a 60 MB file in seconds).

    Args:
        text: the whole file.
        path: the file's name, for messages.

    Raises:
        FormatError: listing the bad lines (header, column count, non-numeric, NaN/inf, out of [-1, 1] and not -5),
            at most 1,000 of each kind.
    """
    lines = _lines_frame(text)
    filled = np.flatnonzero((lines.get_column("text").str.strip_chars().str.len_bytes() > 0).to_numpy())
    lines = lines.head(int(filled[-1]) + 1 if filled.size else 0)  # trailing blank lines are not frames
    if not lines.height:
        raise FormatError([Problem(path, 0, "empty file: expected the header 'valence,arousal'", "empty")])
    first = lines.item(0, "text")
    header = first.strip().lstrip("\ufeff").replace(" ", "").lower()
    if header != ANNOTATION_HEADER:
        # A file with no header whose first line is numeric would otherwise lose a frame silently.
        raise FormatError([Problem(path, 1, f"header is {shorten(first.strip())!r}, expected {ANNOTATION_HEADER!r}",
                                   "bad_header")])  # fmt: skip
    body = lines.slice(1)
    if not body.height:
        raise FormatError([Problem(path, 0, "no frames after the header", "no_frames")])
    problems: list[Problem] = []
    body = body.with_columns(pl.col("text").str.len_bytes().alias("n"))
    _collect(problems, path, body.filter(pl.col("n") > MAX_LINE_CHARS),
             lambda r: f"line of {r['n']} bytes (at most {MAX_LINE_CHARS})", "long_line")  # fmt: skip
    body = body.with_columns(pl.when(pl.col("n") > MAX_LINE_CHARS).then(pl.lit("")).otherwise(pl.col("text"))
                             .alias("text"), (pl.col("n") > MAX_LINE_CHARS).alias("long"))  # fmt: skip
    body = body.with_columns(pl.col("text").str.count_matches(",").alias("commas"))
    _collect(problems, path, body.filter(~pl.col("long") & (pl.col("commas") != 1)),
             lambda r: f"expected 2 columns (valence,arousal), got {r['commas'] + 1}", "columns")  # fmt: skip
    cells = body.with_columns(pl.col("text").str.split_exact(",", 1).struct.rename_fields(["v", "a"]).alias("p"))
    cells = cells.unnest("p").with_columns(number_cells(pl.col("v")).alias("valence"),
                                           number_cells(pl.col("a")).alias("arousal"))  # fmt: skip
    ok = ~pl.col("long") & (pl.col("commas") == 1)
    numeric = pl.col("valence").is_not_null() & pl.col("arousal").is_not_null()
    _collect(problems, path, cells.filter(ok & ~numeric),
             lambda r: f"non-numeric value in {shorten(r['text'].strip())!r}", "non_numeric")  # fmt: skip
    finite = pl.col("valence").is_finite() & pl.col("arousal").is_finite()
    _collect(problems, path, cells.filter(ok & numeric & ~finite),
             lambda r: f"NaN or inf in {shorten(r['text'].strip())!r}", "non_finite")  # fmt: skip
    for name in ("valence", "arousal"):
        x = pl.col(name)
        _collect(problems, path, cells.filter(ok & numeric & finite & (x != UNANNOTATED) & (x.abs() > 1.0)),
                 lambda r, name=name: f"{name} {r[name]} is outside [-1, 1] and is not -5 (unannotated)", "range")
    if problems:
        raise FormatError(sorted(problems, key=lambda p: (p.line == 0, p.line)))
    return cells.select("valence", "arousal").to_numpy().astype(np.float64)


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
    lines = _split_lines(text)
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
        cell = line.strip(" \t")
        if "," in cell:
            problems.append(Problem(path, lineno, f"expected 1 column (a class index), got {cell.count(',') + 1}",
                                    "columns"))  # fmt: skip
            continue
        if _INTEGER.match(cell) is None or len(cell) > 4:
            problems.append(Problem(path, lineno, f"not a class index: {shorten(cell)!r}", "non_numeric"))
            continue
        c = int(cell)
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


LineBlock = tuple[int, str | None, int]
"""(first line number, text of whole lines or None for one overlong line, bytes): `core.safe_read.iter_line_blocks`."""


def _text_blocks(text: str) -> list[LineBlock]:
    """A whole text as the blocks a streaming reader hands on (one block; overlong lines are found by the parser)."""
    body = text[:-1] if text.endswith("\n") else text
    return [(1, body, len(body))] if text else []


def parse_submission_table(text: str, path: str = "<submission>") -> tuple[pl.DataFrame, list[Problem]]:
    """Parse a submission file's text into a table and the problems found in its own structure.

    The table has one row per data line: `line` (1-based line number in the file), `video`, `frame`, `valence`,
    `arousal` (null where the cell is not a number). Structural problems (header, column count, non-numeric,
    NaN/inf, out of range, malformed location, duplicated frames) are listed, at most 1,000 of a kind; checks against
    the sample file are in `validate_submission_text`. Vectorised with polars: a million rows in about a second.
    """
    return parse_submission_blocks(_text_blocks(text), path)


def parse_submission_blocks(blocks: Iterable[LineBlock], path: str) -> tuple[pl.DataFrame, list[Problem]]:
    """`parse_submission_table` over a file's line blocks as they are read (`read_line_blocks`): only the parsed
    rows (two numbers, a frame and a line number per row, the video names) are kept, never the file's text."""
    problems: list[Problem] = []
    parts: list[pl.DataFrame] = []
    seen_header = False
    for first, text, nbytes in blocks:
        if text is None:
            if first == 1:
                seen_header = True
                problems.append(Problem(path, 1, f"header is a line of {nbytes} bytes, expected "
                                        f"{SUBMISSION_HEADER!r}", "bad_header"))  # fmt: skip
            else:
                problems.append(Problem(path, first, f"line of {nbytes} bytes (a row is at most {MAX_LINE_CHARS})",
                                        "long_line"))  # fmt: skip
            continue
        rows = _lines_frame(text, first)
        if not seen_header:
            seen_header = True
            header = rows.item(0, "text").lstrip("\ufeff").strip()
            if header.replace(" ", "") != SUBMISSION_HEADER:
                problems.append(Problem(path, 1, f"header is {shorten(header)!r}, expected {SUBMISSION_HEADER!r}",
                                        "bad_header"))  # fmt: skip
            rows = rows.slice(1)
        parts.append(_parse_rows(rows, path, problems))
    if not seen_header:
        problems.append(Problem(path, 0, f"empty file: expected the header {SUBMISSION_HEADER!r}", "empty"))
        return _empty_table(), problems
    table = pl.concat(parts) if parts else _empty_table()
    dup = table.filter(pl.struct("video", "frame").is_duplicated() & pl.col("video").is_not_null())
    dup = dup.filter(pl.int_range(pl.len()).over("video", "frame") > 0)
    _collect(problems, path, dup, lambda r: f"frame {_loc(r)} appears more than once", "duplicate")
    return table, _capped(problems)


def _loc(row: dict) -> str:
    return image_location(row["video"], row["frame"])


def _parse_rows(rows: pl.DataFrame, path: str, problems: list[Problem]) -> pl.DataFrame:
    """The rows (`line`, `text`) of one block parsed to `line`, `video`, `frame`, `valence`, `arousal`; problems
    appended."""
    rows = rows.with_columns(pl.col("text").str.len_bytes().alias("n"))
    # A line no real row comes near (a 10 MB line, a binary blob) is one problem and is never parsed further.
    _collect(problems, path, rows.filter(pl.col("n") > MAX_LINE_CHARS),
             lambda r: f"line of {r['n']} bytes (a row is at most {MAX_LINE_CHARS})", "long_line")
    rows = rows.filter(pl.col("n") <= MAX_LINE_CHARS)
    rows = rows.with_columns(pl.col("text").str.count_matches(",").alias("commas"))
    _collect(problems, path, rows.filter(pl.col("commas") != 2),
             lambda r: f"expected 3 columns (image_location,valence,arousal), got {r['commas'] + 1}", "columns")
    parts = rows.filter(pl.col("commas") == 2).select(
        "line", pl.col("text").str.split_exact(",", 2).struct.rename_fields(["location", "v", "a"]).alias("p"),
    ).unnest("p")
    parts = parts.with_columns(
        pl.col("location").str.strip_chars(" \t"),
        number_cells(pl.col("v")).alias("valence"),
        number_cells(pl.col("a")).alias("arousal"),
    )
    parts = parts.with_columns(
        pl.col("location").str.extract(_LOCATION_RE, 1).alias("video"),
        pl.col("location").str.extract(_LOCATION_RE, 2).cast(pl.Int64, strict=False).alias("frame"),
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
    return parts.select("line", "video", pl.col("frame").cast(pl.Int32), "valence", "arousal")


def _empty_table() -> pl.DataFrame:
    return pl.DataFrame(schema={"line": pl.Int64, "video": pl.Utf8, "frame": pl.Int32, "valence": pl.Float64,
                                "arousal": pl.Float64})  # fmt: skip


MAX_PROBLEMS_PER_KIND = 1000
"""Problems of one kind listed one by one (the rest are counted in one more line)."""


def _collect(problems: list[Problem], path: str, rows: pl.DataFrame, reason, code: str,
             limit: int = MAX_PROBLEMS_PER_KIND) -> None:  # fmt: skip
    """Append one Problem per offending row (at most `limit`, then one summary line)."""
    for row in rows.head(limit).iter_rows(named=True):
        problems.append(Problem(path, row["line"], reason(row), code))
    if rows.height > limit:
        problems.append(Problem(path, 0, f"... {rows.height - limit} more rows with the same problem", code))


def _capped(problems: list[Problem], limit: int = MAX_PROBLEMS_PER_KIND) -> list[Problem]:
    """At most `limit` problems of each kind (blocks of a streamed file each add theirs), then one count per kind."""
    kept: list[Problem] = []
    shown: dict[str, int] = {}
    more: dict[str, int] = {}
    for p in problems:
        extra = int(p.reason.split()[1]) if p.line == 0 and p.reason.startswith("... ") else 0
        if extra:
            more[p.code] = more.get(p.code, 0) + extra
        elif shown.get(p.code, 0) < limit:
            shown[p.code] = shown.get(p.code, 0) + 1
            kept.append(p)
        else:
            more[p.code] = more.get(p.code, 0) + 1
    path = problems[0].path if problems else ""
    kept += [Problem(path, 0, f"... {n} more rows with the same problem", code) for code, n in more.items()]
    return kept


def sample_frames(sample: Sequence[str] | pl.Series) -> pl.DataFrame:
    """A frame list (`video/00001.jpg` strings) as a table of `video`, `frame` (the form validation joins on)."""
    locs = pl.Series("location", sample, dtype=pl.Utf8)
    return locs.to_frame().select(pl.col("location").str.extract(_LOCATION_RE, 1).alias("video"),
                                  pl.col("location").str.extract(_LOCATION_RE, 2).cast(pl.Int32).alias("frame"))


def read_sample_frames(path: str | Path) -> pl.DataFrame:
    """The organisers' sample file as a table of `video`, `frame`, in the file's order, read a block at a time.

    Accepts the sample prediction file (header `image_location,valence,arousal`) or a bare list with header
    `image_location`.

    Raises:
        FormatError: the file is refused (see `read_line_blocks`), lacks the header, holds an overlong line, or a
            location that is not `video/00001.jpg`.
    """
    path = Path(path)
    where = str(path)
    parts: list[pl.DataFrame] = []
    started = False
    for first, text, nbytes in read_line_blocks(path, "sample file", MAX_SAMPLE_BYTES):
        if text is None:
            raise FormatError([Problem(where, first, f"line of {nbytes} bytes (at most {MAX_LINE_CHARS})",
                                       "long_line")])  # fmt: skip
        rows = _lines_frame(text, first)
        if not started:
            started = True
            if not rows.item(0, "text").lstrip("\ufeff").strip().startswith("image_location"):
                raise FormatError([Problem(where, 1, "sample file must start with the header 'image_location...'",
                                           "bad_header")])  # fmt: skip
            rows = rows.slice(1)
        rows = rows.filter(pl.col("text").str.strip_chars(" \t").str.len_bytes() > 0).select(
            "line", pl.col("text").str.split(",").list.first().str.strip_chars(" \t").alias("location"))
        rows = rows.with_columns(pl.col("location").str.extract(_LOCATION_RE, 1).alias("video"),
                                 pl.col("location").str.extract(_LOCATION_RE, 2).cast(pl.Int32).alias("frame"))
        bad = rows.filter(pl.col("video").is_null())
        if bad.height:
            raise FormatError([Problem(where, r["line"], f"not an image location: {shorten(r['location'])!r}",
                                       "location") for r in bad.head(100).iter_rows(named=True)])  # fmt: skip
        parts.append(rows.select("video", "frame"))
    if not started:
        raise FormatError([Problem(where, 1, "sample file must start with the header 'image_location...'",
                                   "bad_header")])  # fmt: skip
    return pl.concat(parts) if parts else pl.DataFrame(schema={"video": pl.Utf8, "frame": pl.Int32})


def read_sample_locations(path: str | Path) -> list[str]:
    """The frame list of the organisers' sample file: its `image_location` column, in order (`read_sample_frames`)."""
    frames = read_sample_frames(path)
    return _locations(frames).to_list()


def _locations(frames: pl.DataFrame) -> pl.Series:
    return frames.select(pl.format("{}/{}.jpg", pl.col("video"), pl.col("frame").cast(pl.Utf8).str.zfill(5))
                         .alias("location")).to_series()  # fmt: skip


Sample = Sequence[str] | pl.DataFrame
"""A frame list: `video/00001.jpg` strings, or the table `read_sample_frames` returns."""


def validate_submission_text(text: str, sample: Sample | None, path: str = "<submission>") -> list[Problem]:
    """Every problem of a submission's text, checked against the sample frame list when given.

    Checks: header, column count, location shape, non-numeric, NaN/inf, range, duplicates, and against the
    sample: unknown video, missing rows, extra rows, and order (rows must follow the sample file's order).
    Returns an empty list for a valid file. Never modifies anything.
    """
    return _validate_blocks(_text_blocks(text), sample, path)


def _validate_blocks(blocks: Iterable[LineBlock], sample: Sample | None, path: str) -> list[Problem]:
    table, problems = parse_submission_blocks(blocks, path)
    if sample is None:
        return problems
    frames = sample if isinstance(sample, pl.DataFrame) else sample_frames(sample)
    sample_df = frames.with_row_index("want")
    sample_videos = sample_df.get_column("video").unique()
    located = table.filter(pl.col("video").is_not_null())
    unknown = located.filter(~pl.col("video").is_in(sample_videos))
    first_unknown = unknown.unique("video", keep="first", maintain_order=True)
    _collect(problems, path, first_unknown,
             lambda r: f"unknown video {shorten(r['video'])!r} (not in the sample file)", "unknown_video")
    known = located.filter(pl.col("video").is_in(sample_videos))
    joined = known.join(sample_df, on=["video", "frame"], how="left", maintain_order="left")
    extra = joined.filter(pl.col("want").is_null())
    _collect(problems, path, extra, lambda r: f"extra row {_loc(r)} (not in the sample file)", "extra")
    missing = sample_df.join(known.select("video", "frame"), on=["video", "frame"], how="anti")
    if missing.height:
        # Report missing frames as runs per video: a missing video is one line, not 10,000.
        runs = missing.group_by("video", maintain_order=True).agg(
            pl.len().alias("n"), pl.col("frame").first().alias("first"), pl.col("frame").last().alias("last"))
        for r in runs.head(MAX_PROBLEMS_PER_KIND).iter_rows(named=True):
            problems.append(Problem(path, 0, f"missing {r['n']} row(s) of video {r['video']!r} "
                                    f"({image_location(r['video'], r['first'])} .. "
                                    f"{image_location(r['video'], r['last'])})", "missing"))  # fmt: skip
    # Order: the rows that match the sample must appear in the sample's order.
    matched = joined.filter(pl.col("want").is_not_null()).unique(["video", "frame"], keep="first",
                                                                   maintain_order=True)  # fmt: skip
    if matched.height > 1:
        wants = matched.get_column("want").to_numpy()
        drops = np.flatnonzero(np.diff(wants.astype(np.int64)) < 0)
        lines = matched.get_column("line").to_numpy()
        for k in drops[:100]:
            now, before = matched.row(int(k) + 1, named=True), matched.row(int(k), named=True)
            problems.append(Problem(path, int(lines[k + 1]), f"row out of order: {_loc(now)} comes after "
                                    f"{_loc(before)}; rows must follow the sample file's order", "order"))
    return sorted(problems, key=lambda p: (p.line == 0, p.line))


def validate_submission(path: str | Path, sample: str | Path | Sample | None = None,
                        shown: str | None = None) -> list[Problem]:  # fmt: skip
    """Validate a submission file (and, if given, against the sample file or frame list). Empty list = valid.

    The file is read a block at a time (`read_line_blocks`): the largest file accepted stays well under 1 GB.

    Args:
        path: the prediction file.
        sample: the sample file, its frame list, or None.
        shown: the name messages give the file (`PKG.zip!predictions.csv`); None: `path`.
    """
    if isinstance(sample, str | Path):
        sample = read_sample_frames(sample)
    n = None if sample is None else (sample.height if isinstance(sample, pl.DataFrame) else len(sample))
    blocks = read_line_blocks(path, "prediction file", prediction_bound(n), shown)
    return _validate_blocks(blocks, sample, shown or str(path))


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

    Frames of each video must be contiguous from 1 to N (the challenge format); gaps are an error. The file is read
    a block at a time.
    """
    path = Path(path)
    table, problems = parse_submission_blocks(read_line_blocks(path, "prediction file", MAX_PREDICTION_BYTES),
                                              str(path))  # fmt: skip
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
