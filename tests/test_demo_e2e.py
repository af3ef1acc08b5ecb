"""End to end: `harness demo --quick` runs every stage on CPU, writes a valid submission, tables and plots, and its
scores hold the recorded leaderboard's floors (the CI regression check)."""

from __future__ import annotations

import json
import os
import zipfile

import pytest

from harness.reporting.leaderboard import check, load_platform, load_scores
from submissions.formats import validate_submission
from submissions.leaderboard import load_recorded
from submissions.package import verify_package


@pytest.mark.slow
def test_demo_quick_end_to_end_and_leaderboard(quick_demo, tmp_path):
    # The session's quick demo (tests/conftest.py): a fresh process at this process's ATen kernel level.
    out = quick_demo
    assert json.loads((out / "scores.json").read_text())["platform"]["aten_capability_env"] == \
        os.environ.get("ATEN_CPU_CAPABILITY", "")
    files = {"submission": out / "submission.zip", "scores": out / "scores.json", "report": out / "report.html"}
    for key in ("traces", "histograms", "gates", "curves"):
        found = sorted((out / "plots").glob(f"{key}_*.png"))
        assert found, key
    # Every stage left its product.
    assert files, "the loop below checks nothing"
    for key, path in files.items():
        assert path.is_file(), key
    for table in ("I", "IV"):  # the quick config leaves Table III out (`experiment.table3: false`)
        assert (out / "experiments" / f"table_{table}.csv").is_file()
    assert not (out / "experiments" / "table_III.csv").exists()
    report = files["report"].read_text(encoding="utf-8")
    assert all(f"Table {t}:" in report for t in ("I", "IV")) and "data:image/png;base64," in report
    corpus = out / "corpus"
    sample = corpus / "VA_test_set_sample.txt"
    manifest = verify_package(files["submission"], sample, tmp_path / "unzipped")
    assert len(manifest["files"]["predictions.csv"]) == 64 and "name: bdca" in manifest["config_yaml"]
    assert len(manifest["git_hash"]) >= 7
    with zipfile.ZipFile(files["submission"]) as zf:
        assert "predictions.csv" in zf.namelist()
    assert validate_submission(out / "experiments" / "folds" / "fold0" / "predictions" / "submission.csv",
                               sample) == []
    # The scores CI guards: the quick demo's folds and ablations against the recorded leaderboard.
    scores = load_scores(files["scores"])
    recorded = load_recorded()
    guarded = [k for k in recorded["quick"]["scores"] if k.startswith("quick/")]
    assert guarded, "the recorded leaderboard guards no quick-demo score"
    platform = load_platform(files["scores"])
    assert platform is not None and {"cpu_model", "aten_capability", "torch", "mkl", "threads"} <= set(platform)
    _df, result = check(scores, platform=platform)
    # Every guarded key within its recorded floor and ceiling, on any machine (exact equality on the recording
    # platform is the determinism test's).
    assert result.mode == "floors"
    assert not result.absent and result.ok, [(r.key, r.status, r.floor, r.current, r.ceiling)
                                             for r in result.rows if not r.ok]  # fmt: skip
    data = json.loads(files["scores"].read_text())
    assert set(data) >= {"quick/fold0/bdca", "quick/test/bdca", "quick/fold0/baseline_untrained", "platform"}
    # Every CCC of the guarded run carries its video-bootstrap interval (8 test videos: defined). A percentile
    # interval of a CCC need not contain the point estimate, so only its order is asserted.
    cccs = {k: v for k, v in data.items() if k.startswith("quick/") and isinstance(v, dict) and "p_va" in v
            and "oracle_fraction" not in k}  # fmt: skip
    assert len(cccs) >= 8, sorted(cccs)
    for key, v in cccs.items():
        for m in ("ccc_v", "ccc_a", "p_va"):
            low, high = v[f"{m}_ci_low"], v[f"{m}_ci_high"]
            assert low is not None and high is not None and -1.0 <= low <= high <= 1.0, (key, m, v)
    # The trained baseline row learnt something: it beats the same network never trained, in the same run.
    assert data["quick/fold0/baseline"]["p_va"] > data["quick/fold0/baseline_untrained"]["p_va"]
