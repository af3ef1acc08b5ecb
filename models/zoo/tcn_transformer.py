"""TCN-Transformer: per-modality TCNs, concatenation, a Transformer encoder (Zhou, Lu, Fei, Xu, Ke et al., 5th ABAW,
CVPRW 2023, "Leveraging TCN and Transformer for effective visual-audio fusion in continuous emotion recognition",
arXiv 2303.08356).

    X_v = TCN_v(visual),  X_a = TCN_a(audio)                          (B, T, C) each
    Z_0 = [X_v ; X_a] + P                                             (concatenation; P: sin-cos positions)
    Z = TransformerEncoder(Z_0)                                       (self-attention over the window's frames)
    y = tanh(FC(Z))                                                   (B, T, 2)

Unlike BDCA's `concat` ablation the encoder sees the frames' positions (sin-cos; the paper's kind of positional
encoding is `# our choice`). Layer count, heads and MLP width are BDCA's (`# our choice`, config `zoo.tcn_transformer`).
"""

from __future__ import annotations

import torch

from models.blocks import pre_norm_encoder, va_head
from models.encoder import encoder_forward
from models.pos_embed import sincos_1d
from models.zoo.base import FusionModel, key_mask
from models.zoo.configs import TCNTransformerConfig


def positions(T: int, dim: int, like: torch.Tensor) -> torch.Tensor:
    """Sin-cos positions 0..T-1, (T, dim) in `like`'s dtype and device."""
    return sincos_1d(dim, torch.arange(T, dtype=torch.float64)).to(like)  # (T, dim)


class TCNTransformer(FusionModel):
    """Per-modality TCNs, their outputs concatenated, positions added, a Transformer encoder, the V/A head."""

    def __init__(self, config: TCNTransformerConfig):
        """Build the model.

        Args:
            config: widths, layers and dropout; see `TCNTransformerConfig`.
        """
        super().__init__(config)
        d = 2 * config.tcn_channels
        self.encoder = pre_norm_encoder(d, config.num_heads, config.dim_feedforward, config.dropout, 0.0,
                                        config.num_layers)  # fmt: skip
        self.head = va_head(d, config.head_hidden, config.dropout)

    @staticmethod
    def concatenate(x_v: torch.Tensor, x_a: torch.Tensor) -> torch.Tensor:
        """Z_0 without positions: [X_v ; X_a], (B, T, C), (B, T, C) -> (B, T, 2C)."""
        return torch.cat([x_v, x_a], dim=-1)  # (B, T, 2C)

    def fuse(self, x_v: torch.Tensor, x_a: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
        """Concatenate, add positions, encode (padded keys masked), predict."""
        T, C = x_v.shape[1:]
        z = self.concatenate(x_v, x_a)  # (B, T, 2C)
        z = z + positions(T, 2 * C, z)  # (B, T, 2C)
        z = encoder_forward(self.encoder, z, key_mask(pad_mask))  # (B, T, 2C)
        return torch.tanh(self.head(z))  # (B, T, 2)
