"""`harness preprocess` on real GRID clips: crops for every frame, audio features per frame, resumable, bad videos
reported without stopping the run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import HarnessError
from harness.cli import main
from harness.stages.preprocess import PreprocessConfig, discover_jobs, preprocess
from preprocessing.cache import FeatureCache
from tests._weights import needs_scrfd

GRID = Path(__file__).resolve().parents[3] / "preprocessing" / "assets" / "grid"


@pytest.fixture
def clips(tmp_path):
    src = tmp_path / "clips"
    src.mkdir()
    shutil.copy(GRID / "bbaf2n.mpg", src / "bbaf2n.mpg")
    (src / "broken.mp4").write_bytes(b"this is not a video")
    return src


@needs_scrfd
def test_preprocess_grid_clip_end_to_end(clips, tmp_path, capsys):
    out = tmp_path / "out"
    results = {r.video: r for r in preprocess(clips, out, PreprocessConfig(stride=3))}
    good, bad = results["bbaf2n"], results["broken"]
    assert bad.error and "broken.mp4" in bad.error
    assert good.error is None and good.frames == 75 and good.fps == 25.0
    crops = sorted((out / "cropped_aligned" / "bbaf2n").glob("*.jpg"))
    assert len(crops) == 75 == good.with_face and crops[0].name == "00001.jpg"
    assert Image.open(crops[0]).size == (224, 224)
    feats = FeatureCache(out / "features").load("bbaf2n", ["mfcc", "egemaps", "audio_mask"])
    assert feats["mfcc"].shape == (75, 39) and feats["egemaps"].shape == (75, 23)
    assert feats["audio_mask"].all() and np.isfinite(feats["mfcc"]).all()
    assert (out / "preprocess_summary.json").is_file()
    # A rerun finds everything cached and redoes nothing.
    again = {r.video: r for r in preprocess(clips, out, PreprocessConfig(stride=3))}
    assert again["bbaf2n"].faces == "cached" and again["bbaf2n"].audio == "cached"
    # Visual features from an encoder checkpoint (a ViT of the demo config saved with random weights).
    from safetensors.torch import save_file

    from harness.config import load_config
    from models.registry import build_model

    cfg = load_config("demo")
    save_file(build_model(cfg.vit_config()).state_dict(), tmp_path / "enc.safetensors")
    preprocess(clips, out, PreprocessConfig(stride=3, encoder=str(tmp_path / "enc.safetensors"),
                                            encoder_config="demo"))
    vis = FeatureCache(out / "features").load("bbaf2n", ["visual", "visual_mask"])
    assert vis["visual"].shape == (75, cfg.visual_dim) and vis["visual_mask"].all()
    assert np.isfinite(vis["visual"]).all() and vis["visual"].std(axis=0).mean() > 0
    # The CLI says one video failed and exits 1, the others are done.
    assert main(["preprocess", str(clips), "--out", str(out), "--stride", "3"]) == 1
    assert "1 video(s) failed" in capsys.readouterr().out


def test_strict_stops_at_the_bad_video(clips, tmp_path):
    with pytest.raises(HarnessError, match=r"broken\.mp4"):
        preprocess(clips, tmp_path / "o", PreprocessConfig(faces=False), strict=True)


def test_discover_inputs(tmp_path, clips):
    jobs, root = discover_jobs(clips / "bbaf2n.mpg")
    assert [j.name for j in jobs] == ["bbaf2n"] and root is None
    with pytest.raises(HarnessError, match="no such video"):
        discover_jobs(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match="no videos"):
        discover_jobs(tmp_path / "empty")
    # An Aff-Wild2 root: a two-person video's subjects share the raw video.
    root = tmp_path / "aw2"
    (root / "videos" / "batch1").mkdir(parents=True)
    shutil.copy(GRID / "lbax4n.mpg", root / "videos" / "batch1" / "lbax4n.mp4")
    ann = root / "annotations" / "VA_Estimation_Challenge" / "Train_Set"
    ann.mkdir(parents=True)
    for s in ("lbax4n_left", "lbax4n_right"):
        (ann / f"{s}.txt").write_text("valence,arousal\n0.1,0.2\n")
    jobs, found = discover_jobs(root)
    assert found == root and jobs[0].subjects == ("lbax4n_left", "lbax4n_right") and jobs[0].two_person
