"""Stage 1: the visual encoder, a ViT with MAE's layout, and its valence/arousal fine-tuning head.

The blocks and the patch embedding are timm's, so state-dict names are timm's (and MAE's): `cls_token`,
`pos_embed`, `patch_embed.proj.*`, `blocks.N.*`, `norm.*`. The position embedding is MAE's fixed 2-D sin-cos
(a persistent buffer: it loads from checkpoints, gets no gradient and is not counted as a parameter).

Hierarchical fine-tuning (paper III.B): the patch embedding, the CLS token and the first K blocks are frozen; the
later blocks, the final norm and the regression head train. The frozen prefix runs under `torch.no_grad()`, which
stores no activations for it: with K = 16 of 24 that removes two thirds of the backward pass and its memory.
"""

from __future__ import annotations

from functools import partial

import torch
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block
from torch import nn

from models.configs import ViTConfig
from models.errors import ModelError
from models.pos_embed import sincos_2d_mae


def vit_blocks(dim: int, depth: int, num_heads: int, mlp_ratio: float, drop_path_rate: float = 0.0) -> nn.ModuleList:
    """A stack of timm ViT blocks with MAE's settings (qkv bias, LayerNorm eps 1e-6).

    Args:
        dim: token width.
        depth: number of blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width as a multiple of `dim`.
        drop_path_rate: stochastic depth of the last block, rising linearly from 0 at the first.
    """
    rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
    norm = partial(nn.LayerNorm, eps=1e-6)
    return nn.ModuleList(
        Block(dim, num_heads, mlp_ratio, qkv_bias=True, drop_path=rates[i], norm_layer=norm) for i in range(depth)
    )


def init_vit_weights(module: nn.Module) -> None:
    """MAE's initialisation: Xavier-uniform linear weights, zero biases, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)



def check_image_batch(x: torch.Tensor, in_chans: int, img_size: int, what: str) -> int:
    """The batch size of an image batch, after checking it is (B, in_chans, img_size, img_size).

    Args:
        x: the batch.
        in_chans: channels the model takes.
        img_size: height and width the model takes.
        what: the model, for the message ("the ViT").

    Raises:
        ModelError: on any other shape.
    """
    if x.ndim != 4 or tuple(x.shape[1:]) != (in_chans, img_size, img_size):
        raise ModelError(f"{what} takes images of shape (B, {in_chans}, {img_size}, {img_size}), got {tuple(x.shape)}")
    return x.shape[0]

class ViTEncoder(nn.Module):
    """The encoder: patch embedding, fixed sin-cos positions, CLS token, timm blocks, final LayerNorm."""

    def __init__(self, config: ViTConfig):
        """Build the encoder.

        Args:
            config: sizes; see `ViTConfig`.
        """
        super().__init__()
        self.config = config
        D = config.embed_dim
        self.patch_embed = PatchEmbed(config.img_size, config.patch_size, config.in_chans, D)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        pos = sincos_2d_mae(D, config.grid_size, cls_token=True).float()  # (1+N, D)
        self.register_buffer("pos_embed", pos.unsqueeze(0), persistent=True)  # (1, 1+N, D)
        self.blocks = vit_blocks(D, config.depth, config.num_heads, config.mlp_ratio, config.drop_path_rate)
        self.norm = nn.LayerNorm(D, eps=1e-6)
        self._init_encoder()

    def _init_encoder(self) -> None:
        # Like MAE: the patch projection is initialised as a linear layer on the flattened patch.
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.proj.bias)
        nn.init.normal_(self.cls_token, std=0.02)
        self.blocks.apply(init_vit_weights)
        self.norm.apply(init_vit_weights)

    def check_images(self, x: torch.Tensor) -> int:
        """The batch size of an image batch, after checking it is (B, in_chans, img_size, img_size).

        Raises:
            ModelError: on any other shape.
        """
        return check_image_batch(x, self.config.in_chans, self.config.img_size, "the ViT")

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens plus positions, with the CLS token prepended: (B, C, H, W) -> (B, 1+N, D)."""
        B = self.check_images(x)
        tokens = self.patch_embed(x) + self.pos_embed[:, 1:]  # (B, N, D)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(B, -1, -1)  # (B, 1, D)
        return torch.cat([cls, tokens], dim=1)  # (B, 1+N, D)

    def _frozen_prefix(self) -> int:
        """Leading stages that need no gradient: -1 when the embedding trains, else the count of frozen blocks."""
        stem = [*self.patch_embed.parameters(), self.cls_token]
        if any(p.requires_grad for p in stem):
            return -1
        k = 0
        for blk in self.blocks:
            if any(p.requires_grad for p in blk.parameters()):
                break
            k += 1
        return k

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """All output tokens after the final norm: (B, C, H, W) -> (B, 1+N, D)."""
        self.check_images(x)
        k = -1 if (x.requires_grad or not torch.is_grad_enabled()) else self._frozen_prefix()
        if k >= 0:
            # Nothing below block k trains: skip building the autograd graph for the frozen prefix.
            with torch.no_grad():
                h = self.embed(x)  # (B, 1+N, D)
                for blk in self.blocks[:k]:
                    h = blk(h)
        else:
            k = 0
            h = self.embed(x)  # (B, 1+N, D)
        for blk in self.blocks[k:]:
            h = blk(h)
        return self.norm(h)  # (B, 1+N, D)


class VAViT(ViTEncoder):
    """The frame-level valence/arousal ViT: the encoder's CLS feature and a tanh regression head.

    `forward_features` gives the frame's global feature (the CLS token after the final norm) that stage 2 consumes;
    `forward` gives (valence, arousal) in [-1, 1] for frame-level fine-tuning.
    """

    def __init__(self, config: ViTConfig):
        """Build the model and apply the hierarchical freezing of the config.

        Args:
            config: sizes and `frozen_blocks`; see `ViTConfig`.
        """
        super().__init__(config)
        self.head_drop = nn.Dropout(config.head_dropout)
        self.head = nn.Linear(config.embed_dim, 2)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        self.apply_freezing(config.resolved_frozen_blocks, config.freeze_embedding)

    def apply_freezing(self, frozen_blocks: int, freeze_embedding: bool = True) -> None:
        """Freeze the embedding (optionally) and the first `frozen_blocks` blocks; everything else trains.

        Args:
            frozen_blocks: how many blocks, from the bottom, get no gradient.
            freeze_embedding: also freeze the patch embedding and the CLS token.
        """
        for p in self.parameters():
            p.requires_grad_(True)
        for p in [*self.patch_embed.parameters(), self.cls_token]:
            p.requires_grad_(not freeze_embedding)
        for blk in self.blocks[:frozen_blocks]:
            for p in blk.parameters():
                p.requires_grad_(False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The frame's global feature: (B, C, H, W) -> (B, D), the CLS token after the final norm."""
        return self.forward_tokens(x)[:, 0]  # (B, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(Valence, arousal) per image: (B, C, H, W) -> (B, 2) in [-1, 1]."""
        return torch.tanh(self.head(self.head_drop(self.forward_features(x))))  # (B, 2)
