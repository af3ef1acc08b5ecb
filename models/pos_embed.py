"""Fixed 2-D sin-cos position embeddings in the layout of the MAE release (He et al., 2022).

For a grid of H x W patches flattened row-major (patch p = i * W + j, i the row, j the column), MAE builds its grid
with `meshgrid(w, h)`, so the first coordinate it encodes is the column index j. Channel layout for width D:

    [0, D/4)       sin(j * omega_k)      [D/4, D/2)     cos(j * omega_k)
    [D/2, 3D/4)    sin(i * omega_k)      [3D/4, D)      cos(i * omega_k)

with omega_k = 10000^(-k / (D/4)), k = 0 .. D/4 - 1, and an all-zero first row for the CLS token. timm's
`build_sincos2d_pos_embed` holds the same values in another column order, so checkpoints trained with MAE's fixed
embedding need this layout.
"""

from __future__ import annotations

import torch


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """Sin-cos embedding of scalar positions: sines in the first half of the channels, cosines in the second.

    Args:
        dim: output width (even).
        positions: positions, any shape; flattened to (M,).

    Returns:
        (M, dim) float64 tensor.
    """
    if dim % 2:
        raise ValueError(f"sin-cos embedding width must be even, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float64, device=positions.device) / (dim / 2.0)
    omega = 1.0 / 10000.0**omega  # (dim/2,)
    angles = positions.reshape(-1).to(torch.float64)[:, None] * omega[None, :]  # (M, dim/2)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)  # (M, dim)


def sincos_2d_mae(embed_dim: int, grid_size: int | tuple[int, int], cls_token: bool = True) -> torch.Tensor:
    """MAE's fixed 2-D position embedding (see the module docstring for the channel layout).

    Args:
        embed_dim: token width D (divisible by 4).
        grid_size: patches per side, or (rows, columns).
        cls_token: prepend an all-zero row for the CLS token.

    Returns:
        (1 + H*W, D) float64 tensor with the CLS row, (H*W, D) without.
    """
    if embed_dim % 4:
        raise ValueError(f"2-D sin-cos embedding width must be divisible by 4, got {embed_dim}")
    h, w = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    rows = torch.arange(h, dtype=torch.float64).repeat_interleave(w)  # (H*W,) row index i of patch i*W+j
    cols = torch.arange(w, dtype=torch.float64).repeat(h)  # (H*W,) column index j
    emb = torch.cat([sincos_1d(embed_dim // 2, cols), sincos_1d(embed_dim // 2, rows)], dim=1)  # (H*W, D)
    if cls_token:
        emb = torch.cat([torch.zeros(1, embed_dim, dtype=torch.float64), emb], dim=0)  # (1+H*W, D)
    return emb
