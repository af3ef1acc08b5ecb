"""Run configuration: frozen dataclasses loaded from YAML, with dotted `--set` overrides, checked at load time.

One concern per module, every public name re-exported here (`from harness.config import load_config`):
- `limits`: constants (row and section names, field-metadata keys, upper bounds) and the field helpers;
- `sections`: one frozen dataclass per section;
- `schema`: `Config` and what derives from it (feature widths, model configs, the hash, DeepSpeed's batch size),
  and the checks across keys;
- `dotted`: dotted-path helpers (`set_dotted`);
- `rows`: the ablation table's rows as typed values (`TableRow`: a model, the baseline, no refinement);
- `loader`: named configs and YAML files, `base:` inheritance, `--set` overrides, bounded YAML parsing;
- `checks`: types and ranges of each field (`ConfigError` naming the dotted key, from `errors`);
- `cli`: the `--config`/`--set` arguments every command that takes a config uses.
"""

from __future__ import annotations

from harness.config.checks import MAX_CONFIG_INT
from harness.config.cli import (
    add_config_arguments,
    add_override_argument,
    config_from_args,
    field_type,
    overrides_from_args,
)
from harness.config.dotted import set_dotted
from harness.config.errors import ConfigError
from harness.config.limits import (
    AUDIO_DIMS,
    BASELINE_ROW,
    MAX_SEED,
    NO_REFINE_ROW,
    UNHASHED_SECTIONS,
    ZOO_SECTION,
)
from harness.config.loader import (
    CONFIG_DIR,
    MAX_BASE_CHAIN,
    MAX_CONFIG_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    config_path,
    dumps,
    load_config,
    load_yaml_text,
    parse_override,
)
from harness.config.rows import RowKind, TableRow, table_rows
from harness.config.schema import Config, check_cross, config_hash, train_batch_size
from harness.config.sections import (
    FINETUNED_VISUAL,
    UNFINETUNED_VISUAL,
    AugmentConfig,
    BaselineConfig,
    DataConfig,
    DeepSpeedSection,
    EncoderConfig,
    ExperimentConfig,
    FeaturesConfig,
    LoopConfig,
    MAEStageConfig,
    ModelConfig,
    PreprocessConfig,
    RuntimeConfig,
    ScheduleConfig,
    Stage1Config,
    WindowsConfig,
    ZooSection,
)

__all__ = [
    "AUDIO_DIMS",
    "BASELINE_ROW",
    "CONFIG_DIR",
    "FINETUNED_VISUAL",
    "MAX_BASE_CHAIN",
    "MAX_CONFIG_BYTES",
    "MAX_CONFIG_INT",
    "MAX_SEED",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "NO_REFINE_ROW",
    "UNFINETUNED_VISUAL",
    "UNHASHED_SECTIONS",
    "ZOO_SECTION",
    "AugmentConfig",
    "BaselineConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "DeepSpeedSection",
    "EncoderConfig",
    "ExperimentConfig",
    "FeaturesConfig",
    "LoopConfig",
    "MAEStageConfig",
    "ModelConfig",
    "PreprocessConfig",
    "RowKind",
    "RuntimeConfig",
    "ScheduleConfig",
    "Stage1Config",
    "TableRow",
    "WindowsConfig",
    "ZooSection",
    "add_config_arguments",
    "add_override_argument",
    "check_cross",
    "config_from_args",
    "config_hash",
    "config_path",
    "dumps",
    "field_type",
    "load_config",
    "load_yaml_text",
    "overrides_from_args",
    "parse_override",
    "set_dotted",
    "table_rows",
    "train_batch_size",
]
