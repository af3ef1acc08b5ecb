"""Exclusive, non-blocking file locks (flock) that record the holder's pid: one writer per folder or per video.

`FolderLock` is the one lock object of the project: the run folder (`harness.folders.run.RunDir`), the feature cache
(`preprocessing.cache.FeatureCache`, one lock per video), the face crops (`preprocessing.crops.lock_crops`) and the
benchmark report folder each hold one, and each turns `LockHeldError` into an error of its own that says what the
other process is doing there. The kernel frees a lock when its holder dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import stat
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


_PID_TEXT = re.compile(rb"[0-9 \n]*")
"""What a lock file the harness wrote holds: a pid, padded."""
PID_WIDTH = 20
_HOLDER: list[int] = []
"""The pid written into lock files when it is not this process's own (see `set_holder_pid`)."""


def set_holder_pid(pid: int) -> None:
    """Write `pid` instead of this process's pid into the locks it takes from now on: a child that works for a
    run (`core.isolation`) names the run's process, the one a user sees and would wait for or stop."""
    _HOLDER[:] = [pid]
"""The holder's pid is written at offset 0, padded with spaces to this width: the file is never truncated."""


def _open_lock_file(path: Path) -> int:
    """Open (creating) a lock file without following a symbolic link; refuse anything but a regular file that is
    empty or holds a pid (a user's file under the lock's name is never written into)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise HarnessError(f"{path}: a symbolic link where the harness keeps a lock file; it is left as it is "
                               "(and what it points to): remove the link or choose another folder") from None
        if exc.errno == errno.ENOSPC:
            raise _disk_full(exc, path) from None
        raise HarnessError(f"{path}: cannot open the lock file ({exc.strerror})") from None
    st = os.fstat(fd)
    head = os.pread(fd, PID_WIDTH + 1, 0) if stat.S_ISREG(st.st_mode) else b""
    if not stat.S_ISREG(st.st_mode) or st.st_size > PID_WIDTH or not _PID_TEXT.fullmatch(head):
        os.close(fd)
        raise HarnessError(f"{path}: not a lock file the harness wrote (a special file, or a file of other "
                           "content); it is left as it is: move it away or choose another folder")
    return fd


def acquire_lock(path: str | Path, wait: bool = False) -> IO[str]:
    """Take the lock on `path` (created if needed) and write our pid into it.

    The file is opened without following a symbolic link and is never truncated: the pid is written over its
    first `PID_WIDTH` bytes, and a file holding anything but a pid is refused rather than written.

    Args:
        path: the lock file.
        wait: block until the holder lets go, instead of failing at once.

    Returns:
        the open lock file: keep it open for as long as the lock is held, and pass it to `release_lock`.

    Raises:
        LockHeldError: another process holds it.
        HarnessError: the path is a symbolic link, a special file or a file that is not a lock file.
        DiskFullError: no space for the lock file.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _disk_full(exc, path) from None
    fd = _open_lock_file(path)
    fh = os.fdopen(fd, "r+")  # held open for the lock's lifetime
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, PID_WIDTH, 0).decode("ascii", "replace").strip() or "unknown"
        fh.close()
        raise LockHeldError(path, holder) from None
    try:
        os.pwrite(fd, str(_HOLDER[0] if _HOLDER else os.getpid()).ljust(PID_WIDTH - 1).encode("ascii") + b"\n", 0)
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


def lock_file_name(video: str) -> str:
    """The lock file's name for a video: a hash of its name, so a long (251 characters) or odd name (a newline,
    any script) never makes a name the file system refuses; messages keep the video's own name."""
    return hashlib.sha256(video.encode("utf-8", "surrogatepass")).hexdigest()[:32] + ".lock"


def video_lock(root: str | Path, video: str, held_error: Callable[[Path, str], HarnessError] | None = None,
               ) -> FolderLock:  # fmt: skip
    """The (not yet taken) lock of one video's outputs under `root`: `<root>/.locks/<hash of the name>.lock`.

    Writers of different videos never wait for each other (the ranks of a sharded run each hold their own
    videos'); two writers of one video are turned away. A run holds a video's lock only while it works on that
    video, so the open files do not grow with the dataset.

    Args:
        root: the folder holding one sub-folder per video (the feature cache, `cropped_aligned`).
        video: the video's name.
        held_error: as for `FolderLock`.
    """
    return FolderLock(Path(root) / LOCKS_DIR / lock_file_name(video), held_error)
