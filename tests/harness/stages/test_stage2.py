"""Stage 2 on a tiny synthetic corpus: windows and masks, training-only statistics, a full run, skip, 2 processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.config import load_config
from harness.data.datasets import (
    VISUAL_MASK,
    NormStats,
    WindowDataset,
    compute_norm_stats,
    load_labels,
    normalised_streams,
)
from harness.runtime.childenv import child_env
from harness.runtime.distributed import free_port
from harness.stages.stage2 import stage2_loss, stream_dropout, train_stage2
from tests.harness._corpus import make_corpus
from tests.harness._stage2 import settings

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    layout, cache = corpus
    cfg = load_config("quick", settings())
    run = tmp_path_factory.mktemp("runs") / "fold0"
    return cfg, train_stage2(cfg, layout, cache, 0, run)


def test_norm_stats_come_from_the_training_videos_only(corpus):
    layout, cache = corpus
    cfg = load_config("quick", settings())
    train = [e.name for e in layout.train]
    stats = compute_norm_stats(cache, train, cfg.features, chunk=7)
    arrays = [cache.load(v, ["visual", VISUAL_MASK, "mfcc", "egemaps"]) for v in train]
    vis = np.concatenate([a["visual"][a[VISUAL_MASK]] for a in arrays])
    aud = np.concatenate([np.concatenate([a["mfcc"], a["egemaps"]], 1) for a in arrays])
    np.testing.assert_allclose(stats.visual_mean, vis.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats.visual_std, vis.std(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats.audio_mean, aud.mean(0), rtol=1e-5, atol=1e-5)
    assert stats.face_frames == len(vis) and stats.frames == len(aud)
    other = compute_norm_stats(cache, [e.name for e in layout.validation], cfg.features)
    assert not np.allclose(other.visual_mean, stats.visual_mean)


def test_windows_pad_and_mask(corpus, tmp_path):
    layout, cache = corpus
    cfg = load_config("quick", settings())
    stats = compute_norm_stats(cache, [e.name for e in layout.train], cfg.features)
    stats.save(tmp_path / "s.npz")
    assert np.array_equal(NormStats.load(tmp_path / "s.npz").audio_std, stats.audio_std)
    video = layout.train[2]
    n = cache.manifest(video.name)["n_frames"]
    labels = load_labels(video.annotation, n)
    L = n + 10  # longer than the video: one padded window
    ds = WindowDataset(cache, {video.name: labels}, cfg.features, stats, L, L)
    assert len(ds) == 1
    item = ds[0]
    assert item["visual"].shape == (L, cfg.visual_dim) and item["audio"].shape == (L, cfg.audio_dim)
    assert item["pad_mask"][n:].all() and not item["pad_mask"][:n].any()
    valid = ~(labels == -5).any(1)
    assert torch.equal(item["label_mask"][:n], torch.from_numpy(valid)) and not item["label_mask"][n:].any()
    face = cache.load(video.name, [VISUAL_MASK])[VISUAL_MASK]
    assert (item["visual"][:n][~torch.from_numpy(face)] == 0).all()  # no face: the training mean, i.e. 0
    arrays = cache.load(video.name, ["visual", VISUAL_MASK, "mfcc", "egemaps"])
    _v, a = normalised_streams(arrays, cfg.features, stats)
    np.testing.assert_allclose(item["audio"][:n].numpy(), a, rtol=1e-6)
    # regular windows: 300/200-style starts, every window full length
    ds2 = WindowDataset(cache, {video.name: labels}, cfg.features, stats, 16, 12)
    assert all(ds2[i]["visual"].shape[0] == 16 for i in range(len(ds2)))
    assert not ds2[len(ds2) - 1]["pad_mask"].any()


def test_loss_ignores_masked_frames_and_survives_empty_batches():
    class Echo(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def forward(self, visual, audio, pad_mask):
            return torch.tanh(visual[..., :2] * self.w)

    B, T = 2, 6
    vis = torch.randn(B, T, 4)
    labels = torch.tanh(vis[..., :2]).clone()
    mask = torch.ones(B, T, dtype=torch.bool)
    labels[0, 0] = -5.0
    mask[0, 0] = False
    batch = {"visual": vis, "audio": torch.zeros(B, T, 3), "pad_mask": ~mask, "labels": labels, "label_mask": mask}
    assert stage2_loss(Echo(), batch).item() == pytest.approx(0.0, abs=1e-6)  # the -5 frame does not count
    empty = {**batch, "label_mask": torch.zeros(B, T, dtype=torch.bool)}
    loss = stage2_loss(Echo(), empty)
    loss.backward()
    assert loss.item() == 0.0


class _Fixed(torch.nn.Module):
    """A stage-2 model that predicts the given (B, T, 2) values whatever its input."""

    def __init__(self, out: torch.Tensor):
        super().__init__()
        self.out = torch.nn.Parameter(out.clone())

    def forward(self, visual, audio, pad_mask):
        return self.out


def _imperfect_batch(seed: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(predictions, batch): predictions correlated with the labels but scaled, shifted and noisy; two -5 frames
    inside the windows (not padding) and two padded frames at the end of the second window."""
    g = torch.Generator().manual_seed(seed)
    B, T = 2, 12
    labels = torch.rand(B, T, 2, generator=g) * 1.6 - 0.8
    pred = 0.6 * labels + 0.2 + 0.2 * torch.randn(B, T, 2, generator=g)
    labels[0, 3] = labels[1, 5] = -5.0
    pad = torch.zeros(B, T, dtype=torch.bool)
    pad[1, -2:] = True
    mask = (labels != -5.0).all(-1) & ~pad
    batch = {"visual": torch.zeros(B, T, 4), "audio": torch.zeros(B, T, 3), "pad_mask": pad, "labels": labels,
             "label_mask": mask}  # fmt: skip
    return pred, batch


def _one_minus_ccc(pred: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor) -> float:
    from submissions.metrics import ccc as numpy_ccc

    p, t = pred[keep].double().numpy(), labels[keep].double().numpy()
    return 1.0 - (numpy_ccc(t[:, 0], p[:, 0]) + numpy_ccc(t[:, 1], p[:, 1])) / 2


def test_loss_is_one_minus_ccc_on_an_imperfect_predictor():
    # On a perfect predictor 1 - CCC and MSE are both 0: only an imperfect one tells the loss's formula.
    pred, batch = _imperfect_batch()
    keep = batch["label_mask"]
    loss = stage2_loss(_Fixed(pred), batch).item()
    assert loss == pytest.approx(_one_minus_ccc(pred, batch["labels"], keep), abs=1e-5)
    mse = torch.mean((pred[keep] - batch["labels"][keep]) ** 2).item()
    assert abs(loss - mse) > 0.05  # the numbers differ by far more than the tolerance above


def test_loss_leaves_out_unannotated_frames_inside_the_windows():
    # -5 frames that are not padding: the mask of annotated frames, not the padding mask, decides what counts.
    pred, batch = _imperfect_batch(seed=1)
    loss = stage2_loss(_Fixed(pred), batch).item()
    assert loss == pytest.approx(_one_minus_ccc(pred, batch["labels"], batch["label_mask"]), abs=1e-5)
    with_placeholders = _one_minus_ccc(pred, batch["labels"], ~batch["pad_mask"])
    assert abs(loss - with_placeholders) > 0.05  # counting the -5 placeholders would move the loss this much


def test_train_stage2_end_to_end(trained, corpus):
    layout, _cache = corpus
    _cfg, res = trained
    assert not res.skipped and res.fold == 0 and res.model == "bdca"
    assert res.val["p_va"] > 0.3  # the synthetic features carry the labels
    assert res.test is not None and res.reported_on == "test"
    run = res.run_dir
    for f in (
        "config.yaml",
        "git.txt",
        "metrics.jsonl",
        "ds_config.json",
        "best.safetensors",
        "norm_stats.npz",
        "summary.json",
        "predictions/validation.npz",
        "predictions/test.npz",
        "predictions/submission.csv",
    ):
        assert (run / f).is_file(), f  # fmt: skip
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines[:-1]] == [0, 1, 2] and lines[-1]["event"] == "final"
    best = max(lines[:-1], key=lambda r: r["val_p_va"])
    assert res.best_epoch == best["epoch"]
    assert res.val["p_va"] == pytest.approx(best["val_p_va"], abs=1e-6)  # best weights re-predict the same score
    from submissions.formats import validate_submission

    assert validate_submission(run / "predictions/submission.csv", layout.sample_file) == []


def test_finished_run_is_skipped_and_a_changed_config_is_not(trained, corpus):
    layout, cache = corpus
    cfg, res = trained
    again = train_stage2(cfg, layout, cache, 0, res.run_dir)
    assert again.skipped and again.val == res.val
    changed = cfg.replace(**{"stage2.epochs": 1})
    redo = train_stage2(changed, layout, cache, 0, res.run_dir)
    assert not redo.skipped and redo.best_epoch == 0



def test_two_process_zero2_matches_one_process(corpus, tmp_path):
    """torchrun with 2 processes under ZeRO-2 gives the validation CCC of one process accumulating 2 micro batches."""
    layout, cache = corpus
    common = settings("stage2.micro_batch=2", "model.dropout=0.0", "model.tcn_dropout=0.0", "data.modality_dropout=0.0",
                      "deepspeed.zero_stage=2")
    one = train_stage2(load_config("quick", [*common, "stage2.grad_accum=2"]), layout, cache, 0, tmp_path / "one")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
        "-m", "harness.cli", "train", "--stage", "2", "--config", "quick", "--data", str(layout.root),
        "--cache", str(layout.root / "cache"), "--out", str(tmp_path / "two"), "--no-progress",
        *[a for s in [*common, "stage2.grad_accum=1"] for a in ("--set", s)],
    ]  # fmt: skip
    env = child_env()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "summary.json").read_text())
    ds = json.loads((tmp_path / "two" / "ds_config.json").read_text())
    assert ds["train_batch_size"] == 4 and ds["gradient_accumulation_steps"] == 1
    assert two["val"]["p_va"] == pytest.approx(one.val["p_va"], abs=0.02)
    assert two["val"]["ccc_v"] == pytest.approx(one.val["ccc_v"], abs=0.02)
    assert two["val"]["ccc_a"] == pytest.approx(one.val["ccc_a"], abs=0.02)


def test_modality_dropout_acts_only_while_training_and_only_on_two_stream_rows() -> None:
    pred, batch = _imperfect_batch()
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    class Spy(_Fixed):
        def forward(self, visual, audio, pad_mask):
            seen.append((visual, audio))
            return self.out

    batch = {**batch, "visual": torch.ones(2, 12, 4), "audio": torch.ones(2, 12, 3)}
    model = Spy(pred)
    torch.manual_seed(3)
    trained = [stage2_loss(model, batch, modality_dropout=1.0).item() for _ in range(8)]
    silenced = [int(float(win_v.abs().sum()) == 0) + int(float(win_a.abs().sum()) == 0)
                for visual, audio in seen for win_v, win_a in zip(visual, audio, strict=True)]  # fmt: skip
    assert len(silenced) == 16 and all(n == 1 for n in silenced)  # p = 1: every window loses exactly one stream
    assert len(set(trained)) == 1  # the loss itself is the prediction's, which the spy does not change
    seen.clear()
    model.eval()
    stage2_loss(model, batch, modality_dropout=1.0)
    assert len(seen) == 1 and torch.equal(seen[0][0], batch["visual"]) and torch.equal(seen[0][1], batch["audio"])

    cfg = load_config("quick")
    assert cfg.data.modality_dropout == pytest.approx(0.4)
    assert stream_dropout(cfg) == pytest.approx(0.4)  # bdca fuses both
    assert stream_dropout(cfg, "lfan") == pytest.approx(0.4)  # so does every rival
    assert stream_dropout(cfg, "audio_only") == 0.0 and stream_dropout(cfg, "visual_only") == 0.0
    assert load_config("paper").data.modality_dropout == 0.0 and load_config("demo").data.modality_dropout == 0.0
