"""Tensors only: the MAE/ViT visual encoder (stage 1), the TCN + BDCA + Transformer temporal model (stage 2),
the CCC loss, the model registry, checkpoint loading and FLOP/parameter counts."""

from models.bdca import (
    BDCA,
    CrossModalAttention,
    DynamicWeight,
    apply_gates,
    attention_weights,
    cross_attention,
    gate_weights,
)
from models.checkpoints import LoadReport, load_checkpoint, load_state, read_state_dict, transfer_mae_encoder
from models.configs import FUSIONS, MAEConfig, TemporalConfig, ViTConfig, with_overrides
from models.dropout import ByteDropout, byte_dropout, relu_dropout
from models.encoder import encoder_forward
from models.errors import CheckpointError, CheckpointShapeError, ModelConfigError, ModelError
from models.flops import (
    ModelSummary,
    ParamCount,
    count_flops,
    count_params,
    count_train_flops,
    mae_flops,
    summarize_model,
    summarize_models,
    temporal_flops,
    temporal_train_flops,
    vit_flops,
    vit_train_flops,
)
from models.losses import ccc, ccc_loss, va_ccc
from models.mae import MAEViT, Masking, mae_loss, patchify, random_masking, shuffle_tokens, unpatchify
from models.pos_embed import sincos_1d, sincos_2d_mae
from models.registry import build_model, create_model, get_config, list_models, model_kind, register
from models.tcn import TCN, TemporalBlock, tap_sum, tap_weights
from models.temporal import AVTemporalModel
from models.vit import VAViT, ViTEncoder

__all__ = [
    "BDCA",
    "FUSIONS",
    "TCN",
    "AVTemporalModel",
    "ByteDropout",
    "CheckpointError",
    "CheckpointShapeError",
    "CrossModalAttention",
    "DynamicWeight",
    "LoadReport",
    "MAEConfig",
    "MAEViT",
    "Masking",
    "ModelConfigError",
    "ModelError",
    "ModelSummary",
    "ParamCount",
    "TemporalBlock",
    "TemporalConfig",
    "VAViT",
    "ViTConfig",
    "ViTEncoder",
    "apply_gates",
    "attention_weights",
    "build_model",
    "byte_dropout",
    "ccc",
    "ccc_loss",
    "count_flops",
    "count_params",
    "count_train_flops",
    "create_model",
    "cross_attention",
    "encoder_forward",
    "gate_weights",
    "get_config",
    "list_models",
    "load_checkpoint",
    "load_state",
    "mae_flops",
    "mae_loss",
    "model_kind",
    "patchify",
    "random_masking",
    "read_state_dict",
    "register",
    "relu_dropout",
    "shuffle_tokens",
    "sincos_1d",
    "sincos_2d_mae",
    "summarize_model",
    "summarize_models",
    "tap_sum",
    "tap_weights",
    "temporal_flops",
    "temporal_train_flops",
    "transfer_mae_encoder",
    "unpatchify",
    "va_ccc",
    "vit_flops",
    "vit_train_flops",
    "with_overrides",
]
