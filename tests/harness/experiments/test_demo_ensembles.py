"""The demo's ensembles (`experiment.ensembles`): built from the demo's own runs, scored into scores.json with the
paired difference against the best single member, and shown in the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from harness.config import load_config
from harness.experiments.demo import DemoResult, _ensembles
from harness.folders.cache import PreprocessDir
from harness.folders.demo import DemoDir
from harness.folders.run import RunDir
from harness.reporting.leaderboard import load_entries
from harness.reporting.report import ensemble_table
from harness.stages.predict import load_predictions
from preprocessing.affwild2 import AffWild2Layout


@pytest.fixture(scope="module")
def built(quick_demo: Path, tmp_path_factory: pytest.TempPathFactory):
    cfg = load_config("quick", ["experiment.ensembles=true"])
    out = tmp_path_factory.mktemp("ensembles")
    res = DemoResult(out=out)
    demo = DemoDir(quick_demo)
    results = _ensembles(cfg, demo.corpus, PreprocessDir(quick_demo).features, demo.experiments.path, out,
                         Console(record=True), res)  # fmt: skip
    return cfg, out, res, results


def test_the_quick_demo_gets_a_late_fusion_of_its_table_iv_rows_and_no_fold_ensemble(built, quick_demo):
    cfg, out, res, results = built
    assert [r.kind for r in results] == ["late fusion"]  # one fold: nothing to average over folds
    rows = [r.name for r in cfg.experiment.rows if r.kind == "model"]
    assert len(results[0].members) == len(rows) == 5
    w = results[0].weights
    assert w.shape == (5, 2) and (w >= 0).all() and abs(w.sum(axis=0) - 1).max() < 1e-9
    key = f"{cfg.name}/test/ensemble/models"
    assert set(res.scores) == {key}
    s = res.scores[key]
    test = next(e for e in results[0].estimates if e.split == "test")
    assert s["p_va"] == pytest.approx(test.score[2]) and s["p_va_ci_low"] <= s["p_va"] <= s["p_va_ci_high"]
    assert s["minus_best_p_va"] == pytest.approx(test.paired.p_va.estimate)
    # What the ensemble folder holds predicts every test video, and the report shows its estimates.
    preds = load_predictions(RunDir(DemoDir(out).ensemble("models")).test_predictions)
    assert sorted(preds) == sorted(e.name for e in AffWild2Layout.discover(DemoDir(quick_demo).corpus).test)
    table = ensemble_table([DemoDir(out).ensemble("models")])
    assert table is not None and len(table.rows) == len(results[0].estimates) >= 2
    assert any(row[4] == test.on and row[5].startswith(f"{test.score[2]:.3f} [") for row in table.rows)


def test_no_ensemble_unless_the_config_asks(quick_demo: Path, tmp_path: Path):
    cfg = load_config("quick")
    assert not cfg.experiment.ensembles and load_config("demo").experiment.ensembles
    res = DemoResult(out=tmp_path)
    demo = DemoDir(quick_demo)
    assert _ensembles(cfg, demo.corpus, PreprocessDir(quick_demo).features, demo.experiments.path, tmp_path,
                      Console(), res) == []  # fmt: skip
    assert res.scores == {} and not DemoDir(tmp_path).ensembles.exists()


def test_no_summary_no_table(tmp_path: Path):
    assert ensemble_table([tmp_path]) is None


def test_the_leaderboard_shows_an_ensemble_row_with_its_members(built):
    cfg, out, res, results = built
    scores = DemoDir(out).scores_file
    scores.write_text(json.dumps(res.scores))
    entries = [e for e in load_entries(scores) if "ensemble" in e.name]
    assert len(entries) == 1
    e = entries[0]
    assert e.name == f"{cfg.name}/test/ensemble/models" and e.group == "test"
    members = ", ".join(m.name for m in results[0].members)
    assert e.source == f"late fusion of {members}" and "bdca fold0" in e.source
    assert e.p_va == pytest.approx(res.scores[e.name]["p_va"])
