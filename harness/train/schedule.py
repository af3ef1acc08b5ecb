"""The learning-rate schedule of paper IV.C: linear warm-up, then cosine annealing with warm restarts.

    step < W:      lr = start + (peak - start) * step / W
    step >= W:     t = step - W; cycles of length T_0, T_0 * T_mult, T_0 * T_mult^2, ...;
                   lr = min + (peak - min) * (1 + cos(pi * t_cur / T_i)) / 2

The cosine part is torch's `CosineAnnealingWarmRestarts(T_0, T_mult, eta_min)` stepped once per optimiser step
(a test ties the two). `lr_at` is the pure function; `WarmupCosineRestarts` is the torch scheduler that DeepSpeed
steps and checkpoints (its state is the step count only, so a resumed run continues at the same step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.optim.lr_scheduler import LRScheduler

from harness.config import ScheduleConfig


@dataclass(frozen=True)
class Schedule:
    """A resolved schedule, in optimiser steps.

    Args:
        start_lr: learning rate at step 0.
        peak_lr: learning rate at the end of the warm-up and at each restart.
        warmup_steps: steps of the linear warm-up (0: start at the peak).
        t0_steps: length of the first cosine cycle.
        t_mult: cycle length multiplier.
        min_lr: the cosine's floor.
    """

    start_lr: float
    peak_lr: float
    warmup_steps: int
    t0_steps: int
    t_mult: int
    min_lr: float

    def __post_init__(self) -> None:
        if self.warmup_steps < 0 or self.t0_steps < 1 or self.t_mult < 1:
            raise ValueError(f"bad schedule: {self}")

    @classmethod
    def from_config(cls, cfg: ScheduleConfig, steps_per_epoch: int) -> Schedule:
        """Resolve `restart_epochs` to steps (at least one step).

        Args:
            cfg: the schedule section.
            steps_per_epoch: optimiser steps per epoch of the phase.
        """
        return cls(
            start_lr=cfg.warmup_start_lr,
            peak_lr=cfg.lr,
            warmup_steps=cfg.warmup_steps,
            t0_steps=max(1, round(cfg.restart_epochs * steps_per_epoch)),
            t_mult=cfg.t_mult,
            min_lr=cfg.min_lr,
        )


def cycle_position(t: int, t0: int, t_mult: int) -> tuple[int, int]:
    """(t_cur, T_i): the position inside the current cosine cycle and that cycle's length.

    Args:
        t: steps since the end of the warm-up (>= 0).
        t0: first cycle length.
        t_mult: cycle length multiplier.
    """
    if t_mult == 1:
        return t % t0, t0
    length = t0
    while t >= length:
        t -= length
        length *= t_mult
    return t, length


def lr_at(step: int, s: Schedule) -> float:
    """Learning rate at optimiser step `step` (0-based).

    Args:
        step: steps taken so far.
        s: the schedule.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step < s.warmup_steps:
        return s.start_lr + (s.peak_lr - s.start_lr) * step / s.warmup_steps
    t_cur, t_i = cycle_position(step - s.warmup_steps, s.t0_steps, s.t_mult)
    return s.min_lr + (s.peak_lr - s.min_lr) * (1.0 + math.cos(math.pi * t_cur / t_i)) / 2.0


class WarmupCosineRestarts(LRScheduler):
    """Torch scheduler for `lr_at`: every parameter group gets the schedule's rate; `step()` once per optimiser step.

    Args:
        optimizer: the optimiser whose groups it sets.
        schedule: the resolved schedule.
        last_epoch: the step to start from (-1: a fresh run).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, schedule: Schedule, last_epoch: int = -1):
        self.schedule = schedule
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [lr_at(max(self.last_epoch, 0), self.schedule) for _ in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        # Only counters: the schedule itself comes from the config, and plain values load with weights_only.
        return {"last_epoch": self.last_epoch, "_step_count": self._step_count, "_last_lr": list(self._last_lr)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.last_epoch = int(state_dict["last_epoch"])
        self._step_count = int(state_dict.get("_step_count", self.last_epoch + 1))
        self._last_lr = list(state_dict.get("_last_lr", self.get_lr()))
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            group["lr"] = lr
