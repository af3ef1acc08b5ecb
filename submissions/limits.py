"""Bounds on what the harness reads: a hostile file is refused by a message, never by running out of memory or time.

Every data file (prediction, sample, annotation, manifest, config) is opened through `read_bounded`, the project's
one bounded reader (`core.safe_read`) with its errors as `FormatError`s: a FIFO, a device or a folder is refused
without being read (reading a FIFO blocks forever, a device may never end), and a file larger than its bound is
refused before a byte is read.

The bounds are generous for real ABAW files (the largest test-set submission, about 1.2 M frames, is about 60 MB;
an annotation file of the longest Aff-Wild2 video about 1 MB) and small enough that the parsers' peak memory stays
under 1 GB on a hostile file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from core.errors import printable
from core.errors import shorten as shorten  # re-exported: the name the submission parsers import
from core.safe_read import ReadError, check_regular, iter_line_blocks, read_bytes
from core.safe_read import decode_text as core_decode_text
from submissions.errors import FormatError, Problem

MAX_PREDICTION_BYTES = 256 * 1024 * 1024
"""A single-file submission (about 4x the largest ABAW test set)."""

BYTES_PER_FRAME = 160
"""Bound on one prediction line (`video/00001.jpg,v,a`) when the frame count is known: a submission checked against
a sample of N frames may be at most `(N + 1) * BYTES_PER_FRAME + 4096` bytes."""

MAX_SAMPLE_BYTES = 128 * 1024 * 1024
"""The organisers' sample file (the ABAW test set's, about 1.2 M frames, is under 60 MB): 4-5 M frames."""

MAX_VIDEOS = 100_000
"""Distinct videos a prediction or sample file may name (Aff-Wild2's test set has about 150): past it, the file is
refused rather than indexing every name of a hostile file."""

MAX_ANNOTATION_BYTES = 64 * 1024 * 1024
"""An annotation file `<video>.txt` (one short `v,a` line per frame)."""

MAX_LINE_CHARS = 4096
"""Longest line a prediction or annotation file may hold; a longer one is a problem, never parsed."""

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
"""A package's manifest.json (the run's config and scores; typically a few kB)."""

MAX_ZIP_MEMBERS = 64
"""Members of a submission package (it holds two)."""

MAX_ZIP_MEMBER_BYTES = MAX_PREDICTION_BYTES
"""Uncompressed size of one package member."""

MAX_ZIP_TOTAL_BYTES = MAX_PREDICTION_BYTES + 16 * 1024 * 1024
"""Uncompressed size of a whole package."""

MAX_ZIP_RATIO = 100.0
"""Largest uncompressed/compressed ratio of a member above `ZIP_RATIO_FLOOR` bytes (deflate on a prediction file
gives about 3-6; zip bombs give thousands)."""

ZIP_RATIO_FLOOR = 1024 * 1024
"""Members smaller than this skip the ratio check (tiny files compress by any ratio and cannot exhaust anything)."""



class InputRefusedError(FormatError):
    """A file the harness will not read: not a regular file, too large, binary, or unreadable.

    A `FormatError` with one problem, so that the commands that list every problem (validate, doctor) list it too.

    Args:
        path: the file.
        reason: why it is refused, in words.
        line: 1-based line, or 0 for the whole file.
        code: a short stable identifier (`not_regular`, `too_large`, `binary`, `encoding`, `unreadable`).
    """

    def __init__(self, path: str | Path, reason: str, line: int = 0, code: str = "refused"):
        super().__init__([Problem(printable(str(path)), line, reason, code)])


def _refused(exc: ReadError, shown: str | Path | None = None) -> InputRefusedError:
    return InputRefusedError(exc.path if shown is None else shown, exc.reason, exc.line, exc.code)


def check_regular_file(path: str | Path, what: str, max_bytes: int) -> int:
    """Refuse, without opening it, anything at `path` that is not a regular file of at most `max_bytes`.

    `core.safe_read.check_regular` with its error as a `FormatError` (see there).

    Returns:
        The file's size in bytes.

    Raises:
        InputRefusedError: missing, a folder, a FIFO, a device, or too large.
    """
    try:
        return check_regular(path, what, max_bytes)
    except ReadError as exc:
        raise _refused(exc) from None


def read_bounded(path: str | Path, what: str, max_bytes: int, shown: str | Path | None = None) -> bytes:
    """The bytes of a regular file of at most `max_bytes`, refused (not read) otherwise (`core.safe_read`).

    Args:
        path: the file.
        what: what the file is meant to be, for messages.
        max_bytes: the largest size accepted.
        shown: the name messages give the file (`PKG.zip!predictions.csv` for a member extracted to a temporary
            folder); None: `path`.

    Raises:
        InputRefusedError: see `check_regular_file`; also when the file grows past the bound while read.
    """
    try:
        return read_bytes(path, what, max_bytes)
    except ReadError as exc:
        raise _refused(exc, shown) from None


def decode_text(data: bytes, path: str | Path, what: str) -> str:
    """UTF-8 text of a data file's bytes; UTF-16, a zip archive, NUL bytes or invalid UTF-8 are refused.

    Raises:
        InputRefusedError: the bytes are not UTF-8 text.
    """
    try:
        return core_decode_text(data, path, what)
    except ReadError as exc:
        raise _refused(exc) from None


def read_text_bounded(path: str | Path, what: str, max_bytes: int, shown: str | Path | None = None) -> str:
    """`read_bounded` then `decode_text`: the UTF-8 text of a bounded regular file.

    Args:
        path: the file.
        what: what the file is meant to be, for messages.
        max_bytes: the largest size accepted.
        shown: the name messages give the file (see `read_bounded`).

    Raises:
        InputRefusedError: not a regular file, too large, unreadable, or not UTF-8 text.
    """
    return decode_text(read_bounded(path, what, max_bytes, shown), path if shown is None else shown, what)


def read_line_blocks(path: str | Path, what: str, max_bytes: int, shown: str | Path | None = None,
                     ) -> Iterator[tuple[int, str | None, int]]:  # fmt: skip
    """`core.safe_read.iter_line_blocks` of a data file with `MAX_LINE_CHARS` as the longest line, its errors as
    `FormatError`s.

    Args:
        path: the file.
        what: what the file is meant to be, for messages.
        max_bytes: the largest size accepted.
        shown: the name messages give the file (see `read_bounded`).

    Raises:
        InputRefusedError: not a regular file, too large, unreadable, or not UTF-8 text.
    """
    try:
        yield from iter_line_blocks(path, what, max_bytes, MAX_LINE_CHARS)
    except ReadError as exc:
        raise _refused(exc, shown) from None
