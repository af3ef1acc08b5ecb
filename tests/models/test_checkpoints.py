"""Checkpoint loading: the MAE release layout, timm's layout, safetensors, and every way a file can be wrong."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer

from core.errors import HarnessError
from models import (
    CheckpointError,
    CheckpointShapeError,
    LoadReport,
    create_model,
    load_checkpoint,
    load_state,
    read_state_dict,
)

VIT = {"img_size": 32, "embed_dim": 64, "depth": 2, "num_heads": 4}
MAE = {**VIT, "decoder_embed_dim": 32, "decoder_depth": 1, "decoder_num_heads": 4}


def _encoder_keys(depth: int) -> list[str]:
    keys = ["cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"]
    for i in range(depth):
        for part in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"):
            keys += [f"blocks.{i}.{part}.weight", f"blocks.{i}.{part}.bias"]
    return [*keys, "norm.weight", "norm.bias"]


def _mae_release_layout(depth: int, dec_depth: int, D: int, Dd: int, N: int, p: int) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the MAE release's state dict, written out from its naming scheme."""
    shapes: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, D),
        "pos_embed": (1, N + 1, D),
        "patch_embed.proj.weight": (D, 3, p, p),
        "patch_embed.proj.bias": (D,),
        "norm.weight": (D,),
        "norm.bias": (D,),
        "mask_token": (1, 1, Dd),
        "decoder_pos_embed": (1, N + 1, Dd),
        "decoder_embed.weight": (Dd, D),
        "decoder_embed.bias": (Dd,),
        "decoder_norm.weight": (Dd,),
        "decoder_norm.bias": (Dd,),
        "decoder_pred.weight": (p * p * 3, Dd),
        "decoder_pred.bias": (p * p * 3,),
    }
    for prefix, n, d in (("blocks", depth, D), ("decoder_blocks", dec_depth, Dd)):
        for i in range(n):
            b = f"{prefix}.{i}"
            shapes |= {
                f"{b}.norm1.weight": (d,), f"{b}.norm1.bias": (d,),
                f"{b}.attn.qkv.weight": (3 * d, d), f"{b}.attn.qkv.bias": (3 * d,),
                f"{b}.attn.proj.weight": (d, d), f"{b}.attn.proj.bias": (d,),
                f"{b}.norm2.weight": (d,), f"{b}.norm2.bias": (d,),
                f"{b}.mlp.fc1.weight": (4 * d, d), f"{b}.mlp.fc1.bias": (4 * d,),
                f"{b}.mlp.fc2.weight": (d, 4 * d), f"{b}.mlp.fc2.bias": (d,),
            }  # fmt: skip
    return shapes


def test_mae_vit_large_has_the_release_layout() -> None:
    with torch.device("meta"):
        mae = create_model("mae_vit_large_patch16")
    ours = {k: tuple(v.shape) for k, v in mae.state_dict().items()}
    assert ours == _mae_release_layout(24, 8, 1024, 512, 196, 16)


def _release_file(tmp_path: Path, state: dict[str, torch.Tensor], name: str = "mae_pretrain_vit_tiny.pth") -> Path:
    path = tmp_path / name
    torch.save({"model": state}, path)
    return path


def test_loads_mae_release_format_and_ignores_the_decoder(tmp_path: Path) -> None:
    torch.manual_seed(0)
    mae = create_model("mae_vit_tiny_patch16", **MAE)
    path = _release_file(tmp_path, mae.state_dict())
    vit = create_model("vit_tiny_patch16", **VIT)
    report = load_checkpoint(vit, path)
    assert isinstance(report, LoadReport)
    assert report.ok
    assert sorted(report.loaded) == sorted(_encoder_keys(2))
    assert set(report.ignored) == {k for k in mae.state_dict() if k.startswith(("decoder_", "mask_token"))}
    assert report.new == ("head.weight", "head.bias")
    assert report.missing == () and report.unexpected == ()
    for k, v in mae.encoder_state_dict().items():
        assert torch.equal(vit.state_dict()[k], v), k
    assert str(path) in str(report)


def test_loads_whole_mae_model_including_decoder(tmp_path: Path) -> None:
    torch.manual_seed(1)
    src = create_model("mae_vit_tiny_patch16", **MAE)
    dst = create_model("mae_vit_tiny_patch16", **MAE)
    report = load_checkpoint(dst, _release_file(tmp_path, src.state_dict()), strict=True)
    assert report.ok and not report.ignored and not report.new
    assert src.state_dict(), "the loop below checks nothing"
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k


def test_encoder_only_release_into_mae_reports_decoder_missing(tmp_path: Path) -> None:
    src = create_model("mae_vit_tiny_patch16", **MAE)
    dst = create_model("mae_vit_tiny_patch16", **MAE)
    report = load_checkpoint(dst, _release_file(tmp_path, src.encoder_state_dict()))
    assert not report.ok
    assert "decoder_pred.weight" in report.missing and "mask_token" in report.missing


def _timm_model() -> VisionTransformer:
    return VisionTransformer(img_size=32, patch_size=16, embed_dim=64, depth=2, num_heads=4, num_classes=0)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_loads_timm_state_dict_and_matches_timm_output(tmp_path: Path, suffix: str) -> None:
    torch.manual_seed(2)
    ref = _timm_model().eval()
    with torch.no_grad():
        ref.pos_embed.normal_()  # any values: they must travel with the checkpoint
    path = tmp_path / f"vit_tiny_patch16_32.mae{suffix}"
    state = {k: v.contiguous() for k, v in ref.state_dict().items()}
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    vit = create_model("vit_tiny_patch16", **VIT).eval()
    report = load_checkpoint(vit, path, strict=True)
    assert report.ok and not report.ignored
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(vit.forward_features(x), ref(x), rtol=1e-5, atol=1e-5)


def test_missing_and_unexpected_keys_are_named(tmp_path: Path) -> None:
    state = create_model("vit_tiny_patch16", **VIT).state_dict()
    del state["blocks.1.mlp.fc1.weight"]
    state["blocks.7.attn.qkv.weight"] = torch.zeros(3)
    path = _release_file(tmp_path, state)
    vit = create_model("vit_tiny_patch16", **VIT)
    report = load_checkpoint(vit, path)
    assert report.missing == ("blocks.1.mlp.fc1.weight",)
    assert report.unexpected == ("blocks.7.attn.qkv.weight",)
    assert not report.ok
    text = str(report)
    assert "blocks.1.mlp.fc1.weight" in text and "blocks.7.attn.qkv.weight" in text
    with pytest.raises(CheckpointError, match=r"blocks\.1\.mlp\.fc1\.weight"):
        load_checkpoint(vit, path, strict=True)


def test_shape_mismatch_names_key_and_shapes(tmp_path: Path) -> None:
    state = create_model("vit_tiny_patch16", **VIT).state_dict()
    state["blocks.0.attn.proj.weight"] = torch.zeros(64, 32)
    path = _release_file(tmp_path, state)
    with pytest.raises(CheckpointShapeError) as info:
        load_checkpoint(create_model("vit_tiny_patch16", **VIT), path)
    err = info.value
    assert isinstance(err, HarnessError)
    assert err.key == "blocks.0.attn.proj.weight"
    assert err.expected == (64, 64) and err.found == (64, 32)
    assert "blocks.0.attn.proj.weight" in str(err) and "(64, 64)" in str(err) and "(64, 32)" in str(err)
    assert str(path) in str(err)


def test_position_embedding_of_another_grid_is_recomputed() -> None:
    big = create_model("vit_tiny_patch16", **{**VIT, "img_size": 64})
    small = create_model("vit_tiny_patch16", **VIT)
    before = small.pos_embed.clone()
    report = load_state(small, big.state_dict())
    assert report.recomputed == ("pos_embed",) and report.ok
    assert torch.equal(small.pos_embed, before)
    assert torch.equal(small.blocks[0].attn.qkv.weight, big.blocks[0].attn.qkv.weight)


def test_ddp_prefix_is_stripped() -> None:
    src = create_model("vit_tiny_patch16", **VIT)
    wrapped = {f"module.{k}": v for k, v in src.state_dict().items()}
    report = load_state(create_model("vit_tiny_patch16", **VIT), wrapped)
    assert report.ok and len(report.loaded) == len(src.state_dict())


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        read_state_dict(tmp_path / "nope.pth")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_file_names_the_file(tmp_path: Path, suffix: str) -> None:
    state = {k: v.contiguous() for k, v in create_model("vit_tiny_patch16", **VIT).state_dict().items()}
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({"model": state}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as info:
        read_state_dict(path)
    assert str(path) in str(info.value)


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"this is not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match=r"garbage\.pth"):
        read_state_dict(path)


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "finetune_ckpt.pth"
    torch.save({"model": {"cls_token": torch.zeros(1)}, "args": argparse.Namespace(lr=1.0)}, path)
    with pytest.raises(CheckpointError, match="weights_only"):
        read_state_dict(path)


def test_non_tensor_entries_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.pth"
    torch.save({"cls_token": torch.zeros(1), "epoch": 3}, path)
    with pytest.raises(CheckpointError, match="epoch"):
        read_state_dict(path)
