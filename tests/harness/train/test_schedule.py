"""The learning-rate schedule: warm-up boundaries, cosine restarts equal to torch's, the scheduler's state."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from harness.config import load_config
from harness.train.schedule import Schedule, WarmupCosineRestarts, cycle_position, lr_at

PAPER = Schedule(start_lr=3e-5, peak_lr=5e-3, warmup_steps=100, t0_steps=50, t_mult=1, min_lr=1e-5)


def test_warmup_boundaries():
    assert lr_at(0, PAPER) == pytest.approx(3e-5)
    assert lr_at(50, PAPER) == pytest.approx(3e-5 + (5e-3 - 3e-5) / 2)
    assert lr_at(99, PAPER) < 5e-3
    assert lr_at(100, PAPER) == pytest.approx(5e-3)  # warm-up ends at the peak: the cosine starts there
    assert lr_at(125, PAPER) == pytest.approx(1e-5 + (5e-3 - 1e-5) / 2)  # half a cycle: the midpoint
    assert lr_at(149, PAPER) == pytest.approx(1e-5 + (5e-3 - 1e-5) * (1 + math.cos(math.pi * 49 / 50)) / 2)
    assert lr_at(150, PAPER) == pytest.approx(5e-3)  # restart
    with pytest.raises(ValueError):
        lr_at(-1, PAPER)


def test_no_warmup_starts_at_peak():
    s = Schedule(1e-4, 1e-2, 0, 10, 1, 0.0)
    assert lr_at(0, s) == pytest.approx(1e-2)
    assert lr_at(5, s) == pytest.approx(5e-3)


@pytest.mark.parametrize("t_mult", [1, 2, 3])
def test_cosine_part_equals_torch_cosine_annealing_warm_restarts(t_mult):
    s = Schedule(1e-5, 1e-2, 7, 5, t_mult, 1e-4)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=s.peak_lr)
    ref = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=s.t0_steps, T_mult=t_mult, eta_min=s.min_lr)
    for k in range(120):
        assert lr_at(s.warmup_steps + k, s) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9, abs=1e-12), k
        opt.step()
        ref.step()


@given(st.integers(0, 10_000), st.integers(1, 50), st.integers(1, 3))
def test_cycle_position_is_inside_its_cycle(t, t0, t_mult):
    t_cur, t_i = cycle_position(t, t0, t_mult)
    assert 0 <= t_cur < t_i
    assert t_i % t0 == 0


@given(st.integers(0, 5000))
def test_lr_stays_between_floor_and_peak(step):
    assert PAPER.min_lr - 1e-12 <= lr_at(step, PAPER) <= PAPER.peak_lr + 1e-12


def test_scheduler_steps_and_restores():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p, torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupCosineRestarts(opt, PAPER)
    seen = [opt.param_groups[0]["lr"]]
    for _ in range(130):
        opt.step()
        sched.step()
        seen.append(opt.param_groups[0]["lr"])
    assert seen == pytest.approx([lr_at(k, PAPER) for k in range(131)])
    state = sched.state_dict()
    assert set(state) == {"last_epoch", "_step_count", "_last_lr"}
    opt2 = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched2 = WarmupCosineRestarts(opt2, PAPER)
    sched2.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == pytest.approx(lr_at(130, PAPER))
    opt2.step()
    sched2.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(lr_at(131, PAPER))


def test_from_config_converts_restart_epochs_to_steps():
    cfg = load_config("paper").stage2.schedule
    s = Schedule.from_config(cfg, steps_per_epoch=37)
    assert s.t0_steps == round(cfg.restart_epochs * 37)
    assert (s.start_lr, s.peak_lr, s.warmup_steps) == (3e-5, 5e-3, cfg.warmup_steps)
    assert Schedule.from_config(cfg, steps_per_epoch=0).t0_steps >= 1
