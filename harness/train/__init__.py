"""The training loop and what it is made of: the strategy that owns the engine, the sampler, optimiser, precision,
checkpoints, weights and schedule. Knows no stage and no dataset.

Public names are re-exported lazily (PEP 562): `from harness.train import X` imports only X's module.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "ADAMW_IMPLEMENTATIONS": "harness.train.optimiser",
    "CKPT_PREFIX": "harness.train.checkpoint",
    "DeepSpeedStrategy": "harness.train.strategy",
    "ENGINES": "harness.train.strategy",
    "EngineName": "harness.train.strategy",
    "EngineStrategy": "harness.train.strategy",
    "EpochBatchSampler": "harness.train.sampler",
    "EvalFn": "harness.train.loop",
    "FitResult": "harness.train.loop",
    "Forward": "harness.train.loop",
    "KEEP_FP32": "harness.train.loop",
    "LATEST_FILE": "harness.train.strategy",
    "LATEST_MAX_BYTES": "harness.train.checkpoint",
    "LossFn": "harness.train.loop",
    "Schedule": "harness.train.schedule",
    "TORCH_STATE_FILE": "harness.train.strategy",
    "TorchStrategy": "harness.train.strategy",
    "TrainError": "harness.train.errors",
    "WarmupCosineRestarts": "harness.train.schedule",
    "WeightsError": "harness.train.weights",
    "adamw_implementation": "harness.train.optimiser",
    "adamw_name": "harness.train.optimiser",
    "build_adamw": "harness.train.optimiser",
    "compute_dtype": "harness.train.precision",
    "cycle_position": "harness.train.schedule",
    "deepspeed_config": "harness.train.precision",
    "engine_strategy": "harness.train.strategy",
    "fit": "harness.train.loop",
    "full_state_dict": "harness.train.weights",
    "load_weights": "harness.train.weights",
    "lr_at": "harness.train.schedule",
    "resolve_precision": "harness.train.precision",
    "save_weights": "harness.train.weights",
    "seed_epoch": "harness.train.sampler",
    "set_threads": "harness.train.precision",
    "steps_per_epoch": "harness.train.sampler",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness.train' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
