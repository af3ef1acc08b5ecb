"""The config's sections: one frozen dataclass per section of a run configuration (`Config` holds them).

Range checks ride on the fields' metadata (`spec`), parameter sets of the models package's own frozen configs on
`params_field`; `harness.config.checks` reads both.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from harness.config.limits import (
    MAX_BATCH,
    MAX_DETECT_STRIDE,
    MAX_EPOCHS,
    MAX_FOLDS,
    MAX_FRAMES_PER_VIDEO,
    MAX_INPUT_SIZE,
    MAX_SEED,
    MAX_STEPS,
    MAX_T_MULT,
    MAX_THREADS,
    MAX_WINDOW,
    MAX_WORKERS,
    params_field,
    spec,
)
from harness.config.rows import TableRow, table_rows
from models.configs import MAEConfig, ResNetConfig, TemporalConfig, ViTConfig
from models.zoo import (
    DCAConfig,
    JCAConfig,
    LFANConfig,
    MambaVAConfig,
    MulTConfig,
    RJCAConfig,
    TCNTransformerConfig,
)

# ---------------------------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------------------------


FINETUNED_VISUAL = "visual"
"""Cache name of the visual features of the fine-tuned stage-1 encoder."""
UNFINETUNED_VISUAL = "visual_mae"
"""Cache name of the visual features of the stage-1 encoder before fine-tuning (Table III's "MAE w/o FT")."""


@dataclass(frozen=True)
class FeaturesConfig:
    """Which cached per-frame features stage 2 reads.

    Args:
        visual: cache feature name of the visual stream (`visual`: fine-tuned CLS features; `visual_mae`: the
            encoder before fine-tuning, Table III's "MAE w/o FT").
        audio: audio features, concatenated in this order (subset of vggish, mfcc, egemaps).
    """

    visual: str
    audio: tuple[str, ...]


@dataclass(frozen=True)
class AugmentConfig:
    """Stage-1 frame augmentation (paper IV.C).

    Args:
        rotation: random rotation range in degrees (+-).
        hflip: probability of a horizontal flip.
        crop_scale: (min, max) area share of the random resized crop.
        crop_ratio: (min, max) aspect ratio of the random resized crop.
        mean: normalisation mean (all channels).
        std: normalisation standard deviation (all channels).
    """

    rotation: float = spec(ge=0.0, le=180.0)
    hflip: float = spec(ge=0.0, le=1.0)
    crop_scale: tuple[float, float] = spec(gt=0.0, le=1.0)
    crop_ratio: tuple[float, float] = spec(gt=0.0)
    mean: float
    std: float = spec(gt=0.0)


@dataclass(frozen=True)
class ScheduleConfig:
    """Linear warm-up, then cosine annealing with warm restarts (paper IV.C; see `harness.train.schedule`).

    Args:
        warmup_start_lr: learning rate at step 0.
        lr: peak learning rate, reached at the end of the warm-up.
        warmup_steps: optimiser steps of the linear warm-up.
        restart_epochs: length of the first cosine cycle in epochs (T_0, converted to steps at run time).
        t_mult: cycle length multiplier after each restart (T_mult).
        min_lr: floor of the cosine (eta_min).
    """

    warmup_start_lr: float = spec(ge=0.0)
    lr: float = spec(gt=0.0)
    warmup_steps: int = spec(ge=0, le=MAX_STEPS)
    restart_epochs: float = spec(gt=0.0)
    t_mult: int = spec(ge=1, le=MAX_T_MULT)
    min_lr: float = spec(ge=0.0)


@dataclass(frozen=True)
class LoopConfig:
    """One training phase (MAE pre-training, frame fine-tuning, or stage 2).

    Args:
        epochs: passes over the training set.
        micro_batch: samples per process per forward (DeepSpeed `train_micro_batch_size_per_gpu`).
        grad_accum: micro batches per optimiser step.
        weight_decay: AdamW weight decay (not applied to biases and norms).
        betas: AdamW betas.
        grad_clip: gradient norm clip; 0 disables it.
        schedule: the learning-rate schedule.
    """

    epochs: int = spec(ge=0, le=MAX_EPOCHS)
    micro_batch: int = spec(ge=1, le=MAX_BATCH)
    grad_accum: int = spec(ge=1, le=MAX_BATCH)
    weight_decay: float = spec(ge=0.0)
    betas: tuple[float, float] = spec(ge=0.0, lt=1.0)
    grad_clip: float = spec(ge=0.0)
    schedule: ScheduleConfig


@dataclass(frozen=True)
class EncoderConfig:
    """The stage-1 visual encoder: a registered ViT plus field overrides.

    Args:
        name: registered ViT name (`vit_tiny_patch16` ... `vit_large_patch16`).
        checkpoint: an official MAE checkpoint to start from (path); None pre-trains an MAE here first.
        params: `ViTConfig` fields to override (img_size, depth, frozen_blocks, ...).
    """

    name: str
    checkpoint: str | None
    params: tuple[tuple[str, Any], ...] = params_field(ViTConfig)

    @property
    def vit(self) -> ViTConfig:
        """The resolved `ViTConfig`."""
        from models.registry import get_config

        cfg = get_config(self.name, **dict(self.params))
        assert isinstance(cfg, ViTConfig)
        return cfg

    @property
    def mae_name(self) -> str:
        """The registered MAE twin of the encoder."""
        return f"mae_{self.name}"


@dataclass(frozen=True)
class MAEStageConfig:
    """MAE pre-training of the encoder (used when no checkpoint is given).

    Args:
        loop: the training phase.
        frames_per_video: pre-training frames per training video (evenly spaced, labels not used); None takes
            every frame with a crop and a label.
        params: `MAEConfig` decoder fields to override (decoder_depth, mask_ratio, ...).
    """

    loop: LoopConfig
    frames_per_video: int | None = spec(ge=1, le=MAX_FRAMES_PER_VIDEO)
    # The encoder's fields come from `encoder`: the MAE section sets only its decoder's.
    params: tuple[tuple[str, Any], ...] = params_field(MAEConfig, (f.name for f in dataclasses.fields(ViTConfig)))


@dataclass(frozen=True)
class Stage1Config:
    """Stage 1: MAE pre-training, hierarchical fine-tuning on frames, CLS feature extraction.

    Args:
        enabled: run stage 1; when False the `visual` features must already be in the cache.
        reserve: share of the Train_Set videos (by raw video) that fine-tuning uses and stage 2 never sees
            (the paper's fine-tuning frames are "excluded from later model training", III.B); 0 fine-tunes on
            every training video and stage 2 trains on them all too.
        frames_per_video: fine-tuning frames per video (evenly spaced); None takes every labelled frame.
        val_frames_per_video: validation frames per video for the per-epoch CCC; None takes every one.
        augment: training augmentation.
        mae: MAE pre-training.
        finetune: frame-level valence/arousal fine-tuning; `epochs: 0` skips it, and stage 1 then extracts only the
            encoder's features before fine-tuning (`visual_mae`, which `features.visual` must name; nothing is
            reserved).
        extract_batch: frames per forward when extracting features.
        extract_unfinetuned: also extract `visual_mae` features from the encoder before fine-tuning (Table III).
    """

    enabled: bool
    reserve: float = spec(ge=0.0, lt=1.0)
    frames_per_video: int | None = spec(ge=1, le=MAX_FRAMES_PER_VIDEO)
    val_frames_per_video: int | None = spec(ge=1, le=MAX_FRAMES_PER_VIDEO)
    augment: AugmentConfig
    mae: MAEStageConfig
    finetune: LoopConfig
    extract_batch: int = spec(ge=1, le=MAX_BATCH)
    extract_unfinetuned: bool


@dataclass(frozen=True)
class WindowsConfig:
    """Stage-2 temporal windows (paper IV.C: 300 frames, stride 200).

    Args:
        length: frames per window.
        stride: frames between window starts (at most `length`, so that every frame is covered).
    """

    length: int = spec(ge=1, le=MAX_WINDOW)
    stride: int = spec(ge=1, le=MAX_WINDOW)


@dataclass(frozen=True)
class DataConfig:
    """How training labels and windows are prepared.

    Args:
        refine_labels: give training frames whose V/A is -5 but whose expression is annotated a refined target
            (`harness.data.refine`, paper IV.A after [29]); validation and test scoring never see refined labels.
        refine_tau: frames over which a refined target moves from the neighbouring annotated V/A to the
            expression class's mean V/A (the weight of the neighbours is exp(-distance / refine_tau)).
        modality_dropout: share of stage-2 training windows that lose one stream (half the visual, half the audio;
            `models.augment.modality_dropout`), for models that fuse both; not in the paper (0 there).
    """

    refine_labels: bool
    refine_tau: float = spec(gt=0.0, le=1e6)
    # Last, with a default: configs and run folders written before it existed still load.
    modality_dropout: float = spec(0.0, ge=0.0, le=1.0)


@dataclass(frozen=True)
class ModelConfig:
    """The stage-2 temporal model: a registered name plus `TemporalConfig` field overrides.

    Args:
        name: `bdca`, `bdca_no_dw`, `concat`, `audio_only` or `visual_only` (Table IV's rows), or a rival of
            `models.zoo` (whose parameters are its `zoo` mapping, not these).
        params: `TemporalConfig` fields (tcn_channels, num_layers, ...); visual_dim and audio_dim are derived.
    """

    name: str
    params: tuple[tuple[str, Any], ...] = params_field(TemporalConfig, ("fusion", "visual_dim", "audio_dim"))


_DERIVED_DIMS = ("visual_dim", "audio_dim")


@dataclass(frozen=True)
class ZooSection:
    """The rival fusion models' hyperparameters (Table II measured, `harness compare`): one mapping per model of
    its config's fields (`models.zoo.configs`); a model left out takes its registered defaults. The input widths
    are derived, as for `model`.

    Args:
        lfan: `LFANConfig` fields.
        jca: `JCAConfig` fields.
        rjca: `RJCAConfig` fields.
        dca: `DCAConfig` fields.
        mult: `MulTConfig` fields.
        mamba_va: `MambaVAConfig` fields.
        tcn_transformer: `TCNTransformerConfig` fields.
    """

    lfan: tuple[tuple[str, Any], ...] = params_field(LFANConfig, _DERIVED_DIMS, nested=True)
    jca: tuple[tuple[str, Any], ...] = params_field(JCAConfig, _DERIVED_DIMS, nested=True)
    rjca: tuple[tuple[str, Any], ...] = params_field(RJCAConfig, _DERIVED_DIMS, nested=True)
    dca: tuple[tuple[str, Any], ...] = params_field(DCAConfig, _DERIVED_DIMS, nested=True)
    mult: tuple[tuple[str, Any], ...] = params_field(MulTConfig, _DERIVED_DIMS, nested=True)
    mamba_va: tuple[tuple[str, Any], ...] = params_field(MambaVAConfig, _DERIVED_DIMS, nested=True)
    tcn_transformer: tuple[tuple[str, Any], ...] = params_field(TCNTransformerConfig, _DERIVED_DIMS, nested=True)

    def params(self, name: str) -> dict[str, Any]:
        """One model's parameters as a dict (a name from `models.zoo.ZOO`)."""
        return dict(getattr(self, name))


@dataclass(frozen=True)
class BaselineConfig:
    """The challenge baseline (Tables I and IV's "Baseline" row): a per-frame ResNet on face crops, no audio.

    Args:
        name: registered per-frame network (`resnet50_va`: ResNet-50 with a linear valence/arousal head).
        weights: torchvision's ImageNet `resnet50` weights file (`resnet50-11ad3fa6.pth` or `resnet50-0676ba61.pth`:
            a state dict saved with torch.save), never downloaded; None trains from random initialisation.
        frames_per_video: training frames per training video (evenly spaced labelled frames with a face); None
            takes every one.
        val_frames_per_video: validation frames per video for choosing the best epoch; None takes every one.
        hflip: probability of a horizontal flip of a training crop.
        loop: the training phase.
        params: `ResNetConfig` fields to override (img_size, width, layers, head_dropout).
    """

    name: str
    weights: str | None
    frames_per_video: int | None = spec(ge=1, le=MAX_FRAMES_PER_VIDEO)
    val_frames_per_video: int | None = spec(ge=1, le=MAX_FRAMES_PER_VIDEO)
    hflip: float = spec(ge=0.0, le=1.0)
    loop: LoopConfig
    params: tuple[tuple[str, Any], ...] = params_field(ResNetConfig)


@dataclass(frozen=True)
class DeepSpeedSection:
    """How DeepSpeed runs the loops.

    Args:
        zero_stage: ZeRO stage 0-3.
        precision: `auto` (bf16 on a GPU that has it, else fp32), `fp32`, `bf16` or `fp16`.
    """

    zero_stage: int = spec(ge=0, le=3)
    precision: Literal["auto", "fp32", "bf16", "fp16"]


@dataclass(frozen=True)
class ExperimentConfig:
    """Which folds and ablations the experiment commands run (not part of a model's hash).

    Args:
        folds: folds `harness folds` trains: 0 is the official split, 1..k the cross-validation folds.
        k: number of cross-validation folds.
        fold_seed: seed of the video-to-fold assignment.
        ablation_models: Table IV's rows: temporal models, and `baseline` for the challenge baseline (which also
            gives Table I's Baseline row on fold 0).
        ablation_folds: folds the ablations (Tables III and IV) run on.
        table3: also run Table III (visual-only on features without vs with fine-tuning).
        seeds: stage-2 seeds: every (fold, row) is trained once per seed and the tables show the mean over seeds
            ± their std beside the interval. Empty: the config's `seed` alone (`Config.stage2_seeds`), so that
            the seed is never typed twice. Stage 1 (the shared encoder) always uses `seed`.
        compare_models: the rival fusion models (`models.zoo`) the demo trains beside BDCA on the ablation folds
            for Table II (measured) (`harness compare` takes its own `--models`); empty (the default): none.
        ensembles: the demo also builds the fold ensemble (the folds' models averaged) and a late fusion of the
            ablation fold's Table IV rows (weights searched per dimension on validation), `harness ensemble`'s.
    """

    folds: tuple[int, ...]
    k: int = spec(ge=2, le=MAX_FOLDS)
    fold_seed: int = spec(ge=0, le=MAX_SEED)
    ablation_models: tuple[str, ...]
    ablation_folds: tuple[int, ...]
    table3: bool
    seeds: tuple[int, ...] = spec(ge=0, le=MAX_SEED)
    # A default, so that the config.yaml of a run folder written before it existed still loads.
    compare_models: tuple[str, ...] = ()
    # Last, with a default: configs written before it existed still load.
    ensembles: bool = False

    @property
    def rows(self) -> tuple[TableRow, ...]:
        """`ablation_models` as typed rows (`harness.config.rows`)."""
        return table_rows(self.ablation_models)


@dataclass(frozen=True)
class RuntimeConfig:
    """Settings that do not change results (not part of the hash).

    Args:
        num_workers: DataLoader worker processes.
        progress: show rich progress bars.
        eval_batch: windows (stage 2) or frames (stage 1) per forward when evaluating and predicting.
        threads: torch intra-op threads; 0 keeps torch's default (one per core).
        engine: what trains (`--engine`): `deepspeed` (ZeRO, any number of processes) or `torch` (plain torch, one
            process, fp32); may be left out.
    """

    num_workers: int = spec(ge=0, le=MAX_WORKERS)
    progress: bool
    eval_batch: int = spec(ge=1, le=MAX_BATCH)
    threads: int = spec(ge=0, le=MAX_THREADS)
    engine: Literal["deepspeed", "torch"] = "deepspeed"


@dataclass(frozen=True)
class PreprocessConfig:
    """What preprocessing does (hashed per step, so a change redoes only the affected step).

    Every field has a default, so a config file may leave the section out (or name only some of its keys); it is
    not part of `config_hash`, because each preprocessing step hashes its own settings.

    Args:
        faces: run face detection + alignment where crops are not already present.
        detect: detect even for subjects whose crops the dataset ships.
        detector: detector name ("scrfd", "mtcnn", "retinaface").
        stride: detect every `stride` frames and interpolate landmarks between (2 keeps the landmarks within
            0.3 px of per-frame detection on the GRID clips, mean, and halves the detector's work).
        input_size: SCRFD's input side (320: 13 ms/frame on 2 cores, same detections as 640 on GRID within 1.5 px).
        audio: compute audio features.
        vggish: VGGish weights (file or folder); None switches VGGish off.
        egemaps_set: eGeMAPS version with 23 LLDs.
        encoder: encoder checkpoint for visual features (a stage-1 `best.safetensors`, the official MAE release
            `mae_pretrain_vit_large.pth`, or timm's `vit_large_patch16_224.mae` state dict); None: no visual features.
        encoder_config: the config (name or YAML) whose `encoder` section describes that checkpoint's ViT and
            whose `stage1.augment` gives the normalisation.
    """

    faces: bool = True
    detect: bool = False
    detector: str = "scrfd"
    stride: int = spec(2, ge=1, le=MAX_DETECT_STRIDE)
    input_size: int = spec(320, ge=32, le=MAX_INPUT_SIZE)
    audio: bool = True
    vggish: str | None = None
    egemaps_set: str = "eGeMAPSv01a"
    encoder: str | None = None
    encoder_config: str = "demo"
