"""Batches and seeds of an epoch as pure functions of (seed, epoch, rank): `EpochBatchSampler`, `seed_epoch` and the
steps an epoch takes, so that a resumed run sees the batches an uninterrupted one would.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

# ---------------------------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------------------------


def steps_per_epoch(n: int, micro_batch: int, grad_accum: int, world_size: int) -> int:
    """Optimiser steps per epoch: whole groups of `grad_accum x world_size` micro batches (the rest is dropped).

    Args:
        n: training samples.
        micro_batch: samples per micro batch.
        grad_accum: micro batches per step and process.
        world_size: processes.
    """
    micro_batches = math.ceil(n / micro_batch)
    return micro_batches // (grad_accum * world_size)


class EpochBatchSampler(Sampler[list[int]]):
    """Micro batches of one process for one epoch, a pure function of (n, sizes, seed, epoch, rank).

    The epoch's permutation is cut into micro batches; micro batch g of the epoch goes to rank g % world_size.
    So optimiser step s of any (world_size, grad_accum) split with the same global batch sees the same samples:
    one process accumulating two micro batches equals two processes with one each.

    Args:
        n: dataset size.
        micro_batch: samples per micro batch.
        grad_accum: micro batches per step.
        world_size: processes.
        rank: this process.
        seed: run seed.
        epoch: epoch index (0-based).
        shuffle: permute the samples (else in order).
    """

    def __init__(self, n: int, micro_batch: int, grad_accum: int, world_size: int, rank: int, seed: int, epoch: int,
                 shuffle: bool = True):  # fmt: skip
        self.n, self.micro_batch, self.grad_accum = n, micro_batch, grad_accum
        self.world_size, self.rank, self.seed, self.epoch, self.shuffle = world_size, rank, seed, epoch, shuffle
        self.steps = steps_per_epoch(n, micro_batch, grad_accum, world_size)

    def __len__(self) -> int:
        return self.steps * self.grad_accum

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        else:
            order = np.arange(self.n)
        used = self.steps * self.grad_accum * self.world_size
        for g in range(self.rank, used, self.world_size):
            yield order[g * self.micro_batch : (g + 1) * self.micro_batch].tolist()


def seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Reseed torch (and numpy's global RNG) for one epoch of one process."""
    s = int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])
    torch.manual_seed(s)
    np.random.seed(s)
