"""The temporal model's pre-norm Transformer encoder, run frames-major over `nn.TransformerEncoder`'s parameters.

The parameters (and so the state-dict names, `layers.N.self_attn.in_proj_weight`, `linear1.weight`, ...) stay
those of torch's `nn.TransformerEncoder` of pre-norm `nn.TransformerEncoderLayer`s with ReLU; only the forward is
ours. Torch's batch-first training path turns (B, T, E) into (T, B, E) and back inside every attention call and
copies Q, K, V and the output between those layouts; here the fused Q/K/V projection's output is viewed as
(B, H, T, d_h) without a copy, fed to the fused attention kernel, whose output is already (B, T, H, d_h) in
memory. The math is the same:

    x = x + drop1(out_proj(attention(norm1(x))))
    x = x + drop2(linear2(drop(relu(linear1(norm2(x))))))

and a final LayerNorm after the last layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.dropout import ByteDropout, relu_dropout


def self_attention(
    layer: nn.TransformerEncoderLayer, x: torch.Tensor, attend: torch.Tensor | None, dropout_p: float
) -> torch.Tensor:
    """Multi-head self-attention with the layer's fused Q/K/V projection: (B, T, E) -> (B, T, E).

    Args:
        layer: the encoder layer holding `self_attn`.
        x: the normalised input.
        attend: (B, 1, 1, T) bool, True at keys that may be attended to; None attends to all.
        dropout_p: dropout on the attention weights.
    """
    B, T, E = x.shape
    attn = layer.self_attn
    H = attn.num_heads
    qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias)  # (B, T, 3E)
    q, k, v = qkv.view(B, T, 3, H, E // H).permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, H, T, d_h), strided views
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attend, dropout_p=dropout_p)  # (B, H, T, d_h)
    out = out.transpose(1, 2).reshape(B, T, E)  # (B, T, E)
    return attn.out_proj(out)  # (B, T, E)


def encoder_layer(layer: nn.TransformerEncoderLayer, x: torch.Tensor, attend: torch.Tensor | None) -> torch.Tensor:
    """One pre-norm encoder layer (torch's `norm_first=True` with ReLU): (B, T, E) -> (B, T, E).

    Args:
        layer: the layer whose parameters and dropout modules are used.
        x: the input sequence.
        attend: (B, 1, 1, T) bool key mask (True = attend), or None.
    """
    p = layer.self_attn.dropout if layer.training else 0.0
    x = x + layer.dropout1(self_attention(layer, layer.norm1(x), attend, p))  # (B, T, E)
    h = layer.linear1(layer.norm2(x))  # (B, T, F)
    if isinstance(layer.dropout, ByteDropout):
        h = relu_dropout(h, layer.dropout.p, layer.training, inplace=True)  # (B, T, F)
    else:
        h = layer.dropout(F.relu(h))  # (B, T, F)
    return x + layer.dropout2(layer.linear2(h))  # (B, T, E)


def encoder_forward(
    encoder: nn.TransformerEncoder, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """All layers and the final norm: (B, T, E) -> (B, T, E).

    Args:
        encoder: a `nn.TransformerEncoder` of pre-norm ReLU layers (batch first).
        x: the input sequence.
        key_padding_mask: (B, T) bool, True at keys never attended to (torch's `src_key_padding_mask`).
    """
    B, T, _ = x.shape
    attend = None
    if key_padding_mask is not None and bool(key_padding_mask.any()):
        attend = (~key_padding_mask).view(B, 1, 1, T)  # (B, 1, 1, T)
    for layer in encoder.layers:
        x = encoder_layer(layer, x, attend)  # (B, T, E)
    return x if encoder.norm is None else encoder.norm(x)  # (B, T, E)
