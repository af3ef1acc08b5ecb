"""Splitting videos across processes: which shard does which video (pure functions, no I/O).

A shard is `i/n` (0-based `i`): the ranks of a `torchrun` job are shards `RANK/WORLD_SIZE`; the tasks of a job
array name theirs with `--shard` (SLURM: `$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`). Videos go to shards by
longest-processing-time-first on their frame counts, so the shards' work is balanced and every process, given
the same list, computes the same split without talking to the others.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from core.errors import HarnessError

T = TypeVar("T")


class ShardError(HarnessError, ValueError):
    """A shard that does not exist (`--shard 3/3`, `--shard x`)."""


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`.

    Args:
        index: 0-based shard number.
        count: number of shards.
    """

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ShardError(f"shard {self.index}/{self.count} does not exist: use i/n with 0 <= i < n")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def label(self) -> str:
        """A file-name-safe name that sorts in shard order (`shard-0003-of-0008`)."""
        return f"shard-{self.index:04d}-of-{self.count:04d}"


def parse_shard(text: str) -> Shard:
    """`"i/n"` as a Shard.

    >>> parse_shard("2/8")
    Shard(index=2, count=8)

    Raises:
        ShardError: not of the form i/n with 0 <= i < n.
    """
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m:
        raise ShardError(f"--shard {text!r}: expected i/n with 0 <= i < n, e.g. 0/4 "
                         "(a SLURM array: $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)")
    return Shard(int(m.group(1)), int(m.group(2)))


def balance(sizes: Sequence[int], count: int) -> list[int]:
    """The shard of each item: largest first, each to the least-loaded shard so far (ties: the lower shard).

    Deterministic (equal sizes keep their order), and no shard ends more than the largest item above another.

    >>> balance([10, 1, 7, 3], 2)
    [0, 0, 1, 1]

    Args:
        sizes: each item's work (frames); negative counts as 0.
        count: number of shards.
    """
    if count < 1:
        raise ShardError(f"cannot split into {count} shards")
    load = [0] * count
    owner = [0] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda k: (-max(int(sizes[k]), 0), k)):
        s = min(range(count), key=lambda j: (load[j], j))
        owner[i] = s
        load[s] += max(int(sizes[i]), 0)
    return owner


def shard_items(items: Sequence[T], sizes: Sequence[int], shard: Shard) -> list[T]:
    """The items of `shard`, in their original order.

    Args:
        items: every item, in the same order in every process.
        sizes: each item's work.
        shard: this process's shard.
    """
    if len(items) != len(sizes):
        raise ShardError(f"{len(items)} items but {len(sizes)} sizes")
    owner = balance(sizes, shard.count)
    return [x for x, o in zip(items, owner, strict=True) if o == shard.index]
