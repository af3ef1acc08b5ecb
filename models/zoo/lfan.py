"""LFAN: leader-follower attentive fusion (Zhang, Su, Cai, Li, Zhang et al., SUCV; 3rd ABAW, CVPRW 2022, "Continuous
emotion recognition with audio-visual leader-follower attentive fusion", arXiv 2203.13285; 5th ABAW, arXiv
2303.10335).

Each modality m in {v, a} gets its own TCN, e_m(t) in R^C. At every time step t the M = 2 modality embeddings are
the tokens of an attention that runs ACROSS MODALITIES, never across time:

    q_m(t) = W_q e_m(t),   k_m(t) = W_k e_m(t),   v_m(t) = W_v e_m(t)
    alpha_{m,n}(t) = softmax_n( q_m(t) . k_n(t) / sqrt(d_k) )          (an M x M matrix per frame)
    f(t) = (1 / M) sum_m sum_n alpha_{m,n}(t) v_n(t)                  (the follower: the attended modalities)
    y(t) = tanh( FC( [ e_v(t) ; f(t) ] ) )                             (the leader, visual, joins unattended)

Temporal context comes from the TCNs only. Values the papers leave open (the projection width d_k, the mean over
the attended tokens, single-head attention) are marked `# our choice`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.blocks import va_head
from models.dropout import ByteDropout
from models.zoo.base import FusionModel
from models.zoo.configs import LFANConfig


def modality_attention(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Per-frame attention weights across modalities: (B, T, M, d), (B, T, M, d) -> (B, T, M, M), rows sum to 1."""
    return torch.softmax(torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1]), dim=-1)  # (B, T, M, M)


class LFAN(FusionModel):
    """Per-modality TCNs, attention across the modalities at each time step, the visual leader concatenated."""

    def __init__(self, config: LFANConfig):
        """Build the model.

        Args:
            config: widths and dropout; see `LFANConfig`.
        """
        super().__init__(config)
        C, d = config.tcn_channels, config.attn_dim
        self.q = nn.Linear(C, d)
        self.k = nn.Linear(C, d)
        self.v = nn.Linear(C, C)
        self.drop = ByteDropout(config.dropout)
        self.head = va_head(2 * C, config.head_hidden, config.dropout)

    def weights(self, x_v: torch.Tensor, x_a: torch.Tensor) -> torch.Tensor:
        """The modality attention alpha(t): (B, T, C) TCN outputs -> (B, T, 2, 2) (token 0 visual, 1 audio)."""
        e = torch.stack([x_v, x_a], dim=2)  # (B, T, M, C)
        return modality_attention(self.q(e), self.k(e))  # (B, T, M, M)

    def follower(self, x_v: torch.Tensor, x_a: torch.Tensor) -> torch.Tensor:
        """f(t), the modalities attended to each other frame by frame: (B, T, C), (B, T, C) -> (B, T, C)."""
        e = torch.stack([x_v, x_a], dim=2)  # (B, T, M, C)
        att = torch.matmul(modality_attention(self.q(e), self.k(e)), self.v(e))  # (B, T, M, C)
        return att.mean(dim=2)  # (B, T, C); our choice: the mean over the attended tokens

    def fuse(self, x_v: torch.Tensor, x_a: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
        """y(t) = tanh(FC([e_v(t) ; f(t)])): nothing crosses frames here, so padded frames reach no valid one."""
        fused = torch.cat([x_v, self.drop(self.follower(x_v, x_a))], dim=-1)  # (B, T, 2C)
        return torch.tanh(self.head(fused))  # (B, T, 2)
