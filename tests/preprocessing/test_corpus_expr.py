"""The demo corpus's expression labels: consistent with its V/A, with gaps of their own that overlap the V/A gaps
only in part, written for Train and Validation videos in the EXPR layout."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from preprocessing.corpus.labels import expression_classes, expression_labels, va_trajectories


def test_classes_follow_the_affect_plane():
    clean = np.array([[0.8, 0.1], [0.1, 0.8], [-0.6, 0.6], [-0.8, 0.0], [-0.5, -0.6], [0.5, -0.6], [0.05, 0.05]])
    # One frame per row, far apart in time: smoothing must not mix them, so repeat each row for a second.
    frames = np.repeat(clean, 50, axis=0)
    classes = expression_classes(frames, 25.0)[25::50]
    assert classes.tolist() == [4, 6, 1, 2, 5, 7, 0]  # Happiness, Surprise, Anger, Disgust, Sadness, Other, Neutral


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31), st.integers(60, 600))
def test_gaps_overlap_the_va_gaps_only_in_part(seed, n):
    rng = np.random.default_rng(seed)
    clean = va_trajectories(rng, n, 25.0)
    s = int(rng.integers(0, n // 2))
    gap = (s, s + max(4, n // 5))
    expr = expression_labels(np.random.default_rng(seed + 1), clean, 25.0, [gap], own_gap_share=0.0)
    inside = expr[gap[0] : gap[1]]
    length = gap[1] - gap[0]
    missing = int((inside < 0).sum())
    # 30-60% of the V/A gap misses its expression too (one stretch); the rest is what refinement can use.
    assert round(0.3 * length) - 1 <= missing <= round(0.6 * length) + 1
    assert (inside >= 0).any()
    assert set(np.unique(expr[expr >= 0])) <= set(range(8))
    outside = np.ones(n, bool)
    outside[gap[0] : gap[1]] = False
    assert (expr[outside] >= 0).all()  # no gap of its own with own_gap_share=0


def test_small_corpus_writes_expression_files_consistent_with_va(tmp_path):
    from preprocessing.affwild2 import AffWild2Layout, load_expressions
    from preprocessing.corpus import make_corpus
    from submissions.formats import read_annotation

    manifest = make_corpus(tmp_path / "c", seed=0, size="small")
    layout = AffWild2Layout.discover(tmp_path / "c")
    assert layout.train + layout.validation, "the loop below checks nothing"
    for e in layout.train + layout.validation:
        assert e.expr_annotation is not None, e.name
    assert all(e.expr_annotation is None for e in layout.test)
    pairs = []
    for e in layout.train + layout.validation:
        lab = read_annotation(e.annotation)
        pairs.append((lab, load_expressions(e.expr_annotation, lab.shape[0])))
    lab = np.concatenate([p[0] for p in pairs])
    cls = np.concatenate([p[1] for p in pairs])
    ok = (lab[:, 0] != -5) & (cls >= 0)
    happy, sad = ok & (cls == 4), ok & (cls == 5)
    if happy.any() and sad.any():
        assert lab[happy, 0].mean() > lab[sad, 0].mean()
    # The manifest counts what refinement can use: V/A missing, expression known.
    refinable = sum(p.refinable_frames for v in manifest.videos for p in v.persons)
    assert refinable == int(((lab[:, 0] == -5) & (cls >= 0)).sum())
