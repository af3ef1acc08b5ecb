"""Analytic forward FLOPs and parameter counts of every registered model.

FLOPs count matrix multiplications and convolutions only, as 2 x multiply-accumulates, for one forward pass;
normalisations, activations, softmax and additions are left out (they are a few percent at these sizes). A
training step costs about 3x the forward (the backward computes gradients for both activations and weights);
with frozen ViT blocks run without autograd, the backward covers only the trainable part.
Parameter counts are taken from a model built on torch's `meta` device, so even ViT-L costs no memory.

The rival fusion models (`models.zoo`) are counted on a real forward (and, for a training step, backward) pass of one
window under torch's `FlopCounterMode`, which counts the same products (matmuls, convolutions, attention); their
LSTMs, which it does not see, are added analytically; Mamba's scan is elementwise and left out, as activations are.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from models.configs import MAEConfig, ModelConfig, ResNetConfig, TemporalConfig, ViTConfig, with_overrides
from models.registry import build_model, get_config, list_models, model_kind
from models.zoo import ZooConfig


@dataclass(frozen=True)
class ParamCount:
    """Parameter counts (buffers such as fixed position embeddings excluded).

    Args:
        total: all parameters.
        trainable: parameters with requires_grad.
    """

    total: int
    trainable: int


def count_params(model: nn.Module) -> ParamCount:
    """Total and trainable parameter counts of a model."""
    params = list(model.parameters())
    return ParamCount(sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad))


def _block_flops(tokens: int, dim: int, mlp_ratio: float) -> int:
    """One timm/Transformer encoder block over `tokens` tokens: qkv, scores, weighted sum, projection, MLP."""
    hidden = int(dim * mlp_ratio)
    return 2 * tokens * dim * 3 * dim + 4 * tokens * tokens * dim + 2 * tokens * dim * dim + 4 * tokens * dim * hidden


def vit_flops(config: ViTConfig) -> int:
    """Forward FLOPs of one image through a `VAViT` (encoder and regression head)."""
    c = config
    L = 1 + c.num_patches
    patch = 2 * c.num_patches * c.in_chans * c.patch_size**2 * c.embed_dim
    return patch + c.depth * _block_flops(L, c.embed_dim, c.mlp_ratio) + 2 * c.embed_dim * 2


def mae_flops(config: MAEConfig, mask_ratio: float | None = None) -> int:
    """Forward FLOPs of one image through an `MAEViT` (encoder on the visible patches, decoder on all)."""
    c = config
    ratio = c.mask_ratio if mask_ratio is None else mask_ratio
    N = c.num_patches
    keep = 1 + int(N * (1 - ratio))
    D, Dd = c.embed_dim, c.decoder_embed_dim
    patch = 2 * N * c.in_chans * c.patch_size**2 * D
    enc = c.depth * _block_flops(keep, D, c.mlp_ratio)
    dec = 2 * keep * D * Dd + c.decoder_depth * _block_flops(1 + N, Dd, c.mlp_ratio)
    pred = 2 * (1 + N) * Dd * c.patch_size**2 * c.in_chans
    return patch + enc + dec + pred


def _tcn_flops(T: int, in_dim: int, c: TemporalConfig) -> int:
    total, width, C, k = 0, in_dim, c.tcn_channels, c.tcn_kernel
    for _ in c.tcn_dilations:
        total += 2 * T * k * (width * C + C * C)  # two dilated convolutions
        if width != C:
            total += 2 * T * width * C  # 1x1 residual projection
        width = C
    return total


def temporal_flops(config: TemporalConfig, T: int) -> int:
    """Forward FLOPs of one window of T frames through an `AVTemporalModel`."""
    c = config
    C, d = c.tcn_channels, c.model_dim
    total = 0
    if c.uses_visual:
        total += _tcn_flops(T, c.visual_dim, c)
    if c.uses_audio:
        total += _tcn_flops(T, c.audio_dim, c)
    if c.fusion in ("bdca", "bdca_no_dw"):
        # Per direction: Q, K, V projections (all C x C since both TCNs output C) and the two attention products.
        total += 2 * (3 * 2 * T * C * C + 4 * T * T * C)
        if c.fusion == "bdca":
            total += 2 * (2 * T * C * 2)  # the two gating layers
    if c.model_dim != c.fused_dim:
        total += 2 * T * c.fused_dim * d
    hidden_ratio = c.dim_feedforward / d
    total += c.num_layers * _block_flops(T, d, hidden_ratio)
    total += 2 * T * d * c.head_hidden + 2 * T * c.head_hidden * 2
    return total


def _lstm_flops(model: nn.Module, T: int) -> int:
    """Forward FLOPs of a model's LSTMs over T frames: per layer and direction, four gates of (input + hidden)
    inputs each, 2 x T x 4 x hidden x (input + hidden)."""
    total = 0
    for m in model.modules():
        if isinstance(m, nn.LSTM):
            dirs = 2 if m.bidirectional else 1
            width = m.input_size
            for _ in range(m.num_layers):
                total += 2 * T * dirs * 4 * m.hidden_size * (width + m.hidden_size)
                width = dirs * m.hidden_size
    return total


def zoo_flops(config: ZooConfig, T: int, train: bool = False) -> int:
    """FLOPs of one window of T frames through a rival: a forward pass, or a training step (forward + backward).

    Counted by torch's `FlopCounterMode` on a model built from the config (the global random state is left as it
    was), plus its LSTMs analytically (3x for a training step, as for the other products).

    Args:
        config: the rival's configuration.
        T: frames per window.
        train: count a training step instead of a forward pass.
    """
    with torch.random.fork_rng(devices=[]):
        model = build_model(config).train(train)
    v = torch.zeros(1, T, config.visual_dim)  # (1, T, Dv)
    a = torch.zeros(1, T, config.audio_dim)  # (1, T, Da)
    with FlopCounterMode(display=False) as counter, torch.set_grad_enabled(train):
        out = model(v, a)  # (1, T, 2)
        if train:
            out.sum().backward()
    return counter.get_total_flops() + (3 if train else 1) * _lstm_flops(model, T)


def temporal_train_flops(config: TemporalConfig, T: int) -> int:
    """FLOPs of one training step (forward + backward) on one window of T frames through an `AVTemporalModel`.

    The backward repeats each product twice (gradients of the activations and of the weights), except the input
    gradient of the first TCN block's convolutions: the features are data, not parameters, so autograd skips it.
    """
    c = config
    k, C = c.tcn_kernel, c.tcn_channels
    skipped = 0
    for used, dim in ((c.uses_visual, c.visual_dim), (c.uses_audio, c.audio_dim)):
        if used:
            skipped += 2 * T * k * dim * C + (2 * T * dim * C if dim != C else 0)
    return 3 * temporal_flops(c, T) - skipped


def vit_train_flops(config: ViTConfig) -> int:
    """FLOPs of one training step (forward + backward) on one image through a `VAViT` with its freezing.

    With a frozen embedding the first `resolved_frozen_blocks` blocks run forward only (without autograd); the
    trainable blocks, the final norm and the head cost their forward plus twice their products backward (the first
    trainable block still needs its input gradient: its LayerNorm's weights train). With a trainable embedding
    everything runs backward except the patch projection's input gradient (the image).
    """
    c = config
    L, D = 1 + c.num_patches, c.embed_dim
    fwd = vit_flops(c)
    if not c.freeze_embedding:
        return 3 * fwd - 2 * c.num_patches * c.in_chans * c.patch_size**2 * D
    trainable_blocks = c.depth - c.resolved_frozen_blocks
    trainable = trainable_blocks * _block_flops(L, D, c.mlp_ratio) + 2 * D * 2
    return fwd + 2 * trainable


def count_flops(model: str | ModelConfig | nn.Module, T: int = 300, batch: int = 1, **overrides: object) -> int:
    """Analytic forward FLOPs (2 x MACs of matmuls and convolutions) of a model.

    A training step costs about 3x this (see the module docstring).

    Args:
        model: a registered name, a config, or a model built by `models.create_model` (its `config` is read).
        T: frames per window for temporal models; for visual models the number of images (frames).
        batch: windows (temporal) or batches of T images (visual).
        **overrides: config fields to replace when `model` is a name or a config.
    """
    config = _resolve(model, overrides)
    if isinstance(config, MAEConfig):
        per = T * mae_flops(config)
    elif isinstance(config, ViTConfig):
        per = T * vit_flops(config)
    elif isinstance(config, ResNetConfig):
        from models.baseline import resnet_flops

        per = T * resnet_flops(config)
    elif isinstance(config, ZooConfig):
        per = zoo_flops(config, T)
    else:
        per = temporal_flops(config, T)
    return batch * per


def count_train_flops(model: str | ModelConfig | nn.Module, T: int = 300, batch: int = 1, **overrides: object) -> int:
    """Analytic FLOPs of one training step (forward + backward, optimiser excluded) of a model.

    Args:
        model: a registered name, a config, or a model built by `models.create_model` (its `config` is read).
        T: frames per window for temporal models; for visual models the number of images.
        batch: windows (temporal) or batches of T images (visual).
        **overrides: config fields to replace when `model` is a name or a config.
    """
    config = _resolve(model, overrides)
    if isinstance(config, MAEConfig):
        # Everything trains; the image needs no gradient.
        patch = 2 * config.num_patches * config.in_chans * config.patch_size**2 * config.embed_dim
        per = T * (3 * mae_flops(config) - patch)
    elif isinstance(config, ViTConfig):
        per = T * vit_train_flops(config)
    elif isinstance(config, ResNetConfig):
        from models.baseline import resnet_train_flops

        per = T * resnet_train_flops(config)
    elif isinstance(config, ZooConfig):
        per = zoo_flops(config, T, train=True)
    else:
        per = temporal_train_flops(config, T)
    return batch * per


def _resolve(model: str | ModelConfig | nn.Module, overrides: dict[str, object]) -> ModelConfig:
    if isinstance(model, str):
        return get_config(model, **overrides)
    if isinstance(model, nn.Module):
        return model.config  # type: ignore[return-value]
    return with_overrides(model, **overrides) if overrides else model


@dataclass(frozen=True)
class ModelSummary:
    """One row of `harness models`.

    Args:
        name: registered name.
        kind: 'vit', 'mae', 'temporal', 'zoo' or 'resnet'.
        params: all parameters.
        trainable: trainable parameters (after the config's freezing).
        gflops: forward GFLOPs per window of `frames` frames (temporal) or per image (vit, mae, resnet).
        per: what `gflops` is per ('300-frame window' or 'image').
    """

    name: str
    kind: str
    params: int
    trainable: int
    gflops: float
    per: str


def summarize_model(name: str, T: int = 300, visual_dim: int = 1024, audio_dim: int = 190) -> ModelSummary:
    """Parameters and forward GFLOPs of a registered model (built on the meta device: no memory, no init cost).

    Args:
        name: registered name.
        T: frames per window for temporal models.
        visual_dim: visual feature width for temporal models (1024: ViT-L's CLS).
        audio_dim: audio feature width for temporal models (190: VGGish 128 + MFCC 39 + eGeMAPS 23).
    """
    config = get_config(name)
    kind = model_kind(config)
    if kind in ("temporal", "zoo"):
        config = with_overrides(config, visual_dim=visual_dim, audio_dim=audio_dim)
    with torch.device("meta"):
        counts = count_params(build_model(config))
    if kind in ("temporal", "zoo"):
        flops, per = count_flops(config, T=T), f"{T}-frame window"
    else:
        flops, per = count_flops(config, T=1), "image"
    return ModelSummary(name, kind, counts.total, counts.trainable, flops / 1e9, per)


def summarize_models(
    names: list[str] | None = None, T: int = 300, visual_dim: int = 1024, audio_dim: int = 190
) -> list[ModelSummary]:
    """`summarize_model` for several names (all registered models when None)."""
    return [summarize_model(n, T, visual_dim, audio_dim) for n in (names or list_models())]
