"""Stage 2: the audio-visual temporal model (paper Fig. 1) and its Table IV ablations as one class.

visual (B, T, Dv) -> TCN -> X_v (B, T, 128) --+
                                              +-- fusion --> (B, T, F) -> Transformer encoder -> FC -> tanh -> (B, T, 2)
audio  (B, T, Da) -> TCN -> X_a (B, T, 128) --+

`fusion` picks the row of Table IV: `visual_only` / `audio_only` (one TCN, F = 128), `concat` ([X_v ; X_a]),
`bdca_no_dw` ([X_att,v ; X_att,a]), `bdca` ([X_att,gv ; X_att,ga]). No position encoding is added before the
Transformer: the TCNs' convolutions already make each frame's features depend on its temporal neighbourhood.

Entry points: `forward` (training and evaluation), `forward_with_gates` (the same, plus the dynamic-weight gates,
for plots), `forward_windows` (many overlapping windows of one long sequence, the TCNs' shared work done once:
whole-video prediction).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models.bdca import BDCA
from models.blocks import pre_norm_encoder, va_head
from models.configs import TemporalConfig
from models.encoder import encoder_forward
from models.errors import ModelError
from models.tcn import PASS_FRAMES, TCN


class AVTemporalModel(nn.Module):
    """TCNs + fusion (Table IV's options) + Transformer encoder + fully connected V/A head.

    `forward_with_gates` also returns the dynamic-weight gates of the `bdca` fusion, {"visual": (B, T, 2),
    "audio": (B, T, 2)} (column 0: original features, column 1: cross-attended ones), and None for the others.
    """

    def __init__(self, config: TemporalConfig):
        """Build the model.

        Args:
            config: dimensions and the fusion option; see `TemporalConfig`.
        """
        super().__init__()
        self.config = config
        c = config
        tcn = {"channels": c.tcn_channels, "kernel_size": c.tcn_kernel, "dilations": c.tcn_dilations,
               "dropout": c.tcn_dropout}  # fmt: skip
        self.visual_tcn = TCN(c.visual_dim, **tcn) if c.uses_visual else None
        self.audio_tcn = TCN(c.audio_dim, **tcn) if c.uses_audio else None
        self.bdca = (
            BDCA(c.tcn_channels, c.tcn_channels, c.temperature, gated=c.fusion == "bdca", use_sdpa=c.use_sdpa)
            if c.fusion in ("bdca", "bdca_no_dw")
            else None
        )
        self.proj = nn.Identity() if c.model_dim == c.fused_dim else nn.Linear(c.fused_dim, c.model_dim)
        self.encoder = (
            pre_norm_encoder(c.model_dim, c.num_heads, c.dim_feedforward, c.dropout, c.attn_dropout, c.num_layers)
            if c.num_layers > 0
            else None
        )
        self.head = va_head(c.model_dim, c.head_hidden, c.dropout)

    def _check(self, name: str, x: torch.Tensor, dim: int, bt: tuple[int, int] | None) -> None:
        if x.ndim != 3 or x.shape[-1] != dim or (bt is not None and tuple(x.shape[:2]) != bt):
            want = f"({bt[0]}, {bt[1]}, {dim})" if bt else f"(B, T, {dim})"
            raise ModelError(f"{self.config.fusion}: {name} input must have shape {want}, got {tuple(x.shape)}")

    def forward(self, visual: torch.Tensor, audio: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(Valence, arousal) per frame.

        Args:
            visual: (B, T, Dv) visual features (ignored by `audio_only`).
            audio: (B, T, Da) audio features (ignored by `visual_only`).
            pad_mask: (B, T) bool, True at padded frames: never attended to; their outputs are meaningless.

        Returns:
            (B, T, 2) in [-1, 1].
        """
        return self.forward_with_gates(visual, audio, pad_mask)[0]

    def forward_with_gates(
        self, visual: torch.Tensor, audio: torch.Tensor, pad_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """`forward`, and the dynamic-weight gates it applied.

        Args:
            visual: (B, T, Dv) visual features (ignored by `audio_only`).
            audio: (B, T, Da) audio features (ignored by `visual_only`).
            pad_mask: (B, T) bool, True at padded frames.

        Returns:
            ((B, T, 2) predictions in [-1, 1], gates): gates is {"visual": (B, T, 2), "audio": (B, T, 2)} (rows sum
            to 1; column 0 weighs the original features, column 1 the cross-attended ones; in the autograd graph,
            like the predictions) for the `bdca` fusion, None for the others.
        """
        c = self.config
        main = visual if c.uses_visual else audio
        B, T, _ = main.shape
        if c.uses_visual:
            self._check("visual", visual, c.visual_dim, (B, T))
        if c.uses_audio:
            self._check("audio", audio, c.audio_dim, (B, T))
        if pad_mask is not None and tuple(pad_mask.shape) != (B, T):
            raise ModelError(f"pad_mask must have shape ({B}, {T}), got {tuple(pad_mask.shape)}")

        x_v = self.visual_tcn(visual, pad_mask) if self.visual_tcn is not None else None  # (B, T, C)
        x_a = self.audio_tcn(audio, pad_mask) if self.audio_tcn is not None else None  # (B, T, C)
        return self._fuse_and_predict(x_v, x_a, pad_mask)

    def _fuse_and_predict(
        self, x_v: torch.Tensor | None, x_a: torch.Tensor | None, pad_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """Everything after the TCNs: (B, T, C) TCN outputs (None for an unused modality) -> ((B, T, 2), gates)."""
        gates = None
        if self.bdca is not None:
            fused, gates = self.bdca(x_v, x_a, pad_mask)  # (B, T, 2C)
        elif x_v is not None and x_a is not None:
            fused = torch.cat([x_v, x_a], dim=-1)  # (B, T, 2C)
        else:
            fused = x_v if x_v is not None else x_a  # (B, T, C)

        h = self.proj(fused)  # (B, T, d_model)
        if self.encoder is not None:
            kpm = None
            if pad_mask is not None:
                # A fully padded sample would give all -inf attention rows (NaN): let it attend to itself.
                kpm = pad_mask & ~pad_mask.all(dim=1, keepdim=True)  # (B, T)
            h = encoder_forward(self.encoder, h, kpm)  # (B, T, d_model)
        return torch.tanh(self.head(h)), gates  # (B, T, 2)

    def forward_windows(self, visual: torch.Tensor, audio: torch.Tensor, starts: Sequence[int], length: int,
                        batch: int = 16) -> torch.Tensor:  # fmt: skip
        """`forward` of many overlapping windows of one long sequence, the TCNs' shared work done once (eval mode).

        Window w's predictions equal `self(visual[None, s : s + length], audio[None, s : s + length])[0]`
        (s = starts[w], nothing padded; the same sums in the same order): the TCNs run once over the whole
        sequence and recompute only the frames at each window's ends that its zero padding reaches
        (`models.tcn.TCN.forward_windows`); the fusion, the Transformer and the head run per window, `batch`
        windows at a time (on a CPU at most `models.tcn.PASS_FRAMES` frames' worth, so the products stay in cache:
        measured on the 2-core CPU, 300-frame windows took 7.7 ms each 6 at a time, 8.6 ms 16 at a time). With
        windows shorter than twice the TCNs' `edge` nothing is shared and the TCNs run per window.

        Args:
            visual: (N, Dv) visual features of the whole sequence (ignored by `audio_only`).
            audio: (N, Da) audio features (ignored by `visual_only`).
            starts: window starts, each with 0 <= s and s + length <= N.
            length: window length.
            batch: at most this many windows per Transformer call (the predictions do not depend on it).

        Returns:
            (W, length, 2) predictions in [-1, 1], one row per start.

        Raises:
            ModelError: in training mode, on inputs of the wrong shape, or on a window outside the sequence.
        """
        c = self.config
        main = visual if c.uses_visual else audio
        if main.ndim != 2:
            raise ModelError(f"{c.fusion}: forward_windows takes (N, D) sequences, got {tuple(main.shape)}")
        N = main.shape[0]
        if c.uses_visual:
            self._check("visual", visual[None], c.visual_dim, (1, N))
        if c.uses_audio:
            self._check("audio", audio[None], c.audio_dim, (1, N))
        if self.training:
            raise ModelError(f"{c.fusion}: forward_windows runs in eval mode only (dropout draws depend on the batch)")
        outside = [s for s in starts if s < 0 or s + length > N]
        if length < 1 or batch < 1 or outside:
            raise ModelError(f"{c.fusion}: windows of {length} frames at {outside[:1] or list(starts)[:1]} do not fit "
                             f"in {N} frames (or batch {batch} < 1)")  # fmt: skip
        tcns = [(t, x) for t, x in ((self.visual_tcn, visual), (self.audio_tcn, audio)) if t is not None]
        shared = all(length >= 2 * t.edge for t, _ in tcns)
        outs = [t.forward_windows(x, starts, length) for t, x in tcns] if shared else None
        st = torch.as_tensor(list(starts), dtype=torch.long, device=main.device)  # (W,)
        frames = torch.arange(length, device=main.device)  # (L,)
        preds = []
        per_call = max(1, min(batch, PASS_FRAMES // length)) if main.device.type == "cpu" else batch
        for i in range(0, len(starts), per_call):
            j = min(i + per_call, len(starts))
            if outs is not None:
                feats = [o.windows(i, j) for o in outs]  # (B, L, C) each, visual first
            else:
                rows = st[i:j, None] + frames  # (B, L)
                feats = [t(x[rows]) for t, x in tcns]  # (B, L, C) each, visual first
            x_v = feats[0] if self.visual_tcn is not None else None  # (B, L, C)
            x_a = feats[-1] if self.audio_tcn is not None else None  # (B, L, C)
            # The all-False mask `forward` gets from whole-video prediction: the same code paths.
            pad = torch.zeros(j - i, length, dtype=torch.bool, device=main.device)  # (B, L)
            preds.append(self._fuse_and_predict(x_v, x_a, pad)[0])  # (B, L, 2)
        if not preds:
            return main.new_zeros(0, length, 2)
        return torch.cat(preds)  # (W, L, 2)
