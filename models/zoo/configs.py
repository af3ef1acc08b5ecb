"""Frozen configurations of the rival stage-2 fusion models (Table II measured): one class per model.

Every rival takes BDCA's inputs (per-frame visual and audio features of one window, a padding mask) and gives its
output ((B, T, 2) valence/arousal in [-1, 1]). The defaults that the papers leave open are ours and say so; the
widths default to BDCA's (`models.configs.TemporalConfig`: TCNs of 128 channels), so that the models differ in
their fusion, not in their size. A run's values come from the config's `zoo.<name>` section.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.widths import PAPER_AUDIO_DIM
from models.errors import require_config as _require


@dataclass(frozen=True)
class ZooConfig:
    """What every rival shares: the input widths, the per-modality TCNs (where the model has them), the head.

    Args:
        visual_dim: per-frame visual feature width (derived by the caller).
        audio_dim: per-frame audio feature width (derived by the caller).
        tcn_channels: output width of each modality's TCN (BDCA's 128: our choice, so fusions are compared at
            one width).
        tcn_kernel: TCN kernel size (odd).
        tcn_dilations: one residual TCN block per dilation.
        tcn_dropout: dropout inside the TCN blocks.
        dropout: dropout of the fusion and the head.
        head_hidden: hidden width of the two fully connected output layers.
    """

    visual_dim: int = 1024
    audio_dim: int = PAPER_AUDIO_DIM
    tcn_channels: int = 128
    tcn_kernel: int = 3
    tcn_dilations: tuple[int, ...] = field(default=(1, 2, 4, 8))
    tcn_dropout: float = 0.1
    dropout: float = 0.1
    head_hidden: int = 64

    def __post_init__(self) -> None:
        # Accept lists from YAML/CLI overrides while keeping the config hashable.
        object.__setattr__(self, "tcn_dilations", tuple(int(d) for d in self.tcn_dilations))
        _require(self.visual_dim > 0 and self.audio_dim > 0, self, "visual_dim and audio_dim must be positive")
        _require(self.tcn_channels > 0 and self.head_hidden > 0, self, "tcn_channels and head_hidden must be positive")
        _require(self.tcn_kernel % 2 == 1, self, f"tcn_kernel {self.tcn_kernel} must be odd (centred convolution)")
        _require(len(self.tcn_dilations) > 0 and all(d > 0 for d in self.tcn_dilations), self,
                 "tcn_dilations must be positive")  # fmt: skip
        for name in ("tcn_dropout", "dropout"):
            _require(0.0 <= getattr(self, name) < 1.0, self, f"{name} must lie in [0, 1)")


@dataclass(frozen=True)
class LFANConfig(ZooConfig):
    """Leader-follower attentive fusion (`models.zoo.lfan.LFAN`).

    Args:
        attn_dim: width of the per-time-step query/key projections across modalities.
    """

    attn_dim: int = 32  # our choice

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.attn_dim > 0, self, "attn_dim must be positive")


@dataclass(frozen=True)
class JCAConfig(ZooConfig):
    """Joint cross-attention (`models.zoo.jca.JCA`).

    Args:
        attn_dim: k, width of the attention maps H_a, H_v.
    """

    attn_dim: int = 64  # our choice

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.attn_dim > 0, self, "attn_dim must be positive")


@dataclass(frozen=True)
class RJCAConfig(JCAConfig):
    """Recursive joint cross-attention with BLSTMs (`models.zoo.jca.RJCA`).

    Args:
        recursions: how many times the joint cross-attention block is applied to its own output.
    """

    recursions: int = 2  # our choice (the papers vary it; 2 keeps the demo small)

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.recursions >= 1, self, "recursions must be >= 1")
        _require(self.tcn_channels % 2 == 0, self, "tcn_channels must be even (two BLSTM directions)")


@dataclass(frozen=True)
class DCAConfig(JCAConfig):
    """Dynamic cross-attention (`models.zoo.jca.DCA`).

    Args:
        temperature: softmax temperature of the gate between attended and unattended features.
    """

    temperature: float = 1.0  # our choice

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.temperature > 0, self, "temperature must be positive")


@dataclass(frozen=True)
class MulTConfig(ZooConfig):
    """The crossmodal transformer (`models.zoo.mult.MulT`); it has no TCNs (the `tcn_*` fields are unused).

    Args:
        d_model: width of both modality streams after the temporal 1-D convolution.
        conv_kernel: kernel of that convolution (odd, centred).
        num_heads: attention heads.
        cross_layers: crossmodal layers per direction.
        self_layers: self-attention layers on each direction's output.
        dim_feedforward: MLP width of every layer.
    """

    d_model: int = 64  # our choice
    conv_kernel: int = 1  # our choice (MulT uses 1-D convolutions; the kernel is open)
    num_heads: int = 4  # our choice
    cross_layers: int = 2  # our choice
    self_layers: int = 1  # our choice
    dim_feedforward: int = 256  # our choice

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.conv_kernel % 2 == 1, self, "conv_kernel must be odd (centred convolution)")
        _require(self.num_heads > 0 and self.d_model % self.num_heads == 0, self,
                 f"d_model {self.d_model} is not divisible by num_heads {self.num_heads}")  # fmt: skip
        _require(self.d_model % 2 == 0, self, "d_model must be even (sin-cos positions)")
        _require(self.cross_layers >= 1 and self.self_layers >= 0, self, "cross_layers >= 1, self_layers >= 0")
        _require(self.dim_feedforward > 0, self, "dim_feedforward must be positive")


@dataclass(frozen=True)
class MambaVAConfig(ZooConfig):
    """TCNs + Mamba blocks (`models.zoo.mamba.MambaVA`).

    Args:
        layers: residual Mamba blocks.
        d_state: state size N of each selective state-space layer.
        d_conv: kernel of the layer's causal depthwise convolution.
        expand: inner width as a multiple of the model width.
        backend: `auto` (mamba-ssm where it is installed and CUDA is available, else mambapy), `mambapy` or
            `mamba_ssm`.
    """

    layers: int = 2  # our choice
    d_state: int = 16  # Mamba's default
    d_conv: int = 4  # Mamba's default
    expand: int = 2  # Mamba's default
    backend: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.layers >= 1 and self.d_state >= 1 and self.d_conv >= 1 and self.expand >= 1, self,
                 "layers, d_state, d_conv and expand must be >= 1")  # fmt: skip
        _require(self.backend in ("auto", "mambapy", "mamba_ssm"), self,
                 f"backend {self.backend!r} must be auto, mambapy or mamba_ssm")  # fmt: skip


@dataclass(frozen=True)
class TCNTransformerConfig(ZooConfig):
    """TCNs, concatenation, a Transformer encoder (`models.zoo.tcn_transformer.TCNTransformer`).

    Args:
        num_layers: Transformer encoder layers.
        num_heads: attention heads (must divide 2 x tcn_channels).
        dim_feedforward: Transformer MLP width.
    """

    num_layers: int = 2  # our choice (as BDCA's)
    num_heads: int = 4  # our choice (as BDCA's)
    dim_feedforward: int = 1024  # our choice (as BDCA's)

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.num_layers >= 1 and self.dim_feedforward > 0, self, "num_layers and dim_feedforward >= 1")
        _require(self.num_heads > 0 and (2 * self.tcn_channels) % self.num_heads == 0, self,
                 f"2 x tcn_channels ({2 * self.tcn_channels}) is not divisible by num_heads")  # fmt: skip
