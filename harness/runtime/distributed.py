"""The process's place in a distributed run, set up once and passed down (a strategy object, Fabric style).

A command builds it once (`setup_strategy()`) and hands it to the stages, the training loop and the sharded
preprocessing; they ask it who they are (`rank`, `world_size`, `on_main`, `device`) and wait on it (`barrier`)
instead of initialising torch.distributed themselves. Library callers that pass none get the process's strategy
(`current_strategy()`): the same object, made on first use.

Without a launcher (no RANK/WORLD_SIZE in the environment) the process is a world of one: the environment gets
rank 0 of 1 and a free local port. Under `torchrun` (or any launcher that sets RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT) every process joins the one world, across machines too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import warnings
from dataclasses import dataclass
from typing import Any, NoReturn

import torch


@dataclass(frozen=True)
class Strategy:
    """Where this process stands in the run, and the collectives the harness uses.

    Args:
        rank: global rank.
        world_size: number of processes.
        local_rank: rank on this machine.
        device: the torch device this process computes on.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def on_main(self) -> bool:
        """Whether this is rank 0, the process that writes shared files and reports."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every process (no-op in a world of one)."""
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def all_mean(self, value: float) -> float:
        """The mean of `value` over the processes (the value itself in a world of one)."""
        if self.world_size == 1:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item()) / self.world_size

    def all_gather(self, obj: Any) -> list[Any]:
        """Every process's `obj`, in rank order (JSON-like values: the harness gathers reports, not tensors)."""
        if self.world_size == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


def free_port() -> int:
    """A TCP port on 127.0.0.1 free now (for a rendezvous this process or its children set up)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _quiet_deepspeed() -> None:
    for name in ("DeepSpeed", "deepspeed"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with contextlib.suppress(Exception):
        from deepspeed.utils import logger

        logger.setLevel(logging.WARNING)


_CURRENT: Strategy | None = None


def setup_strategy() -> Strategy:
    """Initialise torch.distributed through DeepSpeed (once per process) and describe this process.

    The one place in the harness that initialises distribution. On a CPU the backend is gloo, and DeepSpeed's
    shared-memory collective op is marked unavailable first: its build costs about 45 s at the first set-up on a
    fresh machine, and gloo does the same collectives (measured: `deepspeed.initialize` drops from 39-63 s to
    about 3 s). Calling it again returns the same strategy.
    """
    global _CURRENT
    import torch.distributed as dist

    if _CURRENT is not None and dist.is_initialized():
        return _CURRENT
    if not torch.cuda.is_available():
        # Name the accelerator instead of letting DeepSpeed guess (and warn that it fell back to the CPU).
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed

    _quiet_deepspeed()
    # ZeRO-3 calls collectives that torch 2.14 marks deprecated, once per step: keep the console readable.
    warnings.filterwarnings(
        "ignore", message=r".*is deprecated\. Please use `torch\.distributed", category=FutureWarning
    )
    cuda = torch.cuda.is_available()
    if not dist.is_initialized():
        if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
            os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
            os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
            os.environ["MASTER_PORT"] = os.environ.get("MASTER_PORT") or str(free_port())
        os.environ.setdefault("LOCAL_RANK", "0")
        if not cuda:
            import deepspeed.ops

            # `__compatible_ops__` is DeepSpeed's per-process record of buildable ops; edits to it persist.
            deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
        deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo", auto_mpi_discovery=False, verbose=False)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    _CURRENT = Strategy(dist.get_rank(), dist.get_world_size(), local_rank, device)
    return _CURRENT


def end_strategy() -> bool:
    """Tear down the process group this process joined, if it joined one of several processes (every command ends
    with it); returns whether it did, and then the process should leave with `exit_now`.

    A gloo process group left for the interpreter's exit can abort the process ("terminate called without an
    active exception", measured: 2 of 8 two-rank runs on this machine); destroyed first, 0 of 24 runs, yet one
    rank of a finished two-rank preprocess job still aborted so in a CI run, after the command's last output line.
    So a rank of several also skips the interpreter's teardown (`exit_now`), where gloo's C++ threads and the
    objects they hold are otherwise destroyed while Python shuts down. No barrier: a rank that failed never
    reaches one, and the teardown needs none. A world of one stays up for the next command of the same process
    (library callers and the tests run several): it has no peers, and no such abort was ever seen.
    """
    global _CURRENT
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.destroy_process_group()
        _CURRENT = None
        return True
    return False


def exit_now(code: int) -> NoReturn:
    """End a rank of a finished multi-process command with `code`, skipping the interpreter's teardown.

    Every output the command wrote is closed by then (the harness writes files atomically); what is left are the
    console streams and the log handlers, flushed here. Skipping the teardown is what keeps gloo's threads from
    being destroyed while the interpreter shuts down (see `end_strategy`).
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or broken pipe must not turn success into a traceback
            stream.flush()
    logging.shutdown()
    os._exit(code)


def current_strategy(strategy: Strategy | None = None) -> Strategy:
    """`strategy` itself, or the process's own (set up on first use) for callers that were handed none."""
    return strategy if strategy is not None else setup_strategy()
