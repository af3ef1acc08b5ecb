"""The config's schema: one frozen dataclass per section, `Config` that holds them, and what derives from them.

Numbers that follow from others are computed here, never typed twice:
- `Config.audio_dim`: the sum of the enabled audio features' widths (VGGish 128, MFCC 39, eGeMAPS 23);
- `Config.visual_dim`: the encoder ViT's width (`embed_dim` of its registered config, with overrides);
- `train_batch_size(loop, world_size)`: DeepSpeed's global batch, micro batch x accumulation x world size.

The encoder, MAE, temporal-model and baseline sections carry parameter sets of the models package's own frozen
configs (`ViTConfig`, `MAEConfig`, `TemporalConfig`, `ResNetConfig`), declared with `_params`: their keys and types
are checked against those dataclasses (`harness.config.checks`), so a model field is defined in one place only.
Range checks ride on the fields' metadata (`_spec`); the checks module reads both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, field
from typing import Any, Literal

import yaml

from core.hashing import stable_hash
from core.widths import AUDIO_FEATURE_WIDTHS
from harness.config.errors import ConfigError
from models.configs import MAEConfig, ResNetConfig, TemporalConfig, ViTConfig
from models.zoo import (
    ZOO,
    DCAConfig,
    JCAConfig,
    LFANConfig,
    MambaVAConfig,
    MulTConfig,
    RJCAConfig,
    TCNTransformerConfig,
    ZooConfig,
)

AUDIO_DIMS = AUDIO_FEATURE_WIDTHS
"""Per-frame width of each audio feature in the cache (paper III.C)."""

MAX_SEED = 2**32 - 1
"""Largest seed (numpy's and DataLoader's seeds are 32-bit)."""

BASELINE_ROW = "baseline"
"""The row of `experiment.ablation_models` that trains the challenge baseline (`baseline` section) instead of a
temporal model; it also gives Table I's "Baseline" row (fold 0)."""

NO_REFINE_ROW = "no_refine"
"""The row of `experiment.ablation_models` that trains the config's model without label refinement
(`data.refine_labels=false`): what refinement adds is the paired difference of this row and the model's own."""

UNHASHED_SECTIONS = ("name", "runtime", "experiment", "preprocess")
"""Parts of a config that do not change a trained model (logging, worker count, which folds to run; preprocessing
hashes each of its own steps, and the features it writes are identified by those hashes in the cache)."""

PARAMS_OF = "params_of"
"""Field metadata key: the models config class whose fields a parameter-set field may set."""

FIXED_PARAMS = "fixed_params"
"""Field metadata key: the fields of `PARAMS_OF` that a parameter set may not set (derived, or set elsewhere)."""

NESTED_PARAMS = "nested_params"
"""Field metadata key: the parameter set is written as its own mapping under the field's name (the `zoo` section's
one mapping per model), not flat beside its section's keys."""

ZOO_SECTION = "zoo"
"""The section of the rival models' parameters: hashed only for a run of one of them, and then only that model's
mapping, so a config's other runs (BDCA's, the ablations') keep their hashes and their finished run folders."""


def _spec(default: Any = MISSING, **meta: Any) -> Any:
    """A dataclass field carrying range checks (`ge`, `gt`, `le`, `lt`) for the loader; required unless given a
    `default`."""
    return field(default=default, metadata=meta)


def _params(target: type, fixed: Iterable[str] = (), nested: bool = False) -> Any:
    """A parameter-set field: sorted (key, value) pairs of `target`'s fields, minus `fixed`.

    In YAML such a section writes its parameters flat beside its own keys (`encoder: {name, checkpoint, depth}`);
    a nested one is its own mapping under the field's name (`zoo: {lfan: {attn_dim: 16}}`) and may be left out.

    Args:
        target: the models config class whose fields may be set.
        fixed: fields of `target` that may not be set here.
        nested: a mapping of its own, empty by default (else required, flat).
    """
    meta = {PARAMS_OF: target, FIXED_PARAMS: frozenset(fixed), NESTED_PARAMS: nested}
    return field(default=(), metadata=meta) if nested else field(metadata=meta)


# ---------------------------------------------------------------------------------------------------------------
# Upper bounds: every value that sizes memory, threads or processes has one (a typo of a few digits is refused
# with its key instead of a fork bomb, a gloo abort or an allocation failure deep in torch).
# ---------------------------------------------------------------------------------------------------------------

MAX_EPOCHS = 100_000
"""Epochs of one training phase (the paper's longest is 100)."""
MAX_BATCH = 65_536
"""Samples per forward or per optimiser step (`micro_batch`, `grad_accum`, `eval_batch`, `extract_batch`)."""
MAX_STEPS = 10**9
"""Optimiser steps of a warm-up."""
MAX_T_MULT = 1_000
"""Cosine cycle length multiplier."""
MAX_FRAMES_PER_VIDEO = 10_000_000
"""Frames sampled per video (the longest Aff-Wild2 video has about 54,000)."""
MAX_WINDOW = 16_384
"""Frames of a stage-2 window and of its stride (the paper's window is 300; attention grows with its square)."""
MAX_FOLDS = 100
"""Cross-validation folds."""
MAX_WORKERS = 128
"""DataLoader worker processes (each is a process: a typo must not fork thousands)."""
MAX_THREADS = 512
"""torch intra-op threads."""
MAX_DETECT_STRIDE = 10_000
"""Frames between two face detections."""
MAX_INPUT_SIZE = 4_096
"""SCRFD's input side in pixels."""
MAX_MODEL_INT = 65_536
"""Any integer parameter of a model (`encoder`, `model`, `baseline` and MAE parameters: widths, depths, heads,
channels, patch and image sizes): ViT-Large is 1,024 wide and 24 deep, BDCA's TCN 128 channels."""


# ---------------------------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------------------------


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

    rotation: float = _spec(ge=0.0, le=180.0)
    hflip: float = _spec(ge=0.0, le=1.0)
    crop_scale: tuple[float, float] = _spec(gt=0.0, le=1.0)
    crop_ratio: tuple[float, float] = _spec(gt=0.0)
    mean: float
    std: float = _spec(gt=0.0)


@dataclass(frozen=True)
class ScheduleConfig:
    """Linear warm-up, then cosine annealing with warm restarts (paper IV.C; see `harness.schedule`).

    Args:
        warmup_start_lr: learning rate at step 0.
        lr: peak learning rate, reached at the end of the warm-up.
        warmup_steps: optimiser steps of the linear warm-up.
        restart_epochs: length of the first cosine cycle in epochs (T_0, converted to steps at run time).
        t_mult: cycle length multiplier after each restart (T_mult).
        min_lr: floor of the cosine (eta_min).
    """

    warmup_start_lr: float = _spec(ge=0.0)
    lr: float = _spec(gt=0.0)
    warmup_steps: int = _spec(ge=0, le=MAX_STEPS)
    restart_epochs: float = _spec(gt=0.0)
    t_mult: int = _spec(ge=1, le=MAX_T_MULT)
    min_lr: float = _spec(ge=0.0)


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

    epochs: int = _spec(ge=0, le=MAX_EPOCHS)
    micro_batch: int = _spec(ge=1, le=MAX_BATCH)
    grad_accum: int = _spec(ge=1, le=MAX_BATCH)
    weight_decay: float = _spec(ge=0.0)
    betas: tuple[float, float] = _spec(ge=0.0, lt=1.0)
    grad_clip: float = _spec(ge=0.0)
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
    params: tuple[tuple[str, Any], ...] = _params(ViTConfig)

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
    frames_per_video: int | None = _spec(ge=1, le=MAX_FRAMES_PER_VIDEO)
    # The encoder's fields come from `encoder`: the MAE section sets only its decoder's.
    params: tuple[tuple[str, Any], ...] = _params(MAEConfig, (f.name for f in dataclasses.fields(ViTConfig)))


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
        finetune: frame-level valence/arousal fine-tuning.
        extract_batch: frames per forward when extracting features.
        extract_unfinetuned: also extract `visual_mae` features from the encoder before fine-tuning (Table III).
    """

    enabled: bool
    reserve: float = _spec(ge=0.0, lt=1.0)
    frames_per_video: int | None = _spec(ge=1, le=MAX_FRAMES_PER_VIDEO)
    val_frames_per_video: int | None = _spec(ge=1, le=MAX_FRAMES_PER_VIDEO)
    augment: AugmentConfig
    mae: MAEStageConfig
    finetune: LoopConfig
    extract_batch: int = _spec(ge=1, le=MAX_BATCH)
    extract_unfinetuned: bool


@dataclass(frozen=True)
class WindowsConfig:
    """Stage-2 temporal windows (paper IV.C: 300 frames, stride 200).

    Args:
        length: frames per window.
        stride: frames between window starts (at most `length`, so that every frame is covered).
    """

    length: int = _spec(ge=1, le=MAX_WINDOW)
    stride: int = _spec(ge=1, le=MAX_WINDOW)


@dataclass(frozen=True)
class DataConfig:
    """How training labels and windows are prepared.

    Args:
        refine_labels: give training frames whose V/A is -5 but whose expression is annotated a refined target
            (`harness.refine`, paper IV.A after [29]); validation and test scoring never see refined labels.
        refine_tau: frames over which a refined target moves from the neighbouring annotated V/A to the
            expression class's mean V/A (the weight of the neighbours is exp(-distance / refine_tau)).
        modality_dropout: share of stage-2 training windows that lose one stream (half the visual, half the audio;
            `models.augment.modality_dropout`), for models that fuse both; not in the paper (0 there).
    """

    refine_labels: bool
    refine_tau: float = _spec(gt=0.0, le=1e6)
    # Last, with a default: configs and run folders written before it existed still load.
    modality_dropout: float = _spec(0.0, ge=0.0, le=1.0)


@dataclass(frozen=True)
class ModelConfig:
    """The stage-2 temporal model: a registered name plus `TemporalConfig` field overrides.

    Args:
        name: `bdca`, `bdca_no_dw`, `concat`, `audio_only` or `visual_only` (Table IV's rows), or a rival of
            `models.zoo` (whose parameters are its `zoo` mapping, not these).
        params: `TemporalConfig` fields (tcn_channels, num_layers, ...); visual_dim and audio_dim are derived.
    """

    name: str
    params: tuple[tuple[str, Any], ...] = _params(TemporalConfig, ("fusion", "visual_dim", "audio_dim"))


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

    lfan: tuple[tuple[str, Any], ...] = _params(LFANConfig, _DERIVED_DIMS, nested=True)
    jca: tuple[tuple[str, Any], ...] = _params(JCAConfig, _DERIVED_DIMS, nested=True)
    rjca: tuple[tuple[str, Any], ...] = _params(RJCAConfig, _DERIVED_DIMS, nested=True)
    dca: tuple[tuple[str, Any], ...] = _params(DCAConfig, _DERIVED_DIMS, nested=True)
    mult: tuple[tuple[str, Any], ...] = _params(MulTConfig, _DERIVED_DIMS, nested=True)
    mamba_va: tuple[tuple[str, Any], ...] = _params(MambaVAConfig, _DERIVED_DIMS, nested=True)
    tcn_transformer: tuple[tuple[str, Any], ...] = _params(TCNTransformerConfig, _DERIVED_DIMS, nested=True)

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
    frames_per_video: int | None = _spec(ge=1, le=MAX_FRAMES_PER_VIDEO)
    val_frames_per_video: int | None = _spec(ge=1, le=MAX_FRAMES_PER_VIDEO)
    hflip: float = _spec(ge=0.0, le=1.0)
    loop: LoopConfig
    params: tuple[tuple[str, Any], ...] = _params(ResNetConfig)


@dataclass(frozen=True)
class DeepSpeedSection:
    """How DeepSpeed runs the loops.

    Args:
        zero_stage: ZeRO stage 0-3.
        precision: `auto` (bf16 on a GPU that has it, else fp32), `fp32`, `bf16` or `fp16`.
    """

    zero_stage: int = _spec(ge=0, le=3)
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
    """

    folds: tuple[int, ...]
    k: int = _spec(ge=2, le=MAX_FOLDS)
    fold_seed: int = _spec(ge=0, le=MAX_SEED)
    ablation_models: tuple[str, ...]
    ablation_folds: tuple[int, ...]
    table3: bool
    seeds: tuple[int, ...] = _spec(ge=0, le=MAX_SEED)
    # A default, so that the config.yaml of a run folder written before it existed still loads.
    compare_models: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuntimeConfig:
    """Settings that do not change results (not part of the hash).

    Args:
        num_workers: DataLoader worker processes.
        progress: show rich progress bars.
        eval_batch: windows (stage 2) or frames (stage 1) per forward when evaluating and predicting.
        threads: torch intra-op threads; 0 keeps torch's default (one per core).
    """

    num_workers: int = _spec(ge=0, le=MAX_WORKERS)
    progress: bool
    eval_batch: int = _spec(ge=1, le=MAX_BATCH)
    threads: int = _spec(ge=0, le=MAX_THREADS)


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
    stride: int = _spec(2, ge=1, le=MAX_DETECT_STRIDE)
    input_size: int = _spec(320, ge=32, le=MAX_INPUT_SIZE)
    audio: bool = True
    vggish: str | None = None
    egemaps_set: str = "eGeMAPSv01a"
    encoder: str | None = None
    encoder_config: str = "demo"


@dataclass(frozen=True)
class Config:
    """A whole run configuration (see the YAML files in `harness/configs/` for every field's meaning).

    Args:
        name: the config's name (informational).
        seed: global seed (weights, sampling, augmentation).
        features: which cached features stage 2 reads.
        encoder: the stage-1 ViT.
        stage1: MAE pre-training, fine-tuning, extraction.
        windows: stage-2 windows.
        data: how training labels are prepared (label refinement).
        model: the stage-2 temporal model.
        stage2: the stage-2 training phase.
        baseline: the challenge baseline row.
        deepspeed: ZeRO stage and precision.
        experiment: folds and ablations.
        runtime: workers, progress bars.
        zoo: the rival fusion models' parameters; may be left out; hashed only for a run of a rival (that
            model's mapping alone).
        preprocess: what `harness preprocess` does; may be left out (every field has a default), not hashed.
    """

    name: str
    seed: int = _spec(ge=0, le=MAX_SEED)
    features: FeaturesConfig
    encoder: EncoderConfig
    stage1: Stage1Config
    windows: WindowsConfig
    data: DataConfig
    model: ModelConfig
    stage2: LoopConfig
    baseline: BaselineConfig
    deepspeed: DeepSpeedSection
    experiment: ExperimentConfig
    runtime: RuntimeConfig
    # Last, as the sections with a default: run folders and configs written before they existed still load.
    zoo: ZooSection = field(default_factory=ZooSection)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)

    # -- derived ------------------------------------------------------------------------------------------------
    @property
    def audio_dim(self) -> int:
        """Width of the concatenated audio features."""
        return sum(AUDIO_DIMS[a] for a in self.features.audio)

    @property
    def visual_dim(self) -> int:
        """Width of the visual features: the encoder's CLS width."""
        return self.encoder.vit.embed_dim

    @property
    def stage2_seeds(self) -> tuple[int, ...]:
        """The stage-2 seeds the experiment commands train: `experiment.seeds`, or the config's `seed` alone."""
        return self.experiment.seeds or (self.seed,)

    def vit_config(self) -> ViTConfig:
        """The stage-1 valence/arousal ViT's config."""
        return self.encoder.vit

    def mae_config(self) -> MAEConfig:
        """The MAE pre-training model's config: the encoder's fields plus the decoder overrides."""
        from models.registry import get_config

        enc = {k: v for k, v in self.encoder.params}
        cfg = get_config(self.encoder.mae_name, **enc, **dict(self.stage1.mae.params))
        assert isinstance(cfg, MAEConfig)
        return cfg

    def baseline_config(self) -> ResNetConfig:
        """The challenge baseline's per-frame network config."""
        from models.registry import get_config

        cfg = get_config(self.baseline.name, **dict(self.baseline.params))
        assert isinstance(cfg, ResNetConfig)
        return cfg

    def temporal_config(self, model_name: str | None = None) -> TemporalConfig | ZooConfig:
        """The stage-2 model's config with derived dims: a temporal model's takes the `model` section's
        parameters, a rival's (`models.zoo.ZOO`) its own `zoo.<name>` mapping.

        Args:
            model_name: another registered stage-2 model (ablations, rivals); None takes `model.name`.
        """
        from models.registry import get_config

        name = model_name or self.model.name
        params = self.zoo.params(name) if name in ZOO else dict(self.model.params)
        cfg = get_config(name, **params, visual_dim=self.visual_dim, audio_dim=self.audio_dim)
        assert isinstance(cfg, TemporalConfig | ZooConfig)
        return cfg

    # -- serialisation ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A plain, YAML-able dict that `from_dict` turns back into an equal Config."""
        return _to_plain(self)

    def to_yaml(self) -> str:
        """The resolved config as YAML (what a run folder keeps as config.yaml)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        """Build and check a Config from a complete dict (as `to_dict` gives it; `preprocess` may be left out).

        Raises:
            ConfigError: naming the dotted key of the first problem.
        """
        # Imported here: the checks module reads this module's sections and constants.
        from harness.config.checks import build_section, check_cross

        cfg = build_section(cls, data, "")
        check_cross(cfg)
        return cfg

    def replace(self, **changes: Any) -> Config:
        """A copy with dotted keys changed, checked like a loaded file: `cfg.replace(**{"stage2.epochs": 3})`."""
        # Imported here: the loader builds configs with this module's `Config`.
        from harness.config.loader import set_dotted

        data = self.to_dict()
        for key, value in changes.items():
            set_dotted(data, key, value, "replace")
        return Config.from_dict(data)


def config_hash(cfg: Config, extra: Mapping[str, Any] | None = None) -> str:
    """Stable hash of everything that changes a trained model (not the `UNHASHED_SECTIONS`).

    Args:
        cfg: the config.
        extra: more values that identify the result (e.g. the fold), hashed along.
    """
    data = {k: v for k, v in cfg.to_dict().items() if k not in (*UNHASHED_SECTIONS, ZOO_SECTION)}
    if cfg.model.name in ZOO:
        data[ZOO_SECTION] = {cfg.model.name: cfg.zoo.params(cfg.model.name)}
    if extra:
        data["extra"] = dict(extra)
    return stable_hash(data)


def train_batch_size(loop: LoopConfig, world_size: int) -> int:
    """DeepSpeed's global batch: micro batch x gradient accumulation x world size.

    Args:
        loop: the training phase.
        world_size: number of processes.
    """
    if world_size < 1:
        raise ConfigError(f"world size must be >= 1, got {world_size}")
    return loop.micro_batch * loop.grad_accum * world_size


def _to_plain(obj: Any) -> Any:
    """A section (or a value of one) as plain dicts, lists and scalars, parameter sets flat beside their keys."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if PARAMS_OF in f.metadata and f.metadata[NESTED_PARAMS]:
                out[f.name] = {k: _to_plain(v) for k, v in value}
            elif PARAMS_OF in f.metadata:
                out.update({k: _to_plain(v) for k, v in value})
            else:
                out[f.name] = _to_plain(value)
        return out
    if isinstance(obj, tuple | list):
        return [_to_plain(v) for v in obj]
    return obj
