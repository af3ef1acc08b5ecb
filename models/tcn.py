"""The per-modality temporal convolutional network of stage 2 (paper III.A: "four-layer TCNs").

Design (the paper gives only "four layers" and the 128-d output): four residual blocks in the style of Bai et al.
(2018), each two dilated convolutions (kernel 3) with ReLU and dropout and a residual connection (a 1x1 convolution
where the width changes), dilations 1, 2, 4, 8. The convolutions are NON-causal (centred, zero-padded): the task
labels every frame of a recorded video offline, so a frame may see the future; the receptive field is
1 + 2 (k - 1) sum(dilations) = 61 frames (about 2 s at 30 fps).

Padded frames: when a pad mask is given, activations at padded frames are set to zero after every convolution, so
padded frames act exactly like the convolution's own zero padding and valid frames come out the same as for the
unpadded sequence.

Layout: the blocks work frames-major, (B, T, C), the layout the features arrive in. A dilated convolution is
computed as one matrix product of every frame with all k taps' weights at once, (B, T, C_in) @ (C_in, k C_out),
followed by a shifted sum of the k column blocks (`tap_sum`): the same sums as `nn.Conv1d`, without the
channels-first transposes and copies, and the first block's 1x1 residual projection rides in the same product.
The weights stay in `nn.Conv1d` modules, so state dicts keep the usual `conv1.weight` (C_out, C_in, k) layout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.dropout import ByteDropout, relu_dropout


class _TapSum(torch.autograd.Function):
    """out[:, t] = bias + sum_j y[:, t + (j - k//2) d, block j] with zeros outside [0, T); the tail passes through."""

    @staticmethod
    def forward(
        ctx, y: torch.Tensor, bias: torch.Tensor, taps: int, dilation: int, channels: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, W = y.shape
        C, c = channels, taps // 2
        out = torch.add(y[..., c * C : (c + 1) * C], bias)  # (B, T, C)
        for j in range(taps):
            s = (j - c) * dilation  # output frame t reads input frame t + s
            if s == 0 or abs(s) >= T:
                continue
            if s > 0:
                out[:, : T - s] += y[:, s:, j * C : (j + 1) * C]
            else:
                out[:, -s:] += y[:, : T + s, j * C : (j + 1) * C]
        extra = y[..., taps * C :].contiguous()  # (B, T, W - kC)
        ctx.meta = (B, T, W, taps, dilation, C)
        return out, extra

    @staticmethod
    def backward(ctx, g_out: torch.Tensor | None, g_extra: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        B, T, W, taps, dilation, C = ctx.meta
        c = taps // 2
        ref = g_out if g_out is not None else g_extra
        gy = ref.new_empty(B, T, W)  # (B, T, W)
        if g_out is None:
            gy[..., : taps * C].zero_()
        else:
            for j in range(taps):
                s = (j - c) * dilation
                blk = gy[..., j * C : (j + 1) * C]  # (B, T, C) view
                if s == 0:
                    blk.copy_(g_out)
                elif abs(s) >= T:
                    blk.zero_()
                elif s > 0:
                    blk[:, s:] = g_out[:, : T - s]
                    blk[:, :s].zero_()
                else:
                    blk[:, : T + s] = g_out[:, -s:]
                    blk[:, T + s :].zero_()
        if taps * C < W:
            if g_extra is None:
                gy[..., taps * C :].zero_()
            else:
                gy[..., taps * C :] = g_extra
        g_bias = None if g_out is None or not ctx.needs_input_grad[1] else g_out.sum(dim=(0, 1))  # (C,)
        return gy, g_bias, None, None, None


def tap_sum(
    y: torch.Tensor, bias: torch.Tensor, taps: int, dilation: int, channels: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Finish a centred dilated convolution from its per-tap products.

    Args:
        y: (B, T, taps * channels + E): column block j holds x @ W_j^T, the product with tap j's weights; any E
            trailing columns are passed through.
        bias: (channels,) convolution bias.
        taps: kernel size k (odd).
        dilation: frames between taps.
        channels: output channels C.

    Returns:
        ((B, T, C) convolution output, (B, T, E) the trailing columns).
    """
    return _TapSum.apply(y, bias, taps, dilation, channels)


def tap_weights(conv: nn.Conv1d) -> torch.Tensor:
    """A Conv1d weight (C_out, C_in, k) as the (k C_out, C_in) matrix whose row block j is tap j."""
    w = conv.weight  # (C_out, C_in, k)
    return w.permute(2, 0, 1).reshape(-1, w.shape[1])  # (k C_out, C_in)


class TemporalBlock(nn.Module):
    """One residual block: two dilated, centred convolutions + ReLU + dropout, plus a residual path."""

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
        # Parameter holders in nn.Conv1d's layout (the forward computes the same convolutions as matrix products).
        self.conv1 = nn.Conv1d(in_channels, out_channels, kernel_size, padding=pad, dilation=dilation)
        self.conv2 = nn.Conv1d(out_channels, out_channels, kernel_size, padding=pad, dilation=dilation)
        self.drop = ByteDropout(dropout)
        self.downsample = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def _conv(
        self, x: torch.Tensor, conv: nn.Conv1d, residual: nn.Conv1d | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A convolution (plus, fused, a 1x1 residual projection): (B, T, C_in) -> ((B, T, C), (B, T, C or 0))."""
        k, d, C = conv.kernel_size[0], conv.dilation[0], conv.out_channels
        w = tap_weights(conv)  # (k C, C_in)
        if residual is not None:
            w = torch.cat([w, residual.weight.view(C, -1)])  # ((k + 1) C, C_in)
        return tap_sum(F.linear(x, w), conv.bias, k, d, C)  # (B, T, C), (B, T, C or 0)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, C_in) -> (B, T, C_out).

        Args:
            x: input, frames-major.
            keep: (B, T, 1) float, 1 for valid frames and 0 for padded ones; None when nothing is padded.
        """
        h, res = self._conv(x, self.conv1, self.downsample)  # (B, T, C_out), (B, T, C_out or 0)
        h = relu_dropout(h, self.drop.p, self.training, inplace=True)  # (B, T, C_out)
        if keep is not None:
            h = h * keep
        h2, _ = self._conv(h, self.conv2)  # (B, T, C_out)
        h2 = relu_dropout(h2, self.drop.p, self.training, inplace=True)  # (B, T, C_out)
        res = x if self.downsample is None else res + self.downsample.bias  # (B, T, C_out)
        out = torch.relu_(h2 + res)  # (B, T, C_out); in place on the fresh sum
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
        keep = None
        if pad_mask is not None and bool(pad_mask.any()):
            # Only when something is padded: multiplying by an all-ones mask would change nothing.
            keep = (~pad_mask).to(x.dtype).unsqueeze(-1)  # (B, T, 1)
        h = x if keep is None else x * keep  # (B, T, D)
        for blk in self.blocks:
            h = blk(h, keep)  # (B, T, C)
        return h
