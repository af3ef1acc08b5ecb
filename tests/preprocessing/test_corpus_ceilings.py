"""The modality ceilings: what ideal face-only and voice-only readers predict, and how they are scored."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from preprocessing.corpus.ceilings import ceiling_scores, fill_unseen, interpolate_hidden, modality_views
from preprocessing.corpus.grid import load_clips
from preprocessing.corpus.render import LOWER, SHOWN, VideoScript, script_video
from preprocessing.corpus.spec import plan_corpus
from submissions.metrics import UNANNOTATED, score_va


@pytest.fixture(scope="module")
def scripts() -> list[VideoScript]:
    """Scripts (no rendering) of the small corpus, seed 0: two two-person videos and one without a track."""
    clips = load_clips()
    return [script_video(spec, clips) for spec in plan_corpus(0, "small", len(clips))]


@settings(max_examples=200, deadline=None)
@given(
    data=arrays(np.float64, st.integers(1, 60), elements=st.floats(-1, 1)),
    mask_seed=st.integers(0, 2**32 - 1),
    density=st.floats(0.0, 1.0),
)
def test_interpolate_hidden(data: np.ndarray, mask_seed: int, density: float) -> None:
    seen = np.random.default_rng(mask_seed).random(data.shape[0]) < density
    out = interpolate_hidden(data, seen)
    if not seen.any():
        assert np.isnan(out).all()
        return
    idx = np.flatnonzero(seen)
    np.testing.assert_array_equal(out[seen], data[seen])
    # Held before the first and after the last seen frame, and between two seen frames on the straight line.
    assert (out[: idx[0]] == data[idx[0]]).all() and (out[idx[-1] :] == data[idx[-1]]).all()
    for a, b in itertools.pairwise(idx):
        t = np.arange(a, b + 1)
        np.testing.assert_allclose(out[a : b + 1], data[a] + (data[b] - data[a]) * (t - a) / (b - a), atol=1e-12)


def test_interpolate_hidden_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="same 1-D shape"):
        interpolate_hidden(np.zeros(3), np.ones(4, bool))


def test_visual_reader_sees_the_smile_and_the_eyes(scripts: list[VideoScript]) -> None:
    for script in scripts:
        views = modality_views(script)["visual"]
        for tr in script.persons:
            pred = views[tr.name]
            mouth, eyes = tr.state == SHOWN, tr.state <= LOWER
            # Valence as the mouth shows it: the smile without the interaction share, with its jitter.
            np.testing.assert_allclose(pred[mouth, 0], (tr.clean[:, 0] - tr.cues.interaction + tr.smile_jitter)[mouth])
            np.testing.assert_allclose(pred[eyes, 1], tr.clean[eyes, 1])
    # Some frames hide the mouth but show the eyes (a lower-face patch): arousal read, valence interpolated.
    lower = [(s, tr) for s in scripts for tr in s.persons if (tr.state == LOWER).any()]
    assert lower
    script, tr = lower[0]
    pred = modality_views(script)["visual"][tr.name]
    f = int(np.flatnonzero(tr.state == LOWER)[len(np.flatnonzero(tr.state == LOWER)) // 2])
    assert pred[f, 1] == pytest.approx(tr.clean[f, 1])
    shown = np.flatnonzero(tr.state == SHOWN)
    before, after = shown[shown < f].max(), shown[shown > f].min()
    assert min(pred[before, 0], pred[after, 0]) - 1e-12 <= pred[f, 0] <= max(pred[before, 0], pred[after, 0]) + 1e-12


def test_audio_reader_hears_only_its_own_voice(scripts: list[VideoScript]) -> None:
    saw_mute = saw_two = False
    assert scripts, "the loop below checks nothing"
    for script in scripts:
        views = modality_views(script)["audio"]
        if script.audio is None:
            saw_mute = True
            assert all(np.isnan(views[tr.name]).all() for tr in script.persons)
            continue
        heard = []
        for tr in script.persons:
            pred = views[tr.name]
            h = tr.mouth > 0
            heard.append(h)
            assert h.mean() < 0.95  # pauses between syllables and phrases, silent stretches, the other's turns
            if len(script.persons) == 1:
                assert h.mean() > 0.2
            if not h.any():  # a short two-person video where this person never gets a turn: nothing heard
                assert np.isnan(pred).all()
                continue
            np.testing.assert_allclose(pred[h], tr.clean[h], atol=1e-9)  # breathiness and prosody read exactly
            for s, e in script.silent:
                assert not h[s:e].any()
        if len(heard) == 2:
            saw_two = True
            assert not (heard[0] & heard[1]).any()  # one voice at a time in the shared track
    assert saw_mute and saw_two


def _result(split: str, labels: np.ndarray, clean: np.ndarray, audio: np.ndarray, visual: np.ndarray) -> tuple:
    return split, {"x": labels}, {"audio": {"x": audio}, "visual": {"x": visual}}, {"x": clean}


def test_ceiling_scores_reduce_to_the_oracle_and_fill_the_unseen() -> None:
    rng = np.random.default_rng(0)
    n = 200
    videos = []
    for split in ("Train", "Validation", "Test"):
        clean = np.tanh(np.cumsum(rng.standard_normal((n, 2)) * 0.1, axis=0))
        labels = np.round(clean + 0.05 * rng.standard_normal((n, 2)), 3)
        labels[:10] = UNANNOTATED
        videos.append(_result(split, labels, clean, clean.copy(), np.full((n, 2), np.nan)))
    scores = ceiling_scores(videos)
    # A reader that sees everything is the oracle; a reader that sees nothing predicts the Train mean (CCC 0).
    for split in ("Train", "Validation", "Test", "all"):
        chosen = [v for v in videos if split in ("all", v[0])]
        o = score_va(np.concatenate([v[1]["x"] for v in chosen]), np.concatenate([v[3]["x"] for v in chosen]))
        assert scores["audio"][split].p_va == pytest.approx(o.p_va, abs=1e-6)
        assert scores["audio"][split].frames == o.frames == len(chosen) * (n - 10)
        assert scores["visual"][split].p_va == 0.0 and scores["visual"][split].frames == o.frames
    prior = np.array([0.25, -0.5])
    np.testing.assert_array_equal(
        fill_unseen(np.array([[np.nan, 1.0], [2.0, np.nan]]), prior), [[0.25, 1.0], [2.0, -0.5]]
    )
