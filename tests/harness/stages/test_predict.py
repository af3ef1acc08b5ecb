"""Prediction: overlap averaging, every frame covered and clipped, a trained run re-predicted, files written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.config import load_config
from harness.data.windows import window_starts
from harness.stages.predict import (
    ModuleForward,
    PredictError,
    average_windows,
    load_predictions,
    module_forward,
    predict_arrays,
    predict_video_file,
    predict_videos,
    write_video_outputs,
)
from harness.stages.stage2 import train_stage2
from models import create_model, list_models
from tests.harness._corpus import make_corpus
from tests.harness._stage2 import settings as stage2_settings

REPO = Path(__file__).resolve().parents[3]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 400), st.integers(1, 60), st.data())
def test_average_windows_is_the_mean_over_covering_windows(n, length, data):
    stride = data.draw(st.integers(1, length))
    starts = window_starts(n, length, stride)
    values = np.arange(1, len(starts) + 1, dtype=float)  # window w predicts the constant w + 1
    preds = np.repeat(values[:, None, None], length, axis=1).repeat(2, axis=2)
    out = average_windows(n, starts, length, preds)
    assert n > 0, "the loop below checks nothing"
    for i in range(n):
        covering = [values[w] for w, s in enumerate(starts) if s <= i < s + length]
        assert out[i, 0] == pytest.approx(np.mean(covering))


def test_uncovered_frames_are_an_error():
    with pytest.raises(PredictError, match="covered by no window"):
        average_windows(10, [0], 5, np.zeros((1, 5, 2)))


@pytest.mark.parametrize(("n", "length", "stride"), [(100, 30, 20), (7, 30, 20), (30, 30, 30), (61, 10, 3)])
def test_windows_line_up_with_their_frames(n, length, stride):
    """A model that echoes each frame's own value must give back exactly that value for every frame."""
    visual = np.random.default_rng(n).uniform(-0.9, 0.9, size=(n, 4)).astype(np.float32)
    audio = np.zeros((n, 3), np.float32)
    shapes = []

    def echo(v, a, pad):
        shapes.append(tuple(v.shape))
        assert pad.shape == v.shape[:2] and v.shape[1] == length
        return v[..., :2]

    out = predict_arrays(echo, visual, audio, length, stride, batch=2)
    np.testing.assert_allclose(out, visual[:, :2], rtol=0, atol=1e-6)
    assert sum(s[0] for s in shapes) == len(window_starts(n, length, stride))


def test_predictions_are_clipped_and_empty_videos_are_empty():
    out = predict_arrays(lambda v, a, p: torch.full((*v.shape[:2], 2), 3.0), np.zeros((9, 2)), np.zeros((9, 1)), 4, 2)
    assert out.shape == (9, 2) and (out == 1.0).all()
    assert predict_arrays(lambda *t: None, np.zeros((0, 2)), np.zeros((0, 1)), 4, 2).shape == (0, 2)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(list_models("temporal")), n=st.integers(1, 120), length=st.integers(1, 70),
       data=st.data())  # fmt: skip
def test_module_forward_predicts_as_the_plain_windowed_forward(name, n, length, data):
    """`module_forward` over a temporal model computes the windows' shared work once (`ModuleForward.windows`): the
    same predictions, to 1e-6 on every frame, as calling the model window by window, for every registered temporal
    model, videos shorter than a window, stride == length, windows too short to share their TCNs."""
    stride = data.draw(st.one_of(st.just(length), st.integers(1, length)), label="stride")
    dilations = data.draw(st.sampled_from([(1,), (1, 2), (1, 2, 4, 8)]), label="dilations")
    torch.manual_seed(n)
    model = create_model(name, visual_dim=6, audio_dim=5, tcn_channels=8, tcn_dilations=dilations, num_heads=2,
                         dim_feedforward=16, head_hidden=8)  # fmt: skip
    rng = np.random.default_rng(n)
    visual, audio = rng.normal(size=(n, 6)), rng.normal(size=(n, 5)).astype(np.float32)  # float64 visual: cast
    fast = module_forward(model)
    assert isinstance(fast, ModuleForward) and fast.shares_windows(n, length) == (n >= length)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny shapes: two threads on a busy two-core machine mostly wait at barriers
    try:
        got = predict_arrays(fast, visual, audio, length, stride, batch=3)
        want = predict_arrays(lambda *t: fast(*t), visual, audio, length, stride, batch=3)  # window by window
    finally:
        torch.set_num_threads(threads)
    assert got.shape == (n, 2)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    layout, cache = make_corpus(tmp_path_factory.mktemp("corpus"), train=4, val=2, test=2)
    cfg = load_config("quick", stage2_settings("stage2.epochs=2"))
    res = train_stage2(cfg, layout, cache, 0, tmp_path_factory.mktemp("runs") / "fold0")
    return layout, cache, cfg, res


def test_predict_videos_reproduces_the_run(run):
    layout, cache, _cfg, res = run
    test = [e.name for e in layout.test]
    preds = predict_videos(res.run_dir, cache, test)
    saved = load_predictions(res.run_dir / "predictions" / "test.npz")
    assert test, "the loop below checks nothing"
    for v in test:
        n = cache.manifest(v)["n_frames"]
        assert preds[v].shape == (n, 2)  # every frame, also those without a face
        assert np.isfinite(preds[v]).all() and np.abs(preds[v]).max() <= 1.0
        np.testing.assert_allclose(preds[v], saved[v], atol=1e-5)


def test_predict_command_writes_a_valid_submission(run, tmp_path):
    layout, cache, _cfg, res = run
    from submissions.formats import read_submission, validate_submission

    out = tmp_path / "sub.csv"
    code = main(["predict", str(res.run_dir), "--data", str(layout.root), "--cache", str(cache.root),
                 "--out", str(out)])  # fmt: skip
    assert code == 0
    assert validate_submission(out, layout.sample_file) == []
    assert sorted(read_submission(out)) == sorted(e.name for e in layout.test)
    with pytest.raises(PredictError, match="not a trained stage-2 run"):
        predict_videos(tmp_path, cache, ["te00"])


def test_video_outputs(tmp_path):
    preds = np.stack([np.linspace(-1, 1, 50), np.zeros(50)], 1)
    csv, png = write_video_outputs(tmp_path, "clip", preds, fps=25.0)
    lines = csv.read_text().splitlines()
    assert lines[0] == "frame,time_s,valence,arousal" and len(lines) == 51
    assert lines[2].startswith("2,0.040,-0.959")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_raw_video_end_to_end(run, tmp_path):
    """A raw clip through preprocessing (audio; faces off: no detector weights offline), the encoder, the model."""
    _layout, _cache, cfg, res = run
    from harness.train.loop import save_weights
    from models.registry import build_model

    torch.manual_seed(0)
    save_weights(tmp_path / "vit.safetensors", build_model(cfg.vit_config()).state_dict())
    clip = REPO / "preprocessing" / "assets" / "grid" / "bbaf2n.mpg"
    preds, files = predict_video_file(res.run_dir, clip, tmp_path / "out", tmp_path / "vit.safetensors", faces=False)
    assert preds.shape[0] == 75 and preds.shape[1] == 2
    assert [f.name for f in files] == ["bbaf2n.csv", "bbaf2n.png"]
    assert len((tmp_path / "out" / "bbaf2n.csv").read_text().splitlines()) == 76
