"""Threads, precision and the DeepSpeed config of a training phase: what runs in which dtype, and the ZeRO/batch
settings DeepSpeed is given (derived from the config, never typed twice).
"""

from __future__ import annotations

from typing import Any

import torch

from harness.config import DeepSpeedSection, LoopConfig, train_batch_size
from harness.train.errors import TrainError

# ---------------------------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------------------------


def set_threads(threads: int) -> None:
    """Set torch's intra-op threads (`runtime.threads`); 0 leaves torch's default."""
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto` -> bf16 on a GPU that supports it, else fp32; explicit half precision on a CPU is an error.

    Args:
        precision: the config's value.
        device: the training device.
    """
    if precision == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return "bf16"
        return "fp32"
    if precision in ("bf16", "fp16") and device.type != "cuda":
        raise TrainError(
            f"deepspeed.precision: {precision} on a CPU (measured ~0.3 GFLOP/s for bf16 here); use fp32 or auto"
        )
    return precision


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype inputs are cast to for a resolved precision."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)


def deepspeed_config(loop: LoopConfig, ds: DeepSpeedSection, world_size: int, precision: str) -> dict[str, Any]:
    """The DeepSpeed config dict of one training phase (the only place it is built).

    Args:
        loop: the phase's batch sizes and clipping.
        ds: ZeRO stage.
        world_size: number of processes.
        precision: resolved precision (`fp32`, `bf16`, `fp16`).
    """
    cfg: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": loop.micro_batch,
        "gradient_accumulation_steps": loop.grad_accum,
        "train_batch_size": train_batch_size(loop, world_size),
        "gradient_clipping": loop.grad_clip,
        "zero_optimization": {"stage": ds.zero_stage},
        # torch's AdamW is passed in as a client optimiser (no op compilation); ZeRO wraps it.
        "zero_allow_untested_optimizer": True,
        "bf16": {"enabled": precision == "bf16"},
        "fp16": {"enabled": precision == "fp16"},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    return cfg
