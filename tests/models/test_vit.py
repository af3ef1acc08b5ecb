"""The visual encoder: MAE's sin-cos layout, parity with timm's ViT, shapes, and hierarchical freezing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import timm
import torch
from timm.models.vision_transformer import VisionTransformer

from models import ModelConfigError, ModelError, VAViT, ViTConfig, count_params, create_model, sincos_2d_mae

TINY = {"img_size": 32, "embed_dim": 64, "depth": 4, "num_heads": 4}


def _mae_reference(embed_dim: int, grid: int) -> np.ndarray:
    """MAE's published recipe, re-derived here in numpy: meshgrid(w, h), first half from grid[0]."""

    def one_d(dim: int, pos: np.ndarray) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    gh = np.arange(grid, dtype=np.float64)
    gw = np.arange(grid, dtype=np.float64)
    g = np.stack(np.meshgrid(gw, gh), axis=0).reshape(2, 1, grid, grid)
    emb = np.concatenate([one_d(embed_dim // 2, g[0]), one_d(embed_dim // 2, g[1])], axis=1)
    return np.concatenate([np.zeros((1, embed_dim)), emb], axis=0)


@pytest.mark.parametrize(("dim", "grid"), [(64, 2), (192, 14), (1024, 14), (32, 4)])
def test_pos_embed_matches_mae_recipe(dim: int, grid: int) -> None:
    ours = sincos_2d_mae(dim, grid, cls_token=True).numpy()
    assert ours.shape == (1 + grid * grid, dim)
    np.testing.assert_allclose(ours, _mae_reference(dim, grid), rtol=0, atol=1e-12)


def test_pos_embed_channel_layout_is_pinned() -> None:
    D, G = 16, 4
    emb = sincos_2d_mae(D, G)
    assert torch.equal(emb[0], torch.zeros(D))  # CLS row
    assert G > 0, "the loop below checks nothing"
    for i in range(G):
        for j in range(G):
            row = emb[1 + i * G + j]
            # omega_0 = 1: channel 0 is sin(column), D/4 is cos(column), D/2 is sin(row), 3D/4 is cos(row).
            assert row[0].item() == pytest.approx(math.sin(j), abs=1e-12)
            assert row[D // 4].item() == pytest.approx(math.cos(j), abs=1e-12)
            assert row[D // 2].item() == pytest.approx(math.sin(i), abs=1e-12)
            assert row[3 * D // 4].item() == pytest.approx(math.cos(i), abs=1e-12)
            # omega_1 = 10000^(-1/4) for D/4 = 4 frequencies.
            assert row[1].item() == pytest.approx(math.sin(j * 10000 ** (-1 / 4)), abs=1e-12)


def test_pos_embed_non_square_grid() -> None:
    emb = sincos_2d_mae(8, (2, 3), cls_token=False)
    assert emb.shape == (6, 8)
    # Patch (row 1, col 2) is index 5: first half encodes column 2, second half row 1.
    assert emb[5, 0].item() == pytest.approx(math.sin(2))
    assert emb[5, 4].item() == pytest.approx(math.sin(1))


def _timm_twin(cfg: ViTConfig) -> VisionTransformer:
    return VisionTransformer(
        img_size=cfg.img_size,
        patch_size=cfg.patch_size,
        embed_dim=cfg.embed_dim,
        depth=cfg.depth,
        num_heads=cfg.num_heads,
        num_classes=0,
        qkv_bias=True,
    )


def test_encoder_matches_timm_vision_transformer() -> None:
    torch.manual_seed(0)
    ours = create_model("vit_tiny_patch16", **TINY).eval()
    ref = _timm_twin(ours.config).eval()
    state = {k: v for k, v in ours.state_dict().items() if not k.startswith("head.")}
    result = ref.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        np.testing.assert_allclose(ours.forward_features(x).numpy(), ref(x).numpy(), rtol=1e-5, atol=1e-5)


def test_state_dict_layout_equals_timm_vit_large() -> None:
    with torch.device("meta"):
        ours = create_model("vit_large_patch16")
        ref = timm.create_model("vit_large_patch16_224", pretrained=False, num_classes=0)
    ours_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items() if not k.startswith("head.")}
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert ours_shapes == ref_shapes
    assert len(ours.blocks) == 24 and ours.config.embed_dim == 1024


@pytest.mark.parametrize("img_size", [32, 64, 112])
def test_shapes_and_range(img_size: int) -> None:
    torch.manual_seed(1)
    m = create_model("vit_tiny_patch16", depth=2, img_size=img_size).eval()
    assert m.pos_embed.shape == (1, 1 + (img_size // 16) ** 2, 192)
    x = torch.randn(2, 3, img_size, img_size) * 10
    with torch.no_grad():
        feats, out = m.forward_features(x), m(x)
    assert feats.shape == (2, 192)
    assert out.shape == (2, 2)
    assert out.abs().max() <= 1.0
    torch.testing.assert_close(out, torch.tanh(m.head(feats)))


def test_wrong_image_shape_is_a_clear_error() -> None:
    m = create_model("vit_tiny_patch16", **TINY)
    with pytest.raises(ModelError, match=r"\(B, 3, 32, 32\)"):
        m(torch.randn(1, 3, 64, 64))


def _trainable_formula(D: int, depth: int, frozen: int, mlp_ratio: float = 4.0) -> int:
    hidden = int(D * mlp_ratio)
    block = (3 * D * D + 3 * D) + (D * D + D) + (D * hidden + hidden) + (hidden * D + D) + 4 * D
    return (depth - frozen) * block + 2 * D + (2 * D + 2)


@pytest.mark.parametrize("frozen", [0, 1, 3, 4])
def test_trainable_count_formula(frozen: int) -> None:
    with torch.device("meta"):
        m = create_model("vit_tiny_patch16", frozen_blocks=frozen, **TINY)
    assert count_params(m).trainable == _trainable_formula(64, 4, frozen)


def test_paper_freezing_of_vit_large() -> None:
    with torch.device("meta"):
        m = create_model("vit_large_patch16")
    assert m.config.resolved_frozen_blocks == 16
    assert count_params(m).trainable == _trainable_formula(1024, 24, 16)
    assert not m.patch_embed.proj.weight.requires_grad and not m.cls_token.requires_grad
    assert all(not p.requires_grad for b in m.blocks[:16] for p in b.parameters())
    assert all(p.requires_grad for b in m.blocks[16:] for p in b.parameters())


def test_frozen_parameters_stay_and_trainable_ones_move() -> None:
    torch.manual_seed(2)
    m = create_model("vit_tiny_patch16", frozen_blocks=2, **TINY).train()
    before = {k: v.detach().clone() for k, v in m.named_parameters()}
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.05)
    loss = (m(torch.randn(4, 3, 32, 32)) - 0.3).square().mean()
    loss.backward()
    opt.step()
    assert list(m.named_parameters()), "the loop below checks nothing"
    for name, p in m.named_parameters():
        frozen = name.startswith(("patch_embed.", "cls_token", "blocks.0.", "blocks.1."))
        assert p.requires_grad is not frozen, name
        if frozen:
            assert p.grad is None, name
            assert torch.equal(p, before[name]), name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
            assert not torch.equal(p, before[name]), name


def test_no_grad_prefix_does_not_change_values_or_gradients() -> None:
    torch.manual_seed(3)
    m = create_model("vit_tiny_patch16", frozen_blocks=2, **TINY).eval()
    x = torch.randn(2, 3, 32, 32)
    out = m(x)
    out.sum().backward()
    grads = {k: p.grad.clone() for k, p in m.named_parameters() if p.requires_grad}
    m.zero_grad()
    # An input that needs a gradient disables the no-grad shortcut: same values and parameter gradients.
    out_full = m(x.clone().requires_grad_(True))
    out_full.sum().backward()
    torch.testing.assert_close(out, out_full)
    for k, p in m.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p.grad, grads[k])


def test_unfrozen_embedding_gets_gradient_through_frozen_blocks() -> None:
    torch.manual_seed(4)
    m = create_model("vit_tiny_patch16", frozen_blocks=2, freeze_embedding=False, **TINY)
    m(torch.randn(2, 3, 32, 32)).sum().backward()
    assert m.patch_embed.proj.weight.grad is not None and m.patch_embed.proj.weight.grad.abs().sum() > 0
    assert m.blocks[0].attn.qkv.weight.grad is None


def test_fully_frozen_encoder_trains_only_norm_and_head() -> None:
    with torch.device("meta"):
        m = create_model("vit_tiny_patch16", frozen_blocks=4, **TINY)
    names = {k for k, p in m.named_parameters() if p.requires_grad}
    assert names == {"norm.weight", "norm.bias", "head.weight", "head.bias"}


def test_default_frozen_blocks_follow_the_paper_ratio() -> None:
    assert ViTConfig(depth=12).resolved_frozen_blocks == 8
    assert ViTConfig(depth=6).resolved_frozen_blocks == 4
    assert isinstance(create_model("vit_tiny_patch16", **TINY), VAViT)


@pytest.mark.parametrize(
    "bad",
    [{"frozen_blocks": 5}, {"img_size": 40}, {"num_heads": 5}, {"embed_dim": 66, "num_heads": 3}],
)
def test_invalid_vit_configs(bad: dict) -> None:
    with pytest.raises(ModelConfigError):
        create_model("vit_tiny_patch16", **{**TINY, **bad})
