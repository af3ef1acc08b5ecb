"""Bounds on what the harness reads: a hostile file is refused by a message, never by running out of memory or time.

Every data file (prediction, sample, annotation, manifest, config) is opened through `read_bounded`: the path is
stat-ed first, so a FIFO, a device or a folder is refused without being opened for reading (reading a FIFO blocks
forever, a device may never end), and a file larger than its bound is refused before a byte is read. The open
itself is non-blocking and re-checked with fstat, so a file swapped for a FIFO between the two calls is refused too.

The bounds are generous for real ABAW files (the largest test-set submission, about 1.2 M frames, is about 60 MB;
an annotation file of the longest Aff-Wild2 video about 1 MB) and small enough that the parsers' peak memory stays
under 1 GB on a hostile file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from submissions.errors import FormatError, Problem

MAX_PREDICTION_BYTES = 256 * 1024 * 1024
"""A single-file submission (about 4x the largest ABAW test set)."""

BYTES_PER_FRAME = 160
"""Bound on one prediction line (`video/00001.jpg,v,a`) when the frame count is known: a submission checked against
a sample of N frames may be at most `(N + 1) * BYTES_PER_FRAME + 4096` bytes."""

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
        super().__init__([Problem(str(path), line, reason, code)])


def _kind(mode: int) -> str | None:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    return None


def human_bytes(n: int) -> str:
    """`1536` -> `1.5 KiB` (for messages)."""
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} bytes"  # pragma: no cover - the loop always returns


def check_regular_file(path: str | Path, what: str, max_bytes: int) -> int:
    """Refuse, without opening it, anything at `path` that is not a regular file of at most `max_bytes`.

    Args:
        path: the file.
        what: what the file is meant to be, for messages ("prediction file").
        max_bytes: the largest size accepted.

    Returns:
        The file's size in bytes.

    Raises:
        InputRefusedError: missing, a folder, a FIFO, a device, or too large.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputRefusedError(path, f"{what} not found", code="missing") from None
    except OSError as exc:
        raise InputRefusedError(path, f"cannot read the {what} ({exc.strerror})", code="unreadable") from None
    kind = _kind(st.st_mode)
    if kind is not None:
        raise InputRefusedError(path, f"the {what} is {kind}, not a regular file; refusing to read it",
                                 code="not_regular")
    if st.st_size > max_bytes:
        raise InputRefusedError(
            path, f"the {what} is {human_bytes(st.st_size)}, more than the {human_bytes(max_bytes)} such a file can "
            "hold; refusing to read it", code="too_large"
        )
    return st.st_size


def read_bounded(path: str | Path, what: str, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes`, refused (not read) otherwise.

    Args:
        path: the file.
        what: what the file is meant to be, for messages.
        max_bytes: the largest size accepted.

    Raises:
        InputRefusedError: see `check_regular_file`; also when the file grows past the bound while read.
    """
    check_regular_file(path, what, max_bytes)
    try:
        # O_NONBLOCK: if the path was swapped for a FIFO after the stat, open returns at once instead of blocking.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        reason = "permission denied" if exc.errno in (errno.EACCES, errno.EPERM) else exc.strerror
        raise InputRefusedError(path, f"cannot read the {what} ({reason})", code="unreadable") from None
    try:
        kind = _kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise InputRefusedError(path, f"the {what} is {kind}, not a regular file; refusing to read it",
                                 code="not_regular")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise InputRefusedError(path, f"the {what} grew past {human_bytes(max_bytes)} while being read",
                                        code="too_large")
        return b"".join(chunks)
    except OSError as exc:
        raise InputRefusedError(path, f"cannot read the {what} ({exc.strerror})", code="unreadable") from None
    finally:
        os.close(fd)


def decode_text(data: bytes, path: str | Path, what: str) -> str:
    """UTF-8 text of a data file's bytes; a zip archive, NUL bytes or invalid UTF-8 are refused with a message.

    Args:
        data: the file's bytes.
        path: the file, for messages.
        what: what the file is meant to be.

    Raises:
        InputRefusedError: the bytes are not UTF-8 text.
    """
    if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        raise InputRefusedError(
            path, f"the {what} is a zip archive, not a text file (a submission package is checked by "
            "`harness validate PACKAGE.zip --sample ...`)", code="binary"
        )
    nul = data.find(b"\x00")
    if nul >= 0:
        raise InputRefusedError(path, f"the {what} holds a NUL byte at offset {nul}: a binary file, not text",
                                 code="binary")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputRefusedError(
            path, f"the {what} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})", line,
            code="encoding",
        ) from None


def read_text_bounded(path: str | Path, what: str, max_bytes: int) -> str:
    """`read_bounded` then `decode_text`: the UTF-8 text of a bounded regular file.

    Args:
        path: the file.
        what: what the file is meant to be, for messages.
        max_bytes: the largest size accepted.

    Raises:
        InputRefusedError: not a regular file, too large, unreadable, or not UTF-8 text.
    """
    return decode_text(read_bounded(path, what, max_bytes), path, what)


def shorten(text: str, limit: int = 60) -> str:
    """`text` cut to `limit` characters with the count of what was cut (so a 10 MB line never reaches a message)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"
