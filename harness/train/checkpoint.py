"""A run's epoch checkpoints: their tags, the one to resume from, and DeepSpeed's `latest` marker read with a bound.
"""

from __future__ import annotations

import os

from core.errors import HarnessError, printable
from core.ownership import OwnershipError, check_plain_name
from core.safe_read import ReadError, read_bytes

CKPT_PREFIX = "epoch"


def _checkpoint_tags(folder: os.PathLike | str) -> list[str]:
    from pathlib import Path

    p = Path(folder)
    if not p.is_dir():
        return []
    return sorted(d.name for d in p.iterdir() if d.is_dir() and d.name.startswith(CKPT_PREFIX))


def _resume_tag(folder: os.PathLike | str) -> str | None:
    """The checkpoint to resume from: the one DeepSpeed's `latest` file names, or None.

    `latest` is written only after a checkpoint is complete, so a folder that a kill left half-written (newer by
    name than `latest`) is never loaded; without a `latest` there is no checkpoint known to be whole.
    """
    from pathlib import Path

    p = Path(folder)
    marker = p / "latest"
    if not (marker.exists() or marker.is_symlink()):
        return None
    tag = _read_latest(marker)
    return tag if tag in _checkpoint_tags(p) else None


LATEST_MAX_BYTES = 4096
"""DeepSpeed's `latest` holds one tag (`global_step120`); anything longer is not one it wrote."""


def _read_latest(marker: os.PathLike[str]) -> str:
    """The tag `latest` names, read without following a link or waiting on a FIFO, bounded.

    Raises:
        HarnessError: not a regular file, too long, not UTF-8, or a tag that is not a plain name inside the
            checkpoints folder (`../../etc`): a located message, never a silent fresh start.
    """
    from pathlib import Path

    marker = Path(marker)
    fix = "delete it (and the checkpoints folder) to start the run again, or restore the run folder"
    if marker.is_symlink():  # what a link names is never read: it may lie outside the run folder
        raise HarnessError(f"{printable(str(marker))}: a symbolic link, not a checkpoint marker; {fix}")
    try:  # core.safe_read: a FIFO or device is refused before it is opened, the size before it is read
        data = read_bytes(marker, "checkpoint marker", LATEST_MAX_BYTES)
    except ReadError as exc:
        if exc.code == "too_large":
            raise HarnessError(f"{printable(str(marker))}: longer than {LATEST_MAX_BYTES} bytes: not a checkpoint "
                               f"marker; {fix}") from None  # fmt: skip
        raise HarnessError(f"{exc}; {fix}") from None
    try:
        tag = data.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise HarnessError(f"{printable(str(marker))}: not UTF-8 (byte {exc.start}): not a checkpoint marker; {fix}"
                           ) from None  # fmt: skip
    try:
        check_plain_name(tag, "the checkpoint tag")
    except OwnershipError as exc:
        raise HarnessError(f"{printable(str(marker))}: names a checkpoint outside {printable(str(marker.parent))} "
                           f"({exc}); {fix}") from None  # fmt: skip
    return tag
