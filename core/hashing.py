"""Stable hashes: of a JSON-able config (the key every cached result is stored under) and of a file's bytes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import HarnessError
from core.safe_read import iter_chunks


class HashError(HarnessError, ValueError):
    """A value that has no stable JSON spelling (not JSON-able, NaN/inf, a non-string key)."""


def jsonable(obj: Any) -> Any:
    """`obj` as plain JSON values: dataclasses and mappings as dicts, tuples as lists, paths as strings.

    Raises:
        HashError: a value of another type, or a mapping with a non-string key.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        if not all(isinstance(k, str) for k in obj):
            raise HashError(f"config keys must be strings, got {list(obj)[:5]}")
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise HashError(f"config value of type {type(obj).__name__} is not JSON-able: {obj!r}")


def stable_hash(obj: Any) -> str:
    """Stable sha256 hex digest of a JSON-able config (dicts in any key order, dataclasses, tuples, paths).

    Args:
        obj: the config that determines a result's values.

    Raises:
        HashError: `obj` has no stable JSON spelling.

    >>> stable_hash({"b": 1, "a": (2, 3)}) == stable_hash({"a": [2, 3], "b": 1})
    True
    >>> stable_hash({"a": 1})[:12]
    '015abd7f5cc5'
    """
    try:
        text = json.dumps(jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except ValueError as exc:  # NaN/inf have no stable JSON spelling
        raise HashError(f"config is not hashable as JSON: {exc}") from exc
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def sha256_file(path: str | Path) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB chunks (`core.safe_read`: a FIFO or a device is refused, never
    read).

    Raises:
        ReadError: not a regular file, or unreadable.
    """
    h = hashlib.sha256()
    for chunk in iter_chunks(path, "file", sys.maxsize):
        h.update(chunk)
    return h.hexdigest()
