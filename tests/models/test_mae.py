"""MAE pre-training: patchify, random masking, the masked-only loss, the model, and the encoder transfer."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models import (
    CheckpointShapeError,
    MAEViT,
    create_model,
    mae_loss,
    patchify,
    random_masking,
    shuffle_tokens,
    transfer_mae_encoder,
    unpatchify,
)

TINY = {"img_size": 32, "embed_dim": 64, "depth": 2, "num_heads": 4, "decoder_embed_dim": 32, "decoder_depth": 1,
        "decoder_num_heads": 4}  # fmt: skip


def test_patchify_layout_and_roundtrip() -> None:
    imgs = torch.randn(2, 3, 32, 48)
    x = patchify(imgs, 16)
    assert x.shape == (2, 6, 16 * 16 * 3)
    # Patch 4 is row 1, column 1; its vector is (p, q, c) ordered.
    expected = imgs[:, :, 16:32, 16:32].permute(0, 2, 3, 1).reshape(2, -1)
    torch.testing.assert_close(x[:, 4], expected, rtol=0, atol=0)
    square = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(unpatchify(patchify(square, 16), 16), square, rtol=0, atol=0)


def test_unpatchify_rejects_mismatched_sizes() -> None:
    with pytest.raises(ValueError, match="cannot unpatchify"):
        unpatchify(torch.randn(1, 5, 768), 16)


@settings(max_examples=40, deadline=None)
@given(
    B=st.integers(1, 4),
    L=st.integers(1, 64),
    ratio=st.floats(0.0, 0.95),
    seed=st.integers(0, 2**16),
)
def test_random_masking_properties(B: int, L: int, ratio: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, L, 5, generator=g)
    noise = torch.rand(B, L, generator=g)
    m = random_masking(x, ratio, noise)
    keep = int(L * (1 - ratio))
    assert m.kept.shape == (B, keep, 5)
    assert torch.equal(m.mask.sum(dim=1), torch.full((B,), float(L - keep)))
    # restore(shuffle(x)) == x
    assert torch.equal(shuffle_tokens(shuffle_tokens(x, m.ids_shuffle), m.ids_restore), x)
    # The kept tokens are exactly the unmasked positions, in order of increasing noise.
    for b in range(B):
        visible = torch.nonzero(m.mask[b] == 0).flatten()
        order = visible[torch.argsort(noise[b, visible])]
        assert torch.equal(m.kept[b], x[b, order])


def test_random_masking_without_noise_is_per_sample() -> None:
    torch.manual_seed(0)
    m = random_masking(torch.randn(8, 196, 4), 0.75)
    assert m.kept.shape == (8, 49, 4)
    assert len({tuple(row.tolist()) for row in m.mask}) > 1


def test_loss_ignores_visible_patches() -> None:
    torch.manual_seed(1)
    imgs = torch.randn(2, 3, 32, 32)
    pred = torch.randn(2, 4, 768)
    mask = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    base = mae_loss(imgs, pred, mask, 16)
    changed_visible = pred.clone()
    changed_visible[mask == 0] += 100.0
    assert mae_loss(imgs, changed_visible, mask, 16).item() == pytest.approx(base.item(), rel=1e-6)
    changed_hidden = pred.clone()
    changed_hidden[mask == 1] += 1.0
    assert mae_loss(imgs, changed_hidden, mask, 16).item() != pytest.approx(base.item(), rel=1e-3)


def test_loss_values() -> None:
    imgs = torch.randn(1, 3, 32, 32)
    target = patchify(imgs, 16)
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    pred = target + 0.5
    assert mae_loss(imgs, pred, mask, 16, norm_pix=False).item() == pytest.approx(0.25, rel=1e-6)
    mean = target.mean(-1, keepdim=True)
    std = (target.var(-1, keepdim=True) + 1e-6).sqrt()
    assert mae_loss(imgs, (target - mean) / std, mask, 16, norm_pix=True).item() == pytest.approx(0.0, abs=1e-10)


def test_forward_shapes_and_mask_ratio() -> None:
    torch.manual_seed(2)
    mae = create_model("mae_vit_tiny_patch16", img_size=64, depth=2, decoder_depth=1)
    assert isinstance(mae, MAEViT)
    loss, pred, mask = mae(torch.randn(3, 3, 64, 64))
    assert pred.shape == (3, 16, 768) and mask.shape == (3, 16)
    assert torch.equal(mask.sum(1), torch.full((3,), 12.0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    _, _, mask_half = mae(torch.randn(3, 3, 64, 64), mask_ratio=0.5)
    assert torch.equal(mask_half.sum(1), torch.full((3,), 8.0))


def test_a_few_steps_reduce_the_loss() -> None:
    torch.manual_seed(3)
    mae = create_model("mae_vit_tiny_patch16", **TINY)
    imgs = torch.randn(4, 3, 32, 32)
    noise = torch.rand(4, 4)
    opt = torch.optim.AdamW(mae.parameters(), lr=3e-3)
    losses = []
    for _ in range(10):
        loss, _, _ = mae(imgs, noise=noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]


def test_encoder_transfer_to_va_vit() -> None:
    torch.manual_seed(4)
    mae = create_model("mae_vit_tiny_patch16", **TINY).eval()
    enc = mae.encoder_state_dict()
    assert not any(k.startswith(("decoder_", "mask_token")) for k in enc)
    vit = create_model("vit_tiny_patch16", **{k: TINY[k] for k in ("img_size", "embed_dim", "depth", "num_heads")})
    report = transfer_mae_encoder(mae, vit)
    assert report.ok and report.new == ("head.weight", "head.bias")
    assert sorted(report.loaded) == sorted(enc)
    imgs = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        # With nothing masked the encoder sees every token (shuffled); attention is permutation-equivariant,
        # so the CLS output equals the fine-tuning model's feature.
        latent, _, _ = mae.forward_encoder(imgs, 0.0)
        torch.testing.assert_close(latent[:, 0], vit.eval().forward_features(imgs), rtol=1e-5, atol=1e-5)


def test_transfer_refuses_other_sizes() -> None:
    mae = create_model("mae_vit_tiny_patch16", **TINY)
    with pytest.raises(CheckpointShapeError, match="cls_token"):
        transfer_mae_encoder(mae, create_model("vit_tiny_patch16", img_size=32, embed_dim=32, depth=2, num_heads=4))
