"""The engine a training phase runs on, behind one seam: the loop (`harness.train.loop.fit`) calls only these.

An engine strategy owns the engine from `setup` on: it builds it (DeepSpeed ZeRO, or a plain torch module), runs
`backward` and `step` (gradient accumulation, clipping and the learning-rate schedule inside), switches `train` and
`eval`, runs the module (`forward`), and `save`s and `load`s the epoch checkpoints in its own format. The loop
knows nothing of DeepSpeed.

- `DeepSpeedStrategy` (the default, `--engine deepspeed`): `deepspeed.initialize` with torch's AdamW as a client
  optimiser, ZeRO stage 0-3 and bf16/fp16 from the config; its checkpoints are DeepSpeed's, read back
  weights-only (`harness.runtime.safe_io.load_deepspeed_checkpoint`).
- `TorchStrategy` (`--engine torch`): the same optimiser, schedule, accumulation and clipping in plain torch, one
  process, fp32; its checkpoint is one weights-only `torch.save` file per epoch tag, with the same `latest` marker.
  It proves the seam and trains without DeepSpeed.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch import nn

from core.atomic import atomic_write_bytes, atomic_write_text
from core.ownership import check_plain_name
from harness.runtime.distributed import Strategy
from harness.runtime.safe_io import load_deepspeed_checkpoint
from harness.train.errors import TrainError
from harness.train.schedule import Schedule, WarmupCosineRestarts
from harness.train.weights import full_state_dict

EngineName = Literal["deepspeed", "torch"]
"""The engines `--engine` (the config's `runtime.engine`) selects."""

ENGINES: tuple[EngineName, ...] = ("deepspeed", "torch")

TORCH_STATE_FILE = "state.pt"
"""`TorchStrategy`'s checkpoint of one epoch: `<checkpoints>/<tag>/state.pt`."""
LATEST_FILE = "latest"
"""The marker both engines write after a whole checkpoint: it names the tag to resume from."""


class EngineStrategy(Protocol):
    """What the training loop asks of its engine (see the module docstring)."""

    name: str
    init_s: float
    """Seconds `setup` took."""

    def setup(self, model: nn.Module, optimizer: torch.optim.Optimizer, schedule: Schedule,
              ds_config: Mapping[str, Any]) -> nn.Module:  # fmt: skip
        """Take `model` and its optimiser; return what the loss callback calls as the model."""
        ...

    def forward(self, *tensors: Any) -> Any:
        """Run the module on already-placed inputs."""
        ...

    def train(self) -> None:
        """Training mode."""
        ...

    def eval(self) -> None:
        """Evaluation mode."""
        ...

    def backward(self, loss: torch.Tensor) -> None:
        """Gradients of one micro batch's loss (scaled for accumulation)."""
        ...

    def step(self) -> None:
        """End a micro batch: at an accumulation boundary clip, step the optimiser and the schedule."""
        ...

    @property
    def global_steps(self) -> int:
        """Optimiser steps taken so far (restored with a checkpoint)."""
        ...

    @property
    def lr(self) -> float:
        """The learning rate of the next step."""
        ...

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """The module's complete float32 CPU state dict (every process calls it)."""
        ...

    def save(self, folder: Path, tag: str, client: Mapping[str, Any]) -> None:
        """Save the whole training state under `folder/tag` (every process), then mark it `latest`."""
        ...

    def load(self, folder: Path, tag: str) -> dict[str, Any]:
        """Restore the training state saved under `folder/tag`; the client state `save` was given."""
        ...

    def close(self) -> None:
        """Drop the engine (folds and ablations build many in one process)."""
        ...


class DeepSpeedStrategy:
    """The DeepSpeed engine (ZeRO 0-3, bf16/fp16 from the DeepSpeed config), one per training phase.

    Args:
        processes: the run's processes (rank, world size, device).
    """

    name = "deepspeed"

    def __init__(self, processes: Strategy) -> None:
        self.processes = processes
        self.init_s = 0.0
        self._engine: Any = None
        self._scheduler: Any = None

    def setup(self, model: nn.Module, optimizer: torch.optim.Optimizer, schedule: Schedule,
              ds_config: Mapping[str, Any]) -> nn.Module:  # fmt: skip
        import deepspeed  # heavy, and a torch-only run never needs it

        t0 = time.perf_counter()
        self._engine, _, _, self._scheduler = deepspeed.initialize(
            model=model,
            optimizer=optimizer,
            lr_scheduler=lambda opt: WarmupCosineRestarts(opt, schedule),
            config=dict(ds_config),
        )
        self.init_s = time.perf_counter() - t0
        return self._engine

    def forward(self, *tensors: Any) -> Any:
        return self._engine(*tensors)

    def train(self) -> None:
        self._engine.train()

    def eval(self) -> None:
        self._engine.eval()

    def backward(self, loss: torch.Tensor) -> None:
        self._engine.backward(loss)

    def step(self) -> None:
        self._engine.step()

    @property
    def global_steps(self) -> int:
        return int(self._engine.global_steps)

    @property
    def lr(self) -> float:
        return float(self._scheduler.get_last_lr()[0])

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        return full_state_dict(self._engine)

    def save(self, folder: Path, tag: str, client: Mapping[str, Any]) -> None:
        self._engine.save_checkpoint(str(folder), tag=tag, client_state=dict(client))

    def load(self, folder: Path, tag: str) -> dict[str, Any]:
        # DeepSpeed unpickles with full pickle; this reads every file weights-only (a shared run folder's
        # checkpoint runs no code) and names the file and the type when one holds more than tensors.
        _, client = load_deepspeed_checkpoint(self._engine, folder, tag)
        return client

    def close(self) -> None:
        self._engine = self._scheduler = None


class TorchStrategy:
    """Plain torch in one process, fp32: what DeepSpeed does at ZeRO stage 0, without DeepSpeed.

    The loss of each micro batch is divided by the accumulation steps before `backward`; at each accumulation
    boundary the gradients are clipped to the config's norm (when it is > 0), the optimiser steps, the gradients
    are zeroed and the schedule steps, as DeepSpeed's engine does.

    Args:
        processes: the run's processes; a world of one only.
    """

    name = "torch"

    def __init__(self, processes: Strategy) -> None:
        if processes.world_size != 1:
            raise TrainError(f"--engine torch trains in one process; this run has {processes.world_size} (use "
                             "--engine deepspeed under torchrun)")  # fmt: skip
        self.processes = processes
        self.init_s = 0.0
        self._module: nn.Module | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._scheduler: WarmupCosineRestarts | None = None
        self._accumulate = 1
        self._clip = 0.0
        self._micro_steps = 0
        self._global_steps = 0

    def setup(self, model: nn.Module, optimizer: torch.optim.Optimizer, schedule: Schedule,
              ds_config: Mapping[str, Any]) -> nn.Module:  # fmt: skip
        if ds_config.get("bf16", {}).get("enabled") or ds_config.get("fp16", {}).get("enabled"):
            raise TrainError("--engine torch trains in fp32; set deepspeed.precision to fp32 (or auto on a CPU)")
        t0 = time.perf_counter()
        self._module = model.to(self.processes.device)
        self._optimizer = optimizer
        self._scheduler = WarmupCosineRestarts(optimizer, schedule)
        self._accumulate = int(ds_config.get("gradient_accumulation_steps", 1))
        self._clip = float(ds_config.get("gradient_clipping", 0.0) or 0.0)
        self._optimizer.zero_grad(set_to_none=True)
        self.init_s = time.perf_counter() - t0
        return self._module

    def _parts(self) -> tuple[nn.Module, torch.optim.Optimizer, WarmupCosineRestarts]:
        if self._module is None or self._optimizer is None or self._scheduler is None:
            raise TrainError("the torch engine is used before its setup")
        return self._module, self._optimizer, self._scheduler

    def forward(self, *tensors: Any) -> Any:
        return self._parts()[0](*tensors)

    def train(self) -> None:
        self._parts()[0].train()

    def eval(self) -> None:
        self._parts()[0].eval()

    def backward(self, loss: torch.Tensor) -> None:
        (loss / self._accumulate if self._accumulate > 1 else loss).backward()

    def step(self) -> None:
        module, optimizer, scheduler = self._parts()
        self._micro_steps += 1
        if self._micro_steps % self._accumulate:
            return
        if self._clip > 0:
            torch.nn.utils.clip_grad_norm_(module.parameters(), self._clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        self._global_steps += 1

    @property
    def global_steps(self) -> int:
        return self._global_steps

    @property
    def lr(self) -> float:
        return float(self._parts()[2].get_last_lr()[0])

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().float().cpu().clone() for k, v in self._parts()[0].state_dict().items()}

    def save(self, folder: Path, tag: str, client: Mapping[str, Any]) -> None:
        module, optimizer, scheduler = self._parts()
        check_plain_name(tag, "the checkpoint tag")
        state = {"module": module.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "global_steps": self._global_steps,
                 "micro_steps": self._micro_steps, "client": dict(client)}  # fmt: skip
        buf = io.BytesIO()
        torch.save(state, buf)
        os.makedirs(folder / tag, exist_ok=True)
        atomic_write_bytes(folder / tag / TORCH_STATE_FILE, buf.getvalue())
        atomic_write_text(folder / LATEST_FILE, tag)  # after the whole state: `latest` names complete ones only

    def load(self, folder: Path, tag: str) -> dict[str, Any]:
        module, optimizer, scheduler = self._parts()
        path = folder / tag / TORCH_STATE_FILE
        try:
            state = torch.load(path, map_location=self.processes.device, weights_only=True)
        except (OSError, RuntimeError, ValueError) as exc:
            raise TrainError(f"{path}: not a checkpoint of --engine torch ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:200]})") from None  # fmt: skip
        module.load_state_dict(state["module"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        self._global_steps = int(state["global_steps"])
        self._micro_steps = int(state["micro_steps"])
        client = state.get("client")
        return dict(client) if isinstance(client, dict) else {}

    def close(self) -> None:
        self._module = self._optimizer = self._scheduler = None


def engine_strategy(name: str, processes: Strategy) -> EngineStrategy:
    """The engine strategy `name` names (`ENGINES`), for this run's processes.

    Raises:
        TrainError: an unknown name.
    """
    if name == "deepspeed":
        return DeepSpeedStrategy(processes)
    if name == "torch":
        return TorchStrategy(processes)
    raise TrainError(f"engine {name!r}: known engines are {', '.join(ENGINES)}")
