"""The config's constants: row names, section names, field-metadata keys, upper bounds, and the field helpers
that carry range checks and parameter sets (read by `harness.config.checks`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import MISSING, field
from typing import Any

from core.widths import AUDIO_FEATURE_WIDTHS

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

LATER_FIELDS = {("data", "modality_dropout"): 0.0}
"""Hashed fields added after run folders existed, with the value that leaves a hash as it was: at that value the
field stays out of `config_hash`, so a finished run of a config that does not use it keeps its hash (and is reused)."""

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


def spec(default: Any = MISSING, **meta: Any) -> Any:
    """A dataclass field carrying range checks (`ge`, `gt`, `le`, `lt`) for the loader; required unless given a
    `default`."""
    return field(default=default, metadata=meta)


def params_field(target: type, fixed: Iterable[str] = (), nested: bool = False) -> Any:
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
