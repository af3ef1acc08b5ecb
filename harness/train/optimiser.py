"""The optimiser every phase uses: torch's AdamW, its fused kernel wherever torch has one for the device, else the
foreach implementation (`build_adamw`); no weight decay on biases and norms.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    # Biases and norm weights (1-D) get no weight decay: the usual AdamW practice.
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


ADAMW_IMPLEMENTATIONS = ("fused", "foreach", "for-loop")
"""torch's AdamW implementations, fastest first: one kernel over all tensors, one op per step over lists of
tensors, and a loop of about ten small ops per parameter tensor (torch's default on a CPU)."""


@functools.cache
def adamw_implementation(device_type: str, dtype: torch.dtype = torch.float32) -> str:
    """The fastest AdamW implementation torch runs for `dtype` parameters on `device_type` (`ADAMW_IMPLEMENTATIONS`).

    torch decides support only at the first `step` (a fused optimiser built for an unsupported device or dtype
    constructs fine and then raises), so each candidate takes one step on a two-element parameter; the answer
    is cached per (device type, dtype).

    Args:
        device_type: `cpu`, `cuda`, ... (where the optimiser's parameters live).
        dtype: the parameters' dtype.
    """
    for kind in ADAMW_IMPLEMENTATIONS[:-1]:
        try:
            p = torch.zeros(2, dtype=dtype, device=device_type, requires_grad=True)
            p.grad = torch.ones_like(p)
            torch.optim.AdamW([p], lr=1e-3, **{kind: True}).step()
        except (RuntimeError, ValueError, TypeError, NotImplementedError):
            continue
        return kind
    return ADAMW_IMPLEMENTATIONS[-1]


def build_adamw(params: Any, device: torch.device, *, lr: float, betas: tuple[float, float],
                weight_decay: float) -> torch.optim.AdamW:  # fmt: skip
    """torch's AdamW in its fastest implementation for `device` (see `adamw_implementation`).

    The fused kernel is one pass over all parameters; torch's default on a CPU is a loop of about ten small
    parallel ops per parameter tensor, each a barrier for the intra-op threads (measured at B 8 x T 300 with
    the paper's dimensions, 2 threads: 25 ms less per stage-2 step on a quiet machine, 6.4 -> 1.8 s on a busy
    one). The implementation is chosen for float32 parameters: under DeepSpeed the optimiser always steps fp32
    master weights (ZeRO 1-3 flat partitions, or the bf16/fp16 wrappers' masters), on the training device.
    Fused and foreach give the same update as the loop up to float rounding.

    Args:
        params: parameters or parameter groups.
        device: the training device.
        lr: initial learning rate (the schedule sets it per step).
        betas: Adam's (beta1, beta2).
        weight_decay: decoupled weight decay (groups may override it).
    """
    kind = adamw_implementation(device.type)
    flags = {kind: True} if kind != "for-loop" else {}
    return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay, **flags)


def adamw_name(optimizer: torch.optim.Optimizer) -> str:
    """`adamw fused`, `adamw foreach` or `adamw for-loop`: how `optimizer` (a torch AdamW) steps."""
    d = optimizer.defaults
    kind = "fused" if d.get("fused") else "foreach" if d.get("foreach") else "for-loop"
    return f"adamw {kind}"
