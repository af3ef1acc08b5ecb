"""The per-modality temporal convolutional network of stage 2 (paper III.A: "four-layer TCNs").

Design (the paper gives only "four layers" and the 128-d output): four residual blocks in the style of Bai et al.
(2018), each two dilated convolutions (kernel 3) with ReLU and dropout and a residual connection (a 1x1 convolution
where the width changes), dilations 1, 2, 4, 8. The convolutions are NON-causal (centred, zero-padded): the task
labels every frame of a recorded video offline, so a frame may see the future; the receptive field is
1 + 2 (k - 1) sum(dilations) = 61 frames (about 2 s at 30 fps).

Padded frames: when a pad mask is given, activations at padded frames are set to zero after every convolution, so
padded frames act exactly like the convolution's own zero padding and valid frames come out the same as for the
unpadded sequence.
"""

from __future__ import annotations

import torch
from torch import nn

from models.dropout import ByteDropout


class TemporalBlock(nn.Module):
    """One residual block: two dilated, centred conv1d + ReLU + dropout, plus a residual path."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int, dropout: float):
        """Build the block.

        Args:
            in_channels: input width.
            out_channels: output width.
            kernel_size: odd kernel size.
            dilation: dilation of both convolutions.
            dropout: dropout after each activation.
        """
        super().__init__()
        pad = dilation * (kernel_size - 1) // 2
        self.conv1 = nn.Conv1d(in_channels, out_channels, kernel_size, padding=pad, dilation=dilation)
        self.conv2 = nn.Conv1d(out_channels, out_channels, kernel_size, padding=pad, dilation=dilation)
        self.drop = ByteDropout(dropout)
        self.act = nn.ReLU()
        self.downsample = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C_in, T) -> (B, C_out, T).

        Args:
            x: input, channels first.
            keep: (B, 1, T) float, 1 for valid frames and 0 for padded ones; None when nothing is padded.
        """
        h = self.drop(self.act(self.conv1(x)))  # (B, C_out, T)
        if keep is not None:
            h = h * keep
        h = self.drop(self.act(self.conv2(h)))  # (B, C_out, T)
        res = x if self.downsample is None else self.downsample(x)  # (B, C_out, T)
        out = self.act(h + res)
        return out if keep is None else out * keep


class TCN(nn.Module):
    """A stack of `TemporalBlock`s mapping (B, T, d_in) to (B, T, channels)."""

    def __init__(
        self,
        in_dim: int,
        channels: int = 128,
        kernel_size: int = 3,
        dilations: tuple[int, ...] = (1, 2, 4, 8),
        dropout: float = 0.1,
    ):
        """Build the network.

        Args:
            in_dim: per-frame input width.
            channels: width of every block's output.
            kernel_size: odd kernel size.
            dilations: one block per dilation.
            dropout: dropout inside the blocks.
        """
        super().__init__()
        self.in_dim = in_dim
        if kernel_size % 2 != 1:
            raise ValueError(f"TCN kernel_size must be odd (centred convolution), got {kernel_size}")
        widths = [in_dim] + [channels] * len(dilations)
        self.blocks = nn.ModuleList(
            TemporalBlock(widths[i], widths[i + 1], kernel_size, d, dropout) for i, d in enumerate(dilations)
        )

    @property
    def receptive_field(self) -> int:
        """Frames that influence one output frame."""
        return 1 + sum(2 * (b.conv1.kernel_size[0] - 1) * b.conv1.dilation[0] for b in self.blocks)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, d_in) -> (B, T, channels).

        Args:
            x: per-frame features.
            pad_mask: (B, T) bool, True at padded frames; their outputs are zero.
        """
        B, T, D = x.shape
        if self.in_dim != D or (pad_mask is not None and tuple(pad_mask.shape) != (B, T)):
            got = "" if pad_mask is None else f" with pad mask {tuple(pad_mask.shape)}"
            raise ValueError(f"TCN expects (B, T, {self.in_dim}) and a (B, T) pad mask, got {(B, T, D)}{got}")
        keep = None if pad_mask is None else (~pad_mask).to(x.dtype).unsqueeze(1)  # (B, 1, T)
        h = x.transpose(1, 2)  # (B, D, T)
        if keep is not None:
            h = h * keep
        # One explicit copy to channels-first memory: otherwise every convolution reading the transposed view
        # (conv1, the 1x1 residual, and both again in the backward) makes its own copy of the widest tensor.
        h = h.contiguous()  # (B, D, T)
        for blk in self.blocks:
            h = blk(h, keep)  # (B, C, T)
        return h.transpose(1, 2)  # (B, T, C)
