"""`harness ensemble` and `harness submit --plan`: hand-computed averages, weights that never see the reported frames,
mismatched members refused by name, ensemble packages that validate and score like a run's."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest

from core.ownership import OwnershipError
from harness.cli import main
from harness.commands.score import score_path
from harness.config import load_config
from harness.experiments import (
    FOLD_ENSEMBLE,
    LATE_FUSION,
    MAX_SUBMISSIONS,
    MODEL_ENSEMBLE,
    SINGLE,
    Candidate,
    EnsembleError,
    build_ensemble,
    check_compatible,
    choose_candidates,
    load_member,
    make_ensemble,
    read_candidate,
)
from harness.folders.run import RunDir
from harness.stages.predict import load_predictions, predict_videos
from harness.stages.stage2 import train_stage2
from submissions.bootstrap import bootstrap_ci, cluster_stats, paired_bootstrap
from submissions.ensemble import GROUPS, fusion_stats_videos, search_weights, video_groups
from submissions.metrics import score_va
from submissions.package import verify_package
from tests.harness._corpus import make_corpus
from tests.harness._stage2 import settings as stage2_settings
from tests.harness.experiments._ensemble import layout_labels, make_run, noisy, summary


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("ens_corpus")
    layout, _cache = make_corpus(root, train=4, val=6, test=3, frames=(30, 50), visual_dim=4)
    return root, layout


@pytest.fixture(scope="module")
def runs(corpus, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three runs of fold 0: a good, a middling and a poor model."""
    _root, layout = corpus
    base = tmp_path_factory.mktemp("ens_runs")
    made = [make_run(base / name, layout, model=model, noise=noise, seed=i)
            for i, (name, model, noise) in enumerate((("bdca", "bdca", 0.25), ("concat", "concat", 0.4),
                                                      ("audio", "audio_only", 0.7)))]  # fmt: skip
    return [r.path for r in made]


def _labels(layout, members) -> dict:
    return {s: layout_labels(layout, members[0].predictions[s]) for s in ("validation", "test")}


def _score3(labels, preds) -> tuple[float, float, float]:
    v = sorted(labels)
    s = score_va(np.concatenate([labels[x] for x in v]), np.concatenate([preds[x] for x in v]))
    return s.ccc_v, s.ccc_a, s.p_va


def test_mean_ensemble_equals_the_hand_average(corpus, runs, tmp_path):
    root, layout = corpus
    result, ens = make_ensemble(runs[:2], root, tmp_path / "ens")
    assert result.kind == MODEL_ENSEMBLE
    a, b = (RunDir(r) for r in runs[:2])
    for split in ("validation", "test"):
        pa, pb = load_predictions(a.split_predictions(split)), load_predictions(b.split_predictions(split))
        got = load_predictions(ens.split_predictions(split))
        assert sorted(got) == sorted(pa)
        for v in pa:
            np.testing.assert_allclose(got[v], (pa[v] + pb[v]) / 2, atol=1e-6)
    rec = summary(ens.path)
    assert rec["weights"] == {"mode": "mean", "per_dimension": False,
                              "values": {"valence": [0.5, 0.5], "arousal": [0.5, 0.5]}}  # fmt: skip
    for m, r in zip(rec["members"], runs[:2], strict=True):
        assert m["config_hash"] == RunDir(r).run_hash() and m["git_hash"] and m["run"] == str(r)
    # The test estimate is the challenge score of the averaged predictions; the paired difference is against the
    # member with the higher validation score (bdca), on the same frames.
    test = next(e for e in rec["estimates"] if e["split"] == "test")
    labels = layout_labels(layout, pa)
    avg = {v: (pa[v] + pb[v]) / 2 for v in pa}
    assert test["score"]["p_va"] == pytest.approx(_score3(labels, avg)[2], abs=1e-6)
    assert test["best_member"] == "bdca fold0"
    diff = test["score"]["p_va"] - _score3(labels, pa)[2]
    assert test["paired"]["p_va"]["estimate"] == pytest.approx(diff, abs=1e-6)
    ci = bootstrap_ci(cluster_stats(labels, avg))
    assert test["ci"]["p_va"]["low"] == pytest.approx(ci.p_va.low, abs=1e-6)
    assert rec["estimate"]["split"] == "validation"
    # An earlier ensemble folder is the harness's (its ownership record): a rerun replaces it with the same files.
    before = ens.test_predictions.read_bytes()
    make_ensemble(runs[:2], root, tmp_path / "ens")
    assert ens.test_predictions.read_bytes() == before and summary(ens.path)["weights"] == rec["weights"]


def test_searched_weights_equal_the_validation_search_and_nested_parts_hold_out(corpus, runs):
    _root, layout = corpus
    members = [load_member(r) for r in runs]
    labels = _labels(layout, members)
    res = build_ensemble(members, labels, "search", per_dimension=True, step=0.25)
    assert res.kind == LATE_FUSION
    # The final weights: the best point of the grid on all validation frames (checked against a direct scoring).
    val = labels["validation"]
    best = max(_score3(val, {v: sum(w * m.predictions["validation"][v] for w, m in zip(p, members, strict=True))
                             for v in val})[0]
               for p in ([a / 4, b / 4, (4 - a - b) / 4] for a in range(5) for b in range(5 - a)))  # fmt: skip
    assert res.search is not None and res.search.score[0] == pytest.approx(best, abs=1e-9)
    # Nested: each group's videos are predicted with weights searched without them, and they cover validation once.
    groups = video_groups(sorted(val), GROUPS)
    assert [g for g, _s in res.nested] == groups
    for g, s in res.nested:
        for v in g:
            want = sum(s.weights[i] * m.predictions["validation"][v] for i, m in enumerate(members))
            np.testing.assert_allclose(res.predictions["validation"][v], want)
    est = res.estimates[0]
    assert est.split == "validation" and "nested" in est.on
    assert est.score == pytest.approx(_score3(val, res.predictions["validation"]), abs=1e-9)
    own = paired_bootstrap(cluster_stats(val, res.predictions["validation"]),
                           cluster_stats(val, members[0].predictions["validation"]))  # fmt: skip
    assert est.paired is not None and est.paired.p_va == own.p_va


@pytest.mark.parametrize("per_dimension", [False, True])
def test_leak_detector_weights_never_see_the_reported_frames(corpus, runs, per_dimension):
    """Shuffling the labels of the frames an ensemble reports leaves the weights that predict them unchanged."""
    _root, layout = corpus
    members = [load_member(r) for r in runs]
    labels = _labels(layout, members)
    before = build_ensemble(members, labels, "search", per_dimension, step=0.1)
    rng = np.random.default_rng(7)
    # The test frames: reported with the weights chosen on validation.
    test = {v: a[rng.permutation(a.shape[0])] for v, a in labels["test"].items()}
    after = build_ensemble(members, {**labels, "test": test}, "search", per_dimension, step=0.1)
    np.testing.assert_array_equal(after.weights, before.weights)
    assert after.estimates[-1].score != before.estimates[-1].score  # the shuffle did reach the test estimate
    # Each validation group: reported with weights searched on the other groups.
    for k, (group, searched) in enumerate(before.nested):
        val = dict(labels["validation"])
        for v in group:
            val[v] = val[v][::-1].copy() * -1.0 + np.where(val[v][::-1] == -5.0, -10.0, 0.0)  # reversed, mirrored
        shuffled = build_ensemble(members, {**labels, "validation": val}, "search", per_dimension, step=0.1)
        np.testing.assert_array_equal(shuffled.nested[k][1].weights, searched.weights)
        for v in group:
            np.testing.assert_array_equal(shuffled.predictions["validation"][v], before.predictions["validation"][v])


def test_mismatched_members_are_refused_by_name(corpus, runs, tmp_path, capsys):
    root, layout = corpus
    vids = [e.name for e in layout.validation]
    labels = layout_labels(layout, vids)
    fewer = {v: p for v, p in noisy(labels, 0.3, 1).items() if v != vids[-1]}
    short = make_run(tmp_path / "short", layout, preds={"validation": fewer})  # the same fold, one video unsaved
    with pytest.raises(EnsembleError, match=rf"predict different validation videos: '{vids[-1]}' is predicted by "):
        make_ensemble([runs[0], short.path], root, tmp_path / "e1")
    cut = noisy(labels, 0.3, 1)
    cut[vids[2]] = cut[vids[2]][:-1]
    with pytest.raises(EnsembleError, match=rf"frame count of validation video '{vids[2]}': \d+ and \d+"):
        check_compatible([load_member(runs[0]), load_member(make_run(tmp_path / "cut", layout,
                                                                     preds={"validation": cut}).path)])  # fmt: skip
    mtcnn = make_run(tmp_path / "mtcnn", layout, changes={"preprocess.detector": "mtcnn"})
    with pytest.raises(EnsembleError, match="differ in their feature settings: preprocess is"):
        make_ensemble([runs[0], mtcnn.path], root, tmp_path / "e2")
    other = make_run(tmp_path / "other_labels", layout)
    rec = summary(other.path)
    rec["val"]["p_va"] += 0.05
    other.write_json(other.summary_file.name, rec)
    with pytest.raises(EnsembleError, match=r"other_labels: its validation predictions score P_VA .* other label"):
        make_ensemble([runs[0], other.path], root, tmp_path / "e3")
    with pytest.raises(EnsembleError, match="give --weights search with it"):
        make_ensemble(runs[:2], root, tmp_path / "e6", per_dimension=True)
    with pytest.raises(EnsembleError, match="given twice"):
        make_ensemble([runs[0], runs[0]], root, tmp_path / "e4")
    nothing = make_run(tmp_path / "no_test", layout, test=False)
    with pytest.raises(EnsembleError, match="no_test: has no test predictions"):
        make_ensemble([runs[0], nothing.path], root, tmp_path / "e5")
    assert not (tmp_path / "e1").exists() and not (tmp_path / "e5").exists()  # nothing written on a refusal
    # The command: one error line naming the run and the difference, exit code 2.
    assert main(["ensemble", str(runs[0]), str(mtcnn.path), "--data", str(root), "--out", str(tmp_path / "e7")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mtcnn" in err[0] and "preprocess is" in err[0]


def test_fold_ensemble_averages_folds_and_refuses_searched_weights(corpus, tmp_path):
    root, layout = corpus
    vids = [e.name for e in layout.validation]
    folds = [make_run(tmp_path / f"fold{k}", layout, fold=k, val=vids[2 * (k - 1): 2 * k], seed=10 * k)
             for k in (1, 2, 3)]  # fmt: skip
    paths = [f.path for f in folds]
    with pytest.raises(EnsembleError, match=r"different folds: .* use --weights mean"):
        make_ensemble(paths, root, tmp_path / "bad", mode="search")
    result, ens = make_ensemble(paths, root, tmp_path / "folds")
    assert result.kind == FOLD_ENSEMBLE
    val, test = result.estimates
    assert val.of == "members" and val.paired is None
    # The validation row is the mean over folds of each fold model on its own held-out videos.
    own = [_score3(layout_labels(layout, m.predictions["validation"]), m.predictions["validation"])[2]
           for m in result.members]  # fmt: skip
    assert val.score[2] == pytest.approx(np.mean(own), abs=1e-9)
    assert [result.member_scores[str(m.path)]["validation"][2] for m in result.members] == pytest.approx(own)
    assert test.split == "test" and test.paired is not None
    assert "validation" not in result.predictions and ens.test_predictions.is_file()


def test_ensemble_package_validates_and_scores_like_any_other(corpus, runs, tmp_path, capsys):
    root, _layout = corpus
    out = tmp_path / "ens"
    assert main(["ensemble", *map(str, runs), "--data", str(root), "--weights", "search", "--per-dimension",
                 "--out", str(out)]) == 0  # fmt: skip
    shown = capsys.readouterr().out
    assert "late fusion of 3 runs" in shown and "ensemble - best single" in shown
    sample = root / "VA_test_set_sample.txt"
    zip_path = tmp_path / "ens.zip"
    assert main(["submit", str(out), "--sample", str(sample), "--out", str(zip_path)]) == 0
    with tempfile.TemporaryDirectory() as work:
        manifest = verify_package(zip_path, sample, work)
    rec = manifest["summary"]
    assert rec["kind"] == "ensemble" and len(rec["members"]) == 3
    assert all(m["config_hash"] and m["git_hash"] for m in rec["members"])
    assert rec["weights"]["mode"] == "search" and rec["search"]["selected_on"] == "validation"
    report = score_path(str(zip_path), str(root / "organiser/VA_Estimation_Challenge/Test_Set"))
    test = next(e for e in rec["estimates"] if e["split"] == "test")
    assert report.total.p_va == pytest.approx(test["score"]["p_va"], abs=1e-4)  # the CSV keeps 6 decimals


def test_out_folder_the_harness_did_not_write_is_refused(corpus, runs, tmp_path):
    root, _layout = corpus
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(OwnershipError, match="not empty"):
        make_ensemble(runs[:2], root, mine)
    assert (mine / "notes.txt").read_text() == "keep"


def test_plan_ranks_by_validation_and_keeps_the_best_of_each_kind(corpus, runs, tmp_path, capsys):
    root, layout = corpus
    make_ensemble(runs, root, tmp_path / "mean")
    make_ensemble(runs, root, tmp_path / "fusion", mode="search", per_dimension=True)
    cands = [read_candidate(p, layout) for p in [*runs, tmp_path / "mean", tmp_path / "fusion"]]
    kinds = {c.kind for c in cands}
    assert kinds == {SINGLE, MODEL_ENSEMBLE, LATE_FUSION}
    single = cands[0]
    labels = layout_labels(layout, load_predictions(RunDir(runs[0]).validation_predictions))
    ci = bootstrap_ci(cluster_stats(labels, load_predictions(RunDir(runs[0]).validation_predictions)))
    assert (single.p_va, single.low, single.high) == (ci.p_va.estimate, ci.p_va.low, ci.p_va.high)
    fusion = cands[-1]
    assert fusion.on.startswith("validation, nested") and fusion.verdict in {"resolved", "not resolved"}
    assert math.isfinite(fusion.test)
    assert main(["submit", "--plan", *map(str, runs), str(tmp_path / "mean"), str(tmp_path / "fusion"),
                 "--data", str(root), "--out", str(tmp_path / "plan")]) == 0  # fmt: skip
    text = (tmp_path / "plan" / "plan.md").read_text()
    assert text.count("\n| ") == 5 + 1  # header and five candidates of six
    assert "Submission plan: 5 of at most 5" in capsys.readouterr().out


def test_choose_candidates_takes_each_kind_first_then_the_best():
    def cand(name: str, kind: str, p_va: float) -> Candidate:
        return Candidate(Path(name), kind, 1, "validation", p_va, math.nan, math.nan, "", "", math.nan, True)

    singles = [cand(f"s{i}", SINGLE, 0.5 + i / 100) for i in range(6)]
    cv = Candidate(Path("cv"), SINGLE, 1, "validation", 0.9, math.nan, math.nan, "", "", math.nan, False)
    chosen = choose_candidates([*singles, cand("fold", FOLD_ENSEMBLE, 0.1), cand("fusion", LATE_FUSION, math.nan), cv])
    assert len(chosen) == MAX_SUBMISSIONS
    assert [c.path.name for c in chosen] == ["s5", "s4", "s3", "fold", "fusion"]  # by score, no estimate last
    assert choose_candidates([cv]) == []  # no submission file: never a candidate


def test_fold_ensemble_predicts_the_test_list_with_cross_validation_folds(tmp_path):
    """CV folds save no test predictions: `--predict` makes them with each fold's model, and the ensemble is their
    mean (what the full demo's six folds need)."""
    layout, cache = make_corpus(tmp_path / "corpus", train=4, val=2, test=2)
    cfg = load_config("quick", stage2_settings("stage2.epochs=1", "experiment.k=2"))
    folds = [train_stage2(cfg, layout, cache, k, tmp_path / f"fold{k}").run_dir for k in (1, 2)]
    assert not any(RunDir(f).test_predictions.is_file() for f in folds)
    with pytest.raises(EnsembleError, match="share no split of saved predictions"):
        make_ensemble(folds, layout.root, tmp_path / "no")
    result, ens = make_ensemble(folds, layout.root, tmp_path / "ens", cache=cache.root, predict=True)
    assert result.kind == FOLD_ENSEMBLE
    test = [e.name for e in layout.test]
    each = [predict_videos(f, cache, test) for f in folds]
    got = load_predictions(ens.test_predictions)
    for v in test:
        np.testing.assert_allclose(got[v], (each[0][v] + each[1][v]) / 2, atol=1e-6)
    assert [e.split for e in result.estimates] == ["validation", "test"]
    assert ens.submission_file.is_file()


@pytest.fixture(scope="module")
def grid_runs(corpus, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two models on folds 0..3: fold 0 holds out the six validation videos, folds 1..3 two of them and training
    videos (as the official validation videos lie in the cross-validation folds, with training ones)."""
    _root, layout = corpus
    base = tmp_path_factory.mktemp("ens_grid")
    vids, train = [e.name for e in layout.validation], [e.name for e in layout.train]
    held = {0: vids, 1: vids[0:2] + train[0:2], 2: vids[2:4] + train[2:3], 3: vids[4:6] + train[3:4]}
    return [make_run(base / f"{model}_fold{k}", layout, model=model, fold=k, val=held[k], noise=noise,
                     seed=10 * k + i).path
            for i, (model, noise) in enumerate((("bdca", 0.3), ("concat", 0.5))) for k in held]  # fmt: skip


def _apart_by_hand(by: dict, labels: dict, k: int, held: list[str]):
    total = None
    for g in range(4):
        a, b = by[(g, "bdca")].predictions["validation"], by[(g, "concat")].predictions["validation"]
        apart = [v for v in sorted(a) if v not in held]
        if g == k or not apart:
            continue
        part = fusion_stats_videos(labels, [a, b], apart)
        total = part if total is None else total + part
    return total


def test_late_fusion_over_folds_is_nested_over_folds(corpus, grid_runs, tmp_path):
    root, layout = corpus
    members = [load_member(r) for r in grid_runs]
    held_out = sorted({v for m in members for v in m.predictions["validation"]})
    labels = {
        "validation": layout_labels(layout, held_out),
        "test": layout_labels(layout, [e.name for e in layout.test]),
    }
    res = build_ensemble(members, labels, "search", step=0.1)
    assert res.kind == LATE_FUSION and res.weights.shape == (2, 2)
    assert [res.weight_row(i) for i in range(len(members))] == [0, 1] * 4
    # Fold k's weights: searched on the other folds' frames of videos fold k does not hold out, by hand.
    by = {(m.fold, m.model): m for m in members}
    for k, (held, searched) in zip(range(4), res.nested, strict=True):
        total = _apart_by_hand(by, labels["validation"], k, held)
        np.testing.assert_array_equal(searched.weights, search_weights(total, 0.1).weights)
        # Leak detector: other labels on fold k's videos (also fold 0's, where they are predicted again) leave
        # fold k's weights unchanged.
        val = dict(labels["validation"])
        for v in held:
            val[v] = np.where(val[v] == -5.0, -5.0, -val[v][::-1])
        again = build_ensemble(members, {**labels, "validation": val}, "search", step=0.1)
        np.testing.assert_array_equal(again.nested[k][1].weights, searched.weights)
    est, test = res.estimates
    assert est.split == "validation" and "mean over folds" in est.on and est.paired is not None
    assert "validation" not in res.predictions and test.split == "test"
    # The test split: each model's folds averaged, then fused with the weights chosen on all folds.
    for v, got in res.predictions["test"].items():
        means = [np.mean([by[(g, m)].predictions["test"][v] for g in range(4)], axis=0) for m in ("bdca", "concat")]
        np.testing.assert_allclose(got, res.weights[0] * means[0] + res.weights[1] * means[1], atol=1e-12)
    _result, ens = make_ensemble(grid_runs, root, tmp_path / "grid", mode="search")
    assert not ens.validation_predictions.exists() and ens.test_predictions.is_file()


def test_a_fold_without_one_of_the_models_is_refused(corpus, grid_runs):
    root, _layout = corpus
    with pytest.raises(EnsembleError, match=r"fold 3 has no run of the model of .*concat_fold0"):
        make_ensemble(grid_runs[:-1], root, Path("/nonexistent/never-written"))
