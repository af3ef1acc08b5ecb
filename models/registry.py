"""Named model configurations and the one way to build a model from a name or a config.

Names: the valence/arousal ViTs (`vit_*_patch16`), their MAE pre-training twins (`mae_vit_*_patch16`) and the
stage-2 temporal models, one per row of Table IV (`audio_only`, `visual_only`, `concat`, `bdca_no_dw`, `bdca`), and
the challenge baseline's per-frame network (`resnet50_va`, Tables I and IV's "Baseline" row), and the field's rival
fusion models (`models.zoo.ZOO`: `lfan`, `jca`, `rjca`, `dca`, `mult`, `mamba_va`, `tcn_transformer`; Table II
measured), stage-2 models called like BDCA's (kind 'zoo'; `stage2_models` lists both kinds).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from models.configs import FUSIONS, MAEConfig, ModelConfig, ResNetConfig, TemporalConfig, ViTConfig, with_overrides
from models.errors import ModelConfigError
from models.mae import MAEViT
from models.temporal import AVTemporalModel
from models.vit import VAViT
from models.zoo import ZOO, ZooConfig, build_zoo_model

# name: (embed_dim, depth, num_heads, decoder_embed_dim, decoder_depth, decoder_num_heads)
_VIT_SIZES: dict[str, tuple[int, int, int, int, int, int]] = {
    "tiny": (192, 12, 3, 128, 2, 4),
    "small": (384, 12, 6, 256, 4, 8),
    "base": (768, 12, 12, 512, 8, 16),
    # The paper's encoder; the decoder is the MAE release's (512-d, 8 blocks), so its checkpoints load whole.
    "large": (1024, 24, 16, 512, 8, 16),
}

_REGISTRY: dict[str, ModelConfig] = {}


def register(name: str, config: ModelConfig) -> None:
    """Register (or replace) a named configuration.

    Args:
        name: the model name.
        config: its default configuration.
    """
    _REGISTRY[name] = config


for _size, (_d, _depth, _heads, _dd, _ddepth, _dheads) in _VIT_SIZES.items():
    register(f"vit_{_size}_patch16", ViTConfig(embed_dim=_d, depth=_depth, num_heads=_heads))
    register(
        f"mae_vit_{_size}_patch16",
        MAEConfig(
            embed_dim=_d,
            depth=_depth,
            num_heads=_heads,
            decoder_embed_dim=_dd,
            decoder_depth=_ddepth,
            decoder_num_heads=_dheads,
        ),
    )
for _fusion in FUSIONS:
    register(_fusion, TemporalConfig(fusion=_fusion))
register("resnet50_va", ResNetConfig())
for _name, _entry in ZOO.items():
    register(_name, _entry.config())


def model_kind(config: ModelConfig) -> str:
    """'mae', 'vit', 'temporal' (BDCA's model and its ablations), 'zoo' (the rival fusion models) or 'resnet'."""
    if isinstance(config, MAEConfig):
        return "mae"
    if isinstance(config, ViTConfig):
        return "vit"
    if isinstance(config, ResNetConfig):
        return "resnet"
    if isinstance(config, ZooConfig):
        return "zoo"
    return "temporal"


def list_models(kind: str | None = None) -> list[str]:
    """Registered names in registration order, optionally only one kind ('vit', 'mae', 'temporal', 'zoo' or
    'resnet')."""
    return [n for n, c in _REGISTRY.items() if kind is None or model_kind(c) == kind]


def stage2_models() -> list[str]:
    """The models stage 2 can train: BDCA's temporal model with its ablations, then the zoo's rivals."""
    return list_models("temporal") + list_models("zoo")


def get_config(name: str, **overrides: Any) -> ModelConfig:
    """The registered configuration of `name` with `overrides` applied.

    Raises:
        ModelConfigError: on an unknown name or an unknown field.
    """
    if name not in _REGISTRY:
        raise ModelConfigError(f"unknown model {name!r}; registered: {', '.join(_REGISTRY)}")
    return with_overrides(_REGISTRY[name], **overrides)


def build_model(config: ModelConfig) -> nn.Module:
    """The model a configuration describes (randomly initialised)."""
    if isinstance(config, MAEConfig):
        return MAEViT(config)
    if isinstance(config, ViTConfig):
        return VAViT(config)
    if isinstance(config, TemporalConfig):
        return AVTemporalModel(config)
    if isinstance(config, ZooConfig):
        return build_zoo_model(config)
    if isinstance(config, ResNetConfig):
        from models.baseline import ResNetVA

        return ResNetVA(config)
    raise ModelConfigError(f"not a model configuration: {type(config).__name__}")


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered model, with some config fields replaced.

    Args:
        name: a name from `list_models()`.
        **overrides: config fields to replace, e.g. `depth=4, img_size=64` or `audio_dim=62`.

    Raises:
        ModelConfigError: on an unknown name, an unknown field, or an invalid value.
    """
    return build_model(get_config(name, **overrides))
