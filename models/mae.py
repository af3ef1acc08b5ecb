"""Masked-autoencoder pre-training of the visual encoder (He et al., 2022), in the MAE release's layout.

Each image's patches are shuffled by the argsort of per-sample noise; the encoder sees the first (1 - ratio)
share, a light decoder sees the encoded tokens plus a shared mask token at every hidden position (restored to
image order) and predicts pixels; the loss is the MSE on hidden patches only, against per-patch normalised pixels.
State-dict names match the release (`mask_token`, `decoder_embed`, `decoder_pos_embed`, `decoder_blocks.N`,
`decoder_norm`, `decoder_pred`), so its checkpoints load with `models.checkpoints`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from models.configs import MAEConfig
from models.pos_embed import sincos_2d_mae
from models.vit import ViTEncoder, init_vit_weights, vit_blocks

ENCODER_PREFIXES = ("cls_token", "pos_embed", "patch_embed.", "blocks.", "norm.")
"""State-dict key prefixes of the encoder (what a `VAViT` inherits); the rest is the decoder."""


def patchify(imgs: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into flattened patches in MAE's order: (B, C, H, W) -> (B, N, p*p*C), N = (H/p)(W/p).

    Args:
        imgs: images; H and W multiples of `patch_size`.
        patch_size: p.
    """
    B, C, H, W = imgs.shape
    p = patch_size
    h, w = H // p, W // p
    x = imgs.reshape(B, C, h, p, w, p)  # (B, C, h, p, w, p)
    x = torch.einsum("nchpwq->nhwpqc", x)  # (B, h, w, p, p, C)
    return x.reshape(B, h * w, p * p * C)  # (B, N, p*p*C)


def unpatchify(x: torch.Tensor, patch_size: int, channels: int = 3) -> torch.Tensor:
    """Inverse of `patchify` for square images: (B, N, p*p*C) -> (B, C, H, W).

    Args:
        x: flattened patches.
        patch_size: p.
        channels: C.
    """
    B, N, P = x.shape
    p = patch_size
    h = w = round(N**0.5)
    if h * w != N or p * p * channels != P:
        raise ValueError(f"cannot unpatchify {tuple(x.shape)} with patch_size {p} and {channels} channels")
    x = x.reshape(B, h, w, p, p, channels)  # (B, h, w, p, p, C)
    x = torch.einsum("nhwpqc->nchpwq", x)  # (B, C, h, p, w, p)
    return x.reshape(B, channels, h * p, w * p)  # (B, C, H, W)


class Masking(NamedTuple):
    """The result of `random_masking`.

    Args:
        kept: the visible tokens, (B, L_keep, D), in shuffled order.
        mask: (B, L) with 0 for visible and 1 for hidden patches, in image order.
        ids_restore: (B, L) indices that put shuffled tokens back in image order.
        ids_shuffle: (B, L) the shuffle: position i of the shuffled sequence holds token ids_shuffle[:, i].
    """

    kept: torch.Tensor
    mask: torch.Tensor
    ids_restore: torch.Tensor
    ids_shuffle: torch.Tensor


def shuffle_tokens(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Gather tokens along the sequence: out[b, i] = x[b, ids[b, i]]; (B, L, D), (B, M) -> (B, M, D)."""
    D = x.shape[-1]
    return torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, D))  # (B, M, D)


def random_masking(x: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None) -> Masking:
    """Per-sample random masking by argsort of noise (MAE): keep int(L * (1 - mask_ratio)) tokens.

    Args:
        x: tokens, (B, L, D).
        mask_ratio: share of tokens to hide.
        noise: (B, L) noise deciding the shuffle (lowest values are kept); uniform random when None.
    """
    B, L, _ = x.shape
    len_keep = int(L * (1 - mask_ratio))
    if noise is None:
        noise = torch.rand(B, L, device=x.device)
    ids_shuffle = torch.argsort(noise, dim=1)  # (B, L)
    ids_restore = torch.argsort(ids_shuffle, dim=1)  # (B, L)
    kept = shuffle_tokens(x, ids_shuffle[:, :len_keep])  # (B, L_keep, D)
    mask = torch.ones(B, L, device=x.device, dtype=x.dtype)
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)  # (B, L) back in image order
    return Masking(kept, mask, ids_restore, ids_shuffle)


def mae_loss(
    imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor, patch_size: int, norm_pix: bool = True
) -> torch.Tensor:
    """Mean squared error over hidden patches only.

    Args:
        imgs: the input images, (B, C, H, W).
        pred: predicted patches, (B, N, p*p*C).
        mask: (B, N), 1 for hidden patches.
        patch_size: p.
        norm_pix: regress each patch's pixels normalised by that patch's mean and variance.
    """
    target = patchify(imgs, patch_size)  # (B, N, P)
    if target.shape != pred.shape:
        raise ValueError(f"MAE loss: prediction {tuple(pred.shape)} does not match the patches {tuple(target.shape)}")
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1.0e-6) ** 0.5
    per_patch = ((pred - target) ** 2).mean(dim=-1)  # (B, N)
    return (per_patch * mask).sum() / mask.sum()


class MAEViT(ViTEncoder):
    """MAE pre-training model: the `ViTEncoder` plus a light Transformer decoder (every parameter trains)."""

    def __init__(self, config: MAEConfig):
        """Build encoder and decoder.

        Args:
            config: encoder and decoder sizes, mask ratio and loss; see `MAEConfig`.
        """
        super().__init__(config)
        self.config: MAEConfig = config
        Dd = config.decoder_embed_dim
        self.decoder_embed = nn.Linear(config.embed_dim, Dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, Dd))
        dpos = sincos_2d_mae(Dd, config.grid_size, cls_token=True).float()  # (1+N, Dd)
        self.register_buffer("decoder_pos_embed", dpos.unsqueeze(0), persistent=True)  # (1, 1+N, Dd)
        self.decoder_blocks = vit_blocks(Dd, config.decoder_depth, config.decoder_num_heads, config.mlp_ratio)
        self.decoder_norm = nn.LayerNorm(Dd, eps=1e-6)
        self.decoder_pred = nn.Linear(Dd, config.patch_size**2 * config.in_chans)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in (self.decoder_embed, self.decoder_blocks, self.decoder_norm, self.decoder_pred):
            m.apply(init_vit_weights)

    def forward_encoder(
        self, imgs: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode the visible patches: (B, C, H, W) -> latent (B, 1+L_keep, D), mask (B, N), ids_restore (B, N)."""
        B = self.check_images(imgs)
        tokens = self.patch_embed(imgs) + self.pos_embed[:, 1:]  # (B, N, D)
        m = random_masking(tokens, mask_ratio, noise)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(B, -1, -1)  # (B, 1, D)
        h = torch.cat([cls, m.kept], dim=1)  # (B, 1+L_keep, D)
        for blk in self.blocks:
            h = blk(h)
        return self.norm(h), m.mask, m.ids_restore

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Predict every patch: latent (B, 1+L_keep, D), ids_restore (B, N) -> (B, N, p*p*C)."""
        B, L1, _ = latent.shape
        N = ids_restore.shape[1]
        h = self.decoder_embed(latent)  # (B, 1+L_keep, Dd)
        Dd = h.shape[-1]
        mask_tokens = self.mask_token.expand(B, N + 1 - L1, Dd)  # (B, N-L_keep, Dd)
        patches = shuffle_tokens(torch.cat([h[:, 1:], mask_tokens], dim=1), ids_restore)  # (B, N, Dd) image order
        h = torch.cat([h[:, :1], patches], dim=1) + self.decoder_pos_embed  # (B, 1+N, Dd)
        for blk in self.decoder_blocks:
            h = blk(h)
        return self.decoder_pred(self.decoder_norm(h))[:, 1:]  # (B, N, p*p*C)

    def forward(
        self, imgs: torch.Tensor, mask_ratio: float | None = None, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Masked reconstruction: (B, C, H, W) -> (loss, pred (B, N, p*p*C), mask (B, N)).

        Args:
            imgs: images.
            mask_ratio: share of patches hidden; None takes the config's (0.75).
            noise: optional (B, N) noise fixing the masks (for tests and reproducible evaluation).
        """
        self.check_images(imgs)
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        latent, mask, ids_restore = self.forward_encoder(imgs, ratio, noise)
        pred = self.forward_decoder(latent, ids_restore)  # (B, N, p*p*C)
        loss = mae_loss(imgs, pred, mask, self.config.patch_size, self.config.norm_pix_loss)
        return loss, pred, mask

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The encoder's tensors under the names a `VAViT` loads (no decoder, no mask token), detached copies."""
        return {k: v.detach().clone() for k, v in self.state_dict().items() if k.startswith(ENCODER_PREFIXES)}
