"""`harness folds` and `harness ablate` killed with SIGKILL and run again end with the tables, scores, weights and
predictions of an uninterrupted run, and do not redo a finished run.

The killed runs are real processes (`python -m harness.cli folds|ablate ...`, in their own process group so the
data-loader worker dies with them) on the tiny synthetic corpus, stage 1 off, three epochs per run. Each is killed at
a deterministic point: when one run is finished and the next has saved its epoch-0 checkpoint, so the kill lands
inside a run. `folds` is rerun as is (the cut run starts again); `ablate` is rerun with `--resume` (the cut run
continues from its checkpoint). The uninterrupted reference runs the same commands, also as processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from harness.config import Config, load_config
from harness.folders.experiment import run_dir_for
from harness.folders.run import RunDir
from harness.runtime.childenv import child_env
from harness.train.weights import load_weights
from tests.harness._corpus import make_corpus
from tests.harness._stage2 import settings as stage2_settings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
OVERRIDES = stage2_settings(
    "stage1.enabled=false", "stage2.epochs=3", "experiment.k=3", "experiment.folds=[0, 1, 2]",
    "experiment.ablation_folds=[1, 2]", "experiment.ablation_models=[audio_only, bdca]", "experiment.table3=false",
)  # fmt: skip
SCORE_COLUMNS = ["valence", "arousal", "average",  # and their bootstrap bounds (from the same predictions)
                 *(f"{c}_{e}" for c in ("valence", "arousal", "average") for e in ("low", "high"))]


def _env() -> dict[str, str]:
    return child_env({"COLUMNS": "200"})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    make_corpus(root, train=5, val=3, test=1)
    return root


@pytest.fixture(scope="module")
def cfg() -> Config:
    return load_config("quick", OVERRIDES)


@pytest.fixture(scope="module")
def reference(corpus: Path) -> Path:
    """Uninterrupted `folds` then `ablate` in one folder (Table IV's BDCA rows reuse the Table I runs).

    Real processes, like the killed runs: an in-process run would inherit what earlier tests left in this process
    (thread pools, allocator state) and may round differently in the last digits.
    """
    out = corpus.parent / "reference"
    for command in ("folds", "ablate"):
        log = corpus.parent / f"reference-{command}.log"
        proc = _start(command, corpus, out, log)
        assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    return out


def _start(command: str, corpus: Path, out: Path, log: Path, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "harness.cli", command, "--config", "quick", "--data", str(corpus),
            "--cache", str(corpus / "cache"), "--out", str(out), "--no-progress",
            *[a for o in OVERRIDES for a in ("--set", o)], *extra]  # fmt: skip
    with open(log, "wb") as fh:
        # A session of its own: the SIGKILL goes to the whole group (the command and its data-loader worker).
        return subprocess.Popen(args, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                env=_env())  # fmt: skip


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + 120.0
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (status {proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def _finished(run: Path) -> bool:
    return RunDir(run).final_record() is not None


def _checkpointed(run: Path) -> bool:
    """The epoch-0 checkpoint is complete: DeepSpeed writes `latest` after the checkpoint's files."""
    latest = run / "checkpoints" / "latest"
    return latest.is_file() and latest.read_text().strip() == "epoch0000"


def _snapshot(run: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime in ns) of every file of a run folder: a rewrite (atomic rename) changes both."""
    return {str(f.relative_to(run)): (f.stat().st_ino, f.stat().st_mtime_ns) for f in run.rglob("*") if f.is_file()}


def _assert_same_run(run: Path, ref: Path) -> None:
    """Scores, best epoch, best weights and predictions equal the reference run's (float noise allowed)."""
    a, b = RunDir(run).final_record(), RunDir(ref).final_record()
    assert a is not None and b is not None
    assert (a["config_hash"], a["fold"], a["model"], a["best_epoch"]) == (
        b["config_hash"], b["fold"], b["model"], b["best_epoch"])  # fmt: skip
    for split in ("val", "test"):
        if b[split] is None:
            assert a[split] is None
            continue
        assert a[split]["frames"] == b[split]["frames"]
        for k in ("ccc_v", "ccc_a", "p_va"):
            assert a[split][k] == pytest.approx(b[split][k], abs=1e-6), (run, split, k)
    wa, wb = load_weights(run / "best.safetensors"), load_weights(ref / "best.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-6, msg=f"{run}: {k}")
    preds = sorted(p.name for p in (ref / "predictions").iterdir())
    assert sorted(p.name for p in (run / "predictions").iterdir()) == preds
    for name in preds:
        if name.endswith(".npz"):
            with np.load(run / "predictions" / name) as x, np.load(ref / "predictions" / name) as y:
                assert sorted(x.files) == sorted(y.files)
                for v in y.files:
                    np.testing.assert_allclose(x[v], y[v], rtol=0, atol=1e-5, err_msg=f"{run}/{name}/{v}")


def _assert_same_table(got: Path, want: Path) -> None:
    a, b = pl.read_csv(got), pl.read_csv(want)
    assert a["row"].to_list() == b["row"].to_list()
    assert a["on"].to_list() == b["on"].to_list()
    for c in SCORE_COLUMNS:
        np.testing.assert_allclose(a[c].to_numpy(), b[c].to_numpy(), rtol=0, atol=2e-4, err_msg=c)  # CSV: 4 places
    assert a.drop([*SCORE_COLUMNS, "runs"]).equals(b.drop([*SCORE_COLUMNS, "runs"]))


def test_killed_folds_resume_to_the_uninterrupted_result(
    corpus: Path, cfg: Config, reference: Path, tmp_path: Path
) -> None:
    out, log = tmp_path / "exp", tmp_path / "folds.log"
    fold = {f: run_dir_for(out, cfg, f) for f in (0, 1, 2)}
    proc = _start("folds", corpus, out, log)
    _wait_for(lambda: _finished(fold[0]) and _checkpointed(fold[1]), proc, log, "fold 0 finished and fold 1 began")
    _kill(proc)
    assert _finished(fold[0]) and not _finished(fold[1]) and not fold[2].exists()
    assert not (out / "table_I.csv").exists()  # the killed command never got to its table
    before = _snapshot(fold[0])
    # What a kill inside an atomic write leaves behind: a temporary file next to its target.
    (fold[1] / ".metrics.jsonl.k1ll3d.tmp").write_text('{"epoch": 1, "half a li')

    again = subprocess.run(
        [sys.executable, "-m", "harness.cli", "folds", "--config", "quick", "--data", str(corpus), "--cache",
         str(corpus / "cache"), "--out", str(out), "--no-progress", *[a for o in OVERRIDES for a in ("--set", o)]],
        cwd=ROOT, capture_output=True, text=True, env=_env(), timeout=300,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"bdca fold 0: reused the finished run in {fold[0]}" in again.stdout
    assert f"bdca fold 1: trained in {fold[1]}" in again.stdout
    assert f"bdca fold 2: trained in {fold[2]}" in again.stdout
    # The finished fold: not one file rewritten. The table added its interval file (bootstrap.json, derived from the
    # saved predictions when the table is made; the killed command never got to its table) and nothing else.
    after = _snapshot(fold[0])
    assert set(after) - set(before) == {"bootstrap.json"}
    assert {k: v for k, v in after.items() if k in before} == before
    assert not list(out.rglob("*.tmp"))
    for f, run in fold.items():
        _assert_same_run(run, run_dir_for(reference, cfg, f))
    _assert_same_table(out / "table_I.csv", reference / "table_I.csv")


def test_killed_ablation_resumes_to_the_uninterrupted_result(
    corpus: Path, cfg: Config, reference: Path, tmp_path: Path
) -> None:
    out, log = tmp_path / "exp", tmp_path / "ablate.log"
    audio = {f: run_dir_for(out, cfg, f, "audio_only") for f in (1, 2)}
    bdca = {f: run_dir_for(out, cfg, f) for f in (1, 2)}
    proc = _start("ablate", corpus, out, log, "--no-table3")
    _wait_for(lambda: _finished(audio[1]) and _checkpointed(audio[2]), proc, log, "audio_only fold 1 finished")
    _kill(proc)
    assert _finished(audio[1]) and not _finished(audio[2]) and not bdca[1].exists()
    # Killed after the epoch-0 checkpoint and (two more epochs to go) before the run ended; the rerun continues
    # after the last complete checkpoint, which DeepSpeed's `latest` names.
    cut_records = RunDir(audio[2]).epoch_records()
    kept = int((audio[2] / "checkpoints" / "latest").read_text().strip().removeprefix("epoch")) + 1
    assert kept in (1, 2) and [r["epoch"] for r in cut_records][:kept] == list(range(kept))
    before = _snapshot(audio[1])

    resumed = tmp_path / "resumed.log"
    proc = _start("ablate", corpus, out, resumed, "--no-table3", "--resume")
    assert proc.wait(timeout=300) == 0, resumed.read_text()[-3000:]
    text = resumed.read_text()
    assert f"audio_only fold 1: reused the finished run in {audio[1]}" in text
    assert f"audio_only fold 2: trained in {audio[2]}" in text
    assert f"bdca fold 1: trained in {bdca[1]}" in text
    after = _snapshot(audio[1])  # untouched but for the interval file its table added (see the folds test)
    assert set(after) - set(before) == {"bootstrap.json"}
    assert {k: v for k, v in after.items() if k in before} == before
    # The continued run kept the records of its checkpointed epochs (to the wall time: not trained again).
    records = RunDir(audio[2]).epoch_records()
    assert [r["epoch"] for r in records] == [0, 1, 2] and records[:kept] == cut_records[:kept]
    ref_records = RunDir(run_dir_for(reference, cfg, 2, "audio_only")).epoch_records()
    assert [r["train_loss"] for r in records] == pytest.approx([r["train_loss"] for r in ref_records], abs=1e-6)
    for f in (1, 2):
        _assert_same_run(audio[f], run_dir_for(reference, cfg, f, "audio_only"))
        _assert_same_run(bdca[f], run_dir_for(reference, cfg, f))
    _assert_same_table(out / "table_IV.csv", reference / "table_IV.csv")
    assert json.loads((audio[2] / "summary.json").read_text())["event"] == "final"
