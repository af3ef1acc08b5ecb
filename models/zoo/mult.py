"""MulT: the multimodal transformer's crossmodal attention (Tsai, Bai, Liang, Kolter, Morency, Salakhutdinov,
"Multimodal transformer for unaligned multimodal language sequences", ACL 2019), with per-frame outputs for V/A.

Each modality alpha gets a temporal 1-D convolution to the common width d and sin-cos positions:
Z_alpha^[0] = Conv1D(X_alpha) + PE. A crossmodal transformer alpha -> beta (source alpha, target beta) stacks D
layers, i = 1..D:

    CM_{alpha->beta}(Z_beta, Z_alpha) = softmax( (Z_beta W_Q)(Z_alpha W_K)^T / sqrt(d) ) Z_alpha W_V
    Zhat^[i] = CM^[i]( LN(Z^[i-1]_{alpha->beta}), LN(Z_alpha^[0]) ) + LN(Z^[i-1]_{alpha->beta})
    Z^[i]    = f_theta( LN(Zhat^[i]) ) + LN(Zhat^[i])                      (f_theta: a position-wise MLP)

with Z^[0]_{alpha->beta} = Z_beta^[0]: the queries come from the TARGET modality, the keys and values from the
SOURCE, so the output has the target's frames. With two modalities there are two directions, audio -> visual and
visual -> audio; each passes a self-attention Transformer, and the two are concatenated. MulT predicts one value
per sequence from the last element; the V/A task needs one per frame, so the head runs on every frame
(`# our choice`). Multi-head attention as in the paper; widths, layer counts and the kernel are `# our choice`
(config `zoo.mult`). MulT has no TCNs.
"""

from __future__ import annotations

import torch
from torch import nn

from models.blocks import pre_norm_encoder, va_head
from models.encoder import encoder_forward
from models.zoo.base import FusionModel, key_mask, zero_padded
from models.zoo.configs import MulTConfig
from models.zoo.tcn_transformer import positions


class CrossmodalLayer(nn.Module):
    """One crossmodal layer alpha -> beta: target queries, source keys and values (see the module docstring)."""

    def __init__(self, dim: int, num_heads: int, dim_feedforward: int, dropout: float):
        """Build the layer.

        Args:
            dim: d, the width of both streams.
            num_heads: attention heads.
            dim_feedforward: f_theta's hidden width.
            dropout: dropout after attention and inside f_theta.
        """
        super().__init__()
        self.norm_target = nn.LayerNorm(dim)
        self.norm_source = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, dim_feedforward), nn.ReLU(), nn.Dropout(dropout),
                                nn.Linear(dim_feedforward, dim))  # fmt: skip
        self.drop = nn.Dropout(dropout)

    def forward(self, target: torch.Tensor, source: torch.Tensor, source_mask: torch.Tensor | None = None,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
        """(B, Tb, d) target, (B, Ta, d) source -> ((B, Tb, d), the attention weights (B, Tb, Ta) or None).

        Args:
            target: Z^[i-1]_{alpha->beta}, the queries' stream.
            source: Z_alpha^[0], the keys' and values' stream.
            source_mask: (B, Ta) bool, True at source frames never attended to.
            need_weights: also return the weights (averaged over heads).
        """
        t = self.norm_target(target)  # (B, Tb, d)
        s = self.norm_source(source)  # (B, Ta, d)
        att, w = self.attn(t, s, s, key_padding_mask=source_mask, need_weights=need_weights)  # (B, Tb, d)
        zhat = self.drop(att) + t  # (B, Tb, d)
        n = self.norm_ff(zhat)  # (B, Tb, d)
        return self.drop(self.ff(n)) + n, w  # (B, Tb, d)


class MulT(FusionModel):
    """Conv1D projections with positions, crossmodal transformers audio -> visual and visual -> audio, a
    self-attention Transformer on each, per-frame V/A from their concatenation."""

    def __init__(self, config: MulTConfig):
        """Build the model.

        Args:
            config: widths, layer counts and dropout; see `MulTConfig`.
        """
        super().__init__(config, tcns=False)
        c, d = config, config.d_model
        pad = c.conv_kernel // 2
        self.proj_v = nn.Conv1d(c.visual_dim, d, c.conv_kernel, padding=pad, bias=False)
        self.proj_a = nn.Conv1d(c.audio_dim, d, c.conv_kernel, padding=pad, bias=False)
        layer = (d, c.num_heads, c.dim_feedforward, c.dropout)
        self.a_to_v = nn.ModuleList(CrossmodalLayer(*layer) for _ in range(c.cross_layers))
        self.v_to_a = nn.ModuleList(CrossmodalLayer(*layer) for _ in range(c.cross_layers))
        self.self_v = pre_norm_encoder(d, c.num_heads, c.dim_feedforward, c.dropout, 0.0, c.self_layers) \
            if c.self_layers else None  # fmt: skip
        self.self_a = pre_norm_encoder(d, c.num_heads, c.dim_feedforward, c.dropout, 0.0, c.self_layers) \
            if c.self_layers else None  # fmt: skip
        self.head = va_head(2 * d, c.head_hidden, c.dropout)

    def embed(self, x: torch.Tensor, conv: nn.Conv1d, pad_mask: torch.Tensor | None) -> torch.Tensor:
        """Z^[0] = Conv1D(X) + PE, padded frames zeroed first: (B, T, D) -> (B, T, d)."""
        T = x.shape[1]
        z = conv(zero_padded(x, pad_mask).transpose(1, 2)).transpose(1, 2)  # (B, T, d)
        return z + positions(T, z.shape[-1], z)  # (B, T, d)

    @staticmethod
    def crossmodal(layers: nn.ModuleList, target: torch.Tensor, source: torch.Tensor,
                   source_mask: torch.Tensor | None) -> torch.Tensor:  # fmt: skip
        """The D crossmodal layers source -> target: (B, Tb, d), (B, Ta, d) -> (B, Tb, d)."""
        z = target  # (B, Tb, d)
        for layer in layers:
            z = layer(z, source, source_mask)[0]  # (B, Tb, d)
        return z

    def fuse(self, x_v: torch.Tensor, x_a: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
        """Embed, both crossmodal directions, self-attention, concatenate, per-frame head."""
        kpm = key_mask(pad_mask)
        z_v = self.embed(x_v, self.proj_v, pad_mask)  # (B, T, d)
        z_a = self.embed(x_a, self.proj_a, pad_mask)  # (B, T, d)
        av = self.crossmodal(self.a_to_v, z_v, z_a, kpm)  # (B, T, d): target visual, source audio
        va = self.crossmodal(self.v_to_a, z_a, z_v, kpm)  # (B, T, d): target audio, source visual
        if self.self_v is not None and self.self_a is not None:
            av = encoder_forward(self.self_v, av, kpm)  # (B, T, d)
            va = encoder_forward(self.self_a, va, kpm)  # (B, T, d)
        return torch.tanh(self.head(torch.cat([av, va], dim=-1)))  # (B, T, 2)
