"""The kernel level the session's quick demos run at (shared by tests/conftest.py and the determinism test)."""

from __future__ import annotations

import os


def caller_level() -> str | None:
    """This process's `ATEN_CPU_CAPABILITY` (None: the CPU's native level): the level the session's demos run at, so
    that `ATEN_CPU_CAPABILITY=default pytest ...` checks another machine's arithmetic."""
    return os.environ.get("ATEN_CPU_CAPABILITY") or None
