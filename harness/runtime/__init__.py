"""The process around the harness: the distributed strategy, child-process environments, safe I/O, resources,
the platform fingerprint, progress, findings, TensorBoard events and sharding. Imports no other harness package.

Public names are re-exported lazily (PEP 562): `from harness.runtime import X` imports only X's module.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "ATEN_LEVELS": "harness.runtime.fingerprint",
    "CLEAR_REFS": "harness.runtime.resources",
    "CheckpointRefusedError": "harness.runtime.safe_io",
    "DEEPSPEED_SAFE_GLOBALS": "harness.runtime.safe_io",
    "DIST_VARS": "harness.runtime.childenv",
    "EVENT_GLOB": "harness.runtime.tb_events",
    "EpochEvents": "harness.runtime.tb_events",
    "FORCE_VAR": "harness.runtime.safe_io",
    "Finding": "harness.runtime.findings",
    "MAX_ERROR_LINES": "harness.runtime.findings",
    "PeakRss": "harness.runtime.resources",
    "STATUS": "harness.runtime.resources",
    "Severity": "harness.runtime.findings",
    "Shard": "harness.runtime.sharding",
    "ShardError": "harness.runtime.sharding",
    "StepProgress": "harness.runtime.progress",
    "Strategy": "harness.runtime.distributed",
    "T": "harness.runtime.sharding",
    "TAGS": "harness.runtime.tb_events",
    "TB_DIR": "harness.runtime.tb_events",
    "balance": "harness.runtime.sharding",
    "child_env": "harness.runtime.childenv",
    "current_rss_mib": "harness.runtime.resources",
    "current_strategy": "harness.runtime.distributed",
    "deepspeed_safe_globals": "harness.runtime.safe_io",
    "end_strategy": "harness.runtime.distributed",
    "epoch_scalars": "harness.runtime.tb_events",
    "eta_seconds": "harness.runtime.progress",
    "finding_line": "harness.runtime.findings",
    "finding_lines": "harness.runtime.findings",
    "findings_json": "harness.runtime.findings",
    "findings_table": "harness.runtime.findings",
    "force_weights_only": "harness.runtime.safe_io",
    "foreign_global": "harness.runtime.safe_io",
    "format_duration": "harness.runtime.progress",
    "free_port": "harness.runtime.distributed",
    "from_message": "harness.runtime.findings",
    "from_problems": "harness.runtime.findings",
    "guarded_torch_load": "harness.runtime.safe_io",
    "has_events": "harness.runtime.tb_events",
    "load_deepspeed_checkpoint": "harness.runtime.safe_io",
    "native_aten_levels": "harness.runtime.fingerprint",
    "one_line": "harness.runtime.findings",
    "overall_eta": "harness.runtime.progress",
    "parse_build_versions": "harness.runtime.fingerprint",
    "parse_shard": "harness.runtime.sharding",
    "peak_rss": "harness.runtime.resources",
    "plain_line": "harness.runtime.progress",
    "platform_fingerprint": "harness.runtime.fingerprint",
    "print_findings": "harness.runtime.findings",
    "refused_type": "harness.runtime.safe_io",
    "reset_peak_rss": "harness.runtime.resources",
    "same_platform": "harness.runtime.fingerprint",
    "setup_strategy": "harness.runtime.distributed",
    "shard_items": "harness.runtime.sharding",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness.runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
