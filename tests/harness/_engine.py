"""A tiny learnable problem for the tests of the training loop (`harness.train.loop.fit`): data, model, loss,
validation,
loop settings, and a loss that stands in for a process killed mid-epoch.

Shared by the loop's own tests, exact resume, TensorBoard events and the limits of the security tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from harness.config import DeepSpeedSection, LoopConfig, load_config
from submissions.metrics import score_va

ZERO0 = DeepSpeedSection(zero_stage=0, precision="fp32")
"""ZeRO off, fp32: the plain loop."""


class Pairs(Dataset):
    """y = tanh(x W) for a fixed W: a learnable regression with two outputs."""

    def __init__(self, n: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(8, 2, generator=torch.Generator().manual_seed(99))
        self.x = torch.randn(n, 8, generator=g)
        self.y = torch.tanh(self.x @ w * 0.5)

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}


def tiny_model(seed: int = 0) -> nn.Module:
    """A two-layer MLP (with dropout, so that the loop's seeding matters) initialised from `seed`."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2), nn.Tanh())


def loss_fn(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """1 - mean CCC of the batch (the stage-2 loss on `Pairs`)."""
    from models.losses import ccc_loss

    return ccc_loss(model(batch["x"]).float(), batch["y"].float())


def evaluator(data: Pairs) -> Callable[[Callable[[torch.Tensor], torch.Tensor]], dict[str, float]]:
    """The validation of `fit`: CCC of the forward pass over all of `data`."""

    def evaluate(forward: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, float]:
        s = score_va(data.y.numpy(), forward(data.x).numpy())
        return {"ccc_v": s.ccc_v, "ccc_a": s.ccc_a, "p_va": s.p_va}

    return evaluate


def loop_cfg(epochs: int = 3, micro: int = 8, accum: int = 1, **sched: Any) -> LoopConfig:
    """The quick config's stage-2 loop with these sizes and schedule overrides (`lr`, `restart_epochs`, ...)."""
    # The paper's peak lr unless a test says otherwise: these tiny problems are sized for it (the demo config's
    # own lr is tuned for the demo corpus and may change).
    sched.setdefault("lr", 5e-3)
    overrides = {"stage2.epochs": epochs, "stage2.micro_batch": micro, "stage2.grad_accum": accum,
                 "stage2.schedule.warmup_steps": 2, "stage2.schedule.restart_epochs": 2.0,
                 **{f"stage2.schedule.{k}": v for k, v in sched.items()}}  # fmt: skip
    return load_config("quick", overrides).stage2


class KilledError(Exception):
    """Stands in for a process killed in the middle of an epoch."""


def killing_loss(after: int) -> Callable[[Any, dict[str, torch.Tensor]], torch.Tensor]:
    """`loss_fn` that raises `KilledError` on its call after the `after`-th (one call per micro batch)."""
    calls = {"n": 0}

    def fn(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] > after:
            raise KilledError
        return loss_fn(model, batch)

    return fn
