"""Exclusive, non-blocking file locks (flock) that record the holder's pid: one writer per folder or per video.

`FolderLock` is the one lock object of the project: the run folder (`harness.runs.RunDir`), the feature cache
(`preprocessing.cache.FeatureCache`, one lock per video), the face crops (`preprocessing.crops.lock_crops`) and the
benchmark report folder each hold one, and each turns `LockHeldError` into an error of its own that says what the
other process is doing there. The kernel frees a lock when its holder dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

from core.atomic import DiskFullError
from core.errors import HarnessError


class LockHeldError(HarnessError):
    """Another process holds the lock.

    Args:
        path: the lock file.
        holder: the pid the holder wrote, or "unknown".
    """

    def __init__(self, path: Path, holder: str):
        self.path, self.holder = path, holder
        super().__init__(f"{path} is held by pid {holder}")


def acquire_lock(path: str | Path, wait: bool = False) -> IO[str]:
    """Take the lock on `path` (created if needed) and write our pid into it.

    Args:
        path: the lock file.
        wait: block until the holder lets go, instead of failing at once.

    Returns:
        the open lock file: keep it open for as long as the lock is held, and pass it to `release_lock`.

    Raises:
        LockHeldError: another process holds it.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
    except OSError as exc:
        raise _disk_full(exc, path) from None
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "unknown"
        fh.close()
        raise LockHeldError(path, holder) from None
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
    except OSError as exc:
        release_lock(fh)
        raise _disk_full(exc, path) from None
    return fh


def _disk_full(exc: OSError, path: Path) -> OSError:
    """A full disk as the atomic writer words it (`DiskFullError`); any other OSError as it is."""
    if exc.errno == errno.ENOSPC:
        return DiskFullError(errno.ENOSPC, f"{path}: no space left on device; the lock could not be taken")
    return exc


def release_lock(fh: IO[str] | None) -> None:
    """Release a lock taken by `acquire_lock` (None is a no-op)."""
    if fh is None:
        return
    with contextlib.suppress(OSError):
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    fh.close()


class FolderLock:
    """A lock file held from `acquire()` to `release()` (or over a `with` block); both are idempotent.

    Args:
        path: the lock file (its folder is created on `acquire`).
        held_error: builds the error raised when another process holds the lock, from the lock file and the
            holder's pid; the owner's own error type and words (None: `LockHeldError` itself).
    """

    def __init__(self, path: str | Path, held_error: Callable[[Path, str], HarnessError] | None = None):
        self.path = Path(path)
        self._held_error = held_error
        self._fh: IO[str] | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fh is not None

    def acquire(self, wait: bool = False) -> FolderLock:
        """Take the lock (no-op when already held by this object).

        Args:
            wait: block until the holder lets go, instead of failing at once (for short critical sections, such
                as merging a summary that several processes write).

        Raises:
            HarnessError: another process holds it and `wait` is False (the owner's error, or `LockHeldError`).
        """
        if self._fh is None:
            try:
                self._fh = acquire_lock(self.path, wait)
            except LockHeldError as exc:
                if self._held_error is None:
                    raise
                raise self._held_error(self.path, exc.holder) from None
        return self

    def release(self) -> None:
        """Release the lock, if held."""
        release_lock(self._fh)
        self._fh = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


LOCKS_DIR = ".locks"
"""Folder of the per-video lock files, inside the folder whose videos they guard (hidden: never a video's name)."""


def video_lock(root: str | Path, video: str, held_error: Callable[[Path, str], HarnessError] | None = None,
               ) -> FolderLock:  # fmt: skip
    """The (not yet taken) lock of one video's outputs under `root`: `<root>/.locks/<video>.lock`.

    Writers of different videos never wait for each other (the ranks of a sharded run each hold their own
    videos'); two writers of one video are turned away.

    Args:
        root: the folder holding one sub-folder per video (the feature cache, `cropped_aligned`).
        video: the video's name (a plain file name).
        held_error: as for `FolderLock`.
    """
    return FolderLock(Path(root) / LOCKS_DIR / f"{video}.lock", held_error)
