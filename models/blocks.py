"""Building blocks that the stage-2 models share: the pre-norm Transformer encoder and the valence/arousal head.

BDCA's temporal model (`models.temporal`) and the rival fusion models of `models.zoo` build these two parts here,
so that a table comparing them compares their fusions, not two spellings of the same encoder or head.
"""

from __future__ import annotations

from torch import nn

from models.dropout import ByteDropout


def pre_norm_encoder(
    dim: int, num_heads: int, dim_feedforward: int, dropout: float, attn_dropout: float, num_layers: int
) -> nn.TransformerEncoder:
    """A pre-norm Transformer encoder (batch first, ReLU MLP, final LayerNorm), run by `models.encoder`.

    Args:
        dim: token width.
        num_heads: attention heads (must divide `dim`).
        dim_feedforward: MLP width.
        dropout: dropout after attention, inside the MLP and after it.
        attn_dropout: dropout on the attention weights (0 keeps torch's fused CPU attention kernel).
        num_layers: encoder layers (>= 1).
    """
    layer = nn.TransformerEncoderLayer(dim, num_heads, dim_feedforward, dropout, batch_first=True, norm_first=True)
    # Cheaper masks than torch's per-element Bernoulli draws (see models.dropout); attention-weight dropout has its
    # own rate (0 keeps torch's fused attention kernel).
    layer.dropout, layer.dropout1, layer.dropout2 = (ByteDropout(dropout) for _ in range(3))
    layer.self_attn.dropout = attn_dropout
    # Pre-norm layers need a final norm; nested tensors are off so padded outputs keep their shape.
    return nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(dim), enable_nested_tensor=False)


def va_head(dim: int, hidden: int, dropout: float) -> nn.Sequential:
    """The two fully connected output layers, (..., dim) -> (..., 2) logits (callers squash them with tanh).

    Args:
        dim: input width.
        hidden: hidden width.
        dropout: dropout between the layers.
    """
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), ByteDropout(dropout), nn.Linear(hidden, 2))
