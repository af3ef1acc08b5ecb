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

Overlapping windows of one long sequence (whole-video prediction): a window's output equals the whole sequence's
output at every frame farther than `TCN.edge` frames from the window's ends (there the window's own zero padding
never reaches), so `TCN.forward_windows` runs the network once over the whole sequence and recomputes only the
`edge` frames at each end of each window, block by block (`TemporalBlock.forward_edges`). The sums are the same
ones in the same order as `forward` on each window alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.dropout import ByteDropout, relu_dropout

PASS_FRAMES = 2048
"""Frames per call in `TCN.forward_windows`'s passes over a long sequence: enough for full-speed matrix products,
few enough for each call's products to stay in cache (measured on the 2-core CPU: the 1024-d visual TCN over
20,000 frames in 213 ms in calls of 2048 frames, 319 ms in one call)."""


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

    @property
    def halo(self) -> int:
        """Frames each convolution reaches on either side: dilation * (kernel_size // 2)."""
        return self.conv1.dilation[0] * (self.conv1.kernel_size[0] // 2)

    def forward_edges(
        self, x: torch.Tensor, head: torch.Tensor, tail: torch.Tensor, starts: torch.Tensor, length: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The block's output at the ends of windows of a long sequence, each as `forward` of the window alone.

        Inside a window, the block's input equals the whole sequence's `x` except in its first and last `e` frames
        (`head`, `tail`); its output then differs from the whole sequence's in the first and last e + 2 halo frames.
        Those are `forward` over a chunk of the window's first (last) e + 4 halo frames: the chunk's own end cuts
        off frames, which corrupts only outputs farther than e + 2 halo frames from the window's end.

        Args:
            x: (N, C_in) the block's input over the whole sequence (no padding).
            head: (W, e, C_in) the first e frames of each window's input.
            tail: (W, e, C_in) the last e frames of each window's input.
            starts: (W,) long, window starts; window w covers frames [starts[w], starts[w] + length) of x.
            length: window length, at least 2 (e + 2 halo) (else the two ends' chunks would overlap).

        Returns:
            ((W, e + 2 halo, C_out) first frames, (W, e + 2 halo, C_out) last frames) of each window's output.
        """
        W, e, _ = head.shape
        h = self.halo
        if length < 2 * (e + 2 * h):
            raise ValueError(f"window length {length} is shorter than the block's two ends, 2 x {e + 2 * h}")
        near = torch.arange(e, e + 4 * h, device=x.device)  # chunk frames past the dirty e, window coordinates
        head_rows = starts[:, None] + near  # (W, 4h) sequence frames
        tail_rows = starts[:, None] + (length - e - 4 * h) + (near - e)  # (W, 4h)
        chunks = torch.cat([torch.cat([head, x[head_rows]], dim=1),  # (W, e + 4h, C_in)
                            torch.cat([x[tail_rows], tail], dim=1)])  # (2W, e + 4h, C_in)  # fmt: skip
        out = self(chunks)  # (2W, e + 4h, C_out)
        return out[:W, : e + 2 * h], out[W:, 2 * h :]  # (W, e + 2h, C_out) each

    def forward_long(self, x: torch.Tensor, frames: int = PASS_FRAMES) -> torch.Tensor:
        """`forward` over one long sequence, `frames` output frames per call: (N, C_in) -> (N, C_out).

        Each call also reads the 2 halo frames on either side its outputs reach, so the outputs are `forward`'s
        (the same sums in the same order); only the products stay small enough for the cache.

        Args:
            x: (N, C_in) the sequence (no padding).
            frames: output frames per call.
        """
        N, _ = x.shape
        r = 2 * self.halo
        out = x.new_empty(N, self.conv2.out_channels)  # (N, C_out)
        calls = max(1, -(-N // frames))
        size = -(-N // calls)  # equal calls: no short last product
        for c0 in range(0, N, size):
            c1 = min(c0 + size, N)
            lo, hi = max(c0 - r, 0), min(c1 + r, N)
            out[c0:c1] = self(x[None, lo:hi])[0, c0 - lo : c1 - lo]  # (c1 - c0, C_out)
        return out


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

    @property
    def edge(self) -> int:
        """Frames at each end of a sequence whose outputs its zero padding reaches: (receptive_field - 1) / 2."""
        return sum(2 * b.halo for b in self.blocks)

    def forward_windows(self, x: torch.Tensor, starts: Sequence[int], length: int) -> WindowOutputs:
        """The outputs of overlapping windows of one long sequence, computing what they share once (eval mode).

        Window w's output equals `self(x[None, s : s + length])[0]` (s = starts[w]): the network runs once over
        the whole sequence, which gives every window's output except its first and last `edge` frames; those come
        from `TemporalBlock.forward_edges`, block by block. The same sums in the same order as `forward` on each
        window (equal up to the matrix library computing a row of a product alike in products of other heights).

        Args:
            x: (N, d_in) the whole sequence.
            starts: window starts, each with 0 <= s and s + length <= N.
            length: window length, at least 2 `edge`.

        Raises:
            ValueError: in training mode (dropout draws depend on the batch), or on a window outside x, or a
                length below 2 `edge`.
        """
        N, D = x.shape
        if self.training:
            raise ValueError("TCN.forward_windows runs in eval mode only (dropout draws depend on the batch)")
        if self.in_dim != D:
            raise ValueError(f"TCN expects (N, {self.in_dim}), got {(N, D)}")
        if length < 2 * self.edge:
            raise ValueError(f"window length {length} is shorter than the network's two ends, 2 x {self.edge}")
        outside = [s for s in starts if s < 0 or s + length > N]
        if outside:
            raise ValueError(f"the window of {length} frames at {outside[0]} lies outside the {N} frames")
        st = torch.as_tensor(list(starts), dtype=torch.long, device=x.device)  # (W,)
        head = tail = x.new_empty(len(starts), 0, D)  # (W, 0, D): the input has no window-dependent frames
        full = x  # (N, D)
        group = max(1, PASS_FRAMES // (4 * self.edge + 1))  # windows per edge call: both ends' chunks in cache
        for blk in self.blocks:
            ends = [blk.forward_edges(full, head[i : i + group], tail[i : i + group], st[i : i + group], length)
                    for i in range(0, len(starts), group)]  # fmt: skip
            head = torch.cat([hd for hd, _ in ends]) if ends else head[:, :0]  # (W, e, C)
            tail = torch.cat([tl for _, tl in ends]) if ends else tail[:, :0]  # (W, e, C)
            full = blk.forward_long(full, PASS_FRAMES)  # (N, C)
        return WindowOutputs(full, head, tail, st, length)


@dataclass(frozen=True)
class WindowOutputs:
    """A network's outputs over overlapping windows of one sequence, stored once (`TCN.forward_windows`).

    Args:
        full: (N, C) the outputs over the whole sequence.
        head: (W, E, C) the first E frames of each window's outputs.
        tail: (W, E, C) the last E frames of each window's outputs.
        starts: (W,) long, window starts.
        length: window length (>= 2 E).
    """

    full: torch.Tensor
    head: torch.Tensor
    tail: torch.Tensor
    starts: torch.Tensor
    length: int

    def __len__(self) -> int:
        return self.starts.shape[0]

    def windows(self, first: int, stop: int) -> torch.Tensor:
        """The outputs of windows first, ..., stop - 1: (stop - first, length, C)."""
        E, L = self.head.shape[1], self.length
        rows = self.starts[first:stop, None] + torch.arange(L, device=self.starts.device)  # (B, L)
        out = self.full[rows]  # (B, L, C), a fresh tensor
        out[:, :E] = self.head[first:stop]
        out[:, L - E :] = self.tail[first:stop]
        return out
