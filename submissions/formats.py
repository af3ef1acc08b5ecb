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
from dataclasses import dataclass, field
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
    MAX_VIDEOS,
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
    if "\r" in text:  # stripping costs as much as splitting: only where a line can end in CR
        lines = lines.str.strip_suffix("\r")
    return pl.DataFrame({"line": pl.int_range(first_line, first_line + lines.len(), dtype=pl.Int64, eager=True),
                         "text": lines})


def parse_annotation(text: str, path: str = "<annotation>") -> np.ndarray:
    """Parse the text of an annotation file into an (N, 2) float64 array (vectorised: a 60 MB file in seconds).

    Args:
        text: the whole file.
        path: the file's name, for messages.

    Raises:
        FormatError: listing the bad lines (header, column count, non-numeric, NaN/inf, out of [-1, 1] and not -5),
            at most 1,000 of each kind.
    """
    return parse_annotation_blocks(_text_blocks(text), path)


def parse_annotation_blocks(blocks: Iterable[LineBlock], path: str) -> np.ndarray:
    """`parse_annotation` over a file's line blocks as they are read (`read_line_blocks`): only two numbers per
    frame are kept. Blank lines at the end are not frames; a blank line before a frame is a problem."""
    problems: list[Problem] = []
    values: list[np.ndarray] = []
    state = "start"  # then "blank" (only blank lines so far) or "body" (after the header)
    blanks = _Blanks()
    for first, text, nbytes in blocks:
        if state != "body" and (text is None or text.strip()):
            if text is None or state == "blank":  # an overlong first line, or blank lines before the header
                head, ok = ("" if state == "blank" else f"<a line of {nbytes} bytes>"), False
            else:
                head = text.split("\n", 1)[0].strip()
                ok = head.lstrip("\ufeff").replace(" ", "").lower() == ANNOTATION_HEADER
            if not ok:
                # A file with no header whose first line is numeric would otherwise lose a frame silently.
                raise FormatError([Problem(path, 1, f"header is {shorten(head)!r}, expected {ANNOTATION_HEADER!r}",
                                           "bad_header")])  # fmt: skip
            state = "body"
            lines = _lines_frame(text, first).slice(1)
        elif state != "body":
            state = "blank"
            continue
        elif text is None:
            blanks.row_at(first)
            problems.append(Problem(path, first, f"line of {nbytes} bytes (at most {MAX_LINE_CHARS})", "long_line"))
            continue
        else:
            lines = _lines_frame(text, first)
        blank = lines.get_column("text").str.strip_chars().str.len_bytes() == 0
        blanks.add(lines.filter(blank).get_column("line").to_numpy(), lines.filter(~blank).get_column("line"))
        body = lines.filter(~blank)
        if body.height:
            values.append(_annotation_rows(body, path, problems))
    if state != "body":
        raise FormatError([Problem(path, 0, "empty file: expected the header 'valence,arousal'", "empty")])
    problems += [Problem(path, int(line), "expected 2 columns (valence,arousal), got 1 (a blank line)", "columns")
                 for line in blanks.inner[:MAX_PROBLEMS_PER_KIND]]  # fmt: skip
    if blanks.inner_count > MAX_PROBLEMS_PER_KIND:
        problems.append(Problem(path, 0, f"... {blanks.inner_count - MAX_PROBLEMS_PER_KIND} {_MORE}", "columns"))
    if problems:
        raise FormatError(sorted(_capped(problems), key=lambda p: (p.line == 0, p.line)))
    if not values:
        raise FormatError([Problem(path, 0, "no frames after the header", "no_frames")])
    return np.concatenate(values).astype(np.float64)


class _Blanks:
    """Blank lines of a streamed annotation file: those followed by a frame are problems (the first 1,000 kept,
    all counted); those at the end are not (the run of them since the last frame is only counted)."""

    def __init__(self) -> None:
        self.inner: list[int] = []
        self.inner_count = 0
        self._pending: list[int] = []
        self._pending_count = 0

    def _flush(self, lines: np.ndarray) -> None:
        self.inner += self._pending[: MAX_PROBLEMS_PER_KIND - len(self.inner)]
        self.inner_count += self._pending_count
        self._pending, self._pending_count = [], 0
        self.inner += lines[: max(MAX_PROBLEMS_PER_KIND - len(self.inner), 0)].tolist()
        self.inner_count += len(lines)

    def row_at(self, line: int) -> None:
        """A frame (or an overlong line) at `line`: every blank line so far is inside the file."""
        self._flush(np.zeros(0, dtype=np.int64))

    def add(self, blank: np.ndarray, rows: pl.Series) -> None:
        """One block's blank line numbers and its other lines' numbers."""
        if rows.len():
            last = int(rows.max())
            self._flush(blank[blank < last])
            blank = blank[blank > last]
        self._pending += blank[: max(MAX_PROBLEMS_PER_KIND - len(self._pending), 0)].tolist()
        self._pending_count += len(blank)


def _annotation_rows(body: pl.DataFrame, path: str, problems: list[Problem]) -> np.ndarray:
    """The (n, 2) values of one block's non-blank lines (`line`, `text`); problems appended."""
    body = body.with_columns(pl.col("text").str.len_bytes().alias("n"))
    _collect(problems, path, body.filter(pl.col("n") > MAX_LINE_CHARS),
             lambda r: f"line of {r['n']} bytes (at most {MAX_LINE_CHARS})", "long_line")  # fmt: skip
    body = body.with_columns(pl.when(pl.col("n") > MAX_LINE_CHARS).then(pl.lit("")).otherwise(pl.col("text"))
                             .alias("text"), (pl.col("n") > MAX_LINE_CHARS).alias("long"))  # fmt: skip
    body = body.with_columns(pl.col("text").str.count_matches(",", literal=True).alias("commas"))
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
    return cells.select("valence", "arousal").to_numpy()


def _raise(problems: list[Problem]) -> np.ndarray:
    raise FormatError(problems)


def read_annotation(path: str | Path) -> np.ndarray:
    """Read an annotation file `<video>.txt` into an (N, 2) float64 array (-5 kept for unannotated frames)."""
    return parse_annotation_blocks(read_line_blocks(path, "annotation file", MAX_ANNOTATION_BYTES), str(path))


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

_FRAME_SPAN = 100_000
"""Frame numbers have five digits: `video index * _FRAME_SPAN + frame` is a unique integer key per frame."""


@dataclass
class Frames:
    """A list of frames, compactly (no Python string per row): the video names in order of first appearance, and
    per row the index of its video in `videos` and its frame number.

    Args:
        videos: video names, in order of first appearance.
        vid: (N,) int32 index into `videos`.
        frame: (N,) int32 1-based frame numbers.
    """

    videos: list[str]
    vid: np.ndarray
    frame: np.ndarray

    def __len__(self) -> int:
        return len(self.vid)

    def keys(self) -> np.ndarray:
        """One int64 per row, equal exactly when (video, frame) are equal."""
        return self.vid.astype(np.int64) * _FRAME_SPAN + self.frame

    def location(self, i: int) -> str:
        """Row `i` as `video/00001.jpg`."""
        return image_location(self.videos[int(self.vid[i])], int(self.frame[i]))

    def locations(self) -> list[str]:
        """Every row as `video/00001.jpg`, in order."""
        return [image_location(self.videos[v], f) for v, f in zip(self.vid.tolist(), self.frame.tolist(), strict=True)]


@dataclass
class ParsedRows(Frames):
    """The well-located rows of a submission file: `Frames` with each row's line in the file and its two values.

    Args:
        line: (N,) int64 1-based line numbers.
        values: (N, 2) float64 valence and arousal (NaN where a cell is not a number).
    """

    line: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    values: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))


class _VideoIndex:
    """Video names to indices, in order of first appearance, over the blocks of a streamed file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.names: list[str] = []
        self._index: dict[str, int] = {}

    def ids(self, videos: pl.Series) -> np.ndarray:
        """The index of each name (-1 where null), new names added."""
        for name in videos.drop_nulls().unique(maintain_order=True).to_list():
            if name not in self._index:
                if len(self.names) >= MAX_VIDEOS:
                    raise FormatError([Problem(self.path, 0, f"more than {MAX_VIDEOS} distinct videos: not an ABAW "
                                               "frame list (the test set has about 150)", "too_many_videos")])
                self._index[name] = len(self.names)
                self.names.append(name)
        if not self.names:
            return np.full(videos.len(), -1, dtype=np.int32)
        ids = videos.replace_strict(self.names, list(range(len(self.names))), default=-1, return_dtype=pl.Int32)
        return ids.fill_null(-1).to_numpy()


def _text_blocks(text: str) -> list[LineBlock]:
    """A whole text as the blocks a streaming reader hands on (one block; overlong lines are found by the parser)."""
    body = text[:-1] if text.endswith("\n") else text
    return [(1, body, len(body))] if text else []


def parse_submission_table(text: str, path: str = "<submission>") -> tuple[pl.DataFrame, list[Problem]]:
    """Parse a submission file's text into a table and the problems found in its own structure.

    The table has one row per well-located data line: `line` (1-based line number in the file), `video`, `frame`,
    `valence`, `arousal` (null where the cell is not a number). Structural problems (header, column count,
    non-numeric, NaN/inf, out of range, malformed location, duplicated frames) are listed, at most 1,000 of a kind;
    checks against the sample file are in `validate_submission_text`.
    """
    rows, problems = parse_submission_blocks(_text_blocks(text), path)
    values = np.where(np.isnan(rows.values), None, rows.values) if len(rows) else rows.values
    table = pl.DataFrame({"line": rows.line, "video": [rows.videos[v] for v in rows.vid.tolist()],
                          "frame": rows.frame, "valence": values[:, 0], "arousal": values[:, 1]},
                         schema={"line": pl.Int64, "video": pl.Utf8, "frame": pl.Int32, "valence": pl.Float64,
                                 "arousal": pl.Float64})  # fmt: skip
    return table, problems


def parse_submission_blocks(blocks: Iterable[LineBlock], path: str) -> tuple[ParsedRows, list[Problem]]:
    """`parse_submission_table` over a file's line blocks as they are read (`read_line_blocks`): each block is
    parsed in polars and only its well-located rows are kept, as numbers (`ParsedRows`), never the file's text."""
    problems: list[Problem] = []
    index = _VideoIndex(path)
    parts: list[tuple[np.ndarray, ...]] = []
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
        good = _parse_rows(rows, path, problems)
        parts.append((index.ids(good.get_column("video")), good.get_column("frame").to_numpy(),
                      good.get_column("line").to_numpy(), good.select("valence", "arousal").to_numpy()))  # fmt: skip
        del rows, good
    if not seen_header:
        problems.append(Problem(path, 0, f"empty file: expected the header {SUBMISSION_HEADER!r}", "empty"))
    parsed = ParsedRows(index.names, *_concat(parts))
    del parts
    keys = parsed.keys()
    order = np.argsort(keys, kind="stable")
    later = order[1:][keys[order][1:] == keys[order][:-1]]  # every row of a frame after its first
    for i in np.sort(later)[:MAX_PROBLEMS_PER_KIND]:
        problems.append(Problem(path, int(parsed.line[i]), f"frame {parsed.location(i)} appears more than once",
                                "duplicate"))  # fmt: skip
    if len(later) > MAX_PROBLEMS_PER_KIND:
        problems.append(Problem(path, 0, f"... {len(later) - MAX_PROBLEMS_PER_KIND} more rows with the same problem",
                                "duplicate"))  # fmt: skip
    return parsed, _capped(problems)


def _concat(parts: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    if not parts:
        return (np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros((0, 2)))
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(4))


def _parse_rows(rows: pl.DataFrame, path: str, problems: list[Problem]) -> pl.DataFrame:
    """The rows (`line`, `text`) of one block parsed to `line`, `video`, `frame`, `valence`, `arousal` (the rows
    with a well-formed location); problems appended."""
    rows = rows.with_columns(pl.col("text").str.len_bytes().alias("n"))
    # A line no real row comes near (a 10 MB line, a binary blob) is one problem and is never parsed further.
    _collect(problems, path, rows.filter(pl.col("n") > MAX_LINE_CHARS),
             lambda r: f"line of {r['n']} bytes (a row is at most {MAX_LINE_CHARS})", "long_line")
    rows = rows.filter(pl.col("n") <= MAX_LINE_CHARS)
    rows = rows.with_columns(pl.col("text").str.count_matches(",", literal=True).alias("commas"))
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
        pl.col("location").str.extract(_LOCATION_RE, 2).cast(pl.Int32, strict=False).alias("frame"),
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
    return parts.filter(pl.col("video").is_not_null()).select("line", "video", "frame", "valence", "arousal")


MAX_PROBLEMS_PER_KIND = 1000
"""Problems of one kind listed one by one (the rest are counted in one more line)."""

_MORE = "more rows with the same problem"


def _collect(problems: list[Problem], path: str, rows: pl.DataFrame, reason, code: str,
             limit: int = MAX_PROBLEMS_PER_KIND) -> None:  # fmt: skip
    """Append one Problem per offending row (at most `limit`, then one summary line)."""
    for row in rows.head(limit).iter_rows(named=True):
        problems.append(Problem(path, row["line"], reason(row), code))
    if rows.height > limit:
        problems.append(Problem(path, 0, f"... {rows.height - limit} {_MORE}", code))


def _capped(problems: list[Problem], limit: int = MAX_PROBLEMS_PER_KIND) -> list[Problem]:
    """At most `limit` problems of each kind (blocks of a streamed file each add theirs), then one count per kind."""
    kept: list[Problem] = []
    shown: dict[str, int] = {}
    more: dict[str, int] = {}
    for p in problems:
        if p.line == 0 and p.reason.startswith("... ") and p.reason.endswith(_MORE):
            more[p.code] = more.get(p.code, 0) + int(p.reason.split()[1])
        elif shown.get(p.code, 0) < limit:
            shown[p.code] = shown.get(p.code, 0) + 1
            kept.append(p)
        else:
            more[p.code] = more.get(p.code, 0) + 1
    path = problems[0].path if problems else ""
    return kept + [Problem(path, 0, f"... {n} {_MORE}", code) for code, n in more.items()]


def sample_frames(sample: Sequence[str]) -> Frames:
    """A frame list of `video/00001.jpg` strings as `Frames` (a string that is not a location is a ValueError)."""
    locs = pl.Series("location", list(sample), dtype=pl.Utf8)
    video = locs.str.extract(_LOCATION_RE, 1)
    if video.null_count():
        raise ValueError(f"not an image location: {locs.filter(video.is_null())[0]!r}")
    index = _VideoIndex("<sample>")
    return Frames(index.names, index.ids(video), locs.str.extract(_LOCATION_RE, 2).cast(pl.Int32).to_numpy())


def read_sample_frames(path: str | Path) -> Frames:
    """The organisers' sample file as `Frames`, in the file's order, read a block at a time (a few bytes per row
    kept: a 128 MiB sample costs tens of MB).

    Accepts the sample prediction file (header `image_location,valence,arousal`) or a bare list with header
    `image_location`.

    Raises:
        FormatError: the file is refused (see `read_line_blocks`), lacks the header, holds an overlong line, or a
            location that is not `video/00001.jpg`.
    """
    where = str(path)
    index = _VideoIndex(where)
    vids: list[np.ndarray] = []
    frames: list[np.ndarray] = []
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
        vids.append(index.ids(rows.get_column("video")))
        frames.append(rows.get_column("frame").to_numpy())
    if not started:
        raise FormatError([Problem(where, 1, "sample file must start with the header 'image_location...'",
                                   "bad_header")])  # fmt: skip
    empty = np.zeros(0, dtype=np.int32)
    return Frames(index.names, np.concatenate(vids) if vids else empty, np.concatenate(frames) if frames else empty)


def read_sample_locations(path: str | Path) -> list[str]:
    """The frame list of the organisers' sample file: its `image_location` column, in order (`read_sample_frames`)."""
    return read_sample_frames(path).locations()


Sample = Sequence[str] | Frames
"""A frame list: `video/00001.jpg` strings, or the `Frames` that `read_sample_frames` returns."""


def validate_submission_text(text: str, sample: Sample | None, path: str = "<submission>") -> list[Problem]:
    """Every problem of a submission's text, checked against the sample frame list when given.

    Checks: header, column count, location shape, non-numeric, NaN/inf, range, duplicates, and against the
    sample: unknown video, missing rows, extra rows, and order (rows must follow the sample file's order).
    Returns an empty list for a valid file. Never modifies anything.
    """
    return _validate_blocks(_text_blocks(text), sample, path)


def _validate_blocks(blocks: Iterable[LineBlock], sample: Sample | None, path: str) -> list[Problem]:
    rows, problems = parse_submission_blocks(blocks, path)
    if sample is not None:
        problems += _against_sample(rows, sample if isinstance(sample, Frames) else sample_frames(sample), path)
    return sorted(problems, key=lambda p: (p.line == 0, p.line))


def _against_sample(rows: ParsedRows, sample: Frames, path: str) -> list[Problem]:
    """Unknown videos, extra and missing rows, and order, by integer keys (sorted once, no hash join of strings)."""
    problems: list[Problem] = []
    in_sample = {name: i for i, name in enumerate(sample.videos)}
    remap = np.array([in_sample.get(name, -1) for name in rows.videos] or [-1], dtype=np.int64)
    pvid = remap[rows.vid] if len(rows) else np.zeros(0, dtype=np.int64)
    unknown = np.flatnonzero(pvid < 0)
    _, firsts = np.unique(rows.vid[unknown], return_index=True)
    for i in np.sort(unknown[firsts])[:MAX_PROBLEMS_PER_KIND]:
        problems.append(Problem(path, int(rows.line[i]), f"unknown video {shorten(rows.videos[rows.vid[i]])!r} "
                                "(not in the sample file)", "unknown_video"))  # fmt: skip
    known = np.flatnonzero(pvid >= 0)
    skeys = sample.keys()
    order = np.argsort(skeys, kind="stable")
    ordered = skeys[order]
    pkeys = pvid[known] * _FRAME_SPAN + rows.frame[known]
    want = np.full(len(known), -1, dtype=np.int64)
    if len(ordered):
        pos = np.minimum(np.searchsorted(ordered, pkeys), len(ordered) - 1)
        want = np.where(ordered[pos] == pkeys, order[pos], -1)
    extra = known[want < 0]
    for i in extra[:MAX_PROBLEMS_PER_KIND]:
        problems.append(Problem(path, int(rows.line[i]), f"extra row {rows.location(i)} (not in the sample file)",
                                "extra"))  # fmt: skip
    if len(extra) > MAX_PROBLEMS_PER_KIND:
        problems.append(Problem(path, 0, f"... {len(extra) - MAX_PROBLEMS_PER_KIND} {_MORE}", "extra"))
    missing = np.ones(len(skeys), dtype=bool)
    missing[want[want >= 0]] = False
    idx = np.flatnonzero(missing)
    if len(idx):
        # Report missing frames as runs per video: a missing video is one line, not 10,000.
        mv = sample.vid[idx]
        by_video = np.argsort(mv, kind="stable")
        videos, starts, counts = np.unique(mv[by_video], return_index=True, return_counts=True)
        for v, s, n in sorted(zip(videos.tolist(), starts.tolist(), counts.tolist(), strict=True),
                              key=lambda t: idx[by_video[t[1]]])[:MAX_PROBLEMS_PER_KIND]:  # fmt: skip
            lo, hi = idx[by_video[s]], idx[by_video[s + n - 1]]
            problems.append(Problem(path, 0, f"missing {n} row(s) of video {sample.videos[v]!r} "
                                    f"({sample.location(lo)} .. {sample.location(hi)})", "missing"))  # fmt: skip
    # Order: the rows that match the sample must appear in the sample's order (each frame's first row counts).
    matched = np.flatnonzero(want >= 0)
    _, firsts = np.unique(want[matched], return_index=True)
    matched = matched[np.sort(firsts)]
    if len(matched) > 1:
        wants = want[matched]
        for k in np.flatnonzero(np.diff(wants) < 0)[:100]:
            now, before = known[matched[k + 1]], known[matched[k]]
            problems.append(Problem(path, int(rows.line[now]), f"row out of order: {rows.location(now)} comes after "
                                    f"{rows.location(before)}; rows must follow the sample file's order", "order"))
    return problems


def validate_submission(path: str | Path, sample: str | Path | Sample | None = None,
                        shown: str | None = None) -> list[Problem]:  # fmt: skip
    """Validate a submission file (and, if given, against the sample file or frame list). Empty list = valid.

    The file is read a block at a time (`read_line_blocks`) and only numbers per row are kept: the largest file
    accepted stays well under 1 GB.

    Args:
        path: the prediction file.
        sample: the sample file, its frame list, or None.
        shown: the name messages give the file (`PKG.zip!predictions.csv`); None: `path`.
    """
    if isinstance(sample, str | Path):
        sample = read_sample_frames(sample)
    blocks = read_line_blocks(path, "prediction file", prediction_bound(None if sample is None else len(sample)),
                              shown)  # fmt: skip
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
    rows, problems = parse_submission_blocks(read_line_blocks(path, "prediction file", MAX_PREDICTION_BYTES),
                                             str(path))  # fmt: skip
    if problems:
        raise FormatError(problems)
    return _rows_to_predictions(rows, str(path))


def _rows_to_predictions(rows: ParsedRows, path: str) -> Predictions:
    out: Predictions = {}
    problems: list[Problem] = []
    by_video = np.lexsort((rows.frame, rows.vid))  # by video, then frame
    videos, starts, counts = np.unique(rows.vid[by_video], return_index=True, return_counts=True)
    for v, s, n in zip(videos.tolist(), starts.tolist(), counts.tolist(), strict=True):
        idx = by_video[s : s + n]
        frames = rows.frame[idx]
        expected = np.arange(1, n + 1)
        if not np.array_equal(frames, expected):
            gap = int(np.flatnonzero(frames != expected)[0])
            problems.append(Problem(path, int(rows.line[idx[gap]]), f"video {rows.videos[v]!r}: frames are not "
                                    f"contiguous from 1 (expected frame {gap + 1}, found {int(frames[gap])})", "gap"))
            continue
        out[rows.videos[v]] = rows.values[idx].astype(np.float64)
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
