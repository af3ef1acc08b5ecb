"""Exclusive, non-blocking file locks (flock) that record the holder's pid: one writer per cache or run folder."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

from submissions.errors import HarnessError


class LockHeldError(HarnessError):
    """Another process holds the lock.

    Args:
        path: the lock file.
        holder: the pid the holder wrote, or "unknown".
    """

    def __init__(self, path: Path, holder: str):
        self.path, self.holder = path, holder
        super().__init__(f"{path} is held by pid {holder}")


def acquire_lock(path: str | Path) -> IO[str]:
    """Take the lock on `path` (created if needed) without waiting; write our pid into it.

    Returns:
        the open lock file: keep it open for as long as the lock is held, and pass it to `release_lock`.

    Raises:
        LockHeldError: another process holds it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "unknown"
        fh.close()
        raise LockHeldError(path, holder) from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


def release_lock(fh: IO[str] | None) -> None:
    """Release a lock taken by `acquire_lock` (None is a no-op)."""
    if fh is None:
        return
    with contextlib.suppress(OSError):
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    fh.close()
