"""Stage 2: the audio-visual temporal model (paper Fig. 1) and its Table IV ablations as one class.

visual (B, T, Dv) -> TCN -> X_v (B, T, 128) --+
                                              +-- fusion --> (B, T, F) -> Transformer encoder -> FC -> tanh -> (B, T, 2)
audio  (B, T, Da) -> TCN -> X_a (B, T, 128) --+

`fusion` picks the row of Table IV: `visual_only` / `audio_only` (one TCN, F = 128), `concat` ([X_v ; X_a]),
`bdca_no_dw` ([X_att,v ; X_att,a]), `bdca` ([X_att,gv ; X_att,ga]). No position encoding is added before the
Transformer: the TCNs' convolutions already make each frame's features depend on its temporal neighbourhood.
"""

from __future__ import annotations

import torch
from torch import nn

from models.bdca import BDCA
from models.configs import TemporalConfig
from models.dropout import ByteDropout
from models.encoder import encoder_forward
from models.errors import ModelError
from models.tcn import TCN


class AVTemporalModel(nn.Module):
    """TCNs + fusion (Table IV's options) + Transformer encoder + fully connected V/A head.

    After each forward of a gated model, `last_gates` holds the dynamic-weight gates, detached:
    {"visual": (B, T, 2), "audio": (B, T, 2)} (column 0: original features, column 1: cross-attended ones);
    it is None for the other fusions.
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
        self.encoder: nn.TransformerEncoder | None = None
        if c.num_layers > 0:
            layer = nn.TransformerEncoderLayer(
                c.model_dim, c.num_heads, c.dim_feedforward, c.dropout, batch_first=True, norm_first=True
            )
            # Cheaper masks than torch's per-element Bernoulli draws (see models.dropout); attention-weight
            # dropout has its own rate (0 keeps torch's fused attention kernel).
            layer.dropout, layer.dropout1, layer.dropout2 = (ByteDropout(c.dropout) for _ in range(3))
            layer.self_attn.dropout = c.attn_dropout
            # Pre-norm layers need a final norm; nested tensors are off so padded outputs keep their shape.
            self.encoder = nn.TransformerEncoder(
                layer, c.num_layers, norm=nn.LayerNorm(c.model_dim), enable_nested_tensor=False
            )
        self.head = nn.Sequential(
            nn.Linear(c.model_dim, c.head_hidden), nn.ReLU(), ByteDropout(c.dropout), nn.Linear(c.head_hidden, 2)
        )
        self.last_gates: dict[str, torch.Tensor] | None = None

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
        self.last_gates = None
        if self.bdca is not None:
            fused, gates = self.bdca(x_v, x_a, pad_mask)  # (B, T, 2C)
            if gates is not None:
                self.last_gates = {k: g.detach() for k, g in gates.items()}
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
        return torch.tanh(self.head(h))  # (B, T, 2)
