"""The environment a child process of ours starts with.

`harness.runtime.distributed.setup_strategy` gives a process without a launcher the rendezvous of a world of one (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) in `os.environ`, where DeepSpeed reads it. A child started later
from that process must not inherit it: it would try to open the parent's port, which the parent holds (EADDRINUSE),
or join the parent's world. Every subprocess the harness or its tests start takes its environment from here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def child_env(extra: Mapping[str, str] | None = None, drop: Iterable[str] = ()) -> dict[str, str]:
    """This process's environment less any torch.distributed rendezvous and the names in `drop`, plus `extra`.

    Args:
        extra: variables to set in the child (applied last).
        drop: more variables to leave out (e.g. `ATEN_CPU_CAPABILITY`, a kernel cap the child must not inherit).
    """
    left_out = set(DIST_VARS) | set(drop)
    env = {k: v for k, v in os.environ.items() if k not in left_out}
    env.update(extra or {})
    return env
