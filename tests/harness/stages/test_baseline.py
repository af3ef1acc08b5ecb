"""The challenge baseline row: a per-frame ResNet trained on a tiny corpus's face crops, every frame predicted and
scored like stage 2, its weights file checked, and its row in Tables I and IV beside the paper's 0.240 / 0.200."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from torchvision.models import resnet18, resnet50

from harness.config import ConfigError, load_config
from harness.data.datasets import crop_files, labelled_frames, load_labels
from harness.data.splits import fold_split, stage1_reserved
from harness.experiments.ablation import run_ablation
from harness.experiments.folds import run_folds
from harness.folders.experiment import run_dir_for
from harness.folders.run import RunDir
from harness.stages.baseline import BaselineError, baseline_hash, build_baseline, train_baseline
from harness.stages.predict import load_predictions
from harness.stages.stage2 import score_record
from models.errors import CheckpointError
from submissions.formats import validate_submission
from tests.harness._corpus import make_corpus
from tests.harness._stage2 import settings as stage2_settings

BASELINE = [
    "baseline.img_size=32", "baseline.width=4", "baseline.layers=[1, 1]", "baseline.frames_per_video=12",
    "baseline.val_frames_per_video=6", "baseline.loop.epochs=2", "baseline.loop.micro_batch=8",
    "runtime.num_workers=0",
]  # fmt: skip


def settings(*more: str) -> list[str]:
    return stage2_settings("stage1.enabled=false", *BASELINE, *more)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"), train=5, val=2, test=2, crops=True, crop_size=32)


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    layout, cache = corpus
    cfg = load_config("quick", settings())
    run = tmp_path_factory.mktemp("runs") / "baseline0"
    return cfg, run, train_baseline(cfg, layout, cache, 0, run)


def test_trains_on_the_folds_training_videos_and_predicts_every_frame(corpus, trained):
    layout, cache = corpus
    cfg, run, res = trained
    fold = fold_split(layout, 0, cfg.experiment.k, cfg.experiment.fold_seed, stage1_reserved(layout, cfg))
    reserved = stage1_reserved(layout, cfg)
    assert reserved and set(reserved).isdisjoint(fold.train)  # the stage-1 videos are left out, as in stage 2
    rec = res.record
    assert rec["frames"] == len(labelled_frames([layout.entry(v) for v in fold.train], 12))
    assert res.model == "baseline" and rec["network"] == "resnet50_va" and not res.skipped
    assert [r["epoch"] for r in RunDir(run).epoch_records()] == [0, 1]  # through the engine, an epoch a record

    fill = np.asarray(rec["no_face_prediction"])
    for split, videos in (("validation", fold.val), ("test", fold.test)):
        preds = load_predictions(run / "predictions" / f"{split}.npz")
        assert sorted(preds) == sorted(videos)
        labels = {}
        for v, p in preds.items():
            entry = layout.entry(v)
            n = cache.manifest(v)["n_frames"]
            assert p.shape == (n, 2) and np.abs(p).max() <= 1.0
            face = np.array([f"{i + 1:05d}.jpg" in crop_files(entry.crops_dir) for i in range(n)])
            assert (~face).any() and face.any()
            # A frame without a face gets the no-face prediction (the head on the mean training feature) ...
            np.testing.assert_allclose(p[~face], np.tile(fill, ((~face).sum(), 1)), atol=1e-6)
            # ... and a frame with one its own, from its crop.
            assert len(np.unique(p[face].round(6), axis=0)) > 1
            labels[v] = load_labels(entry.annotation, n)
        # The same scorer as stage 2, on all frames of the split.
        want = score_record(preds, labels)
        got = rec["val"] if split == "validation" else rec["test"]
        assert got == pytest.approx(want)
    assert rec["predicted_frames"] == sum(cache.manifest(v)["n_frames"] for v in (*fold.val, *fold.test))
    # Fold 0 writes the submission of the test list, valid against the organisers' sample file.
    assert validate_submission(run / "predictions" / "submission.csv", layout.sample_file) == []


def test_a_finished_run_is_reused_and_a_changed_setting_is_not(corpus, trained):
    layout, cache = corpus
    cfg, run, res = trained
    again = train_baseline(cfg, layout, cache, 0, run)
    assert again.skipped and again.record == res.record
    fold = fold_split(layout, 0, cfg.experiment.k, cfg.experiment.fold_seed, stage1_reserved(layout, cfg))
    other = cfg.replace(**{"baseline.hflip": 0.0})
    assert baseline_hash(other, fold) != baseline_hash(cfg, fold)
    # Stage-2 settings do not touch the baseline: its run stays valid when only they change.
    assert baseline_hash(cfg.replace(**{"stage2.epochs": 9}), fold) == baseline_hash(cfg, fold)


def test_weights_file_official_format_loads_and_wrong_files_are_refused(tmp_path):
    torch.manual_seed(1)
    tv = resnet50(weights=None)
    official = tmp_path / "resnet50-0676ba61.pth"
    torch.save(tv.state_dict(), official)  # the format of torchvision's ImageNet file: a state dict, torch.save
    full = ["baseline.img_size=32", "baseline.width=64", "baseline.layers=[3, 4, 6, 3]"]
    model = build_baseline(load_config("quick", [*full, f"baseline.weights={official}"]))
    state = model.state_dict()
    assert tv.state_dict(), "the loop below checks nothing"
    for k, v in tv.state_dict().items():
        if not k.startswith("fc."):
            assert torch.equal(state[k], v), k

    missing = tmp_path / "resnet50-11ad3fa6.pth"
    with pytest.raises(BaselineError, match=r"baseline\.weights: .*resnet50-11ad3fa6\.pth not found"):
        build_baseline(load_config("quick", [*full, f"baseline.weights={missing}"]))
    other = tmp_path / "resnet18.pth"
    torch.save(resnet18(weights=None).state_dict(), other)
    with pytest.raises(CheckpointError, match=r"resnet18\.pth: not torchvision's resnet50 ImageNet weights"):
        build_baseline(load_config("quick", [*full, f"baseline.weights={other}"]))
    # The demo's narrow network cannot take ImageNet weights, and says why.
    with pytest.raises(CheckpointError, match=r"resnet50-0676ba61\.pth: .*need width 64 .* has width 16"):
        build_baseline(load_config("quick", [f"baseline.weights={official}"]))


def test_config_checks_the_row_and_the_network():
    cfg = load_config("quick", ["experiment.ablation_models=[baseline, bdca]"])
    assert cfg.experiment.ablation_models == ("baseline", "bdca")
    with pytest.raises(ConfigError, match=r"\['mystery'\] not temporal models .* nor 'baseline'"):
        load_config("quick", ["experiment.ablation_models=[mystery]"])
    with pytest.raises(ConfigError, match=r"baseline\.name: 'bdca' is not a registered per-frame network"):
        load_config("quick", ["baseline.name=bdca"])
    with pytest.raises(ConfigError, match=r"baseline.*width"):
        load_config("quick", ["baseline.width=0"])


def test_baseline_rows_in_tables_i_and_iv(corpus, tmp_path):
    from harness.experiments.demo import _scores_from_tables

    layout, cache = corpus
    cfg = load_config("quick", settings("stage2.epochs=1", "experiment.folds=[0]", "experiment.ablation_folds=[0]",
                                        "experiment.ablation_models=[baseline, audio_only, bdca]",
                                        "experiment.table3=false"))  # fmt: skip
    out = tmp_path / "exp"
    t1 = run_folds(cfg, layout, cache, out)
    base = next(r for r in t1.results if r.model == "baseline")
    assert base.run_dir == run_dir_for(out, cfg, 0, "baseline") and base.reported_on == "test"
    df = pl.read_csv(out / "table_I.csv")
    assert df["row"].to_list() == ["Fold 0", "Mean", "Std", "Baseline"]
    row = df.filter(pl.col("row") == "Baseline").row(0, named=True)
    assert (row["paper_valence"], row["paper_arousal"]) == pytest.approx((0.240, 0.200))
    assert row["average"] == pytest.approx(base.reported["p_va"], abs=1e-4)
    assert row["average_low"] <= row["average"] <= row["average_high"]  # its bootstrap interval, like every row
    assert "| Baseline |" in (out / "table_I.md").read_text()

    (iv,) = run_ablation(cfg, layout, cache, out)
    table = pl.read_csv(out / "table_IV.csv")
    assert table["row"].to_list() == ["Baseline", "Only Audio", "BDCA"]
    row = table.filter(pl.col("row") == "Baseline").row(0, named=True)
    assert row["valence"] == pytest.approx(base.reported["ccc_v"], abs=1e-4)
    assert row["paper_average"] == pytest.approx(0.220)
    again = next(r for r in iv.results if r.model == "baseline")
    assert again.skipped and again.run_dir == base.run_dir  # Table I's fold-0 run, reused
    assert "Baseline - BDCA" in iv.paired["comparison"].to_list()
    keys = set(_scores_from_tables(cfg, t1, [iv]))
    assert {"quick/fold0/baseline", "quick/tableIV/fold0/baseline"} <= keys
