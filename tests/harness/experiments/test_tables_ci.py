"""Every printed CCC carries its video-bootstrap interval; Tables III and IV carry paired differences with verdicts."""

from __future__ import annotations

import io
import json
import math

import polars as pl
import pytest
from rich.console import Console

from harness.cli import main
from harness.config import load_config
from harness.data.datasets import load_labels
from harness.experiments.ablation import pairs_iv, run_ablation
from harness.experiments.folds import run_folds
from harness.experiments.intervals import run_stats
from harness.folders.experiment import run_dir_for
from harness.reporting.tables import ci_cells, print_table
from harness.stages.predict import load_predictions
from submissions.bootstrap import bootstrap_ci, cluster_of, cluster_stats, paired_bootstrap
from submissions.formats import image_location, write_annotation, write_submission
from submissions.leaderboard import scoring_fixture
from tests.harness._corpus import make_corpus
from tests.harness._stage2 import settings as stage2_settings


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    layout, cache = make_corpus(tmp_path_factory.mktemp("corpus"), train=5, val=3, test=3)
    overrides = stage2_settings(
        "stage1.enabled=false", "stage2.epochs=1", "experiment.k=3", "experiment.folds=[0, 1]",
        "experiment.ablation_folds=[1, 2]", "experiment.ablation_models=[audio_only, concat, bdca_no_dw, bdca]",
    )  # fmt: skip
    cfg = load_config("quick", overrides)
    out = tmp_path_factory.mktemp("exp")
    console = Console(file=io.StringIO(), width=80)  # off a terminal, 80 columns: nothing may be cut
    t1 = run_folds(cfg, layout, cache, out, console=console)
    reports = {r.name: r for r in run_ablation(cfg, layout, cache, out, table3=False, console=console)}
    return layout, cache, cfg, out, t1, reports, console.file.getvalue()


def test_every_fold_row_carries_its_interval_from_the_saved_predictions(experiment):
    layout, _, _, out, t1, _, _ = experiment
    df = pl.read_csv(out / "table_I.csv")
    assert t1.results, "the loop below checks nothing"
    for res in t1.results:
        row = df.filter(pl.col("row") == f"Fold {res.fold}")
        ci = t1.interval(res)
        assert ci is not None and ci.reason is None
        # The interval is the bootstrap of the run's reported split, recomputed here from its files.
        stats = run_stats(res, layout)
        again = bootstrap_ci(stats)
        assert again == ci
        assert row["average_low"][0] == pytest.approx(ci.p_va.low, abs=1e-4)
        assert row["average_high"][0] == pytest.approx(ci.p_va.high, abs=1e-4)
        assert row["clusters"][0] == ci.clusters == stats.clusters
        # Its estimate is the run's score (the record's, from float64 predictions; the npz holds float32).
        assert ci.p_va.estimate == pytest.approx(res.reported["p_va"], abs=1e-5)
        on_disk = json.loads((res.run_dir / "bootstrap.json").read_text())
        assert on_disk["on"] == res.reported_on and on_disk["p_va"]["low"] == pytest.approx(ci.p_va.low)
    mean = df.filter(pl.col("row") == "Mean")
    assert mean["average_low"][0] < mean["average"][0] < mean["average_high"][0]
    assert math.isnan(df.filter(pl.col("row") == "Std")["average_low"][0])  # no interval on a spread
    assert "[" in (out / "table_I.md").read_text() and "percentile bootstrap" in (out / "table_I.md").read_text()


def test_table_iv_pairs_every_row_with_bdca_and_concat_with_no_dw(experiment):
    layout, _, cfg, out, _, reports, _ = experiment
    assert pairs_iv(["Only Audio", "Concat w/o BDCA", "BDCA w/o DW", "BDCA"]) == [
        ("Only Audio", "BDCA"), ("Concat w/o BDCA", "BDCA"), ("BDCA w/o DW", "BDCA"),
        ("Concat w/o BDCA", "BDCA w/o DW")]  # fmt: skip
    assert pairs_iv(["Only Audio"]) == []
    paired = pl.read_csv(out / "table_IV_paired.csv")
    assert paired["comparison"].to_list() == ["Only Audio - BDCA", "Concat w/o BDCA - BDCA", "BDCA w/o DW - BDCA",
                                              "Concat w/o BDCA - BDCA w/o DW"]  # fmt: skip
    # Recompute one pair from the runs' files: the same draws for both rows, each fold resampled on its own.
    folds = (1, 2)
    a = [run_stats(_result(reports["IV"], run_dir_for(out, cfg, f, "audio_only")), layout) for f in folds]
    b = [run_stats(_result(reports["IV"], run_dir_for(out, cfg, f)), layout) for f in folds]
    d = paired_bootstrap(a, b)
    row = paired.filter(pl.col("row") == "Only Audio")
    assert row["d_average"][0] == pytest.approx(d.p_va.estimate, abs=1e-4)
    assert row["d_average_low"][0] == pytest.approx(d.p_va.low, abs=1e-4)
    assert row["average_verdict"][0] == d.p_va.verdict in ("resolved", "not resolved")
    for col in ("valence", "arousal", "average"):
        verdicts = set(paired[f"{col}_verdict"].to_list())
        assert verdicts <= {"resolved", "not resolved"}
        for r in paired.iter_rows(named=True):  # the verdict is what the interval says about 0
            resolved = r[f"d_{col}_low"] > 0 or r[f"d_{col}_high"] < 0
            assert (r[f"{col}_verdict"] == "resolved") == resolved
    doc = json.loads((out / "table_IV.json").read_text())
    assert len(doc["paired"]) == 4 and doc["bootstrap"]["resamples"] == 1000 and doc["bootstrap"]["seed"] == 0
    assert {r["row"] for r in doc["rows"]} >= {"Only Audio", "BDCA"}
    md = (out / "table_IV.md").read_text()
    assert "Paired differences" in md and "Concat w/o BDCA - BDCA w/o DW" in md
    assert "resolved" in md


def test_printed_tables_cut_nothing_off_a_terminal(experiment):
    *_, printed = experiment
    assert "…" not in printed
    assert "Concat w/o BDCA - BDCA w/o DW" in printed  # the longest comparison name, whole on one line
    assert "paired differences" in printed and "[low, high]: 95% percentile bootstrap" in printed


def _result(report, run_dir):
    return next(r for r in report.results if r.run_dir == run_dir)


def test_ci_cells_render_bounds_beside_the_score():
    df = pl.DataFrame({"row": ["a", "b", "c"], "average": [0.6904, 0.5, None], "average_low": [0.6111, None, None],
                       "average_high": [0.7488, None, None]})  # fmt: skip
    shown = ci_cells(df, ("average",))
    assert shown.columns == ["row", "average"]
    assert shown["average"].to_list() == ["0.690 [0.61, 0.75]", "0.500", "-"]


def test_print_table_never_cuts_a_row_name():
    name = "quick/tableIII/fold0/visual_only_visual_mae/with_a_long_suffix"
    df = pl.DataFrame({"name": [name], **{f"column_{i}": ["0.690 [0.61, 0.75]"] for i in range(6)}})
    console = Console(file=io.StringIO(), width=60)
    print_table(df, console=console)
    out = console.file.getvalue()
    assert name in out and "…" not in out and out.count("0.690 [0.61, 0.75]") == 6


@pytest.fixture
def scored_files(tmp_path):
    labels, preds = scoring_fixture(videos=6, frames=80)
    ann = tmp_path / "labels"
    for v, lab in labels.items():
        write_annotation(ann / f"{v}.txt", lab)
    sample = tmp_path / "sample.txt"
    sample.write_text("image_location,valence,arousal\n" + "".join(
        f"{image_location(v, i + 1)},0,0\n" for v in sorted(labels) for i in range(80)))  # fmt: skip
    return ann, write_submission(tmp_path / "pred.csv", preds, sample)


def test_score_command_prints_and_returns_the_interval(scored_files, capsys):
    ann, pred = scored_files
    assert main(["score", str(pred), "--labels", str(ann), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    ci = out["ci"]
    assert ci["clusters"] == 6 and ci["resamples"] == 1000 and ci["seed"] == 0
    assert ci["p_va"]["estimate"] == pytest.approx(out["total"]["p_va"], abs=1e-12)
    assert ci["p_va"]["low"] <= out["total"]["p_va"] <= ci["p_va"]["high"]
    assert main(["score", str(pred), "--labels", str(ann), "--json", "--seed", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["ci"]["p_va"]["low"] != ci["p_va"]["low"]
    assert main(["score", str(pred), "--labels", str(ann)]) == 0
    text = capsys.readouterr().out
    assert f"{out['total']['p_va']:.4f} [" in text and "percentile bootstrap" in text


def test_score_command_says_why_one_video_has_no_interval(tmp_path, capsys):
    labels, preds = scoring_fixture(videos=1, frames=80)
    ann = tmp_path / "labels"
    for v, lab in labels.items():
        write_annotation(ann / f"{v}.txt", lab)
    sample = tmp_path / "sample.txt"
    sample.write_text("image_location,valence,arousal\n" + "".join(
        f"{image_location(v, i + 1)},0,0\n" for v in sorted(labels) for i in range(80)))  # fmt: skip
    pred = write_submission(tmp_path / "pred.csv", preds, sample)
    assert main(["score", str(pred), "--labels", str(ann)]) == 0
    assert "no interval: the partition has fewer than 2 video clusters" in capsys.readouterr().out


def test_run_stats_match_the_saved_predictions(experiment):
    layout, *_ = experiment
    t1 = experiment[4]
    res = t1.results[0]
    preds = load_predictions(res.run_dir / "predictions" / f"{res.reported_on}.npz")
    stats = run_stats(res, layout)
    labels = {v: load_labels(layout.entry(v).annotation, preds[v].shape[0]) for v in preds}
    assert stats.videos == len(preds) and stats.names == cluster_stats(labels, preds).names
    assert set(stats.names) <= {cluster_of(v) for v in preds}
    assert stats.estimate[2] == pytest.approx(res.reported["p_va"], abs=1e-5)


def test_demo_scores_carry_interval_bounds_beside_the_unchanged_scores(experiment):
    from harness.experiments.demo import _scores_from_tables

    _, _, cfg, _, t1, reports, _ = experiment
    scores = _scores_from_tables(cfg, t1, list(reports.values()))
    fold0 = scores[f"{cfg.name}/fold0/{cfg.model.name}"]
    res = t1.results[0]
    assert {k: fold0[k] for k in ("ccc_v", "ccc_a", "p_va")} == {k: float(res.reported[k]) for k in
                                                                  ("ccc_v", "ccc_a", "p_va")}  # fmt: skip
    ci = t1.interval(res)
    assert fold0["p_va_ci_low"] == ci.p_va.low and fold0["p_va_ci_high"] == ci.p_va.high
    assert set(fold0) == {f"{m}{s}" for m in ("ccc_v", "ccc_a", "p_va") for s in ("", "_ci_low", "_ci_high")}
    assert f"{cfg.name}/tableIV/fold1/audio_only" in scores


def _leaderboard_text(capsys, *args: str) -> str:
    assert main(["leaderboard", *args]) == 0
    return capsys.readouterr().out


def test_leaderboard_reads_a_fold_folder_an_experiment_folder_and_a_scores_file(experiment, tmp_path, capsys):
    from harness.reporting.leaderboard import load_entries, resolve_source

    _, _, cfg, out, t1, _, _ = experiment
    fold0 = run_dir_for(out, cfg, 0)
    assert resolve_source(fold0) == ("run", fold0) and resolve_source(out) == ("experiment", out)
    rows = {e.name: e for e in load_entries(fold0)}
    assert set(rows) == {"fold0/bdca (validation)", "fold0/bdca (test)"}  # fold 0 has test labels here
    test_row = rows["fold0/bdca (test)"]
    ci = t1.interval(t1.results[0])
    assert test_row.group == "test" and test_row.bounds["p_va"] == (ci.p_va.low, ci.p_va.high)
    assert rows["fold0/bdca (validation)"].bounds is None  # the run's interval is of its reported (test) score
    text = _leaderboard_text(capsys, str(fold0))
    assert f"{ci.p_va.estimate:.3f} [" in text and "paper Table II" in text

    groups = {e.group for e in load_entries(out)}
    assert groups == {"test", "validation", "ablation"}
    text = _leaderboard_text(capsys, str(out), "--out", str(tmp_path / "lb"))
    assert "Table IV: paired differences" in text and "Concat w/o BDCA - BDCA w/o DW" in text
    md = (tmp_path / "lb.md").read_text()
    assert "| group |" in md and "fold1/audio_only (validation)" in md

    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps({
        "quick/fold0/bdca": {"ccc_v": 0.5, "ccc_a": 0.6, "p_va": 0.55, "ccc_v_ci_low": 0.4, "ccc_v_ci_high": 0.6,
                             "ccc_a_ci_low": 0.5, "ccc_a_ci_high": 0.7, "p_va_ci_low": 0.45, "p_va_ci_high": 0.65},
        "quick/test/bdca": {"ccc_v": 0.4, "ccc_a": 0.5, "p_va": 0.45},
        "quick/tableIV/fold0/concat": {"ccc_v": 0.3, "ccc_a": 0.4, "p_va": 0.35},
        "quick/test/oracle_fraction": {"p_va": 0.7},
        "face_check": {"detected_fraction": 1.0},
        "platform": {"cpu_model": "x"},
    }))  # fmt: skip
    entries = {e.name: e for e in load_entries(scores)}
    assert {k: e.group for k, e in entries.items()} == {
        "quick/fold0/bdca": "validation", "quick/test/bdca": "test", "quick/tableIV/fold0/concat": "ablation",
        "quick/test/oracle_fraction": "oracle"}  # fmt: skip
    text = _leaderboard_text(capsys, str(scores))
    assert "0.550 [0.45, 0.65]" in text
    order = [line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│")]
    first = [g for g in order if g]
    assert first[:4] == ["test", "validation", "ablation", "oracle"]  # grouped, ours first


def test_leaderboard_names_what_it_looked_for(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["leaderboard", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "no summary.json (a run or fold folder" in err and "scores.json" in err


def test_leaderboard_never_cuts_a_row_name_off_a_terminal(experiment, capsys):
    _, _, _, out, *_ = experiment
    text = _leaderboard_text(capsys, str(out))
    assert "…" not in text and "fold1/bdca_no_dw (validation)" in text
    assert "8th ABAW baseline (Kollias et al. 2025)" in text
