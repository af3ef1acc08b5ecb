"""Exact resume: a run killed mid-epoch and resumed ends with the same weights and metrics as one never stopped."""

from __future__ import annotations

import pytest
import torch

from harness.config import DeepSpeedSection, load_config
from harness.folders.run import RunDir, RunError
from harness.train.checkpoint import LATEST_MAX_BYTES
from harness.train.loop import _resume_tag, fit
from harness.train.weights import load_weights
from tests.harness._engine import KilledError, Pairs, killing_loss, loop_cfg, loss_fn, tiny_model


def _full_and_cut(tmp_path, stage: int):
    """An uninterrupted 4-epoch run and one killed inside epoch 2, after the epoch-1 checkpoint."""
    cfg = load_config("quick")
    ds = DeepSpeedSection(stage, "fp32")
    loop = loop_cfg(epochs=4, micro=8, accum=2)  # 48 samples: 6 micro batches, 3 steps per epoch
    data = Pairs(48)

    full = RunDir(tmp_path / "full")
    full.prepare(cfg, resume=False)
    fit(tiny_model(), data, loss_fn, loop, ds, full, seed=3)

    cut = RunDir(tmp_path / "cut")
    cut.prepare(cfg, resume=False)
    with pytest.raises(KilledError):
        # 6 micro batches per epoch: killed inside epoch 2 (the 15th micro batch), after the epoch-1 checkpoint
        fit(tiny_model(), data, killing_loss(14), loop, ds, cut, seed=3)
    assert [r["epoch"] for r in cut.epoch_records()] == [0, 1]
    return cfg, ds, loop, data, full, cut


@pytest.mark.parametrize("stage", [0, 2])
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, stage):
    cfg, ds, loop, data, full, cut = _full_and_cut(tmp_path, stage)
    cut.prepare(cfg, resume=True)
    res = fit(tiny_model(7), data, loss_fn, loop, ds, cut, seed=3, resume=True)  # other init: overwritten by load

    a, b = load_weights(full.best_weights), load_weights(cut.best_weights)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    ha, hb = full.epoch_records(), cut.epoch_records()
    assert [r["epoch"] for r in hb] == [0, 1, 2, 3]
    assert [r["step"] for r in hb] == [r["step"] for r in ha] == [3, 6, 9, 12]
    assert [r["lr"] for r in hb] == pytest.approx([r["lr"] for r in ha])
    assert [r["train_loss"] for r in hb] == pytest.approx([r["train_loss"] for r in ha], abs=1e-6)
    assert res.best_epoch == 3

    # Resuming a finished run trains nothing and keeps the weights.
    again = fit(tiny_model(), data, loss_fn, loop, ds, cut, seed=3, resume=True)
    assert again.step_s == 0.0 and len(again.history) == 4
    torch.testing.assert_close(load_weights(cut.best_weights)["0.weight"], b["0.weight"], rtol=0, atol=0)


def test_resume_refuses_another_config(tmp_path):
    run = RunDir(tmp_path / "r")
    run.prepare(load_config("quick"), resume=False)
    with pytest.raises(RunError, match="another config"):
        run.prepare(load_config("quick", ["stage2.epochs=9"]), resume=True)
    run.prepare(load_config("quick", ["stage2.epochs=9"]), resume=False)  # a fresh start is allowed


def test_resume_ignores_a_checkpoint_folder_cut_short_by_a_kill(tmp_path):
    cfg, ds, loop, data, full, cut = _full_and_cut(tmp_path, 0)
    # A kill inside save_checkpoint of epoch 2: its folder exists, half written; `latest` still names epoch 1.
    assert (cut.checkpoints / "latest").read_text().strip() == "epoch0001"
    (cut.checkpoints / "epoch0002").mkdir()
    (cut.checkpoints / "epoch0002" / "mp_rank_00_model_states.pt").write_bytes(b"\x80\x02half")
    cut.prepare(cfg, resume=True)
    res = fit(tiny_model(7), data, loss_fn, loop, ds, cut, seed=3, resume=True)
    assert [r["epoch"] for r in cut.epoch_records()] == [0, 1, 2, 3]
    assert res.best_epoch == 3
    a, b = load_weights(full.best_weights), load_weights(cut.best_weights)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


def test_a_latest_marker_that_is_a_link_or_too_long_is_refused(tmp_path):
    ck = tmp_path / "checkpoints"
    (ck / "epoch3").mkdir(parents=True)
    (tmp_path / "tag").write_text("epoch3\n")
    (ck / "latest").symlink_to(tmp_path / "tag")  # names a good tag, but from outside the run folder
    with pytest.raises(Exception, match=r"latest: a symbolic link, not a checkpoint marker; delete it"):
        _resume_tag(ck)
    (ck / "latest").unlink()
    (ck / "latest").write_text("epoch3" + " " * LATEST_MAX_BYTES)
    with pytest.raises(Exception, match=f"latest: longer than {LATEST_MAX_BYTES} bytes: not a checkpoint marker"):
        _resume_tag(ck)
    (ck / "latest").write_text("epoch3\n")
    assert _resume_tag(ck) == "epoch3"
