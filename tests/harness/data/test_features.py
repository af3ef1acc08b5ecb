"""The one visual-feature extractor and its cache key: shards of the videos give the arrays of one pass over all
of them; the key follows what made the encoder, whether trained here or read from a file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import HarnessError
from harness.config import load_config
from harness.data.datasets import VISUAL_MASK
from harness.data.features import MASK_HASH, encode_videos, feature_hash, frame_count
from harness.runtime.sharding import Shard, shard_items
from models.registry import build_model
from preprocessing.cache import FeatureCache
from tests.harness._corpus import make_corpus

SETTINGS = ["encoder.embed_dim=32", "encoder.num_heads=2", "encoder.depth=2", "encoder.img_size=32",
            "stage1.extract_batch=7", "runtime.progress=false",
            "features.visual=visual", "stage1.finetune.epochs=2"]  # fmt: skip  # the demo's stage 1


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("corpus")
    layout, cache = make_corpus(root, train=3, val=1, test=1, frames=(11, 23), crops=True, crop_size=32)
    cfg = load_config("quick", SETTINGS)
    torch.manual_seed(0)
    vit = build_model(cfg.vit_config())
    return layout, cache, cfg, vit


def test_shards_encode_what_one_pass_encodes(corpus, tmp_path: Path) -> None:
    layout, cache, cfg, vit = corpus
    entries = [*layout.train, *layout.validation, *layout.test]
    with FeatureCache(tmp_path / "one") as one:
        for e in entries:  # the frame counts come from the manifests, as in a preprocessed cache
            one.save(e.name, "mfcc", np.zeros((frame_count(e, cache), 39), np.float32), "h",
                     {"n_frames": frame_count(e, cache)})  # fmt: skip
    for e in entries:
        (tmp_path / "two" / e.name).mkdir(parents=True)
        os.link(tmp_path / "one" / e.name / "manifest.json", tmp_path / "two" / e.name / "manifest.json")
        os.link(tmp_path / "one" / e.name / "mfcc.npy", tmp_path / "two" / e.name / "mfcc.npy")
    with FeatureCache(tmp_path / "one") as one:
        done = encode_videos(cfg, entries, one, {"visual": (vit, "hv")})
    assert done == [e.name for e in entries]
    sizes = [frame_count(e, cache) or 0 for e in entries]
    parts = [shard_items(entries, sizes, Shard(r, 2)) for r in range(2)]
    assert all(parts) and sum(map(len, parts)) == len(entries)
    for part in parts:  # two writers, one cache: each holds its own videos' locks
        with FeatureCache(tmp_path / "two") as two:
            encode_videos(cfg, part, two, {"visual": (vit, "hv")})
    a, b = FeatureCache(tmp_path / "one"), FeatureCache(tmp_path / "two")
    for e in entries:
        x, y = a.load(e.name, ["visual", VISUAL_MASK]), b.load(e.name, ["visual", VISUAL_MASK])
        np.testing.assert_array_equal(x["visual"], y["visual"], err_msg=e.name)
        np.testing.assert_array_equal(x[VISUAL_MASK], y[VISUAL_MASK], err_msg=e.name)
        assert b.has(e.name, "visual", "hv") and b.has(e.name, VISUAL_MASK, MASK_HASH)
    # a second pass finds everything cached and encodes nothing
    calls = []
    vit.forward_features = lambda x: calls.append(x) or torch.zeros(len(x), 32)  # type: ignore[method-assign]
    with FeatureCache(tmp_path / "two") as two:
        assert encode_videos(cfg, entries, two, {"visual": (vit, "hv")}) == [e.name for e in entries]
    assert calls == []
    del vit.forward_features


def test_feature_hash_of_a_file_follows_the_file_and_what_feeds_it(tmp_path: Path) -> None:
    cfg = load_config("demo")  # a config that fine-tunes
    w = tmp_path / "enc.safetensors"
    w.write_bytes(b"x" * 10)
    h = feature_hash(cfg, weights=w)
    assert feature_hash(cfg, weights=str(w)) == h
    assert feature_hash(cfg.replace(**{"stage1.augment.mean": 0.4}), weights=w) != h  # normalisation
    assert feature_hash(cfg.replace(**{"encoder.depth": 3}), weights=w) != h
    assert feature_hash(cfg.replace(**{"stage1.finetune.epochs": 9}), weights=w) == h  # training: not a file's key
    os.utime(w, ns=(1, 1))
    assert feature_hash(cfg, weights=w) != h  # the file changed (its modification time)
    trained = feature_hash(cfg, train_videos=["a", "b"])
    assert trained != h and feature_hash(cfg, train_videos=["b", "a"]) == trained
    with pytest.raises(HarnessError, match=r"training videos .* or its weights file"):
        feature_hash(cfg)
    with pytest.raises(HarnessError, match=r"training videos .* or its weights file"):
        feature_hash(cfg, weights=w, train_videos=["a"])
