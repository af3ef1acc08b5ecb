"""The model-agnostic training loop, shared by MAE pre-training, frame fine-tuning, stage 2 and the baseline.

The loop calls only its engine strategy (`harness.train.strategy`: `setup`, `backward`, `step`, `train`/`eval`,
`forward`, `save`/`load`): DeepSpeed by default (`deepspeed.initialize` with torch's AdamW as a client optimiser,
which compiles nothing, unlike DeepSpeedCPUAdam or the config's fused Adam, whose first build costs 60-140 s on a
CPU; ZeRO stage 0-3 and bf16/fp16 from the config), or plain torch in one process (`--engine torch`). The
warm-up + cosine-restarts schedule is stepped by the engine. The AdamW is torch's fused kernel wherever torch has
one for the device (`build_adamw`; CPU and CUDA in torch 2.14), else its foreach implementation. One process on a
CPU uses gloo; `torchrun --nproc_per_node N` gives N processes (ZeRO 1-3 shard across them).

Exact resume: batches come from `EpochBatchSampler`, a pure function of (seed, epoch, rank), and the torch RNG is
reseeded from (seed, epoch, rank) at the start of every epoch, so an epoch's batches, augmentations and dropout
masks do not depend on what ran before. A checkpoint is written after every epoch; `resume=True` loads the latest
(weights, optimiser, scheduler step) and continues with the next epoch: an interrupted and resumed run ends with
the same weights as an uninterrupted one.

The per-step losses and the evaluation are callbacks, so the loop knows nothing about the model:
- `loss_fn(model, batch) -> 0-d tensor`: `model` is what the engine strategy gives (the DeepSpeed engine, or the
  module itself; call it like the module), `batch` a dict of tensors already on the device (floating inputs in
  the compute dtype, `labels` kept in fp32);
- `evaluate(forward) -> dict`: `forward(*tensors)` runs the module in eval mode on the device and returns float32
  CPU tensors; the dict holds `ccc_v`, `ccc_a`, `p_va` (the best epoch is the one with the highest `p_va`).

Every process runs the evaluation (ZeRO-3 needs all of them for a forward); rank 0 writes the files.
"""

from __future__ import annotations

import gc
import math
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from harness.config import DeepSpeedSection, LoopConfig
from harness.folders.run import DS_CONFIG_FILE, RunDir
from harness.runtime.distributed import Strategy, current_strategy
from harness.runtime.progress import StepProgress, eta_seconds, format_duration
from harness.runtime.tb_events import EpochEvents
from harness.train.checkpoint import CKPT_PREFIX, _checkpoint_tags, _resume_tag
from harness.train.errors import TrainError
from harness.train.optimiser import _param_groups, adamw_name, build_adamw
from harness.train.precision import compute_dtype, deepspeed_config, resolve_precision
from harness.train.sampler import EpochBatchSampler, seed_epoch, steps_per_epoch
from harness.train.schedule import Schedule
from harness.train.strategy import EngineStrategy, engine_strategy
from harness.train.weights import save_weights

LossFn = Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]
Forward = Callable[..., torch.Tensor]
EvalFn = Callable[[Forward], Mapping[str, float]]




# ---------------------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class FitResult:
    """What a training phase produced.

    Args:
        best_epoch: epoch whose weights are in best.safetensors (-1 when no epoch ran).
        best: that epoch's validation metrics ({} without validation).
        history: the per-epoch records of metrics.jsonl.
        steps_per_epoch: optimiser steps per epoch.
        init_s: seconds spent in `deepspeed.initialize`.
        step_s: mean seconds per optimiser step in this session (0 when no step ran).
        extra: more facts of the run: `optimizer`, the AdamW implementation that stepped (`adamw_name`).
    """

    best_epoch: int
    best: dict[str, float]
    history: list[dict[str, Any]]
    steps_per_epoch: int
    init_s: float = 0.0
    step_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


KEEP_FP32 = ("labels",)
"""Batch keys never cast to half precision: targets keep their fp32 values (the loss runs in fp32)."""


def _to_device(batch: Mapping[str, Any], device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device, non_blocking=True)
            if v.is_floating_point() and dtype != torch.float32 and k not in KEEP_FP32:
                v = v.to(dtype)
        out[k] = v
    return out


def fit(
    model: nn.Module,
    train_set: Dataset,
    loss_fn: LossFn,
    loop: LoopConfig,
    ds: DeepSpeedSection,
    run: RunDir,
    *,
    seed: int,
    evaluate: EvalFn | None = None,
    collate: Callable[[list[Any]], Any] | None = None,
    resume: bool = False,
    num_workers: int = 0,
    progress: bool = False,
    label: str = "train",
    strategy: Strategy | None = None,
    engine: str | EngineStrategy = "deepspeed",
) -> FitResult:
    """Train `model` on `train_set` for `loop.epochs` epochs on the engine; checkpoint and log every epoch.

    The run folder must be prepared (`RunDir.prepare`); rank 0 writes ds_config.json, metrics.jsonl, TensorBoard
    events (tb/, `harness.runtime.tb_events`), checkpoints/ and best.safetensors. After this call `model` may be
    sharded or
    cast (ZeRO-3, bf16): build a fresh module and load best.safetensors to use the result.

    Each epoch is `_train_epoch`, then `_evaluate_and_keep_best`, then `_log_epoch` and `_checkpoint`; a resumed
    fit starts from `_restore`.

    Args:
        model: the module to train (its parameters with requires_grad=False stay frozen).
        train_set: map-style dataset.
        loss_fn: `(engine, batch) -> loss` (see the module docstring).
        loop: epochs, batch sizes, optimiser and schedule.
        ds: ZeRO stage and precision.
        run: the run folder.
        seed: run seed (sampling, augmentation, dropout).
        evaluate: `(forward) -> {"ccc_v", "ccc_a", "p_va", ...}` run after each epoch; None keeps the last epoch.
        collate: DataLoader collate function.
        resume: continue from the folder's latest checkpoint (a fresh start when it has none).
        num_workers: DataLoader workers.
        progress: show a rich progress bar (rank 0).
        label: name shown in the progress bar.
        strategy: the run's processes (None: this process's own, `harness.runtime.distributed.current_strategy`).
        engine: the engine strategy that trains: its name (`harness.train.strategy.ENGINES`: `deepspeed`, `torch`)
            or a strategy object.

    Raises:
        TrainError: the dataset is too small for one optimiser step, or the engine cannot run this phase.
    """
    strategy = current_strategy(strategy)
    trainer = engine_strategy(engine, strategy) if isinstance(engine, str) else engine
    precision = resolve_precision(ds.precision, strategy.device)
    dtype = compute_dtype(precision)
    ds_cfg = deepspeed_config(loop, ds, strategy.world_size, precision)
    n = len(train_set)  # type: ignore[arg-type]
    spe = steps_per_epoch(n, loop.micro_batch, loop.grad_accum, strategy.world_size)
    if spe < 1 and loop.epochs > 0:
        raise TrainError(
            f"{run.path}: {n} training samples make fewer than one optimiser step (micro batch {loop.micro_batch} x "
            f"accumulation {loop.grad_accum} x {strategy.world_size} process(es)); lower the batch size"
        )
    if strategy.on_main:
        run.write_json(DS_CONFIG_FILE, ds_cfg)
    schedule = Schedule.from_config(loop.schedule, max(spe, 1))
    optimizer = build_adamw(_param_groups(model, loop.weight_decay), strategy.device, lr=schedule.start_lr,
                            betas=loop.betas, weight_decay=loop.weight_decay)  # fmt: skip
    optimizer_name = adamw_name(optimizer)
    trained = trainer.setup(model, optimizer, schedule, ds_cfg)
    state = _restore(trainer, run, resume, strategy)

    def forward(*tensors: torch.Tensor) -> torch.Tensor:
        moved = [None if t is None else t.to(strategy.device) for t in tensors]
        moved = [t.to(dtype) if t is not None and t.is_floating_point() else t for t in moved]
        out = trainer.forward(*moved)
        return out.float().cpu() if isinstance(out, torch.Tensor) else out

    bar = _Progress(progress and strategy.on_main, label)
    # TensorBoard's view of metrics.jsonl (rank 0): written before the epoch's checkpoint, so a resume redoes
    # (and the purge step hides) exactly the epochs whose events might be stale.
    events = EpochEvents(run.tb_dir, state.start_epoch, state.history, enabled=strategy.on_main)
    step_times: list[float] = []
    try:
        for epoch in range(state.start_epoch, loop.epochs):
            seed_epoch(seed, epoch, strategy.rank)
            sampler = EpochBatchSampler(n, loop.micro_batch, loop.grad_accum, strategy.world_size, strategy.rank,
                                        seed, epoch)  # fmt: skip
            loader = DataLoader(train_set, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers)
            t_epoch = time.perf_counter()
            bar.start_epoch(epoch, loop.epochs, len(sampler))
            train_loss = _train_epoch(trainer, trained, loader, loss_fn, loop.grad_accum, bar, strategy, dtype,
                                      step_times)  # fmt: skip
            metrics, best_weights = _evaluate_and_keep_best(trainer, evaluate, forward, epoch, state)
            record = {
                "epoch": epoch,
                "step": trainer.global_steps,
                "train_loss": train_loss,
                **{f"val_{k}": v for k, v in metrics.items()},
                "lr": trainer.lr,
                "time_s": round(time.perf_counter() - t_epoch, 3),
            }
            _log_epoch(run, state, record, best_weights, events, strategy)
            _checkpoint(trainer, run, epoch, state, strategy)
            bar.end_epoch(record)
    finally:
        bar.close()
        events.close()
        # Drop the engine's references now: folds and ablations build many engines in one process.
        trainer.close()
        trained = optimizer = None
        gc.collect()
    return FitResult(
        best_epoch=state.best_epoch,
        best=state.best,
        history=state.history,
        steps_per_epoch=spe,
        init_s=trainer.init_s,
        step_s=float(np.mean(step_times)) if step_times else 0.0,
        extra={"optimizer": optimizer_name},
    )


@dataclass
class _FitState:
    """What a fit carries from epoch to epoch (and restores from a checkpoint's client state).

    Args:
        start_epoch: the first epoch this call trains.
        best_epoch: the epoch of the best validation P_VA so far (-1: none yet).
        best: that epoch's validation metrics.
        history: the epoch records so far (rank 0; empty elsewhere).
    """

    start_epoch: int = 0
    best_epoch: int = -1
    best: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


def _restore(trainer: EngineStrategy, run: RunDir, resume: bool, strategy: Strategy) -> _FitState:
    """The state to start from: the latest whole checkpoint's when resuming, else a fresh one (metrics cleared)."""
    state = _FitState(history=run.epoch_records() if strategy.on_main else [])
    tag = _resume_tag(run.checkpoints)
    if resume and tag is not None:
        client = trainer.load(run.checkpoints, tag)
        state.start_epoch = int(client.get("epoch", -1)) + 1
        state.best_epoch = int(client.get("best_epoch", -1))
        state.best = dict(client.get("best", {}))
        if strategy.on_main:
            run.truncate_epochs(state.start_epoch - 1)
            state.history = run.epoch_records()
    elif strategy.on_main:
        run.truncate_epochs(-1)
        state.history = []
    return state


def _train_epoch(trainer: EngineStrategy, model: nn.Module, loader: DataLoader, loss_fn: LossFn, grad_accum: int,
                 bar: _Progress, strategy: Strategy, dtype: torch.dtype, step_times: list[float]) -> float:  # fmt: skip
    """One pass over `loader` (`model`: what the engine gave the loss to call); appends each optimiser step's
    seconds to `step_times` and returns the mean loss over every process."""
    trainer.train()
    losses: list[float] = []
    t_step = time.perf_counter()
    for i, batch in enumerate(loader):
        loss = loss_fn(model, _to_device(batch, strategy.device, dtype))
        trainer.backward(loss)
        trainer.step()
        losses.append(float(loss.detach().float().item()))
        if (i + 1) % grad_accum == 0:
            now = time.perf_counter()
            step_times.append(now - t_step)
            t_step = now
        bar.advance(losses[-1], trainer.lr)
    return strategy.all_mean(float(np.mean(losses)) if losses else float("nan"))


def _evaluate_and_keep_best(trainer: EngineStrategy, evaluate: EvalFn | None, forward: Forward, epoch: int,
                            state: _FitState) -> tuple[dict[str, float], dict[str, torch.Tensor] | None]:  # fmt: skip
    """Validation metrics of this epoch, and the full weights when it beats the best so far (`state` updated).

    Without an evaluator every epoch counts as the best, so the last one is kept. Every process gathers the
    weights (a ZeRO-3 collective); rank 0 writes them.
    """
    metrics: dict[str, float] = {}
    if evaluate is not None:
        trainer.eval()
        with torch.no_grad():
            metrics = {k: float(v) for k, v in evaluate(forward).items()}
        trainer.train()
    score, best_score = metrics.get("p_va", -math.inf), state.best.get("p_va", -math.inf)
    improved = evaluate is None or state.best_epoch < 0 or score > best_score
    weights = trainer.full_state_dict() if improved else None
    if improved:
        state.best_epoch, state.best = epoch, metrics
    return metrics, weights


def _log_epoch(run: RunDir, state: _FitState, record: dict[str, Any], best_weights: dict[str, torch.Tensor] | None,
               events: EpochEvents, strategy: Strategy) -> None:  # fmt: skip
    """Rank 0: the best weights when they changed, then the epoch's JSON line and TensorBoard events."""
    if not strategy.on_main:
        return
    if best_weights is not None:
        save_weights(run.best_weights, best_weights)
    state.history.append(record)
    run.write_metrics(state.history)
    events.write(record)


def _checkpoint(trainer: EngineStrategy, run: RunDir, epoch: int, state: _FitState, strategy: Strategy) -> None:
    """Every process saves its part of the epoch's checkpoint; rank 0 then deletes the older ones."""
    client = {"epoch": epoch, "best_epoch": state.best_epoch, "best": state.best}
    trainer.save(run.checkpoints, f"{CKPT_PREFIX}{epoch:04d}", client)
    strategy.barrier()
    if strategy.on_main:
        for old in _checkpoint_tags(run.checkpoints)[:-1]:
            shutil.rmtree(run.checkpoints / old, ignore_errors=True)


class _Progress:
    """Epoch progress (harness.runtime.progress): in a terminal a bar over the epoch's steps (loss, lr); in every case
    one
    line per epoch with its scores and the ETA of the fit (off a terminal no per-step lines: they would flood logs).
    Nothing when disabled."""

    def __init__(self, enabled: bool, label: str):
        from rich.console import Console

        self.enabled, self.label = enabled, label
        self._console = Console() if enabled else None
        self._steps: Any = None
        self._t0: float | None = None
        self._first = self._epochs = 0

    def start_epoch(self, epoch: int, epochs: int, total: int) -> None:
        if self._console is None:
            return
        if self._t0 is None:  # the fit's ETA counts the epochs of this process (a resumed fit starts later)
            self._t0, self._first = time.perf_counter(), epoch
        self._epochs = epochs
        if self._console.is_terminal:
            self._steps = StepProgress(f"{self.label} {epoch + 1}/{epochs}", total=total, console=self._console)

    def advance(self, loss: float, lr: float) -> None:
        if self._steps is not None:
            self._steps.advance(info=f"loss {loss:.4f} lr {lr:.2e}")

    def end_epoch(self, record: Mapping[str, Any]) -> None:
        if self._console is None:
            return
        if self._steps is not None:
            self._steps.close()
            self._steps = None
        ccc = ""
        if "val_p_va" in record:
            ccc = f"  CCC V {record['val_ccc_v']:.3f} A {record['val_ccc_a']:.3f} P_VA {record['val_p_va']:.3f}"
        done = record["epoch"] + 1 - self._first
        eta = eta_seconds(done, self._epochs - self._first, time.perf_counter() - (self._t0 or time.perf_counter()))
        self._console.print(
            f"{self.label} epoch {record['epoch'] + 1}/{self._epochs}: loss {record['train_loss']:.4f}{ccc}"
            f"  lr {record['lr']:.2e}  ({record['time_s']:.1f} s, ETA {format_duration(eta)})",
            highlight=False, soft_wrap=True, markup=False,
        )

    def close(self) -> None:
        if self._steps is not None:
            self._steps.close()
            self._steps = None
