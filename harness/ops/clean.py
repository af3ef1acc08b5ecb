"""Shrinking a demo or experiment folder: the DeepSpeed checkpoints of finished runs are most of its bytes.

A run folder keeps `checkpoints/` so that an interrupted run resumes from its last epoch. Once the run has its final
record (`metrics.jsonl` ends with `{"event": "final"}`), a rerun reuses it from the final record and
`best.safetensors` alone, so its checkpoints can go without losing anything a rerun needs.
"""

from __future__ import annotations

import os
import shutil
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import HarnessError
from core.ownership import OwnershipError, read_record
from core.safe_read import ReadError, iter_json_lines
from harness.folders.run import CHECKPOINTS_DIR, FINAL_EVENT, METRICS_FILE


@dataclass(frozen=True)
class CleanReport:
    """What `clean_checkpoints` found (and removed, unless a dry run).

    Args:
        removed: the checkpoint folders of finished runs.
        kept: checkpoint folders of runs without a final record (interrupted: `--resume` needs them).
        freed_bytes: bytes in `removed`.
        total_bytes: bytes under the root before cleaning.
        unrecorded: `checkpoints/` folders whose parent's ownership record (`core.ownership`) does not hold them:
            the harness did not write them, so they are left, whatever their name says.
    """

    removed: list[Path]
    kept: list[Path]
    freed_bytes: int
    total_bytes: int
    unrecorded: list[Path] = field(default_factory=list)


def _size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            p = Path(dirpath) / f
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def run_is_finished(run: Path) -> bool:
    """Whether `run/metrics.jsonl` ends with the final record (`harness.folders.run.RunDir.write_final`)."""
    try:
        tail = deque(iter_json_lines(run / METRICS_FILE, "metrics file"), maxlen=1)
    except ReadError:  # missing, a FIFO, damaged: not known to be finished, so nothing of it is removed
        return False
    return bool(tail) and tail[0][1].get("event") == FINAL_EVENT


def clean_checkpoints(root: Path, dry_run: bool = False) -> CleanReport:
    """Remove the `checkpoints/` folders of every finished run under `root`.

    Args:
        root: a demo, experiment or run folder.
        dry_run: only report what would go.

    Raises:
        HarnessError: `root` is not a folder.
    """
    if not root.is_dir():
        raise HarnessError(f"{root}: error: not a folder")
    total = _size(root)
    removed, kept, unrecorded, freed = [], [], [], 0
    # Sorted walk: the report lists folders in the same order on every machine.
    for ckpt in sorted(p for p in root.rglob(CHECKPOINTS_DIR) if p.is_dir() and not p.is_symlink()):
        if not _recorded(ckpt):
            unrecorded.append(ckpt)
        elif run_is_finished(ckpt.parent):
            freed += _size(ckpt)
            removed.append(ckpt)
            if not dry_run:
                shutil.rmtree(ckpt)
        else:
            kept.append(ckpt)
    return CleanReport(removed, kept, freed, total, unrecorded)


def _recorded(ckpt: Path) -> bool:
    """Whether the run folder's ownership record holds this `checkpoints/` (a damaged record: not)."""
    try:
        record = read_record(ckpt.parent)
    except OwnershipError:
        return False
    return record is not None and CHECKPOINTS_DIR in record
