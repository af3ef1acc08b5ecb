"""TensorBoard events of `fit`: one point per epoch and tag, equal to metrics.jsonl, kept once across a resume, left
alone by `harness clean` and `harness doctor`, and without effect on any score."""

from __future__ import annotations

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from harness.config import load_config
from harness.folders.run import RunDir
from harness.ops.clean import clean_checkpoints
from harness.ops.doctor import check_path
from harness.runtime.tb_events import EVENT_GLOB, TAGS, TB_DIR, epoch_scalars
from harness.train.loop import fit
from tests.harness._engine import ZERO0, KilledError, Pairs, evaluator, killing_loss, loop_cfg, loss_fn, tiny_model

ALL_TAGS = {"train/loss", "train/lr", "val/ccc_v", "val/ccc_a", "val/p_va"}


def read_events(run: RunDir) -> dict[str, list[tuple[int, float]]]:
    """(step, value) of every scalar event TensorBoard shows for the run, by tag."""
    acc = EventAccumulator(str(run.path / TB_DIR))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def expected(run: RunDir) -> dict[str, list[tuple[int, float]]]:
    """What the events must hold: metrics.jsonl's epoch records, as float32 (TensorBoard's scalar type)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for rec in run.epoch_records():
        for tag, value in epoch_scalars(rec).items():
            out.setdefault(tag, []).append((rec["epoch"], float(np.float32(value))))
    return out


def _prepared(tmp_path, name="run") -> RunDir:
    run = RunDir(tmp_path / name)
    run.prepare(load_config("quick"), resume=False)
    return run


def test_epoch_scalars_map_the_record_keys_to_tags():
    rec = {"epoch": 2, "step": 24, "train_loss": 0.5, "val_ccc_v": 0.1, "val_ccc_a": 0.3, "val_p_va": 0.2,
           "val_frames": 64.0, "lr": 1e-3, "time_s": 1.5}  # fmt: skip
    assert epoch_scalars(rec) == {"train/loss": 0.5, "train/lr": 1e-3, "val/ccc_v": 0.1, "val/ccc_a": 0.3,
                                  "val/p_va": 0.2}  # fmt: skip
    assert epoch_scalars({"epoch": 0, "train_loss": 1.0, "lr": 0.01}) == {"train/loss": 1.0, "train/lr": 0.01}
    assert set(TAGS.values()) == ALL_TAGS


def test_events_hold_one_value_per_epoch_equal_to_metrics_and_change_no_score(tmp_path, monkeypatch):
    train, val = Pairs(48), Pairs(32, seed=1)
    run = _prepared(tmp_path)
    fit(tiny_model(), train, loss_fn, loop_cfg(epochs=3), ZERO0, run, seed=0, evaluate=evaluator(val))
    got = read_events(run)
    assert set(got) == ALL_TAGS
    for tag in ALL_TAGS:
        assert [s for s, _ in got[tag]] == [0, 1, 2], tag
    assert got == expected(run)
    assert len(list((run.path / TB_DIR).glob(EVENT_GLOB))) == 1

    # The same run without event files: every number of metrics.jsonl is the same (time aside).
    import harness.runtime.tb_events

    monkeypatch.setattr(harness.runtime.tb_events.EpochEvents, "write", lambda self, record: None)
    bare = _prepared(tmp_path, "bare")
    fit(tiny_model(), train, loss_fn, loop_cfg(epochs=3), ZERO0, bare, seed=0, evaluate=evaluator(val))
    strip = [{k: v for k, v in r.items() if k != "time_s"} for r in run.epoch_records()]
    assert [{k: v for k, v in r.items() if k != "time_s"} for r in bare.epoch_records()] == strip
    assert not list((bare.path / TB_DIR).glob(EVENT_GLOB))


def test_a_resumed_run_logs_each_epoch_once(tmp_path):
    cfg = load_config("quick")
    data, loop = Pairs(48), loop_cfg(epochs=4, micro=8, accum=2)  # 3 steps per epoch
    run = RunDir(tmp_path / "cut")
    run.prepare(cfg, resume=False)
    with pytest.raises(KilledError):
        fit(tiny_model(), data, killing_loss(14), loop, ZERO0, run, seed=3)  # killed inside epoch 2
    assert {t: [s for s, _ in v] for t, v in read_events(run).items()} == {"train/loss": [0, 1], "train/lr": [0, 1]}
    # A process killed after logging epoch 2 but before its checkpoint: a stale point the resume must hide.
    with SummaryWriter(str(run.path / TB_DIR)) as w:
        w.add_scalar("train/loss", 999.0, global_step=2)
    run.prepare(cfg, resume=True)
    fit(tiny_model(7), data, loss_fn, loop, ZERO0, run, seed=3, resume=True)
    got = read_events(run)
    assert [s for s, _ in got["train/loss"]] == [0, 1, 2, 3]
    assert got == expected(run)
    assert len(list((run.path / TB_DIR).glob(EVENT_GLOB))) == 3  # TensorBoard reads the files as one run

    # A finished run resumed again trains nothing and writes no new file.
    fit(tiny_model(), data, loss_fn, loop, ZERO0, run, seed=3, resume=True)
    assert len(list((run.path / TB_DIR).glob(EVENT_GLOB))) == 3

    # A run folder from before event files existed: the finished epochs are written from metrics.jsonl.
    old = RunDir(tmp_path / "old")
    old.prepare(cfg, resume=False)
    with pytest.raises(KilledError):
        fit(tiny_model(), data, killing_loss(14), loop, ZERO0, old, seed=3)
    import shutil

    shutil.rmtree(old.path / TB_DIR)
    old.prepare(cfg, resume=True)
    fit(tiny_model(7), data, loss_fn, loop, ZERO0, old, seed=3, resume=True)
    assert read_events(old) == expected(old) and [s for s, _ in read_events(old)["train/lr"]] == [0, 1, 2, 3]

    # A fresh start in a used folder drops the old run's events with its metrics.
    run.prepare(cfg, resume=False)
    fit(tiny_model(), data, loss_fn, loop_cfg(epochs=1, micro=8, accum=2), ZERO0, run, seed=3)
    assert {t: [s for s, _ in v] for t, v in read_events(run).items()} == {"train/loss": [0], "train/lr": [0]}


def test_clean_and_doctor_leave_the_events_alone(tmp_path):
    run = _prepared(tmp_path)
    fit(tiny_model(), Pairs(32), loss_fn, loop_cfg(epochs=2), ZERO0, run, seed=0, evaluate=evaluator(Pairs(16, 1)))
    run.write_final({"config_hash": "x"})
    files = sorted((run.path / TB_DIR).glob(EVENT_GLOB))
    assert files and all(f.stat().st_size > 0 for f in files)
    report = clean_checkpoints(tmp_path)
    assert report.removed == [run.checkpoints]
    assert sorted((run.path / TB_DIR).glob(EVENT_GLOB)) == files
    assert read_events(run) == expected(run)
    assert [f for f in check_path(run.path) if TB_DIR in f.where] == []
