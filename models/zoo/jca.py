"""Joint cross-attention and its successors, written from the papers of Praveen et al.:

- JCA: "A joint cross-attention model for audio-visual fusion in dimensional emotion recognition" (Praveen et
  al., CVPRW 2022, 3rd ABAW).
- RJCA: "Recursive joint attention for audio-visual fusion in regression based emotion recognition" (Praveen,
  Granger, Cardinal; ICASSP 2023) and RJCMA, "Recursive joint cross-modal attention for multimodal fusion in
  dimensional emotion recognition" (Praveen, Alam; CVPRW 2024, arXiv 2403.13659).
- DCA: "Cross-attention is not always needed: dynamic cross-attention for audio-visual dimensional emotion
  recognition" (Praveen, Alam; ICME 2024): cross-attended versus unattended features chosen per time step by a
  gate.

Joint cross-attention (per window; X_a, X_v in R^(T x C) are the TCN outputs, rows are frames):

    J = [X_a ; X_v] in R^(T x d), d = 2C                                      (joint representation)
    C_a = tanh( X_a W_ja J^T / sqrt(d) ),   C_v = tanh( X_v W_jv J^T / sqrt(d) )   in R^(T x T)  (joint correlation)
    H_a = ReLU( X_a W_a + (1/n) C_a J W_ca ),   H_v = ReLU( X_v W_v + (1/n) C_v J W_cv )   in R^(T x k)
    X_att,a = H_a W_ha + X_a,   X_att,v = H_v W_hv + X_v                   (attended features added back)

where n is the number of valid frames; the columns of C at padded frames are set to 0, so a padded frame is
never attended to. The papers write the correlation term as W_ca C_a^T with W_ca in R^(k x L), a weight per
frame position that ties the model to one clip length L; here the correlation weighs the joint representation's
frames (C_a J W_ca, mean over the n frames), which works for any window length (`# our choice`).

RJCA applies the same joint cross-attention block R times to its own output (X^(r) = JCA(X^(r-1)), shared
weights), with BLSTMs on each modality before the fusion and on the fused sequence after it. DCA keeps one block
and mixes, per frame and modality, the unattended X and the attended X_att with a gate
G = softmax(X_att W_g / tau) in R^(T x 2) (rows sum to 1): X_out = ReLU(G_0 X + G_1 X_att) (`models.bdca`'s
`DynamicWeight` computes exactly this mix; the gate reading X_att, and tau, are `# our choice`).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from models.bdca import DynamicWeight
from models.blocks import va_head
from models.zoo.base import FusionModel, valid_lengths
from models.zoo.configs import DCAConfig, JCAConfig, RJCAConfig


def joint_correlation(x: torch.Tensor, j: torch.Tensor, weight: torch.Tensor,
                      pad_mask: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """C = tanh(X W J^T / sqrt(d)) with padded columns 0: (B, T, C), (B, T, d), W (C, d) -> (B, T, T).

    Args:
        x: one modality's features X.
        j: the joint representation J.
        weight: W_j, (C, d).
        pad_mask: (B, T) bool, True at padded frames (their columns are 0).
    """
    d = j.shape[-1]
    corr = torch.tanh(torch.matmul(torch.matmul(x, weight), j.transpose(1, 2)) / math.sqrt(d))  # (B, T, T)
    if pad_mask is not None:
        corr = corr.masked_fill(pad_mask.unsqueeze(1), 0.0)  # (B, T, T)
    return corr


class _Branch(nn.Module):
    """One modality's side of the joint cross-attention: C, H and X_att."""

    def __init__(self, dim: int, joint: int, attn_dim: int):
        """Build the weights.

        Args:
            dim: the modality's width C.
            joint: the joint width d.
            attn_dim: k.
        """
        super().__init__()
        self.w_j = nn.Parameter(torch.empty(dim, joint))
        nn.init.xavier_uniform_(self.w_j)
        self.w = nn.Linear(dim, attn_dim)
        self.w_c = nn.Linear(joint, attn_dim, bias=False)
        self.w_h = nn.Linear(attn_dim, dim)

    def forward(self, x: torch.Tensor, j: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
        """X_att = ReLU(X W + (1/n) C J W_c) W_h + X: (B, T, C), (B, T, d) -> (B, T, C)."""
        B, T = x.shape[:2]
        corr = joint_correlation(x, j, self.w_j, pad_mask)  # (B, T, T)
        if pad_mask is None:
            n: torch.Tensor | float = float(T)
        else:
            n = (~pad_mask).sum(dim=1).clamp(min=1).view(B, 1, 1).to(x.dtype)  # (B, 1, 1) valid frames
        h = torch.relu(self.w(x) + torch.matmul(corr, self.w_c(j)) / n)  # (B, T, k)
        return self.w_h(h) + x  # (B, T, C)


class JointCrossAttention(nn.Module):
    """The joint cross-attention block: (X_v, X_a) -> (X_att,v, X_att,a), each (B, T, C)."""

    def __init__(self, dim: int, attn_dim: int):
        """Build both branches.

        Args:
            dim: C, the width of each modality (the TCNs' output).
            attn_dim: k, the attention maps' width.
        """
        super().__init__()
        self.visual = _Branch(dim, 2 * dim, attn_dim)
        self.audio = _Branch(dim, 2 * dim, attn_dim)

    @staticmethod
    def joint(x_v: torch.Tensor, x_a: torch.Tensor) -> torch.Tensor:
        """J = [X_a ; X_v]: (B, T, C), (B, T, C) -> (B, T, 2C)."""
        return torch.cat([x_a, x_v], dim=-1)  # (B, T, 2C)

    def correlations(self, x_v: torch.Tensor, x_a: torch.Tensor,
                     pad_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """(C_v, C_a), each (B, T, T): every frame of one modality against every frame of the joint one."""
        j = self.joint(x_v, x_a)  # (B, T, 2C)
        return (joint_correlation(x_v, j, self.visual.w_j, pad_mask),
                joint_correlation(x_a, j, self.audio.w_j, pad_mask))  # fmt: skip

    def forward(self, x_v: torch.Tensor, x_a: torch.Tensor,
                pad_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """(X_att,v, X_att,a): (B, T, C), (B, T, C) -> 2 x (B, T, C)."""
        j = self.joint(x_v, x_a)  # (B, T, 2C)
        return self.visual(x_v, j, pad_mask), self.audio(x_a, j, pad_mask)


class JCA(FusionModel):
    """Per-modality TCNs, one joint cross-attention block, [X_att,v ; X_att,a] to the V/A head."""

    def __init__(self, config: JCAConfig):
        """Build the model.

        Args:
            config: widths and dropout; see `JCAConfig`.
        """
        super().__init__(config)
        C = config.tcn_channels
        self.jca = JointCrossAttention(C, config.attn_dim)
        self.head = va_head(2 * C, config.head_hidden, config.dropout)

    def fuse(self, x_v: torch.Tensor, x_a: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
        """Joint cross-attention, concatenation, head."""
        att_v, att_a = self.jca(x_v, x_a, pad_mask)  # (B, T, C) each
        return torch.tanh(self.head(torch.cat([att_v, att_a], dim=-1)))  # (B, T, 2)


class BLSTM(nn.Module):
    """A bidirectional LSTM over the valid frames only (packed), (B, T, D) -> (B, T, 2 hidden); padded outputs 0."""

    def __init__(self, dim: int, hidden: int):
        """Build the LSTM.

        Args:
            dim: input width.
            hidden: width of each direction.
        """
        super().__init__()
        self.lstm = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
        """Run both directions over each sample's valid frames (the backward one never starts in the padding)."""
        B, T = x.shape[:2]
        lengths = valid_lengths(pad_mask, B, T)  # (B,)
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        return pad_packed_sequence(out, batch_first=True, total_length=T)[0]  # (B, T, 2 hidden)


class RJCA(FusionModel):
    """TCNs, a BLSTM per modality, the joint cross-attention block applied `recursions` times, a BLSTM on the fused
    sequence, the V/A head."""

    def __init__(self, config: RJCAConfig):
        """Build the model.

        Args:
            config: widths, recursions and dropout; see `RJCAConfig`.
        """
        super().__init__(config)
        C = config.tcn_channels
        self.visual_lstm = BLSTM(C, C // 2)  # our choice: width kept at C
        self.audio_lstm = BLSTM(C, C // 2)
        self.jca = JointCrossAttention(C, config.attn_dim)
        self.fused_lstm = BLSTM(2 * C, C)
        self.head = va_head(2 * C, config.head_hidden, config.dropout)

    def fuse(self, x_v: torch.Tensor, x_a: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
        """X^(0) = BLSTM(X); X^(r) = JCA(X^(r-1)) for r = 1..R; BLSTM([X_v^(R) ; X_a^(R)]); head."""
        x_v, x_a = self.visual_lstm(x_v, pad_mask), self.audio_lstm(x_a, pad_mask)  # (B, T, C) each
        for _ in range(self.config.recursions):
            x_v, x_a = self.jca(x_v, x_a, pad_mask)  # (B, T, C) each, the same weights every time
        fused = self.fused_lstm(torch.cat([x_v, x_a], dim=-1), pad_mask)  # (B, T, 2C)
        return torch.tanh(self.head(fused))  # (B, T, 2)


class DCA(FusionModel):
    """TCNs, one joint cross-attention block, a per-frame gate between attended and unattended features."""

    def __init__(self, config: DCAConfig):
        """Build the model.

        Args:
            config: widths, gate temperature and dropout; see `DCAConfig`.
        """
        super().__init__(config)
        C = config.tcn_channels
        self.jca = JointCrossAttention(C, config.attn_dim)
        self.gate_v = DynamicWeight(C, config.temperature)
        self.gate_a = DynamicWeight(C, config.temperature)
        self.head = va_head(2 * C, config.head_hidden, config.dropout)

    def gated(self, x_v: torch.Tensor, x_a: torch.Tensor, pad_mask: torch.Tensor | None
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # fmt: skip
        """The gated fused sequence (B, T, 2C) and the gates {"visual", "audio"}: (B, T, 2), column 0 weighs X,
        column 1 X_att."""
        att_v, att_a = self.jca(x_v, x_a, pad_mask)  # (B, T, C) each
        out_v, g_v = self.gate_v(x_v, att_v)  # (B, T, C), (B, T, 2)
        out_a, g_a = self.gate_a(x_a, att_a)  # (B, T, C), (B, T, 2)
        return torch.cat([out_v, out_a], dim=-1), {"visual": g_v, "audio": g_a}  # (B, T, 2C)

    def fuse(self, x_v: torch.Tensor, x_a: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
        """Gate, concatenate, head."""
        return torch.tanh(self.head(self.gated(x_v, x_a, pad_mask)[0]))  # (B, T, 2)
