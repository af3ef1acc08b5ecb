"""Frozen configurations of every model family: the visual ViT, its MAE pre-training twin, the temporal model, the
per-frame ResNet of the challenge baseline.

A config holds every number a model is built from; `dataclasses.replace` (through `with_overrides`) derives a
variant, so the registry, the CLI and the FLOP counter all read dimensions from one place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from core.widths import PAPER_AUDIO_DIM
from models.errors import ModelConfigError
from models.errors import require_config as _require
from models.zoo.configs import ZooConfig

Fusion = Literal["audio_only", "visual_only", "concat", "bdca_no_dw", "bdca"]
FUSIONS: tuple[str, ...] = get_args(Fusion)
"""The fusion options of the temporal model, one per row of the paper's Table IV."""


@dataclass(frozen=True)
class ViTConfig:
    """A ViT encoder with fixed 2-D sin-cos position embeddings and a CLS token (MAE's encoder layout).

    Args:
        img_size: square input side in pixels; must be a multiple of `patch_size`.
        patch_size: square patch side in pixels.
        in_chans: input channels.
        embed_dim: token width D.
        depth: number of Transformer blocks.
        num_heads: attention heads per block; must divide `embed_dim`.
        mlp_ratio: MLP hidden width as a multiple of D.
        frozen_blocks: blocks frozen from the bottom for hierarchical fine-tuning; None takes the paper's ratio
            (16 of 24 blocks), i.e. `depth * 2 // 3`.
        freeze_embedding: freeze the patch embedding and the CLS token (the paper freezes the patch embedding).
        drop_path_rate: stochastic depth of the last block (linearly increasing from 0 over the blocks).
        head_dropout: dropout before the valence/arousal regression head.
    """

    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    frozen_blocks: int | None = None
    freeze_embedding: bool = True
    drop_path_rate: float = 0.0
    head_dropout: float = 0.0

    def __post_init__(self) -> None:
        _require(self.patch_size > 0 and self.img_size > 0, self, "img_size and patch_size must be positive")
        _require(
            self.img_size % self.patch_size == 0,
            self,
            f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}",
        )
        _require(self.depth > 0 and self.embed_dim > 0, self, "depth and embed_dim must be positive")
        _require(self.num_heads > 0, self, "num_heads must be positive")  # before it divides
        _require(
            self.embed_dim % self.num_heads == 0,
            self,
            f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}",
        )
        # The 2-D sin-cos embedding splits D into 4 equal sin/cos quarters.
        _require(self.embed_dim % 4 == 0, self, f"embed_dim {self.embed_dim} must be divisible by 4 (sin-cos)")
        if self.frozen_blocks is not None:
            _require(
                0 <= self.frozen_blocks <= self.depth,
                self,
                f"frozen_blocks {self.frozen_blocks} must lie in [0, depth={self.depth}]",
            )

    @property
    def grid_size(self) -> int:
        """Patches per image side."""
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2

    @property
    def resolved_frozen_blocks(self) -> int:
        """`frozen_blocks`, with None resolved to the paper's 2/3 of the depth."""
        return self.depth * 2 // 3 if self.frozen_blocks is None else self.frozen_blocks


@dataclass(frozen=True)
class MAEConfig(ViTConfig):
    """A masked autoencoder: a `ViTConfig` encoder plus a light decoder (He et al., 2022).

    Args:
        decoder_embed_dim: decoder token width.
        decoder_depth: decoder blocks.
        decoder_num_heads: decoder attention heads.
        mask_ratio: fraction of patches hidden from the encoder.
        norm_pix_loss: regress per-patch normalised pixels (MAE's best setting).
    """

    decoder_embed_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    mask_ratio: float = 0.75
    norm_pix_loss: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(0.0 <= self.mask_ratio < 1.0, self, f"mask_ratio {self.mask_ratio} must lie in [0, 1)")
        _require(self.decoder_embed_dim > 0 and self.decoder_num_heads > 0, self,
                 "decoder_embed_dim and decoder_num_heads must be positive")  # fmt: skip
        _require(
            self.decoder_embed_dim % self.decoder_num_heads == 0,
            self,
            f"decoder_embed_dim {self.decoder_embed_dim} is not divisible by decoder_num_heads "
            f"{self.decoder_num_heads}",
        )
        _require(self.decoder_embed_dim % 4 == 0, self, "decoder_embed_dim must be divisible by 4 (sin-cos)")

    def encoder_config(self) -> ViTConfig:
        """The encoder part as a plain `ViTConfig` (for the valence/arousal ViT that inherits its weights)."""
        names = {f.name for f in dataclasses.fields(ViTConfig)}
        return ViTConfig(**{k: v for k, v in dataclasses.asdict(self).items() if k in names})


@dataclass(frozen=True)
class TemporalConfig:
    """The stage-2 audio-visual model: per-modality TCNs, a fusion, a Transformer encoder, a V/A head.

    Args:
        fusion: one of FUSIONS (Table IV's rows): `audio_only`, `visual_only`, `concat` (TCN outputs concatenated),
            `bdca_no_dw` (cross-attention without the dynamic weight), `bdca` (full BDCA).
        visual_dim: per-frame visual feature width (the ViT's CLS width, 1024 for ViT-L).
        audio_dim: per-frame audio feature width (derived by the caller from the feature spec; the paper's is
            VGGish 128 + MFCC 39 + eGeMAPS 23 = 190).
        tcn_channels: output width of each TCN (128 in the paper).
        tcn_kernel: TCN kernel size (odd: the convolutions are non-causal and centred).
        tcn_dilations: one residual block per dilation (four blocks: the paper's four-layer TCN).
        tcn_dropout: dropout inside the TCN blocks.
        temperature: softmax temperature T of the dynamic weight (eq. 4; 0.5 in the paper).
        use_sdpa: compute cross-attention with torch's fused scaled_dot_product_attention (same result, faster).
        d_model: Transformer width; None means the fused width (2 x tcn_channels, or tcn_channels for one
            modality). A different value adds a linear projection.
        num_layers: Transformer encoder layers.
        num_heads: Transformer attention heads.
        dim_feedforward: Transformer MLP width.
        dropout: Transformer dropout (after attention, inside the MLP, after the MLP) and head dropout.
        attn_dropout: dropout on the Transformer's attention weights; 0 by default because any other value makes
            torch leave its fused CPU attention kernel for a path that materialises the (B, H, T, T) weights.
        head_hidden: hidden width of the two fully connected output layers.
    """

    fusion: Fusion = "bdca"
    visual_dim: int = 1024
    audio_dim: int = PAPER_AUDIO_DIM
    tcn_channels: int = 128
    tcn_kernel: int = 3
    tcn_dilations: tuple[int, ...] = field(default=(1, 2, 4, 8))
    tcn_dropout: float = 0.1
    temperature: float = 0.5
    use_sdpa: bool = True
    d_model: int | None = None
    num_layers: int = 2
    num_heads: int = 4
    dim_feedforward: int = 1024
    dropout: float = 0.1
    attn_dropout: float = 0.0
    head_hidden: int = 64

    def __post_init__(self) -> None:
        # Accept lists from YAML/CLI overrides while keeping the config hashable.
        object.__setattr__(self, "tcn_dilations", tuple(int(d) for d in self.tcn_dilations))
        _require(self.fusion in FUSIONS, self, f"unknown fusion {self.fusion!r}; choose one of {', '.join(FUSIONS)}")
        _require(self.visual_dim > 0 and self.audio_dim > 0, self, "visual_dim and audio_dim must be positive")
        _require(self.tcn_channels > 0, self, "tcn_channels must be positive")
        _require(self.tcn_kernel % 2 == 1, self, f"tcn_kernel {self.tcn_kernel} must be odd (centred convolution)")
        _require(
            len(self.tcn_dilations) > 0 and all(d > 0 for d in self.tcn_dilations),
            self,
            "tcn_dilations must be positive",
        )
        _require(self.temperature > 0, self, f"temperature {self.temperature} must be positive")
        _require(self.num_layers >= 0, self, "num_layers must be >= 0")
        _require(self.num_heads > 0, self, "num_heads must be positive")  # before it divides
        for name in ("tcn_dropout", "dropout", "attn_dropout"):
            _require(0.0 <= getattr(self, name) < 1.0, self, f"{name} must lie in [0, 1)")
        _require(
            self.model_dim % self.num_heads == 0,
            self,
            f"Transformer width {self.model_dim} is not divisible by num_heads {self.num_heads}",
        )

    @property
    def uses_visual(self) -> bool:
        return self.fusion != "audio_only"

    @property
    def uses_audio(self) -> bool:
        return self.fusion != "visual_only"

    @property
    def fused_dim(self) -> int:
        """Width of the fused sequence that enters the Transformer."""
        return self.tcn_channels * (int(self.uses_visual) + int(self.uses_audio))

    @property
    def model_dim(self) -> int:
        """The Transformer width: `d_model`, or the fused width when it is None."""
        return self.fused_dim if self.d_model is None else self.d_model


@dataclass(frozen=True)
class ResNetConfig:
    """The challenge baseline: a per-frame ResNet with bottleneck blocks and a linear valence/arousal head.

    With the defaults it is torchvision's ResNet-50 (same state-dict names, so the ImageNet weights load), its
    1000-way classifier replaced by a 2-way linear head squashed by tanh.

    Args:
        img_size: square input side in pixels (the network itself pools globally and takes any side >= 32; the
            data transform resizes face crops to this).
        in_chans: input channels.
        width: channels of the stem; stage i has `width * 2**i` bottleneck channels and 4x as many outputs
            (64 for ResNet-50, which ImageNet weights need).
        layers: bottleneck blocks per stage ((3, 4, 6, 3) for ResNet-50).
        head_dropout: dropout before the valence/arousal head.
    """

    img_size: int = 224
    in_chans: int = 3
    width: int = 64
    layers: tuple[int, ...] = field(default=(3, 4, 6, 3))
    head_dropout: float = 0.0

    def __post_init__(self) -> None:
        # Accept lists from YAML/CLI overrides while keeping the config hashable.
        object.__setattr__(self, "layers", tuple(int(n) for n in self.layers))
        # The stem divides the side by 4 and each later stage by 2: below 32 px the last stage has no pixel left.
        _require(self.img_size >= 32, self, f"img_size {self.img_size} must be >= 32")
        _require(self.in_chans > 0 and self.width > 0, self, "in_chans and width must be positive")
        _require(len(self.layers) > 0 and all(n > 0 for n in self.layers), self, "layers must be positive")
        _require(0.0 <= self.head_dropout < 1.0, self, "head_dropout must lie in [0, 1)")

    @property
    def feature_dim(self) -> int:
        """Width of the pooled feature that enters the head (2048 for ResNet-50)."""
        return self.width * 2 ** (len(self.layers) - 1) * 4


ModelConfig = ViTConfig | MAEConfig | TemporalConfig | ResNetConfig | ZooConfig


def with_overrides(config: Any, **overrides: Any) -> Any:
    """A copy of a config with some fields replaced.

    Args:
        config: a frozen config dataclass.
        **overrides: field names and new values.

    Raises:
        ModelConfigError: on a name that is not a field of the config (the message lists the valid ones).
    """
    names = [f.name for f in dataclasses.fields(config)]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ModelConfigError(
            f"{type(config).__name__} has no field(s) {', '.join(unknown)}; valid fields: {', '.join(names)}"
        )
    return dataclasses.replace(config, **overrides)
