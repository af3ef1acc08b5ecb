"""core.safe_read: the one bounded reader (bytes, text, JSON depth and digits and type, JSON lines, line blocks,
npy/npz headers), and core.locking's full-disk message."""

from __future__ import annotations

import errno
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import locking
from core.atomic import DiskFullError
from core.errors import printable
from core.safe_read import (
    MAX_INT_DIGITS,
    MAX_JSON_DEPTH,
    ReadError,
    iter_json_lines,
    iter_line_blocks,
    json_depth,
    npy_header,
    parse_json,
    read_json,
    read_npy,
    read_npz,
    read_text,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text("ab[]{}\"\\,", max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text("xy[", max_size=3), inner, max_size=3),
    max_leaves=20,
)


def true_depth(value) -> int:
    if isinstance(value, list):
        return 1 + max((true_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((true_depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_json_depth_is_the_nesting_of_arrays_and_objects_strings_aside(value):
    assert json_depth(json.dumps(value)) == true_depth(value)


def test_parse_json_bounds_depth_digits_constants_and_type():
    assert parse_json('{"a": [1, 2.5, "x"]}', "f.json", "record") == {"a": [1, 2.5, "x"]}
    nested = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert parse_json(nested, "f.json", "record", expect=list) is not None  # exactly the bound is read
    with pytest.raises(ReadError, match=r"^f\.json: the record nests deeper than 64 levels \(200000\)"):
        parse_json("[" * 200_000 + "]" * 200_000, "f.json", "record")
    with pytest.raises(ReadError, match=r"f\.json: not valid JSON \(an integer of 5000 digits \(at most 40\)\)"):
        parse_json('{"a": ' + "9" * 5000 + "}", "f.json", "record")
    assert parse_json('{"a": ' + "9" * MAX_INT_DIGITS + "}", "f.json", "record")["a"] == int("9" * MAX_INT_DIGITS)
    with pytest.raises(ReadError, match="NaN is not a JSON number"):
        parse_json('{"a": NaN}', "f.json", "record")
    # A file the harness writes with json.dumps's default (a NaN score) is read when the reader asks for it.
    loose = parse_json('{"a": NaN, "b": -Infinity}', "f.json", "scores", allow_nan=True)
    assert np.isnan(loose["a"]) and loose["b"] == float("-inf")
    with pytest.raises(ReadError, match=r"^run\.json: the run record holds a JSON array, expected a JSON object$"):
        parse_json("[1, 2]", "run.json", "run record")
    with pytest.raises(ReadError, match=r"^m\.jsonl:7: not valid JSON"):
        parse_json("{nope", "m.jsonl", "metrics line", line=7)


def test_special_files_and_encodings_are_named_never_read(tmp_path):
    os.mkfifo(tmp_path / "fifo.json")
    with pytest.raises(ReadError, match="is a FIFO"):  # returns at once: the FIFO is never opened
        read_json(tmp_path / "fifo.json", "summary")
    with pytest.raises(ReadError, match="is a device"):
        read_text("/dev/zero", "release list")
    with pytest.raises(ReadError, match="is a folder"):
        read_json(tmp_path, "summary")
    (tmp_path / "u16.json").write_bytes('{"a": 1}'.encode("utf-16"))
    with pytest.raises(ReadError, match="is UTF-16 text; save it as UTF-8"):
        read_json(tmp_path / "u16.json", "summary")
    (tmp_path / "u16le.txt").write_bytes("video_1\nvideo_2\n".encode("utf-16-le"))  # no byte-order mark
    with pytest.raises(ReadError, match="UTF-16"):
        read_text(tmp_path / "u16le.txt", "release list")
    (tmp_path / "latin.txt").write_bytes(b"ok\ncaf\xe9\n")
    with pytest.raises(ReadError, match=r"latin\.txt:2: the release list is not UTF-8 text \(byte 0xe9 at offset 6\)"):
        read_text(tmp_path / "latin.txt", "release list")
    with open(tmp_path / "big.json", "wb") as fh:
        fh.truncate(1 << 30)
    with pytest.raises(ReadError, match=r"1\.0 GiB, more than the 64\.0 MiB"):
        read_json(tmp_path / "big.json", "scores file")


def test_names_are_printed_escaped():
    assert printable("bad\nname.mp4") == "bad\\nname.mp4"
    assert str(ReadError("a\tb.json", "bad")) == "a\\tb.json: bad"


def test_json_lines_stream_and_locate(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text('{"epoch": 0}\n\n{"epoch": 1}\r\n')
    assert list(iter_json_lines(p, "metrics file")) == [(1, {"epoch": 0}), (3, {"epoch": 1})]
    p.write_text('{"epoch": 0}\n[1, 2]\n')
    with pytest.raises(ReadError, match=r"metrics\.jsonl:2: the metrics file holds a JSON array"):
        list(iter_json_lines(p, "metrics file"))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text("ab,\r", max_size=12), max_size=30), st.integers(1, 40), st.integers(1, 8),
       st.booleans())  # fmt: skip
def test_line_blocks_give_back_every_line_and_only_overlong_ones_as_lengths(tmp_path_factory, lines, block, max_line,
                                                                           final_newline):  # fmt: skip
    text = "\n".join(lines) + ("\n" if final_newline and lines else "")
    p = tmp_path_factory.mktemp("blocks") / "f.txt"
    p.write_text(text, newline="")
    got: list[tuple[int, str | None]] = []
    assert list(iter_line_blocks(p, "file", 10**6, max_line, block=block)) or not text, "a file gave no block"
    for first, chunk, nbytes in iter_line_blocks(p, "file", 10**6, max_line, block=block):
        if chunk is None:
            got.append((first, None))
            assert nbytes > max_line
        else:
            got += [(first + i, ln) for i, ln in enumerate(chunk.split("\n"))]
    want_lines = text[:-1].split("\n") if text.endswith("\n") else (text.split("\n") if text else [])
    want = [(i + 1, None if len(ln) > max_line else ln) for i, ln in enumerate(want_lines)]
    assert got == want


def _npz_member(path: Path, name: str, shape: tuple[int, ...], data: bytes = b"") -> Path:
    with zipfile.ZipFile(path, "w") as zf, zf.open(name, "w", force_zip64=True) as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": shape})
        fh.write(data)
    return path


def test_npz_and_npy_headers_are_checked_before_any_data(tmp_path):
    with pytest.raises(ReadError, match=r"holds an array of shape \(1000000000000,\)"):
        read_npz(_npz_member(tmp_path / "a.npz", "mean.npy", (10**12,)), "statistics")
    with zipfile.ZipFile(tmp_path / "b.npz", "w", compression=zipfile.ZIP_DEFLATED) as zf, \
            zf.open("mean.npy", "w", force_zip64=True) as fh:  # fmt: skip
        for _ in range(40):
            fh.write(b"\0" * (1 << 20))
    with pytest.raises(ReadError, match=r"'mean\.npy' inflates to 40\.0 MiB, more than 16\.0 MiB"):
        read_npz(tmp_path / "b.npz", "statistics", max_bytes=16 << 20)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ReadError, match="holds Python objects"):
        read_npy(tmp_path / "obj.npy", "cached feature")
    with open(tmp_path / "sparse.npy", "wb") as fh:  # honest header, then a 40 GB hole
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": (10**7, 1024)})
        fh.truncate(fh.tell() + 4 * 10**7 * 1024)
    with pytest.raises(ReadError, match=r"shape \(10000000, 1024\) \(38.1 GiB\), more than the 512.0 MiB"):
        npy_header(tmp_path / "sparse.npy", "cached feature")
    np.save(tmp_path / "ok.npy", np.arange(6, dtype=np.float32).reshape(3, 2))
    assert npy_header(tmp_path / "ok.npy")[:2] == ((3, 2), np.dtype("<f4"))
    with open(tmp_path / "ok.npy", "r+b") as fh:
        fh.truncate(os.path.getsize(tmp_path / "ok.npy") - 4)
    with pytest.raises(ReadError, match="shorter than"):
        read_npy(tmp_path / "ok.npy", "cached feature")
    np.savez(tmp_path / "good.npz", a=np.ones(3))
    np.testing.assert_array_equal(read_npz(tmp_path / "good.npz")["a"], np.ones(3))


def test_a_full_disk_while_taking_a_lock_is_the_disk_full_message(tmp_path, monkeypatch):
    def full(*_a, **_k):  # what a full disk does to the pid write
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(locking.os, "pwrite", full)
    with pytest.raises(DiskFullError, match=r"run\.lock: no space left on device; the lock could not be taken"):
        locking.acquire_lock(tmp_path / "run.lock")
    monkeypatch.undo()
    locking.release_lock(locking.acquire_lock(tmp_path / "run.lock"))  # the lock was let go: it is taken again


def test_a_write_that_cannot_start_names_the_target_not_a_temporary_file(tmp_path, monkeypatch):
    import tempfile

    from core.atomic import atomic_write_text

    def refuse(*_a, **_k):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".out.csv.x1y2.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(OSError) as info:
        atomic_write_text(tmp_path / "out.csv", "x")
    assert info.value.filename == str(tmp_path / "out.csv") and ".tmp" not in str(info.value)


def test_hashing_a_fifo_is_refused_never_read(tmp_path):
    from core.hashing import sha256_file

    os.mkfifo(tmp_path / "sample.txt")
    with pytest.raises(ReadError, match="is a FIFO"):
        sha256_file(tmp_path / "sample.txt")
