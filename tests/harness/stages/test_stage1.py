"""Stage 1 on tiny face crops: MAE pre-training, hierarchical fine-tuning (frozen blocks stay), features cached."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.config import load_config
from harness.data.datasets import VISUAL_MASK, frame_transform, labelled_frames, read_crop
from harness.data.features import feature_hash
from harness.folders.run import RunDir
from harness.stages.stage1 import Stage1Error, finetune_entries, initial_encoder_state, run_stage1
from harness.train.loop import save_weights
from harness.train.weights import load_weights
from tests.harness._corpus import make_corpus

SETTINGS = [
    "encoder.embed_dim=32", "encoder.num_heads=2", "encoder.depth=3", "encoder.frozen_blocks=2",
    "encoder.freeze_embedding=true",
    "encoder.img_size=32", "stage1.mae.decoder_embed_dim=32", "stage1.mae.decoder_num_heads=2",
    "stage1.frames_per_video=8", "stage1.mae.frames_per_video=8", "stage1.val_frames_per_video=6",
    "stage1.mae.loop.micro_batch=8",
    "stage1.finetune.micro_batch=8", "stage1.finetune.epochs=2", "stage1.extract_batch=16",
    "runtime.progress=false", "runtime.eval_batch=16",
    "stage1.extract_unfinetuned=true",  # the quick config leaves it off; these tests read both encoders' features
    # The quick config does not fine-tune; these tests do, on reserved videos, as the demo does.
    "features.visual=visual", "stage1.reserve=0.35",
]  # fmt: skip
# The quick config's own stage 1: no fine-tuning, the encoder's features before it (`visual_mae`) only.
NO_FINETUNE = [s for s in SETTINGS if not s.startswith(("stage1.finetune.", "stage1.extract_unf", "features.",
                                                          "stage1.reserve"))]  # fmt: skip


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    layout, cache = make_corpus(root, train=3, val=2, test=1, frames=(20, 30), crops=True, crop_size=32)
    cfg = load_config("quick", SETTINGS)
    out = tmp_path_factory.mktemp("runs") / "stage1"
    return layout, cache, cfg, out, run_stage1(cfg, layout, cache, out)


def test_features_for_every_frame_of_every_video(done):
    layout, cache, _cfg, _out, res = done
    assert not res.skipped and set(res.videos) == {e.name for e in [*layout.train, *layout.validation, *layout.test]}
    for e in [*layout.train, *layout.validation, *layout.test]:
        n = cache.manifest(e.name)["n_frames"]
        arrays = cache.load(e.name, ["visual", "visual_mae", VISUAL_MASK])
        assert arrays["visual"].shape == (n, 32) and arrays["visual"].dtype == np.float32
        present = np.array([(e.crops_dir / f"{i + 1:05d}.jpg").is_file() for i in range(n)])
        assert np.array_equal(arrays[VISUAL_MASK], present)
        assert (arrays["visual"][~present] == 0).all() and np.abs(arrays["visual"][present]).sum(1).min() > 0
        assert not np.allclose(arrays["visual"][present], arrays["visual_mae"][present])
    assert cache.has(layout.train[0].name, "visual", res.feature_hash)


def test_features_are_the_fine_tuned_cls_tokens(done):
    layout, cache, cfg, _out, res = done
    from models.registry import build_model

    vit = build_model(cfg.vit_config())
    vit.load_state_dict(load_weights(res.encoder_weights))
    vit.eval()
    e = layout.validation[0]
    i = int(np.flatnonzero(cache.load(e.name, [VISUAL_MASK])[VISUAL_MASK])[0])
    img = frame_transform(cfg.stage1.augment, 32, train=False)(read_crop(e.crops_dir / f"{i + 1:05d}.jpg"))
    with torch.no_grad():
        want = vit.forward_features(img[None])[0].numpy()
    np.testing.assert_allclose(cache.load(e.name, ["visual"])["visual"][i], want, rtol=1e-4, atol=1e-5)


def test_hierarchical_fine_tuning_keeps_the_frozen_blocks(done):
    _layout, _cache, _cfg, out, res = done
    mae = load_weights(out / "mae" / "best.safetensors")
    ft = load_weights(res.encoder_weights)
    for k in ("patch_embed.proj.weight", "cls_token", "blocks.0.attn.qkv.weight", "blocks.1.mlp.fc1.weight"):
        torch.testing.assert_close(ft[k], mae[k], rtol=0, atol=0, msg=k)  # frozen: patch embedding, blocks 0-1
    assert not torch.equal(ft["blocks.2.attn.qkv.weight"], mae["blocks.2.attn.qkv.weight"])  # fine-tuned
    hist = RunDir(out / "finetune").epoch_records()
    assert [r["epoch"] for r in hist] == [0, 1] and all("val_p_va" in r for r in hist)
    assert set(res.finetune) >= {"ccc_v", "ccc_a", "p_va"}


def test_training_frames_skip_unlabelled_and_faceless(done):
    layout, _cache, _cfg, _out, _res = done
    items = labelled_frames(layout.train, None)
    from submissions.formats import read_annotation

    assert items, "the loop below checks nothing"
    for it in items:
        assert it.valence != -5 and it.arousal != -5
    e = layout.train[0]
    labels = read_annotation(e.annotation)
    ok = sum(1 for i in range(len(labels)) if (labels[i] != -5).all() and (e.crops_dir / f"{i + 1:05d}.jpg").is_file())
    assert sum(1 for it in items if it.path.startswith(str(e.crops_dir))) == ok
    assert len(labelled_frames(layout.train, 4)) <= 4 * len(layout.train)


def test_fine_tuning_learns_from_the_reserved_videos_only(done):
    layout, _cache, cfg, out, _res = done
    tuned = finetune_entries(cfg, layout)
    assert cfg.stage1.reserve > 0 and 0 < len(tuned) < len(layout.train)
    assert _res.finetune_videos == [e.name for e in tuned]
    assert RunDir(out / "finetune").final_record()["frames"] == len(labelled_frames(tuned, 8))
    assert RunDir(out / "mae").final_record()["frames"] == len(labelled_frames(layout.train, 8))  # no labels: all
    everything = cfg.replace(**{"stage1.reserve": 0.0})
    assert [e.name for e in finetune_entries(everything, layout)] == [e.name for e in layout.train]
    # Where the reserve changes, the fine-tuned features change, the pre-trained ones do not.
    names = [e.name for e in layout.train]
    mae_hash = feature_hash(cfg, train_videos=names, unfinetuned=True)
    assert feature_hash(everything, train_videos=names, unfinetuned=True) == mae_hash
    assert feature_hash(everything, train_videos=names) != feature_hash(cfg, train_videos=names)


def test_second_call_is_skipped(done):
    layout, cache, cfg, out, res = done
    again = run_stage1(cfg, layout, cache, out)
    assert again.skipped and again.feature_hash == res.feature_hash
    tuned = [e.name for e in finetune_entries(cfg, layout)]
    assert feature_hash(cfg, train_videos=tuned) == res.feature_hash
    changed = cfg.replace(**{"stage1.finetune.epochs": 3})
    assert feature_hash(changed, train_videos=tuned) != res.feature_hash
    empty = feature_hash(cfg, train_videos=[], unfinetuned=True)
    assert feature_hash(changed, train_videos=[], unfinetuned=True) == empty


def test_checkpoint_replaces_pretraining(done, tmp_path):
    layout, _cache, cfg, out, _res = done
    mae = load_weights(out / "mae" / "best.safetensors")
    save_weights(tmp_path / "mae.safetensors", mae)
    with_ckpt = cfg.replace(**{"encoder.checkpoint": str(tmp_path / "mae.safetensors")})
    state = initial_encoder_state(with_ckpt, layout, RunDir(tmp_path / "s1"), False, False)
    torch.testing.assert_close(state["blocks.0.attn.qkv.weight"], mae["blocks.0.attn.qkv.weight"])
    assert not (tmp_path / "s1" / "mae").exists()  # no pre-training ran
    missing = cfg.replace(**{"encoder.checkpoint": str(tmp_path / "nope.pth")})
    with pytest.raises(Stage1Error, match="not found"):
        initial_encoder_state(missing, layout, RunDir(tmp_path / "s2"), False, False)


def test_without_fine_tuning_only_the_encoders_own_features(tmp_path):
    # A corpus of its own: the module's cache already holds these `visual_mae` features.
    layout, cache = make_corpus(tmp_path / "corpus", train=3, val=2, test=1, frames=(20, 30), crops=True, crop_size=32)
    cfg = load_config("quick", NO_FINETUNE)
    assert (cfg.stage1.finetune.epochs, cfg.features.visual, cfg.stage1.reserve) == (0, "visual_mae", 0.0)
    out = tmp_path / "stage1"
    res = run_stage1(cfg, layout, cache, out)
    names = [e.name for e in layout.train]
    assert res.finetune_videos == [] and res.finetune == {} and not (out / "finetune").exists()
    assert res.feature_hash == feature_hash(cfg, train_videos=names, unfinetuned=True)
    assert res.encoder_weights == RunDir(out).encoder_weights and res.encoder_weights.is_file()
    # The written encoder is the pre-trained MAE's encoder, and the cached features are its CLS tokens.
    from models.registry import build_model

    mae = load_weights(out / "mae" / "best.safetensors")
    enc = load_weights(res.encoder_weights)
    for k in ("patch_embed.proj.weight", "cls_token", "blocks.2.attn.qkv.weight"):
        torch.testing.assert_close(enc[k], mae[k], rtol=0, atol=0, msg=k)
    vit = build_model(cfg.vit_config())
    vit.load_state_dict(enc)
    vit.eval()
    e = layout.test[0]
    mask = cache.load(e.name, [VISUAL_MASK])[VISUAL_MASK]
    i = int(np.flatnonzero(mask)[0])
    img = frame_transform(cfg.stage1.augment, 32, train=False)(read_crop(e.crops_dir / f"{i + 1:05d}.jpg"))
    with torch.no_grad():
        want = vit.forward_features(img[None])[0].numpy()
    got = cache.load(e.name, ["visual_mae"])["visual_mae"]
    np.testing.assert_allclose(got[i], want, rtol=1e-4, atol=1e-5)
    assert cache.has(e.name, "visual_mae", res.feature_hash)
    again = run_stage1(cfg, layout, cache, out)
    assert again.skipped and again.encoder_weights == res.encoder_weights
    # `harness predict` finds that encoder for a run reading `visual_mae`, the fine-tuned one for `visual`.
    from harness.stages.predict import find_encoder_weights

    run2 = tmp_path / "fold0"
    run2.mkdir()
    assert find_encoder_weights(tmp_path / "fold0", "visual_mae") == res.encoder_weights
    assert find_encoder_weights(tmp_path / "fold0", "visual") is None  # nothing fine-tuned here

