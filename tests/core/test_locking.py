"""FolderLock: one holder at a time, the owner's own error for the others, freed when its holder dies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import HarnessError
from core.locking import FolderLock, LockHeldError


class _BusyError(HarnessError):
    pass


def test_second_holder_gets_the_owners_error_naming_the_holder(tmp_path: Path) -> None:
    first = FolderLock(tmp_path / "sub" / ".lock").acquire()
    assert first.held and (tmp_path / "sub" / ".lock").read_text().strip().isdigit()
    with pytest.raises(_BusyError, match=r"sub/\.lock held by \d+"):
        FolderLock(tmp_path / "sub" / ".lock", lambda p, who: _BusyError(f"{p} held by {who}")).acquire()
    with pytest.raises(LockHeldError):  # no error factory: the lock's own error
        FolderLock(tmp_path / "sub" / ".lock").acquire()
    first.release()
    first.release()  # idempotent
    assert not first.held
    with FolderLock(tmp_path / "sub" / ".lock") as again:
        assert again.held and again.acquire() is again  # re-acquiring by the holder is a no-op
    assert not again.held


def test_lock_of_a_killed_holder_is_free(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    code = f"from core.locking import FolderLock; FolderLock({str(lock)!r}).acquire(); import os; os._exit(0)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
    with FolderLock(lock) as held:
        assert held.held
