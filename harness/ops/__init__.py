"""Housekeeping: `harness doctor` (checks) and `harness clean` (removal of what the harness wrote).

Public names are re-exported lazily (PEP 562): `from harness.ops import X` imports only X's module.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "CleanReport": "harness.ops.clean",
    "MAX_LINE_FINDINGS": "harness.ops.doctor",
    "check_dataset": "harness.ops.doctor",
    "check_package": "harness.ops.doctor",
    "check_path": "harness.ops.doctor",
    "check_run": "harness.ops.doctor",
    "clean_checkpoints": "harness.ops.clean",
    "label_rows_finding": "harness.ops.doctor",
    "probe_video": "harness.ops.doctor",
    "run_is_finished": "harness.ops.clean",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness.ops' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
