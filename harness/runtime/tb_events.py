"""TensorBoard event files of a training run: one point per epoch, in `<run>/tb/`, written by `harness.train.loop.fit`.

Each epoch's record of metrics.jsonl becomes scalars at step = the epoch number (0-based, as in metrics.jsonl):

    train/loss    the epoch's mean training loss        (record key `train_loss`)
    train/lr      the learning rate after the epoch     (`lr`)
    val/ccc_v     validation CCC of valence             (`val_ccc_v`, only with validation)
    val/ccc_a     validation CCC of arousal             (`val_ccc_a`)
    val/p_va      validation P_VA, the mean of the two  (`val_p_va`)

`tensorboard --logdir <experiments>` shows every run below it, one curve per run folder.

The events are a view of metrics.jsonl, never an input: nothing here draws a random number or enters a hashed
config, so scores do not depend on them. Resume: a fresh run removes the folder's old events; a resumed run opens a
new event file whose purge step is its first epoch, so TensorBoard hides the events a killed process wrote for
epochs it did not checkpoint and the redone epochs appear once. A run folder from before event files existed gets
its finished epochs written from metrics.jsonl first.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

TB_DIR = "tb"
"""The event folder inside a run folder."""

EVENT_GLOB = "events.out.tfevents.*"
"""How TensorBoard names its event files."""

TAGS: dict[str, str] = {
    "train_loss": "train/loss",
    "lr": "train/lr",
    "val_ccc_v": "val/ccc_v",
    "val_ccc_a": "val/ccc_a",
    "val_p_va": "val/p_va",
}
"""metrics.jsonl key -> TensorBoard tag."""


def epoch_scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """The scalars of one metrics.jsonl epoch record, by tag (keys the record lacks are left out).

    Args:
        record: `{"epoch", "train_loss", "lr", "val_ccc_v", ...}` as `fit` writes it.
    """
    out = {}
    for key, tag in TAGS.items():
        value = record.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[tag] = float(value)
    return out


def has_events(folder: Path) -> bool:
    """Whether `folder` holds at least one event file."""
    return folder.is_dir() and any(folder.glob(EVENT_GLOB))


class EpochEvents:
    """The event writer of one `fit` call; does nothing when disabled (processes other than rank 0).

    The writer opens on the first epoch written (a resumed run with nothing left to train writes no file), is
    flushed after every epoch (what a kill leaves is what metrics.jsonl says) and closed by `close`.

    Args:
        folder: `<run>/tb`.
        first_epoch: the first epoch this call trains (0: a fresh run).
        history: the epoch records metrics.jsonl already holds (a resumed run's finished epochs).
        enabled: False in every process but the main one.
    """

    def __init__(self, folder: Path, first_epoch: int, history: Iterable[Mapping[str, Any]], enabled: bool = True):
        self.folder = folder
        self.first_epoch = first_epoch
        self.enabled = enabled
        self._writer: Any = None
        self._backlog: list[Mapping[str, Any]] = []
        if not enabled:
            return
        if first_epoch == 0:
            # A fresh start in a used folder: its old events belong to a run that is gone (as its metrics are).
            shutil.rmtree(folder, ignore_errors=True)
        elif not has_events(folder):
            self._backlog = [r for r in history if int(r.get("epoch", -1)) < first_epoch]

    def _open(self) -> None:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.folder.mkdir(parents=True, exist_ok=True)
            # purge_step hides any event at or after it from earlier files: epochs a killed run logged but did
            # not checkpoint are redone now and must not show twice.
            purge = self.first_epoch if self.first_epoch > 0 and not self._backlog else None
            self._writer = SummaryWriter(log_dir=str(self.folder), purge_step=purge)
            for rec in self._backlog:
                self._add(rec)
            self._backlog = []

    def _add(self, record: Mapping[str, Any]) -> None:
        step = int(record["epoch"])
        for tag, value in epoch_scalars(record).items():
            self._writer.add_scalar(tag, value, global_step=step)

    def write(self, record: Mapping[str, Any]) -> None:
        """Log one epoch's record and flush it to disk.

        Args:
            record: the epoch record `fit` appended to metrics.jsonl.
        """
        if not self.enabled:
            return
        self._open()
        self._add(record)
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file (safe to call more than once, and when nothing was written)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
