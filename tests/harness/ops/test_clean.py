"""`harness clean` removes the checkpoints of finished runs only, and says how much it freed."""

from __future__ import annotations

import json

import pytest

from core.errors import HarnessError
from core.ownership import OWNERSHIP_FILE
from harness.cli import main
from harness.folders.run import RunDir
from harness.ops.clean import clean_checkpoints, run_is_finished


def _run(folder, finished: bool, ckpt_bytes: int = 1000):
    RunDir(folder).claim()  # the harness's record of what it writes: clean removes only recorded checkpoints
    records = [{"epoch": 0, "train_loss": 1.0}] + ([{"event": "final", "config_hash": "x"}] if finished else [])
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "best.safetensors").write_bytes(b"w" * 10)
    ck = folder / "checkpoints" / "epoch0000"
    ck.mkdir(parents=True)
    (ck / "mp_rank_00_model_states.pt").write_bytes(b"c" * ckpt_bytes)
    return folder


def test_clean_removes_only_finished_runs_checkpoints(tmp_path, capsys):
    done = _run(tmp_path / "exp" / "folds" / "fold0", finished=True, ckpt_bytes=3000)
    cut = _run(tmp_path / "exp" / "folds" / "fold1", finished=False, ckpt_bytes=2000)
    assert run_is_finished(done) and not run_is_finished(cut)
    dry = clean_checkpoints(tmp_path / "exp", dry_run=True)
    assert dry.removed == [done / "checkpoints"] and dry.kept == [cut / "checkpoints"]
    assert dry.freed_bytes == 3000 and dry.total_bytes == 3000 + 2000 + 20 + sum(
        len((r / "metrics.jsonl").read_bytes()) + len((r / OWNERSHIP_FILE).read_bytes()) for r in (done, cut))
    assert (done / "checkpoints").is_dir()  # a dry run removes nothing
    assert main(["clean", str(tmp_path / "exp")]) == 0
    out = capsys.readouterr().out
    assert "removed 1 checkpoint folder(s)" in out and "fold1" in out and "did not finish" in out
    assert not (done / "checkpoints").exists() and (done / "best.safetensors").is_file()
    assert (cut / "checkpoints" / "epoch0000" / "mp_rank_00_model_states.pt").is_file()


def test_clean_names_a_missing_folder(tmp_path):
    with pytest.raises(HarnessError, match="nothere: error: not a folder"):
        clean_checkpoints(tmp_path / "nothere")


def test_a_damaged_metrics_file_counts_as_unfinished(tmp_path):
    run = _run(tmp_path / "r", finished=True)
    (run / "metrics.jsonl").write_bytes(b"\xff\xfe not json")
    assert not run_is_finished(run)
    assert clean_checkpoints(tmp_path).kept == [run / "checkpoints"]
