"""Atomic file writes: a killed process leaves the old file or the new one, never half a file.

Every file the harness writes goes through these helpers: the bytes go to a temporary file in the same folder,
are flushed and fsynced, then renamed over the target (rename is atomic within a filesystem). On any error,
including a full disk, the temporary file is removed and the earlier file, if any, is untouched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from core.errors import HarnessError


class DiskFullError(HarnessError, OSError):
    """The disk filled up while writing; the target file was left as it was."""


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary sibling of `path` for writing; rename it onto `path` when the block ends cleanly.

    Args:
        path: the final file.
        mode: "w" (text) or "wb" (binary).
        encoding: text encoding; ignored for binary mode.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp creates 0600; give the file the permissions an ordinary open() would (0666 less the umask).
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if exc.errno == errno.ENOSPC:
            raise DiskFullError(
                errno.ENOSPC, f"{path}: no space left on device; the previous version of the file is intact"
            ) from exc
        raise
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` atomically and return the path."""
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically and return the path."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


_MKSTEMP_TAIL = re.compile(r"\.[a-z0-9_]{8}\.tmp")
"""What `tempfile.mkstemp` appends to `atomic_open`'s prefix: 8 characters of its alphabet, then our suffix."""


def remove_temps_of(path: str | Path) -> int:
    """Delete the temporary files a killed `atomic_open(path)` left beside `path` (`.NAME.XXXXXXXX.tmp`, exactly
    the names it makes), and no other file: for targets in folders the harness does not own (a `--out` zip).

    Args:
        path: the file `atomic_open` writes.

    Returns:
        How many files were removed.
    """
    path = Path(path)
    prefix = f".{path.name}"
    removed = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            tail = entry.name[len(prefix):] if entry.name.startswith(prefix) else ""
            if tail and _MKSTEMP_TAIL.fullmatch(tail) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed += 1
    return removed


def remove_stale_temps(folders: Iterable[str | Path]) -> int:
    """Delete the temporary files (`.NAME.XXXX.tmp`) that writes cut short by a kill left in `folders`.

    Only the process that owns the folders (holds their lock) may call this: another writer's temporary file
    would vanish under it.

    Args:
        folders: folders to clean (not recursive); missing ones are skipped.

    Returns:
        How many files were removed.
    """
    removed = 0
    for folder in map(Path, folders):
        if not folder.is_dir():
            continue
        for tmp in folder.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed += 1
    return removed
