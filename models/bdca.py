"""Bidirectional Dynamic Cross-Modal Attention (paper III.D, eqs. 1-6).

VDAA: visual queries attend to audio keys/values, A_v = softmax(Q_v K_a^T / sqrt(d_a)) V_a (eq. 1);
X_att,v = ReLU(A_v + X_v) (eq. 2). ADVA mirrors it with the modalities swapped. The dynamic weight computes
G = softmax(X_att W_gl / T) with W_gl in R^(d x 2) (eqs. 3-4) and mixes X_att,g = ReLU(X G_0 + X_att G_1) (eq. 5);
the fused sequence is [X_att,gv ; X_att,ga] (eq. 6). Without the dynamic weight (Table IV's "BDCA w/o DW") the
fused sequence is [X_att,v ; X_att,a].

The attention is single-head, as written in eq. 1. The pure functions below carry the math; the modules hold the
parameters. Attention runs through torch's fused `scaled_dot_product_attention` by default; `attention_weights`
is the explicit path (same numbers) that tests and plots read.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _attendable(key_padding_mask: torch.Tensor) -> torch.Tensor:
    """Keys a query may attend to, (B, 1, Tk) bool; a fully padded sample attends to all keys (no NaN rows)."""
    valid = ~key_padding_mask | key_padding_mask.all(dim=1, keepdim=True)  # (B, Tk)
    return valid.unsqueeze(1)  # (B, 1, Tk)


def attention_weights(
    q: torch.Tensor, k: torch.Tensor, scale: float, key_padding_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Rows of softmax(q k^T * scale): (B, Tq, D), (B, Tk, D) -> (B, Tq, Tk); each row sums to 1.

    Args:
        q: queries.
        k: keys.
        scale: multiplier of the scores (1 / sqrt(d_a) in eq. 1).
        key_padding_mask: (B, Tk) bool, True at padded keys, which get weight 0.
    """
    scores = torch.matmul(q, k.transpose(1, 2)) * scale  # (B, Tq, Tk)
    if key_padding_mask is not None:
        scores = scores.masked_fill(~_attendable(key_padding_mask), float("-inf"))
    return torch.softmax(scores, dim=-1)  # (B, Tq, Tk)


def cross_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    key_padding_mask: torch.Tensor | None = None,
    use_sdpa: bool = True,
) -> torch.Tensor:
    """softmax(q k^T * scale) v: (B, Tq, D), (B, Tk, D), (B, Tk, Dv) -> (B, Tq, Dv).

    Args:
        q: queries.
        k: keys.
        v: values.
        scale: multiplier of the scores.
        key_padding_mask: (B, Tk) bool, True at padded keys.
        use_sdpa: use torch's fused kernel; False multiplies `attention_weights` by v explicitly.
    """
    if use_sdpa:
        mask = None
        if key_padding_mask is not None and bool(key_padding_mask.any()):
            mask = _attendable(key_padding_mask)  # (B, 1, Tk)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)  # (B, Tq, Dv)
    return torch.matmul(attention_weights(q, k, scale, key_padding_mask), v)  # (B, Tq, Dv)


def gate_weights(x_att: torch.Tensor, weight: torch.Tensor, temperature: float) -> torch.Tensor:
    """Dynamic-weight gates G = softmax(X_att W_gl / T) (eqs. 3-4): (B, T, d), W_gl (d, 2) -> (B, T, 2).

    Args:
        x_att: cross-attended features X_att.
        weight: W_gl, (d, 2).
        temperature: T > 0; small T sharpens towards a hard choice, large T flattens towards 0.5/0.5.
    """
    return torch.softmax(torch.matmul(x_att, weight) / temperature, dim=-1)  # (B, T, 2)


def apply_gates(x: torch.Tensor, x_att: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
    """ReLU(X G_0 + X_att G_1) (eq. 5): (B, T, d), (B, T, d), (B, T, 2) -> (B, T, d).

    Args:
        x: the modality's own features (the TCN output).
        x_att: its cross-attended features.
        gates: (B, T, 2); column 0 weighs the original, column 1 the cross-attended features.
    """
    return torch.relu_(x * gates[..., :1] + x_att * gates[..., 1:])  # (B, T, d); in place on the fresh sum


class CrossModalAttention(nn.Module):
    """One direction of BDCA (VDAA or ADVA): queries from one modality, keys and values from the other.

    Returns X_att = ReLU(A + X) (eq. 2). The score scale is 1 / sqrt(d of the key/value modality), as in eq. 1.
    """

    def __init__(self, query_dim: int, kv_dim: int, use_sdpa: bool = True):
        """Build the projections.

        Args:
            query_dim: width of the query modality (also the width of Q, K, V and of the output, so A + X adds up).
            kv_dim: width of the key/value modality.
            use_sdpa: use torch's fused attention kernel.
        """
        super().__init__()
        self.q = nn.Linear(query_dim, query_dim)
        self.k = nn.Linear(kv_dim, query_dim)
        self.v = nn.Linear(kv_dim, query_dim)
        self.scale = 1.0 / math.sqrt(kv_dim)
        self.use_sdpa = use_sdpa

    def attend(
        self, x_q: torch.Tensor, x_kv: torch.Tensor, key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """A = softmax(Q K^T / sqrt(d_kv)) V (eq. 1): (B, T, d_q), (B, T', d_kv) -> (B, T, d_q)."""
        return cross_attention(
            self.q(x_q), self.k(x_kv), self.v(x_kv), self.scale, key_padding_mask, self.use_sdpa
        )  # (B, T, d_q)

    def weights(
        self, x_q: torch.Tensor, x_kv: torch.Tensor, key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The attention matrix (explicit path): (B, T, d_q), (B, T', d_kv) -> (B, T, T')."""
        return attention_weights(self.q(x_q), self.k(x_kv), self.scale, key_padding_mask)  # (B, T, T')

    def forward(
        self, x_q: torch.Tensor, x_kv: torch.Tensor, key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """X_att = ReLU(A + X_q) (eq. 2): (B, T, d_q), (B, T', d_kv) -> (B, T, d_q)."""
        B, T, Dq = x_q.shape
        Bk, Tk, Dkv = x_kv.shape
        if Bk != B or Dq != self.q.in_features or Dkv != self.k.in_features:
            raise ValueError(
                f"cross-attention expects (B, T, {self.q.in_features}) queries and (B, T', {self.k.in_features}) "
                f"keys/values, got {(B, T, Dq)} and {(Bk, Tk, Dkv)}"
            )
        return torch.relu_(self.attend(x_q, x_kv, key_padding_mask) + x_q)  # (B, T, d_q); in place on the fresh sum


class DynamicWeight(nn.Module):
    """The gate of eqs. 3-5: a bias-free linear map to 2 logits, a tempered softmax, a weighted mix."""

    def __init__(self, dim: int, temperature: float = 0.5):
        """Build the gate.

        Args:
            dim: feature width d.
            temperature: softmax temperature T (0.5 in the paper).
        """
        super().__init__()
        # nn.Linear stores W_gl transposed, (2, d); the math uses weight.T = W_gl in R^(d x 2).
        self.gate = nn.Linear(dim, 2, bias=False)
        self.temperature = temperature

    def forward(self, x: torch.Tensor, x_att: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, d), (B, T, d) -> (X_att,g (B, T, d), gates (B, T, 2))."""
        B, T, D = x.shape
        if x_att.shape != x.shape:
            raise ValueError(f"dynamic weight: X {(B, T, D)} and X_att {tuple(x_att.shape)} differ in shape")
        gates = gate_weights(x_att, self.gate.weight.T, self.temperature)  # (B, T, 2)
        return apply_gates(x, x_att, gates), gates


class BDCA(nn.Module):
    """VDAA and ADVA with (or without) the dynamic weight; returns the fused sequence of eq. 6."""

    def __init__(
        self, visual_dim: int, audio_dim: int, temperature: float = 0.5, gated: bool = True, use_sdpa: bool = True
    ):
        """Build both directions.

        Args:
            visual_dim: d_v, width of the visual sequence (TCN output).
            audio_dim: d_a, width of the audio sequence (TCN output).
            temperature: the dynamic weight's T.
            gated: use the dynamic weight; False gives Table IV's "BDCA w/o DW" (fused = [X_att,v ; X_att,a]).
            use_sdpa: use torch's fused attention kernel.
        """
        super().__init__()
        self.vdaa = CrossModalAttention(visual_dim, audio_dim, use_sdpa)
        self.adva = CrossModalAttention(audio_dim, visual_dim, use_sdpa)
        self.gate_v = DynamicWeight(visual_dim, temperature) if gated else None
        self.gate_a = DynamicWeight(audio_dim, temperature) if gated else None

    def forward(
        self, x_v: torch.Tensor, x_a: torch.Tensor, pad_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """(B, T, d_v), (B, T, d_a) -> (fused (B, T, d_v + d_a), gates {"visual", "audio"}: (B, T, 2) or None).

        Args:
            x_v: visual sequence X_v.
            x_a: audio sequence X_a.
            pad_mask: (B, T) bool, True at padded frames (never attended to).
        """
        B, T, Dv = x_v.shape
        if tuple(x_a.shape[:2]) != (B, T):
            raise ValueError(f"BDCA: visual {(B, T, Dv)} and audio {tuple(x_a.shape)} differ in batch or length")
        att_v = self.vdaa(x_v, x_a, pad_mask)  # (B, T, d_v)
        att_a = self.adva(x_a, x_v, pad_mask)  # (B, T, d_a)
        if self.gate_v is None or self.gate_a is None:
            return torch.cat([att_v, att_a], dim=-1), None  # (B, T, d_v + d_a)
        out_v, g_v = self.gate_v(x_v, att_v)
        out_a, g_a = self.gate_a(x_a, att_a)
        return torch.cat([out_v, out_a], dim=-1), {"visual": g_v, "audio": g_a}  # (B, T, d_v + d_a)
