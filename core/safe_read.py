"""The one bounded reader of every file the harness reads back: JSON, JSON lines, text, `.npy` and `.npz`.

A file someone else wrote (a downloaded run folder, a co-author's cache, a package, a release list) may be a FIFO,
a device, 40 GB of sparse zeros, JSON nested 200,000 deep or an integer of 5,000 digits. Every read here is
refused, with one located line (`path[:line]: reason`) raised as `ReadError` (a `HarnessError`), before it can
hang, exhaust memory or raise anything else:

- the path is opened with `O_NONBLOCK` and checked with `fstat` before a byte is read: a FIFO, a device, a socket
  or a folder is refused, and a FIFO never blocks the open (`check_regular` stats without opening at all);
- bytes: a bound per call (`MAX_JSON_BYTES`, `MAX_TEXT_BYTES` ... are the defaults), enforced again while reading
  (a file that grows is cut off);
- text: UTF-8 only; NUL bytes, a zip archive and UTF-16 (by its byte-order mark, or by its NUL-interleaved ASCII)
  are named as such, invalid UTF-8 by its line and offset;
- JSON: at most `MAX_JSON_DEPTH` levels of nesting (measured before parsing: Python's parser recurses and dies
  past about a thousand), integers of at most `MAX_INT_DIGITS` digits, no NaN/Infinity; the top-level value's
  type is checked by the caller's `expect`;
- arrays: the `.npy` header (and each `.npz` member's header, after its inflated size from the zip directory)
  gives shape and dtype; object arrays, arrays above `MAX_ARRAY_BYTES` and files shorter than their header says are
  refused before any data is read.

Pure functions (`parse_json`, `decode_text`, `json_depth`) work on bytes and text; the file wrappers add the reading.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from core.errors import HarnessError, printable

MAX_JSON_BYTES = 64 * 1024 * 1024
"""A JSON file the harness wrote (run.json, summary.json, scores.json, table_*.json, manifests): a few kB to a few
MB in practice; 64 MiB keeps the parsed objects well under 1 GB."""

MAX_JSONL_BYTES = 256 * 1024 * 1024
"""A JSON-lines log (metrics.jsonl: one short line per epoch, streamed line by line)."""

MAX_JSON_LINE_BYTES = 1024 * 1024
"""One line of a JSON-lines log."""

MAX_TEXT_BYTES = 16 * 1024 * 1024
"""A short text file (a release list, `checkpoints/latest`, a git hash, a resolved config)."""

MAX_JSON_DEPTH = 64
"""Nesting levels of a JSON value (the harness writes at most 5)."""

MAX_INT_DIGITS = 40
"""Digits of a JSON integer (a 64-bit integer has 20; Python's own bound is 4,300 and slow to reach)."""

MAX_ARRAY_BYTES = 512 * 1024 * 1024
"""Data of one `.npy` array or `.npz` member: a cached feature of the longest Aff-Wild2 video (about 54,000
frames x 768 float32) is about 170 MB; a header claiming more is refused, not allocated or mapped (a sparse 40 GB
`visual.npy` whose header agrees with its size included)."""

MAX_NPZ_MEMBERS = 100_000
"""Members of an `.npz` file (norm_stats.npz holds 6; a saved prediction file one per video of a split)."""


class ReadError(HarnessError):
    """A file the harness will not read: not a regular file, too large, not UTF-8, too deep, of the wrong type.

    Args:
        path: the file (printed escaped: a newline in a name shows as `\\n`).
        reason: what is wrong, in words.
        line: 1-based line, or 0 for the whole file.
        code: a short stable identifier (`not_regular`, `too_large`, `binary`, `encoding`, `unreadable`,
            `missing`, `json`, `too_deep`, `type`, `array`).
    """

    def __init__(self, path: str | Path, reason: str, line: int = 0, code: str = "refused"):
        self.path, self.reason, self.line, self.code = str(path), reason, line, code
        where = printable(str(path)) + (f":{line}" if line else "")
        super().__init__(f"{where}: {reason}")


def human_bytes(n: int) -> str:
    """`1536` -> `1.5 KiB` (for messages).

    >>> human_bytes(1536), human_bytes(12), human_bytes(3 << 30)
    ('1.5 KiB', '12 bytes', '3.0 GiB')
    """
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} bytes"  # pragma: no cover - the loop always returns


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


def _os_error(path: str | Path, what: str, exc: OSError) -> ReadError:
    if isinstance(exc, FileNotFoundError):
        return ReadError(path, f"{what} not found", code="missing")
    reason = "permission denied" if exc.errno in (errno.EACCES, errno.EPERM) else exc.strerror
    return ReadError(path, f"cannot read the {what} ({reason})", code="unreadable")


def _check_stat(path: str | Path, what: str, st: os.stat_result, max_bytes: int) -> int:
    kind = _kind(st.st_mode)
    if kind is not None:
        raise ReadError(path, f"the {what} is {kind}, not a regular file; refusing to read it", code="not_regular")
    if st.st_size > max_bytes:
        raise ReadError(path, f"the {what} is {human_bytes(st.st_size)}, more than the {human_bytes(max_bytes)} "
                        "such a file can hold; refusing to read it", code="too_large")  # fmt: skip
    return st.st_size


def check_regular(path: str | Path, what: str, max_bytes: int) -> int:
    """Refuse, without opening it, anything at `path` that is not a regular file of at most `max_bytes`.

    Args:
        path: the file (symbolic links are followed to what they name).
        what: what the file is meant to be, for messages ("prediction file").
        max_bytes: the largest size accepted.

    Returns:
        The file's size in bytes.

    Raises:
        ReadError: missing, unreadable, a folder, a FIFO, a device, or too large.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _os_error(path, what, exc) from None
    return _check_stat(path, what, st, max_bytes)


@contextlib.contextmanager
def open_regular(path: str | Path, what: str, max_bytes: int) -> Iterator[tuple[IO[bytes], int]]:
    """A regular file of at most `max_bytes`, opened for binary reading, with its size.

    The open is non-blocking (a FIFO put in the file's place returns at once) and the open file is checked with
    `fstat`, so what is read is what was checked.

    Args:
        path: the file.
        what: what the file is meant to be, for messages.
        max_bytes: the largest size accepted.

    Raises:
        ReadError: see `check_regular`.
    """
    check_regular(path, what, max_bytes)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _os_error(path, what, exc) from None
    try:
        size = _check_stat(path, what, os.fstat(fd), max_bytes)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb", buffering=0) as fh:
        yield fh, size


def iter_chunks(path: str | Path, what: str, max_bytes: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The bytes of a bounded regular file, `chunk` at a time (the whole file is never in memory at once).

    Raises:
        ReadError: see `check_regular`; also when the file grows past the bound while read.
    """
    with open_regular(path, what, max_bytes) as (fh, _size):
        total = 0
        while True:
            try:
                data = fh.read(min(chunk, max_bytes + 1 - total))
            except OSError as exc:
                raise _os_error(path, what, exc) from None
            if not data:
                return
            total += len(data)
            if total > max_bytes:
                raise ReadError(path, f"the {what} grew past {human_bytes(max_bytes)} while being read",
                                code="too_large")
            yield data


def read_bytes(path: str | Path, what: str, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes`, refused (not read) otherwise.

    Args:
        path: the file.
        what: what the file is meant to be, for messages.
        max_bytes: the largest size accepted.

    Raises:
        ReadError: see `check_regular`; also when the file grows past the bound while read.
    """
    return b"".join(iter_chunks(path, what, max_bytes))


def _looks_utf16(data: bytes) -> bool:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return True
    head = data[:256]
    # ASCII text saved as UTF-16 without a byte-order mark: (nearly) every other byte is NUL, the others never.
    n, odd, even = len(head) // 2, head[1::2].count(0), head[0::2].count(0)
    return n >= 4 and ((odd >= 0.9 * n and even == 0) or (even >= 0.9 * n and odd == 0))


def check_text_bytes(data: bytes, path: str | Path, what: str, offset: int = 0, line: int = 1) -> None:
    """Refuse bytes that are not UTF-8 text: UTF-16, a zip archive, NUL bytes, invalid UTF-8.

    Args:
        data: the bytes (the whole file, or one chunk of it).
        path: the file, for messages.
        what: what the file is meant to be.
        offset: where `data` starts in the file (for the offsets in messages).
        line: the line `data` starts on.

    Raises:
        ReadError: naming the encoding, the offset and the line.
    """
    if offset == 0:
        if _looks_utf16(data):
            raise ReadError(path, f"the {what} is UTF-16 text; save it as UTF-8", code="encoding")
        if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            raise ReadError(path, f"the {what} is a zip archive, not a text file (a submission package is checked "
                            "by `harness validate PACKAGE.zip --sample ...`)", code="binary")  # fmt: skip
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ReadError(path, f"the {what} holds a NUL byte at offset {offset + nul}: a binary file, not text",
                        line + data.count(b"\n", 0, nul), code="binary")  # fmt: skip
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReadError(path, f"the {what} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                        f"{offset + exc.start})", line + data.count(b"\n", 0, exc.start), code="encoding") from None


def decode_text(data: bytes, path: str | Path, what: str) -> str:
    """UTF-8 text of a file's bytes; UTF-16, a zip archive, NUL bytes or invalid UTF-8 are refused.

    Raises:
        ReadError: the bytes are not UTF-8 text.
    """
    check_text_bytes(data, path, what)
    return data.decode("utf-8")


def read_text(path: str | Path, what: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of a bounded regular file (see `read_bytes`, `decode_text`)."""
    return decode_text(read_bytes(path, what, max_bytes), path, what)


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_OPEN = np.frombuffer(b"[{", dtype=np.uint8)
_CLOSE = np.frombuffer(b"]}", dtype=np.uint8)


def json_depth(text: str | bytes) -> int:
    """How deeply the arrays and objects of a JSON text nest (brackets inside strings do not count).

    Vectorised (one regular expression and a cumulative sum), so a 64 MiB text is measured in a fraction of a
    second without recursion.

    >>> json_depth('{"a": [1, {"b": "[[["}]}'), json_depth("3"), json_depth("[" * 5 + "]" * 5)
    (3, 0, 5)
    """
    raw = text.encode("utf-8") if isinstance(text, str) else text
    bare = np.frombuffer(_STRING.sub(b'""', raw), dtype=np.uint8)
    if bare.size == 0:
        return 0
    step = np.isin(bare, _OPEN).astype(np.int32) - np.isin(bare, _CLOSE).astype(np.int32)
    return int(max(np.cumsum(step).max(), 0))


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {digits} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


_TYPE_NAMES = {dict: "a JSON object", list: "a JSON array", str: "a string", int: "an integer",
               float: "a number", bool: "true/false", type(None): "null"}  # fmt: skip


def type_name(value: Any) -> str:
    """What a parsed JSON value is, in words ("a JSON array")."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def parse_json(text: str, path: str | Path, what: str, expect: type | tuple[type, ...] | None = dict,
               line: int = 0, *, allow_nan: bool = False) -> Any:  # fmt: skip
    """Parse JSON text within the depth and integer bounds and check the top-level value's type.

    Args:
        text: the JSON text.
        path: the file, for messages.
        what: what the file is meant to be.
        expect: the type(s) the top-level value must have (None: any).
        line: the text's line in the file (JSON lines), 0 for a whole file.
        allow_nan: read `NaN`/`Infinity` as floats: for files the harness writes with `json.dumps`'s default,
            whose scores may be NaN (a run whose predictions are constant); the reader then judges the value.

    Raises:
        ReadError: not JSON, nested deeper than `MAX_JSON_DEPTH`, an integer longer than `MAX_INT_DIGITS`,
            NaN/Infinity (unless `allow_nan`), or a top-level value of another type.
    """
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ReadError(path, f"the {what} nests deeper than {MAX_JSON_DEPTH} levels ({depth}); refusing to parse it",
                        line, code="too_deep")  # fmt: skip
    try:
        value = json.loads(text, parse_int=_bounded_int, parse_constant=float if allow_nan else _no_constant)
    except json.JSONDecodeError as exc:
        raise ReadError(path, f"not valid JSON ({exc.msg}, column {exc.colno})",
                        line or exc.lineno, code="json") from None  # fmt: skip
    except (ValueError, RecursionError) as exc:
        raise ReadError(path, f"not valid JSON ({exc})", line, code="json") from None
    if expect is not None and not isinstance(value, expect):
        want = " or ".join(type_name(t()) if t is not type(None) else "null"
                           for t in (expect if isinstance(expect, tuple) else (expect,)))  # fmt: skip
        raise ReadError(path, f"the {what} holds {type_name(value)}, expected {want}", line, code="type")
    return value


def read_json(path: str | Path, what: str, expect: type | tuple[type, ...] | None = dict,
              max_bytes: int = MAX_JSON_BYTES, *, allow_nan: bool = False) -> Any:  # fmt: skip
    """A bounded JSON file, parsed and type-checked (see `read_text`, `parse_json`).

    Args:
        path: the file.
        what: what the file is meant to be ("run summary").
        expect: the type(s) of the top-level value (dict: a JSON object; None: any).
        max_bytes: the largest file accepted.
        allow_nan: read `NaN`/`Infinity` as floats (see `parse_json`).

    Raises:
        ReadError: one located line for any problem.
    """
    return parse_json(read_text(path, what, max_bytes), path, what, expect, allow_nan=allow_nan)


LINE_BLOCK_BYTES = 2 * 1024 * 1024
"""Bytes a line-block reader hands on at a time (`iter_line_blocks`)."""


def iter_line_blocks(path: str | Path, what: str, max_bytes: int, max_line: int,
                     block: int = LINE_BLOCK_BYTES) -> Iterator[tuple[int, str | None, int]]:  # fmt: skip
    """The lines of a bounded UTF-8 file in blocks of whole lines, for parsers that stream (a large file is never
    whole in memory, nor one Python string per line).

    Yields `(first line number, text, bytes)`: `text` is whole lines joined by `\n` (without the last line's
    `\n`), so `text.split("\n")` gives them; a line longer than `max_line` bytes comes alone as
    `(its line number, None, its length)` and is never decoded or held (a 10 MB line costs `block` bytes).
    A NUL byte, UTF-16 or invalid UTF-8 in any line refuses the file, naming the line.

    Raises:
        ReadError: see `check_regular`, `check_text_bytes`.
    """
    pending, lineno, offset, skipping = b"", 1, 0, -1
    for data in iter_chunks(path, what, max_bytes, chunk=block):
        if offset == 0 and not pending and skipping < 0 and _looks_utf16(data):  # the first chunk
            raise ReadError(path, f"the {what} is UTF-16 text; save it as UTF-8", code="encoding")
        if skipping >= 0:  # inside an overlong line: drop bytes up to its end (a NUL byte still names the file binary)
            end = data.find(b"\n")
            _no_nul(data if end < 0 else data[:end], path, what, offset + skipping, lineno)
            if end < 0:
                skipping += len(data)
                continue
            yield lineno, None, skipping + end
            lineno, offset, skipping, data = lineno + 1, offset + skipping + end + 1, -1, data[end + 1 :]
        buf = pending + data
        cut = buf.rfind(b"\n")
        head, pending = (buf[:cut], buf[cut + 1 :]) if cut >= 0 else (b"", buf)
        if cut >= 0:
            yield from _blocks_of(head, path, what, lineno, offset, max_line)
            lineno, offset = lineno + head.count(b"\n") + 1, offset + cut + 1
        if len(pending) > max_line:
            _no_nul(pending, path, what, offset, lineno)
            skipping, pending = len(pending), b""
    if skipping >= 0:
        yield lineno, None, skipping
    elif pending:
        yield from _blocks_of(pending, path, what, lineno, offset, max_line)


def _no_nul(data: bytes, path: str | Path, what: str, offset: int, line: int) -> None:
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ReadError(path, f"the {what} holds a NUL byte at offset {offset + nul}: a binary file, not text", line,
                        code="binary")  # fmt: skip


def _blocks_of(head: bytes, path: str | Path, what: str, lineno: int, offset: int, max_line: int,
               ) -> Iterator[tuple[int, str | None, int]]:  # fmt: skip
    """`head` (whole lines) as text blocks, each overlong line split out on its own (found vectorised)."""
    check_text_bytes(head, path, what, offset=offset, line=lineno)
    ends = np.flatnonzero(np.frombuffer(head, dtype=np.uint8) == 10)
    starts = np.concatenate(([0], ends + 1))
    stops = np.concatenate((ends, [len(head)]))
    long = np.flatnonzero(stops - starts > max_line)
    first = 0  # index of the first line not yet handed on
    for k in (*long.tolist(), len(starts)):
        if k > first:
            lo, hi = int(starts[first]), int(stops[k - 1])
            yield lineno + first, head[lo:hi].decode("utf-8"), hi - lo
        if k < len(starts):
            yield lineno + k, None, int(stops[k] - starts[k])
        first = k + 1


def iter_lines(path: str | Path, what: str, max_bytes: int, max_line: int = MAX_JSON_LINE_BYTES,
               ) -> Iterator[tuple[int, str]]:  # fmt: skip
    """(line number, text) of every line of a bounded UTF-8 file, read a chunk at a time (never whole in memory).

    Lines end at `\n` only (a `\r` before it is dropped); U+2028 and other Unicode separators are text.

    Args:
        path: the file.
        what: what the file is meant to be, for messages.
        max_bytes: the largest file accepted.
        max_line: the longest line accepted, in bytes.

    Raises:
        ReadError: at the first line too long or not UTF-8, or when the file is refused (see `check_regular`).
    """
    pending, lineno, offset = b"", 1, 0
    for data in iter_chunks(path, what, max_bytes):
        lines = (pending + data).split(b"\n")
        pending = lines.pop()
        if len(pending) > max_line:
            raise ReadError(path, f"a line longer than {human_bytes(max_line)} in the {what}", lineno,
                            code="too_large")  # fmt: skip
        for raw in lines:
            yield lineno, _line_text(raw, path, what, lineno, offset, max_line)
            lineno, offset = lineno + 1, offset + len(raw) + 1
    if pending:
        yield lineno, _line_text(pending, path, what, lineno, offset, max_line)


def _line_text(raw: bytes, path: str | Path, what: str, lineno: int, offset: int, max_line: int) -> str:
    if len(raw) > max_line:
        raise ReadError(path, f"a line of {human_bytes(len(raw))} in the {what} (at most {human_bytes(max_line)})",
                        lineno, code="too_large")  # fmt: skip
    check_text_bytes(raw, path, what, offset=offset, line=lineno)
    return raw.decode("utf-8").removesuffix("\r")


def iter_json_lines(path: str | Path, what: str, expect: type | tuple[type, ...] | None = dict,
                    max_bytes: int = MAX_JSONL_BYTES) -> Iterator[tuple[int, Any]]:  # fmt: skip
    """(line number, value) of every non-blank line of a bounded JSON-lines file, read a chunk at a time.

    Args:
        path: the file.
        what: what the file is meant to be ("metrics file").
        expect: the type(s) of each line's value.
        max_bytes: the largest file accepted.

    Raises:
        ReadError: at the first bad line (too long, not UTF-8, not JSON, too deep, of another type).
    """
    for lineno, text in iter_lines(path, what, max_bytes):
        if text.strip():
            yield lineno, parse_json(text, path, what, expect, line=lineno)


# ---------------------------------------------------------------------------------------------------------------
# Arrays
# ---------------------------------------------------------------------------------------------------------------


def _array_header(fh: IO[bytes], path: str | Path, what: str, max_bytes: int) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data bytes) from an open `.npy` stream's header, checked against the bounds."""
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, OSError, SyntaxError, TypeError, EOFError) as exc:
        raise ReadError(path, f"the {what} is not a .npy array ({exc})", code="array") from None
    if dtype.hasobject:
        raise ReadError(path, f"the {what} holds Python objects (pickled data); refusing to load it", code="array")
    if any(int(d) < 0 for d in shape):
        raise ReadError(path, f"the {what} has a negative dimension {shape}", code="array")
    n = 1
    for d in shape:
        n *= int(d)  # Python integers: a 10**12 x 10**12 header cannot overflow the check
    nbytes = n * dtype.itemsize
    if nbytes > max_bytes:
        raise ReadError(path, f"the {what} holds an array of shape {tuple(shape)} ({human_bytes(nbytes)}), more "
                        f"than the {human_bytes(max_bytes)} an array may hold; refusing to load it", code="too_large")
    return tuple(int(d) for d in shape), dtype, nbytes


def npy_header(path: str | Path, what: str = "array file", max_bytes: int = MAX_ARRAY_BYTES,
               ) -> tuple[tuple[int, ...], np.dtype, int]:  # fmt: skip
    """(shape, dtype, byte length the file must have) from a `.npy` file's header, without reading the data.

    Raises:
        ReadError: not a regular file, not a `.npy` header, an object dtype, or data over `max_bytes`.
    """
    # The header, not the file's size, decides: a sparse file is as large as its header says.
    with open_regular(path, what, sys.maxsize) as (fh, _size):
        shape, dtype, nbytes = _array_header(fh, path, what, max_bytes)
        return shape, dtype, fh.tell() + nbytes


def read_npy(path: str | Path, what: str = "array file", mmap: bool = False,
             max_bytes: int = MAX_ARRAY_BYTES) -> np.ndarray:  # fmt: skip
    """A `.npy` array, its header checked first (no objects, at most `max_bytes` of data, as long as it says).

    Args:
        path: the file.
        what: what the file is meant to be ("cached feature").
        mmap: map the data read-only instead of reading it.
        max_bytes: the largest array accepted.

    Raises:
        ReadError: one located line for any problem.
    """
    shape, _dtype, need = npy_header(path, what, max_bytes)
    size = check_regular(path, what, need + (1 << 20))
    if size < need:
        raise ReadError(path, f"the {what} is {human_bytes(size)}, shorter than the {human_bytes(need)} its header "
                        f"(shape {shape}) needs: a damaged or cut file", code="array")  # fmt: skip
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ReadError(path, f"the {what} cannot be read ({exc})", code="array") from None


def read_npz(path: str | Path, what: str = "array file", max_bytes: int = MAX_ARRAY_BYTES,
             max_file_bytes: int = MAX_ARRAY_BYTES, max_members: int = MAX_NPZ_MEMBERS) -> dict[str, np.ndarray]:
    """Every array of an `.npz` file, each member's inflated size and `.npy` header checked before it is read.

    Args:
        path: the file.
        what: what the file is meant to be ("normalisation statistics").
        max_bytes: the largest array (and the largest inflated member) accepted; all members together get twice.
        max_file_bytes: the largest file accepted.
        max_members: the most members accepted.

    Raises:
        ReadError: one located line for any problem (not a zip, too many members, a member that inflates past the
            bound, an object array ...).
    """
    with open_regular(path, what, max_file_bytes) as (fh, _size):
        try:
            zf = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise ReadError(path, f"the {what} is not an .npz archive ({exc})", code="array") from None
        with zf:
            infos = zf.infolist()
            if len(infos) > max_members:
                raise ReadError(path, f"the {what} has {len(infos)} members (at most {max_members})",
                                code="too_large")  # fmt: skip
            total = sum(i.file_size for i in infos)
            for info in infos:
                if info.file_size > max_bytes + (1 << 20) or total > 2 * max_bytes:
                    raise ReadError(path, f"the {what}'s member {printable(info.filename)!r} inflates to "
                                    f"{human_bytes(info.file_size)}, more than {human_bytes(max_bytes)}; refusing to "
                                    "read it", code="too_large")  # fmt: skip
            out: dict[str, np.ndarray] = {}
            for info in infos:
                where = f"{path}!{info.filename}"
                try:
                    with zf.open(info) as member:
                        _array_header(member, where, what, max_bytes)
                        with zf.open(info) as again:
                            out[info.filename.removesuffix(".npy")] = np.lib.format.read_array(
                                again, allow_pickle=False)  # fmt: skip
                except ReadError:
                    raise
                except (ValueError, OSError, EOFError, zipfile.BadZipFile, RuntimeError) as exc:
                    raise ReadError(where, f"the {what} cannot be read ({exc})", code="array") from None
            return out
