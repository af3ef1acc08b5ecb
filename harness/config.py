"""Run configuration: frozen dataclasses loaded from YAML, with dotted `--set` overrides, checked at load time.

A config file is complete: every field of every section is named (nothing is silently defaulted), except that a
file may start with `base: <name>` to inherit another config and change only some keys (`quick` builds on `demo`).
Unknown keys, wrong types and out-of-range values are rejected with the key's dotted path (`ConfigError`).

Numbers that follow from others are computed, never typed twice:
- `Config.audio_dim`: the sum of the enabled audio features' widths (VGGish 128, MFCC 39, eGeMAPS 23);
- `Config.visual_dim`: the encoder ViT's width (`embed_dim` of its registered config, with overrides);
- `train_batch_size(loop, world_size)`: DeepSpeed's global batch, micro batch x accumulation x world size.

The encoder, MAE and temporal-model sections are parameter sets of the models package's own frozen configs
(`ViTConfig`, `MAEConfig`, `TemporalConfig`): their keys and types are checked against those dataclasses, so a
model field is defined in one place only.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from core.errors import HarnessError
from core.hashing import stable_hash
from core.widths import AUDIO_FEATURE_WIDTHS
from models.configs import MAEConfig, ResNetConfig, TemporalConfig, ViTConfig
from models.errors import ModelConfigError

CONFIG_DIR = Path(__file__).with_name("configs")
"""Where the named configs (`paper`, `demo`, `quick`) live."""

AUDIO_DIMS = AUDIO_FEATURE_WIDTHS
"""Per-frame width of each audio feature in the cache (paper III.C)."""

_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")

MAX_SEED = 2**32 - 1
"""Largest seed (numpy's and DataLoader's seeds are 32-bit)."""

MAX_CONFIG_INT = 2**63 - 1
"""Largest integer of any config field (beyond it a value is absurd and overflows torch and numpy)."""

BASELINE_ROW = "baseline"
"""The row of `experiment.ablation_models` that trains the challenge baseline (`baseline` section) instead of a
temporal model; it also gives Table I's "Baseline" row (fold 0)."""

NO_REFINE_ROW = "no_refine"
"""The row of `experiment.ablation_models` that trains the config's model without label refinement
(`data.refine_labels=false`): what refinement adds is the paired difference of this row and the model's own."""

UNHASHED_SECTIONS = ("name", "runtime", "experiment")
"""Parts of a config that do not change a trained model (logging, worker count, which folds to run)."""


class ConfigError(HarnessError):
    """A config file or override that cannot be used: names the dotted key and what is wrong."""


def _spec(**meta: Any) -> Any:
    """A required dataclass field carrying range checks (`ge`, `gt`, `le`, `lt`) for the loader."""
    return field(metadata=meta)


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
    warmup_steps: int = _spec(ge=0)
    restart_epochs: float = _spec(gt=0.0)
    t_mult: int = _spec(ge=1)
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

    epochs: int = _spec(ge=0)
    micro_batch: int = _spec(ge=1)
    grad_accum: int = _spec(ge=1)
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
    params: tuple[tuple[str, Any], ...]

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
    frames_per_video: int | None = _spec(ge=1)
    params: tuple[tuple[str, Any], ...]


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
    frames_per_video: int | None = _spec(ge=1)
    val_frames_per_video: int | None = _spec(ge=1)
    augment: AugmentConfig
    mae: MAEStageConfig
    finetune: LoopConfig
    extract_batch: int = _spec(ge=1)
    extract_unfinetuned: bool


@dataclass(frozen=True)
class WindowsConfig:
    """Stage-2 temporal windows (paper IV.C: 300 frames, stride 200).

    Args:
        length: frames per window.
        stride: frames between window starts (at most `length`, so that every frame is covered).
    """

    length: int = _spec(ge=1)
    stride: int = _spec(ge=1)


@dataclass(frozen=True)
class DataConfig:
    """How training labels are prepared.

    Args:
        refine_labels: give training frames whose V/A is -5 but whose expression is annotated a refined target
            (`harness.refine`, paper IV.A after [29]); validation and test scoring never see refined labels.
        refine_tau: frames over which a refined target moves from the neighbouring annotated V/A to the
            expression class's mean V/A (the weight of the neighbours is exp(-distance / refine_tau)).
    """

    refine_labels: bool
    refine_tau: float = _spec(gt=0.0, le=1e6)


@dataclass(frozen=True)
class ModelConfig:
    """The stage-2 temporal model: a registered name plus `TemporalConfig` field overrides.

    Args:
        name: `bdca`, `bdca_no_dw`, `concat`, `audio_only` or `visual_only` (Table IV's rows).
        params: `TemporalConfig` fields (tcn_channels, num_layers, ...); visual_dim and audio_dim are derived.
    """

    name: str
    params: tuple[tuple[str, Any], ...]


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
    frames_per_video: int | None = _spec(ge=1)
    val_frames_per_video: int | None = _spec(ge=1)
    hflip: float = _spec(ge=0.0, le=1.0)
    loop: LoopConfig
    params: tuple[tuple[str, Any], ...]


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
    """

    folds: tuple[int, ...]
    k: int = _spec(ge=2)
    fold_seed: int = _spec(ge=0, le=MAX_SEED)
    ablation_models: tuple[str, ...]
    ablation_folds: tuple[int, ...]
    table3: bool
    seeds: tuple[int, ...] = _spec(ge=0, le=MAX_SEED)


@dataclass(frozen=True)
class RuntimeConfig:
    """Settings that do not change results (not part of the hash).

    Args:
        num_workers: DataLoader worker processes.
        progress: show rich progress bars.
        eval_batch: windows (stage 2) or frames (stage 1) per forward when evaluating and predicting.
        threads: torch intra-op threads; 0 keeps torch's default (one per core).
    """

    num_workers: int = _spec(ge=0)
    progress: bool
    eval_batch: int = _spec(ge=1)
    threads: int = _spec(ge=0)


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

    def temporal_config(self, model_name: str | None = None) -> TemporalConfig:
        """The stage-2 model's config with derived dims.

        Args:
            model_name: another registered temporal model (for ablations); None takes `model.name`.
        """
        from models.registry import get_config

        cfg = get_config(
            model_name or self.model.name,
            **dict(self.model.params),
            visual_dim=self.visual_dim,
            audio_dim=self.audio_dim,
        )
        assert isinstance(cfg, TemporalConfig)
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
        """Build and check a Config from a complete dict (as `to_dict` gives it).

        Raises:
            ConfigError: naming the dotted key of the first problem.
        """
        cfg = _build(cls, data, "")
        _check_cross(cfg)
        return cfg

    def replace(self, **changes: Any) -> Config:
        """A copy with dotted keys changed, checked like a loaded file: `cfg.replace(**{"stage2.epochs": 3})`."""
        data = self.to_dict()
        for key, value in changes.items():
            _set_dotted(data, key, value, "replace")
        return Config.from_dict(data)


def config_hash(cfg: Config, extra: Mapping[str, Any] | None = None) -> str:
    """Stable hash of everything that changes a trained model (not `name`, `runtime`, `experiment`).

    Args:
        cfg: the config.
        extra: more values that identify the result (e.g. the fold), hashed along.
    """
    data = {k: v for k, v in cfg.to_dict().items() if k not in UNHASHED_SECTIONS}
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


# ---------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------


def config_path(name_or_path: str | Path) -> Path:
    """The file of a named config (`paper`, `demo`, `quick`) or the given YAML path.

    Raises:
        ConfigError: when neither exists.
    """
    p = Path(name_or_path)
    if p.suffix in {".yaml", ".yml"} or (p.exists() and not p.is_dir()):
        if not p.exists():
            raise ConfigError(f"{p}: config file not found")
        return p  # a folder or a FIFO is refused by the reader, with what it is
    named = CONFIG_DIR / f"{name_or_path}.yaml"
    if not named.is_file():
        known = ", ".join(sorted(f.stem for f in CONFIG_DIR.glob("*.yaml")))
        raise ConfigError(f"no config named {name_or_path!r}; known: {known} (or pass a .yaml path)")
    return named


MAX_CONFIG_BYTES = 1024 * 1024
"""Largest config file read (the paper's config is about 6 kB)."""

MAX_YAML_DEPTH = 64
"""Deepest nesting of mappings and lists a config may have (the configs use 4 levels)."""

MAX_YAML_NODES = 100_000
"""Most nodes a config may hold once its aliases are expanded: an alias bomb (aliases of aliases) is refused here,
before anything is built from it."""

MAX_BASE_CHAIN = 8
"""Longest chain of `base:` inheritance."""


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a nesting depth bound and an alias-expansion budget (see `load_yaml_text`)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        # Composing recurses once per nesting level: bounding it here refuses a 10,000-deep document before
        # Python's recursion limit turns it into a RecursionError.
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise ConfigError(f"{self.name}:{mark.line + 1}: nesting deeper than {MAX_YAML_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _expanded_size(root: yaml.Node, source: str) -> int:
    """Nodes of the document once every alias is expanded, without expanding anything (memoised by node).

    Raises:
        ConfigError: more than `MAX_YAML_NODES` nodes, or an alias that contains itself.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ConfigError(f"{source}:{node.start_mark.line + 1}: an alias refers to a node that "
                              "contains it (a recursive structure)")  # fmt: skip
        active.add(key)
        n = 1
        if isinstance(node, yaml.SequenceNode):
            n += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            n += sum(size(k) + size(v) for k, v in node.value)
        active.discard(key)
        if n > MAX_YAML_NODES:
            raise ConfigError(f"{source}:{node.start_mark.line + 1}: expands to more than {MAX_YAML_NODES:,} "
                              "values (aliases of aliases: a YAML bomb?); refusing it")  # fmt: skip
        sizes[key] = n
        return n

    return size(root)


def load_yaml_text(text: str, source: str = "<yaml>") -> Any:
    """Parse YAML with the safe loader, refusing nesting beyond `MAX_YAML_DEPTH` and alias expansion beyond
    `MAX_YAML_NODES` nodes before any Python object is built.

    Args:
        text: the document.
        source: its file name, for messages.

    Raises:
        ConfigError: not valid YAML, too deep, or too large once expanded; the message names the file and line.
    """
    loader = None
    try:
        loader = _BoundedLoader(text)  # the reader checks the characters here already
        loader.name = source
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        what = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(f"{where}: not valid YAML ({what})") from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer of more digits than Python converts
        raise ConfigError(f"{source}: a value cannot be read ({' '.join(str(exc).split())[:120]})") from None
    finally:
        if loader is not None:
            loader.dispose()


def _read_config_text(path: Path) -> str:
    """The text of a config file: a bounded regular file (not a FIFO or a folder) in UTF-8."""
    from submissions import FormatError
    from submissions.limits import read_bounded

    try:
        data = read_bounded(path, "config file", MAX_CONFIG_BYTES)
    except FormatError as exc:
        raise ConfigError(str(exc.problems[0]).rsplit(" [", 1)[0]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        chain = " -> ".join(str(p) for p in (*seen, path))
        raise ConfigError(f"{path}: `base` chain loops: {chain}")
    if len(seen) >= MAX_BASE_CHAIN:
        raise ConfigError(f"{path}: `base` chain longer than {MAX_BASE_CHAIN} files")
    data = load_yaml_text(_read_config_text(path), str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{path}: `base` must name a config (demo, quick, ...) or a .yaml file, got {base!r}")
    base_path = Path(base) if Path(base).suffix in {".yaml", ".yml"} else None
    if base_path is not None and not base_path.is_absolute():
        base_path = path.parent / base_path
    merged = _read_yaml(base_path or config_path(base), (*seen, path))
    return _deep_merge(merged, data)


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in top.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """`"trainer.epochs=3"` -> `("trainer.epochs", 3)`; the value is read as YAML (numbers, lists, null).

    Raises:
        ConfigError: without `=` or with an empty key.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    try:
        value = load_yaml_text(raw, f"--set {key}") if raw.strip() else ""
    except ConfigError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from None
    return key, value


def _set_dotted(data: dict[str, Any], key: str, value: Any, origin: str) -> None:
    parts = key.split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node, dict) or part not in node or not isinstance(node[part], dict):
            raise ConfigError(f"{origin}: unknown key {'.'.join(parts[: i + 1])!r} (in {key!r})")
        node = node[part]
    node[parts[-1]] = value


def load_config(name_or_path: str | Path, overrides: Sequence[str] | Mapping[str, Any] = ()) -> Config:
    """Load a named config or a YAML file, apply dotted overrides, check everything.

    Args:
        name_or_path: `paper`, `demo`, `quick`, or a path to a YAML file.
        overrides: `["stage2.epochs=3", ...]` (CLI `--set`) or a mapping `{"stage2.epochs": 3}`.

    Raises:
        ConfigError: unknown key, wrong type or out-of-range value, with its dotted path.
    """
    path = config_path(name_or_path)
    data = _read_yaml(path)
    data.setdefault("name", path.stem)
    items = overrides.items() if isinstance(overrides, Mapping) else (parse_override(o) for o in overrides)
    for key, value in items:
        _set_dotted(data, key, value, "--set")
    try:
        return Config.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


# ---------------------------------------------------------------------------------------------------------------
# Building and checking
# ---------------------------------------------------------------------------------------------------------------

_PARAM_SECTIONS: dict[tuple[type, str], tuple[type, frozenset[str]]] = {
    # (owner class, field): (models config class whose fields are allowed, fields that may not be set)
    (EncoderConfig, "params"): (ViTConfig, frozenset()),
    (MAEStageConfig, "params"): (
        MAEConfig,
        frozenset(f.name for f in dataclasses.fields(ViTConfig)),  # the encoder's fields come from `encoder`
    ),
    (ModelConfig, "params"): (TemporalConfig, frozenset({"fusion", "visual_dim", "audio_dim"})),
    (BaselineConfig, "params"): (ResNetConfig, frozenset()),
}
_FLAT_PARAM_OWNERS = {
    EncoderConfig: ("name", "checkpoint"),
    ModelConfig: ("name",),
    MAEStageConfig: ("loop", "frames_per_video"),
    BaselineConfig: ("name", "weights", "frames_per_video", "val_frames_per_video", "hflip", "loop"),
}


def _where(path: str) -> str:
    return path or "<top>"


def _short(value: Any, limit: int = 60) -> str:
    """`repr(value)` cut to `limit` characters (a hostile value never fills a message)."""
    if isinstance(value, int) and abs(value) >= 10**40:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check_value(value: Any, tp: Any, path: str) -> Any:
    """Check `value` against the type hint `tp`; return it normalised (lists -> tuples, ints -> floats)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(value, arg, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{_where(path)}: {value!r} is not a {_type_name(tp)}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{_where(path)}: {value!r} is not one of {', '.join(map(repr, choices))}")
        return value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{_where(path)}: expected a list, got {type(value).__name__} {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check_value(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{_where(path)}: expected a list of {len(args)} values, got {len(value)}")
        return tuple(_check_value(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{_where(path)}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{_where(path)}: expected an integer, got {type(value).__name__} {_short(value)}")
        if abs(value) > MAX_CONFIG_INT:
            raise ConfigError(f"{_where(path)}: {_short(value)} is out of range (an integer in this config is at most "
                              f"{MAX_CONFIG_INT} in size)")  # fmt: skip
        return value
    if tp is float:
        # PyYAML reads `1e-3` (no dot) as a string (YAML 1.1); accept it as the number it plainly is.
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{_where(path)}: expected a number, got {type(value).__name__} {_short(value)}")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise ConfigError(f"{_where(path)}: {_short(value)} is not a finite number")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{_where(path)}: expected a string, got {type(value).__name__} {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    raise ConfigError(f"{_where(path)}: unsupported field type {tp!r}")  # pragma: no cover - a bug here


def _check_range(value: Any, meta: Mapping[str, Any], path: str) -> None:
    if value is None:
        return
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if not isinstance(v, int | float) or isinstance(v, bool):
            continue
        for key, ok, word in (
            ("ge", lambda a, b: a >= b, ">="),
            ("gt", lambda a, b: a > b, ">"),
            ("le", lambda a, b: a <= b, "<="),
            ("lt", lambda a, b: a < b, "<"),
        ):
            if key in meta and not ok(v, meta[key]):
                raise ConfigError(f"{_where(path)}: {value!r} out of range (must be {word} {meta[key]})")


def _build_params(cls: type, owner: type, fname: str, data: Mapping[str, Any], path: str) -> tuple:
    """Check a parameter set against a models config class; return it as sorted (key, value) pairs."""
    target, forbidden = _PARAM_SECTIONS[(owner, fname)]
    hints = typing.get_type_hints(target)
    names = {f.name for f in dataclasses.fields(target)}
    out = []
    for key, value in data.items():
        p = f"{path}.{key}" if path else key
        if key in forbidden:
            raise ConfigError(f"{p}: may not be set here (it is derived or set in another section)")
        if key not in names:
            allowed = ", ".join(sorted(names - forbidden))
            raise ConfigError(f"{p}: unknown key; {target.__name__} fields: {allowed}")
        out.append((key, _check_value(value, hints[key], p)))
    return tuple(sorted(out))


def _build(cls: type, data: Any, path: str) -> Any:
    """Build dataclass `cls` from a mapping, checking keys, types and ranges."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{_where(path)}: expected a mapping, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    data = dict(data)
    # Sections whose extra keys are model parameters: `encoder: {name, checkpoint, img_size, ...}`.
    if cls in _FLAT_PARAM_OWNERS:
        params = {k: data.pop(k) for k in list(data) if k not in _FLAT_PARAM_OWNERS[cls]}
        data["params"] = params
    unknown = sorted(set(data) - set(fields))
    if unknown:
        p = f"{path}.{unknown[0]}" if path else unknown[0]
        raise ConfigError(f"{p}: unknown key (valid here: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        p = f"{path}.{name}" if path else name
        if name not in data:
            raise ConfigError(f"{p}: missing key")
        if (cls, name) in _PARAM_SECTIONS:
            value = data[name] or {}
            if not isinstance(value, Mapping):
                raise ConfigError(f"{p}: expected a mapping, got {type(value).__name__}")
            kwargs[name] = _build_params(cls, cls, name, value, path)
            continue
        value = _check_value(data[name], hints[name], p)
        _check_range(value, f.metadata, p)
        kwargs[name] = value
    return cls(**kwargs)


def _check_cross(cfg: Config) -> None:
    """Checks that involve several keys or the models registry."""
    from models.registry import get_config, list_models

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
    if cfg.encoder.name not in list_models("vit"):
        vits = ", ".join(list_models("vit"))
        raise ConfigError(f"encoder.name: {cfg.encoder.name!r} is not a registered ViT ({vits})")
    temporal = list_models("temporal")
    if cfg.model.name not in temporal:
        raise ConfigError(f"model.name: {cfg.model.name!r} is not a temporal model ({', '.join(temporal)})")
    if len(set(cfg.experiment.seeds)) != len(cfg.experiment.seeds):
        raise ConfigError(f"experiment.seeds: a seed listed twice in {list(cfg.experiment.seeds)}")
    rows = (BASELINE_ROW, NO_REFINE_ROW)
    bad = [m for m in cfg.experiment.ablation_models if m not in temporal and m not in rows]
    if bad:
        raise ConfigError(f"experiment.ablation_models: {bad} not temporal models ({', '.join(temporal)}) "
                          f"nor {BASELINE_ROW!r} or {NO_REFINE_ROW!r}")  # fmt: skip
    if NO_REFINE_ROW in cfg.experiment.ablation_models and not cfg.data.refine_labels:
        raise ConfigError(f"experiment.ablation_models: {NO_REFINE_ROW!r} compares a model with and without label "
                          "refinement, but data.refine_labels is false (set it true, or drop the row)")
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
        *((f"experiment.ablation_models ({m})", lambda m=m: cfg.temporal_config(m))
          for m in cfg.experiment.ablation_models if m not in rows),
    ):  # fmt: skip
        try:
            build()
        except (ModelConfigError, TypeError, ValueError) as exc:
            raise ConfigError(f"{section}: {exc}") from None
    if cfg.encoder.name in list_models("vit"):
        get_config(cfg.encoder.mae_name)


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if (type(obj), f.name) in _PARAM_SECTIONS:
                params = {k: _to_plain(v) for k, v in value}
                if type(obj) in _FLAT_PARAM_OWNERS:
                    out.update(params)
                else:
                    out[f.name] = params
            else:
                out[f.name] = _to_plain(value)
        return out
    if isinstance(obj, tuple | list):
        return [_to_plain(v) for v in obj]
    return obj


def dumps(cfg: Config) -> str:
    """Canonical JSON of a config (for logs and tests)."""
    return json.dumps(cfg.to_dict(), sort_keys=True)


# ---------------------------------------------------------------------------------------------------------------
# Command-line helpers (shared by the train/predict/folds/ablate commands)
# ---------------------------------------------------------------------------------------------------------------


def add_config_arguments(parser: Any, default: str = "demo") -> None:
    """`--config NAME|FILE` and repeatable `--set KEY=VALUE` on an argparse parser.

    Args:
        parser: the command's parser.
        default: the config used without `--config`.
    """
    parser.add_argument("--config", default=default,
                        help=f"config name (paper, demo, quick) or YAML file (default: {default})")  # fmt: skip
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set stage2.epochs=3 (repeatable)")  # fmt: skip


def config_from_args(args: Any) -> Config:
    """The config named by `--config` with the `--set` overrides applied."""
    return load_config(args.config, list(args.overrides or []))
