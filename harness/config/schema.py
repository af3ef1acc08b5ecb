"""The whole run configuration: `Config`, which holds the sections (`harness.config.sections`), and what derives
from it.

Numbers that follow from others are computed here, never typed twice:
- `Config.audio_dim`: the sum of the enabled audio features' widths (VGGish 128, MFCC 39, eGeMAPS 23);
- `Config.visual_dim`: the encoder ViT's width (`embed_dim` of its registered config, with overrides);
- `train_batch_size(loop, world_size)`: DeepSpeed's global batch, micro batch x accumulation x world size.

A config is built by `harness.config.checks.build_section` (types and ranges of each field) and then checked across
keys here (`check_cross`: several keys together, and the models registry).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from core.hashing import stable_hash
from harness.config.checks import build_section
from harness.config.dotted import set_dotted
from harness.config.errors import ConfigError
from harness.config.limits import (
    AUDIO_DIMS,
    BASELINE_ROW,
    LATER_FIELDS,
    MAX_SEED,
    NESTED_PARAMS,
    NO_REFINE_ROW,
    PARAMS_OF,
    UNHASHED_SECTIONS,
    ZOO_SECTION,
    spec,
)
from harness.config.sections import (
    UNFINETUNED_VISUAL,
    BaselineConfig,
    DataConfig,
    DeepSpeedSection,
    EncoderConfig,
    ExperimentConfig,
    FeaturesConfig,
    LoopConfig,
    ModelConfig,
    PreprocessConfig,
    RuntimeConfig,
    Stage1Config,
    WindowsConfig,
    ZooSection,
)
from models.configs import MAEConfig, ResNetConfig, TemporalConfig, ViTConfig
from models.errors import ModelConfigError
from models.zoo import ZOO, ZooConfig


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
    seed: int = spec(ge=0, le=MAX_SEED)
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
        cfg = build_section(cls, data, "")
        check_cross(cfg)
        return cfg

    def replace(self, **changes: Any) -> Config:
        """A copy with dotted keys changed, checked like a loaded file: `cfg.replace(**{"stage2.epochs": 3})`."""
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
    for (section, key), neutral in LATER_FIELDS.items():
        if data.get(section, {}).get(key) == neutral:
            del data[section][key]
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


def _check_stage1_features(cfg: Config) -> None:
    """The visual features stage 2 reads are ones stage 1 makes (with stage 1 on)."""
    if not cfg.stage1.enabled:
        return
    s1, visual = cfg.stage1, cfg.features.visual
    if s1.finetune.epochs > 0:
        if visual == UNFINETUNED_VISUAL and not s1.extract_unfinetuned:
            raise ConfigError(f"features.visual: {visual!r} (the encoder before fine-tuning) is extracted only "
                              "with stage1.extract_unfinetuned=true, or without fine-tuning "
                              "(stage1.finetune.epochs=0)")  # fmt: skip
        return
    if visual != UNFINETUNED_VISUAL:
        raise ConfigError(f"features.visual: {visual!r}, but stage1.finetune.epochs is 0 (no fine-tuning): stage 1 "
                          f"then extracts only the encoder's features before fine-tuning; set "
                          f"features.visual={UNFINETUNED_VISUAL}")  # fmt: skip
    if s1.reserve > 0:
        raise ConfigError(f"stage1.reserve: {s1.reserve} keeps training videos from stage 2 for fine-tuning, but "
                          "stage1.finetune.epochs is 0 (no fine-tuning); set stage1.reserve=0")  # fmt: skip
    if cfg.experiment.table3:
        raise ConfigError("experiment.table3: Table III compares the features before and after fine-tuning, but "
                          "stage1.finetune.epochs is 0 (no fine-tuning); set experiment.table3=false")  # fmt: skip


def check_cross(cfg: Config) -> None:
    """Checks that involve several keys or the models registry."""
    from models.registry import get_config, list_models, stage2_models

    unknown_audio = [a for a in cfg.features.audio if a not in AUDIO_DIMS]
    if unknown_audio:
        raise ConfigError(f"features.audio: unknown feature(s) {unknown_audio}; known: {', '.join(AUDIO_DIMS)}")
    if len(set(cfg.features.audio)) != len(cfg.features.audio):
        raise ConfigError(f"features.audio: listed twice in {list(cfg.features.audio)}")
    if not cfg.features.audio:
        raise ConfigError("features.audio: at least one audio feature is needed")
    a, b = cfg.stage1.augment.crop_scale
    if a > b:
        raise ConfigError(f"stage1.augment.crop_scale: min {a} exceeds max {b}")
    a, b = cfg.stage1.augment.crop_ratio
    if a > b:
        raise ConfigError(f"stage1.augment.crop_ratio: min {a} exceeds max {b}")
    if cfg.windows.stride > cfg.windows.length:
        raise ConfigError(
            f"windows.stride: {cfg.windows.stride} exceeds windows.length {cfg.windows.length}; frames between "
            "windows would get no prediction"
        )
    for key, loop in (("stage1.mae.loop", cfg.stage1.mae.loop), ("stage1.finetune", cfg.stage1.finetune),
                      ("stage2", cfg.stage2), ("baseline.loop", cfg.baseline.loop)):  # fmt: skip
        if loop.schedule.warmup_start_lr > loop.schedule.lr:
            raise ConfigError(f"{key}.schedule.warmup_start_lr: {loop.schedule.warmup_start_lr} exceeds lr")
        if loop.schedule.min_lr > loop.schedule.lr:
            raise ConfigError(f"{key}.schedule.min_lr: {loop.schedule.min_lr} exceeds lr")
    _check_stage1_features(cfg)
    if cfg.encoder.name not in list_models("vit"):
        vits = ", ".join(list_models("vit"))
        raise ConfigError(f"encoder.name: {cfg.encoder.name!r} is not a registered ViT ({vits})")
    temporal = stage2_models()
    if cfg.model.name not in temporal:
        raise ConfigError(f"model.name: {cfg.model.name!r} is not a temporal model ({', '.join(temporal)})")
    if len(set(cfg.experiment.seeds)) != len(cfg.experiment.seeds):
        raise ConfigError(f"experiment.seeds: a seed listed twice in {list(cfg.experiment.seeds)}")
    rows = cfg.experiment.rows
    bad = [r.name for r in rows if r.kind == "model" and r.name not in temporal]
    if bad:
        raise ConfigError(f"experiment.ablation_models: {bad} not temporal models ({', '.join(temporal)}) "
                          f"nor {BASELINE_ROW!r} or {NO_REFINE_ROW!r}")  # fmt: skip
    rivals = [m for m in cfg.experiment.compare_models if m not in ZOO]
    if rivals or len(set(cfg.experiment.compare_models)) != len(cfg.experiment.compare_models):
        raise ConfigError(f"experiment.compare_models: {rivals or list(cfg.experiment.compare_models)} not distinct "
                          f"rival models ({', '.join(ZOO)})")  # fmt: skip
    if any(r.kind == "no_refine" for r in rows) and not cfg.data.refine_labels:
        raise ConfigError(f"experiment.ablation_models: {NO_REFINE_ROW!r} compares a model with and without label "
                          "refinement, but data.refine_labels is false (set it true, or drop the row)")  # fmt: skip
    if cfg.baseline.name not in list_models("resnet"):
        raise ConfigError(f"baseline.name: {cfg.baseline.name!r} is not a registered per-frame network "
                          f"({', '.join(list_models('resnet'))})")  # fmt: skip
    for key in ("folds", "ablation_folds"):
        folds = getattr(cfg.experiment, key)
        out = [f for f in folds if not 0 <= f <= cfg.experiment.k]
        if out:
            raise ConfigError(f"experiment.{key}: {out} outside 0..k (k = {cfg.experiment.k})")
    # Let the models package check its own fields (divisibility, ranges) and name the section on failure.
    for section, build in (
        ("encoder", lambda: cfg.vit_config()),
        ("stage1.mae", lambda: cfg.mae_config()),
        ("model", lambda: cfg.temporal_config()),
        ("baseline", lambda: cfg.baseline_config()),
        *((f"experiment.ablation_models ({r.name})", lambda m=r.name: cfg.temporal_config(m))
          for r in rows if r.kind == "model"),
        *((f"zoo.{m}", lambda m=m: cfg.temporal_config(m)) for m in ZOO),
    ):  # fmt: skip
        try:
            build()
        except (ModelConfigError, TypeError, ValueError) as exc:
            raise ConfigError(f"{section}: {exc}") from None
    if cfg.encoder.name in list_models("vit"):
        get_config(cfg.encoder.mae_name)
