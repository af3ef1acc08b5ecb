"""The stable config hash and the file digest: the keys every cached result is stored under."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.hashing import HashError, sha256_file, stable_hash


@dataclass(frozen=True)
class _Cfg:
    hop_s: float = 0.01
    sets: tuple[str, ...] = ("mfcc39", "eGeMAPSv01a")


def test_stable_hash_is_stable() -> None:
    a = stable_hash({"b": 1, "a": [1, 2.5, "x"], "c": {"z": None, "y": True}})
    b = stable_hash({"c": {"y": True, "z": None}, "a": (1, 2.5, "x"), "b": 1})
    assert a == b and len(a) == 64
    assert stable_hash(_Cfg()) == stable_hash({"hop_s": 0.01, "sets": ["mfcc39", "eGeMAPSv01a"]})
    assert stable_hash(_Cfg()) != stable_hash(_Cfg(hop_s=0.02))
    assert stable_hash({"p": Path("a/b")}) == stable_hash({"p": "a/b"})
    # a known value: the digest must not change between runs, machines or Python versions
    assert stable_hash({"a": 1}) == "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862"
    with pytest.raises(HashError, match="not JSON-able"):
        stable_hash({"f": object()})
    with pytest.raises(HashError, match="not hashable"):
        stable_hash({"x": float("nan")})


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=10,
)


@given(_json)
def test_stable_hash_ignores_key_order_and_tuple_spelling(value: object) -> None:
    def reorder(v: object) -> object:
        if isinstance(v, dict):
            return {k: reorder(v[k]) for k in reversed(list(v))}
        if isinstance(v, list):
            return tuple(reorder(x) for x in v)
        return v

    assert stable_hash(value) == stable_hash(reorder(value))


def test_sha256_file_reads_in_chunks(tmp_path: Path) -> None:
    data = bytes(range(256)) * 9000  # over two 1 MiB chunks
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()
