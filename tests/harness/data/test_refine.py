"""Label refinement (paper IV.A after [29]): pure properties, and stage 2 keeps refined labels out of scoring."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from harness.config import ConfigError, load_config
from harness.data.datasets import load_labels
from harness.data.fold_data import training_labels
from harness.data.refine import class_va_means, refine_labels, refined_frames
from harness.stages.stage2 import train_stage2
from preprocessing.affwild2 import load_expressions
from tests.harness._corpus import make_corpus
from tests.harness._stage2 import settings as stage2_settings

N_CLASSES = 8


@st.composite
def videos(draw):
    n = draw(st.integers(1, 80))
    values = draw(arrays(np.float64, (n, 2), elements=st.floats(-1, 1)))
    missing = draw(arrays(np.bool_, (n, 2)))
    labels = np.where(missing, -5.0, np.round(values, 3))
    classes = draw(arrays(np.int64, (n,), elements=st.integers(-1, N_CLASSES - 1)))
    means = draw(arrays(np.float64, (N_CLASSES, 2), elements=st.floats(-1, 1) | st.just(np.nan)))
    tau = draw(st.floats(0.5, 200))
    return labels, classes, means, tau


@settings(max_examples=200, deadline=None)
@given(videos())
def test_annotated_values_never_change_and_targets_stay_in_range(video):
    labels, classes, means, tau = video
    out = refine_labels(labels, classes, means, tau)
    known = labels != -5
    np.testing.assert_array_equal(out[known], labels[known])
    filled = (labels == -5) & (out != -5)
    assert np.all(np.abs(out[filled]) <= 1.0)
    assert np.all((out == -5) | (np.abs(out) <= 1.0))
    # A value is filled exactly where the frame's class is known with a known mean for that column.
    for col in range(2):
        can = (labels[:, col] == -5) & (classes >= 0)
        can[can] &= np.isfinite(means[classes[can], col])
        np.testing.assert_array_equal(filled[:, col], can)
    assert refined_frames(labels, out) == int(filled.sum())


@settings(max_examples=100, deadline=None)
@given(videos())
def test_a_video_without_expression_labels_is_returned_unchanged(video):
    labels, classes, means, tau = video
    np.testing.assert_array_equal(refine_labels(labels, None, means, tau), labels)
    np.testing.assert_array_equal(refine_labels(labels, np.full_like(classes, -1), means, tau), labels)


def test_targets_continue_the_curve_near_annotated_frames_and_reach_the_class_mean_deep_in_a_gap():
    n = 401
    labels = np.full((n, 2), -5.0)
    labels[:100] = 0.5  # annotated before the gap
    labels[301:] = 0.5  # and after it
    classes = np.full(n, 4)  # Happiness throughout
    means = np.full((N_CLASSES, 2), np.nan)
    means[4] = (-0.2, 0.9)
    out = refine_labels(labels, classes, means, tau=10.0)
    assert abs(out[100, 0] - (np.exp(-0.1) * 0.5 + (1 - np.exp(-0.1)) * -0.2)) < 1e-12  # 1 frame from annotated
    assert abs(out[200, 0] - -0.2) < 1e-4 and abs(out[200, 1] - 0.9) < 1e-4  # 100 frames in: the class mean
    # Between two different annotated values the neighbours' part is their linear interpolation.
    labels2 = labels.copy()
    labels2[301:] = -0.5
    out2 = refine_labels(labels2, classes, means, tau=1e6)
    assert abs(out2[200, 0] - 0.0) < 1e-3  # halfway between 0.5 (frame 99) and -0.5 (frame 301)


def test_class_means_are_the_frames_with_both_labels():
    labels = np.array([[0.2, 0.4], [0.4, -5.0], [-5.0, -5.0], [-0.6, 0.1]])
    classes = np.array([4, 4, 4, 1])
    means = class_va_means([(labels, classes)])
    np.testing.assert_allclose(means[4], [0.3, 0.4])
    np.testing.assert_allclose(means[1], [-0.6, 0.1])
    assert np.isnan(means[0]).all()
    with pytest.raises(ValueError, match="differ in length"):
        class_va_means([(labels, classes[:2])])


def test_no_refine_row_needs_refinement_on():
    with pytest.raises(ConfigError, match=r"data\.refine_labels is false"):
        load_config("quick", ["experiment.ablation_models=[bdca,no_refine]"])
    cfg = load_config("paper")
    assert cfg.data.refine_labels and "no_refine" in cfg.experiment.ablation_models


@pytest.fixture(scope="module")
def expr_corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("expr_corpus"), expr=True)


def test_training_labels_are_refined_only_when_asked_and_from_training_videos(expr_corpus):
    layout, _cache = expr_corpus
    train = {e.name: load_labels(e.annotation, None) for e in layout.train}
    off, n_off = training_labels(load_config("quick", stage2_settings()), layout, train)
    assert n_off == 0 and all(np.array_equal(off[v], train[v]) for v in train)
    on, n_on = training_labels(load_config("quick", stage2_settings("data.refine_labels=true")), layout, train)
    assert n_on > 0
    for v, lab in train.items():
        known = lab != -5
        np.testing.assert_array_equal(on[v][known], lab[known])
        classes = load_expressions(layout.entry(v).expr_annotation, lab.shape[0])
        # Where the expression is unknown too, the frame stays masked.
        assert np.all(on[v][(classes < 0) & (lab[:, 0] == -5), 0] == -5)


def test_stage2_scores_on_the_files_labels_whatever_the_refinement(expr_corpus, tmp_path, monkeypatch):
    """The validation labels that select the best epoch and are scored, and the test labels, are the files' own
    (-5 kept) with refinement on; the training targets are refined."""
    import harness.stages.stage2 as stage2

    layout, cache = expr_corpus
    seen: dict[str, dict] = {}
    real_read = stage2.read_fold_data

    def spy_read(*args, **kwargs):
        data = real_read(*args, **kwargs)
        seen["val"] = {k: v.copy() for k, v in data.val_labels.items()}
        seen["train"] = {k: v.copy() for k, v in data.windows.labels.items()}  # what the windows train on
        return data

    monkeypatch.setattr(stage2, "read_fold_data", spy_read)
    cfg = load_config("quick", stage2_settings("data.refine_labels=true", "stage2.epochs=1"))
    res = train_stage2(cfg, layout, cache, 0, tmp_path / "run")
    for v, lab in seen["val"].items():
        n = lab.shape[0]
        np.testing.assert_array_equal(lab, load_labels(layout.entry(v).annotation, n))
    assert any((lab == -5).any() for lab in seen["val"].values())  # the check above saw unannotated frames
    assert any(refined_frames(load_labels(layout.entry(v).annotation, lab.shape[0]), lab) > 0
               for v, lab in seen["train"].items())  # fmt: skip
    record = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert record["refined_labels"] > 0 and res.val is not None


def test_the_ablation_row_without_refinement_is_paired_with_bdca(expr_corpus, tmp_path):
    import polars as pl

    from harness.experiments.ablation import run_ablation

    layout, cache = expr_corpus
    cfg = load_config("quick", stage2_settings(
        "stage1.enabled=false", "stage2.epochs=1", "experiment.k=3", "experiment.ablation_folds=[1]",
        "data.refine_labels=true", "experiment.ablation_models=[bdca, no_refine]",
    ))  # fmt: skip
    out = tmp_path / "exp"
    (report,) = run_ablation(cfg, layout, cache, out, table3=False)
    iv = pl.read_csv(out / "table_IV.csv")
    assert "BDCA w/o label refinement" in iv["row"].to_list() and "BDCA" in iv["row"].to_list()
    paired = pl.read_csv(out / "table_IV_paired.csv")
    assert "BDCA w/o label refinement - BDCA" in paired["comparison"].to_list()
    with_refine = json.loads((out / "folds" / "fold1" / "summary.json").read_text())
    without = json.loads((out / "ablation" / "no_refine" / "fold1" / "summary.json").read_text())
    assert with_refine["refined_labels"] > 0 and without["refined_labels"] == 0
    assert {r.run_dir for r in report.results} == {out / "folds" / "fold1", out / "ablation" / "no_refine" / "fold1"}
