"""The run folder's layout is `RunDir`'s: one name per file and folder, what the folder tells a submission package,
and which prediction file `harness submit` packages from a run folder."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from core.errors import HarnessError
from core.safe_read import ReadError
from harness.cli import main
from harness.folders.run import RunDir, resolve_prediction
from submissions.formats import image_location, write_submission
from submissions.leaderboard import scoring_fixture

LAYOUT = {
    "config_file": "config.yaml",
    "git_file": "git.txt",
    "run_file": "run.json",
    "lock_file": "run.lock",
    "ds_config_file": "ds_config.json",
    "metrics_file": "metrics.jsonl",
    "tb_dir": "tb",
    "checkpoints": "checkpoints",
    "best_weights": "best.safetensors",
    "norm_stats_file": "norm_stats.npz",
    "predictions": "predictions",
    "validation_predictions": "predictions/validation.npz",
    "test_predictions": "predictions/test.npz",
    "submission_file": "predictions/submission.csv",
    "summary_file": "summary.json",
    "bootstrap_file": "bootstrap.json",
}
"""Property -> path inside the run folder: the names the runs already on disk use (changing one orphans them)."""


def test_every_file_of_the_folder_has_its_name(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    assert {k: getattr(run, k).relative_to(run.path).as_posix() for k in LAYOUT} == LAYOUT
    assert run.split_predictions("test") == run.test_predictions
    assert run.stage1.path == run.path / "stage1"
    assert run.stage1.finetune.best_weights == run.path / "stage1" / "finetune" / "best.safetensors"
    assert run.stage1.mae.path == run.path / "stage1" / "mae"
    with pytest.raises(ValueError, match="'train'"):
        run.split_predictions("train")


def _run_with_files(root: Path) -> RunDir:
    run = RunDir(root / "fold0")
    run.path.mkdir(parents=True)
    run.summary_file.write_text(json.dumps({"model": "bdca", "val": {"p_va": 0.5}}))
    run.git_file.write_text("abc123\n")
    run.config_file.write_text("model: bdca\n")
    return run


def test_metadata_is_what_the_folder_says_about_itself(tmp_path: Path) -> None:
    run = _run_with_files(tmp_path)
    assert run.metadata() == {"run": "fold0", "summary": {"model": "bdca", "val": {"p_va": 0.5}},
                              "git_hash": "abc123", "config_yaml": "model: bdca\n"}  # fmt: skip
    assert RunDir(tmp_path / "empty").metadata() == {"run": "empty"}
    run.summary_file.write_text('{"model":\n nope}')
    with pytest.raises(ReadError, match=r"summary\.json:2: not valid JSON"):
        run.metadata()


def test_resolve_prediction_takes_the_run_folders_submission_file(tmp_path: Path) -> None:
    run = _run_with_files(tmp_path)
    with pytest.raises(HarnessError, match=r"no predictions/submission\.csv in this run folder"):
        resolve_prediction(run.path)
    run.predictions.mkdir()
    run.submission_file.write_text("x")
    pred, found = resolve_prediction(run.path)
    assert pred == run.submission_file and found is not None and found.path == run.path
    assert resolve_prediction(run.submission_file) == (run.submission_file, None)
    with pytest.raises(HarnessError, match="no such prediction file or run folder"):
        resolve_prediction(tmp_path / "nothing")


def test_submit_packages_a_run_folder_with_its_metadata(tmp_path: Path) -> None:
    labels, preds = scoring_fixture(videos=2, frames=80)
    sample = tmp_path / "sample.txt"
    locs = [image_location(v, i + 1) for v in sorted(labels) for i in range(labels[v].shape[0])]
    sample.write_text("image_location,valence,arousal\n" + "".join(f"{loc},0,0\n" for loc in locs))
    run = _run_with_files(tmp_path)
    write_submission(run.submission_file, preds, sample)
    out = tmp_path / "sub.zip"
    assert main(["submit", str(run.path), "--sample", str(sample), "--out", str(out)]) == 0
    with zipfile.ZipFile(out) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["run"] == "fold0" and manifest["git_hash"] == "abc123"
    assert manifest["config_yaml"] == "model: bdca\n" and manifest["summary"]["val"]["p_va"] == 0.5
    assert manifest["source"] == str(run.submission_file) and "command" in manifest
