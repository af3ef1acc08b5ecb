"""What the rival fusion models share: input checks, the per-modality TCNs, padding helpers.

Every rival is called like BDCA's `AVTemporalModel`: `model(visual (B, T, Dv), audio (B, T, Da), pad_mask (B, T))`
-> (B, T, 2) in [-1, 1]; padded frames (True in the mask) are never attended to and their outputs are meaningless.
The harness pads a window at its end only (`harness.data.datasets.WindowDataset`,
`harness.stages.predict.predict_arrays`).
"""

from __future__ import annotations

import torch
from torch import nn

from models.errors import ModelError
from models.tcn import TCN
from models.zoo.configs import ZooConfig


def key_mask(pad_mask: torch.Tensor | None) -> torch.Tensor | None:
    """torch's key padding mask, (B, T) True at keys never attended to; a fully padded sample attends to all of
    its frames (no all -inf attention rows, hence no NaN). None when nothing is padded."""
    if pad_mask is None or not bool(pad_mask.any()):
        return None
    return pad_mask & ~pad_mask.all(dim=1, keepdim=True)  # (B, T)


def zero_padded(x: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
    """x with its padded frames set to 0: (B, T, C), (B, T) -> (B, T, C)."""
    if pad_mask is None:
        return x
    return x.masked_fill(pad_mask.unsqueeze(-1), 0.0)  # (B, T, C)


def valid_lengths(pad_mask: torch.Tensor | None, B: int, T: int) -> torch.Tensor:
    """Frames before the padding of each sample, (B,) int64 on the CPU (at least 1).

    Raises:
        ModelError: a sample is padded anywhere but at its end (recurrent and causal layers need suffix padding).
    """
    if pad_mask is None:
        return torch.full((B,), T, dtype=torch.long)
    n = (~pad_mask).sum(dim=1)  # (B,)
    suffix = torch.arange(T, device=pad_mask.device)[None, :] >= n[:, None]  # (B, T)
    if not torch.equal(suffix, pad_mask):
        raise ModelError("pad_mask: padding must follow the valid frames (True only at the end of a sample)")
    return n.clamp(min=1).cpu()


class FusionModel(nn.Module):
    """Base of the rivals: checks the inputs, runs the TCNs (when the model has them), hands over to `fuse`.

    Subclasses implement `fuse(x_v, x_a, pad_mask) -> (B, T, 2)` logits-free predictions in [-1, 1].
    """

    def __init__(self, config: ZooConfig, tcns: bool = True):
        """Build the per-modality TCNs.

        Args:
            config: the model's configuration.
            tcns: build the two TCNs (visual and audio, `tcn_channels` wide each); False for a model without them.
        """
        super().__init__()
        self.config = config
        c = config
        kw = {"channels": c.tcn_channels, "kernel_size": c.tcn_kernel, "dilations": c.tcn_dilations,
              "dropout": c.tcn_dropout}  # fmt: skip
        self.visual_tcn = TCN(c.visual_dim, **kw) if tcns else None
        self.audio_tcn = TCN(c.audio_dim, **kw) if tcns else None

    def forward(self, visual: torch.Tensor, audio: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(Valence, arousal) per frame.

        Args:
            visual: (B, T, Dv) visual features.
            audio: (B, T, Da) audio features.
            pad_mask: (B, T) bool, True at padded frames (at the end of a sample).

        Returns:
            (B, T, 2) in [-1, 1].
        """
        B, T, C = visual.shape
        name = type(self).__name__
        c = self.config
        if c.visual_dim != C or audio.ndim != 3 or tuple(audio.shape) != (B, T, c.audio_dim):
            raise ModelError(f"{name}: expected visual (B, T, {c.visual_dim}) and audio (B, T, {c.audio_dim}), got "
                             f"{tuple(visual.shape)} and {tuple(audio.shape)}")  # fmt: skip
        if pad_mask is not None and tuple(pad_mask.shape) != (B, T):
            raise ModelError(f"{name}: pad_mask must have shape ({B}, {T}), got {tuple(pad_mask.shape)}")
        if self.visual_tcn is not None and self.audio_tcn is not None:
            visual = self.visual_tcn(visual, pad_mask)  # (B, T, C)
            audio = self.audio_tcn(audio, pad_mask)  # (B, T, C)
        return self.fuse(visual, audio, pad_mask)  # (B, T, 2)

    def fuse(self, x_v: torch.Tensor, x_a: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
        """The model's own part: (B, T, Cv), (B, T, Ca), (B, T) -> (B, T, 2) in [-1, 1]."""
        raise NotImplementedError
