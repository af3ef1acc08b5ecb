"""Tensors only: the MAE/ViT visual encoder (stage 1), the TCN + BDCA + Transformer temporal model (stage 2),
the challenge baseline's per-frame ResNet, the field's rival fusion models (`models.zoo`), the CCC loss, the model
registry, checkpoint loading and FLOP/parameter counts.

Public names are re-exported lazily (PEP 562): importing a config or the registry does not import timm or
build any network until it is needed, which keeps the CLI and configs fast to load.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "AVTemporalModel": "models.temporal",
    "BDCA": "models.bdca",
    "ByteDropout": "models.dropout",
    "CheckpointError": "models.errors",
    "CheckpointShapeError": "models.errors",
    "CrossModalAttention": "models.bdca",
    "DynamicWeight": "models.bdca",
    "FUSIONS": "models.configs",
    "LoadReport": "models.checkpoints",
    "MAEConfig": "models.configs",
    "MAEViT": "models.mae",
    "Masking": "models.mae",
    "ModelConfigError": "models.errors",
    "ModelError": "models.errors",
    "ModelSummary": "models.flops",
    "modality_dropout": "models.augment",
    "ParamCount": "models.flops",
    "ResNetConfig": "models.configs",
    "ResNetVA": "models.baseline",
    "TCN": "models.tcn",
    "TemporalBlock": "models.tcn",
    "TemporalConfig": "models.configs",
    "ZOO": "models.zoo",
    "ZooConfig": "models.zoo.configs",
    "VAViT": "models.vit",
    "ViTConfig": "models.configs",
    "ViTEncoder": "models.vit",
    "apply_gates": "models.bdca",
    "attention_weights": "models.bdca",
    "build_model": "models.registry",
    "byte_dropout": "models.dropout",
    "ccc": "models.losses",
    "ccc_loss": "models.losses",
    "count_flops": "models.flops",
    "count_params": "models.flops",
    "count_train_flops": "models.flops",
    "create_model": "models.registry",
    "cross_attention": "models.bdca",
    "encoder_forward": "models.encoder",
    "gate_weights": "models.bdca",
    "get_config": "models.registry",
    "list_models": "models.registry",
    "load_checkpoint": "models.checkpoints",
    "load_imagenet_weights": "models.baseline",
    "load_state": "models.checkpoints",
    "mae_flops": "models.flops",
    "mae_loss": "models.mae",
    "model_kind": "models.registry",
    "patchify": "models.mae",
    "random_masking": "models.mae",
    "resnet_flops": "models.baseline",
    "read_state_dict": "models.checkpoints",
    "register": "models.registry",
    "relu_dropout": "models.dropout",
    "shuffle_tokens": "models.mae",
    "stage2_models": "models.registry",
    "sincos_1d": "models.pos_embed",
    "sincos_2d_mae": "models.pos_embed",
    "summarize_model": "models.flops",
    "summarize_models": "models.flops",
    "tap_sum": "models.tcn",
    "tap_weights": "models.tcn",
    "temporal_flops": "models.flops",
    "temporal_train_flops": "models.flops",
    "transfer_mae_encoder": "models.checkpoints",
    "unpatchify": "models.mae",
    "va_ccc": "models.losses",
    "vit_flops": "models.flops",
    "vit_train_flops": "models.flops",
    "with_overrides": "models.configs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
