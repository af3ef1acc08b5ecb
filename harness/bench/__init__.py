"""Benchmarks: the pytest-benchmark suite (`suite`, its plugin) and the one-GPU check (`gpucheck`: plans,
measurements, report).

Public names are re-exported lazily (PEP 562): `from harness.bench import X` imports only X's module.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "BENCH_LAYOUT": "harness.bench.suite",
    "BENCH_ROOT": "harness.bench.gpu_plan",
    "BUDGET_S": "harness.bench.gpu_plan",
    "BenchLockedError": "harness.bench.suite",
    "Budget": "harness.bench.gpu_plan",
    "CheckPlan": "harness.bench.gpu_plan",
    "DRY_VIT": "harness.bench.gpu_plan",
    "FRAMES_3M": "harness.bench.gpu_plan",
    "GpuCheckError": "harness.bench.gpu_plan",
    "LOCK_FILE": "harness.bench.suite",
    "Log": "harness.bench.gpu_plan",
    "NoGpuError": "harness.bench.gpu_plan",
    "PARTIAL_ENV": "harness.bench.plugin",
    "PARTIAL_FILE": "harness.bench.suite",
    "PartialResults": "harness.bench.plugin",
    "REPO": "harness.bench.gpu_plan",
    "REPORT_JSON": "harness.bench.gpu_plan",
    "REPORT_MD": "harness.bench.gpu_plan",
    "RUN_JSON": "harness.bench.suite",
    "TARGETS": "harness.bench.gpu_plan",
    "apply_peaks": "harness.bench.gpu_report",
    "bench_fingerprint": "harness.bench.suite",
    "best_peaks": "harness.bench.gpu_report",
    "build_report": "harness.bench.gpu_report",
    "cpu_has_fast_bf16": "harness.bench.gpu_plan",
    "device_info": "harness.bench.suite",
    "device_slug": "harness.bench.gpu_plan",
    "dry_plan": "harness.bench.gpu_plan",
    "gpu_device_info": "harness.bench.gpucheck",
    "gpu_plan": "harness.bench.gpu_plan",
    "lock_report_folder": "harness.bench.suite",
    "matmul_peak_flops": "harness.bench.suite",
    "measure_peak": "harness.bench.gpu_measure",
    "measure_peaks": "harness.bench.suite",
    "measure_stage2": "harness.bench.gpu_measure",
    "measure_vit": "harness.bench.gpu_measure",
    "peak_key": "harness.bench.suite",
    "plan_rounds": "harness.bench.gpu_plan",
    "prepare_partial": "harness.bench.suite",
    "profile_table": "harness.bench.suite",
    "pytest_configure": "harness.bench.plugin",
    "read_partial": "harness.bench.plugin",
    "report_from_pytest_json": "harness.bench.suite",
    "report_markdown": "harness.bench.gpu_report",
    "resolve_out": "harness.bench.gpu_plan",
    "rounds_note": "harness.bench.gpu_plan",
    "run_benchmarks": "harness.bench.suite",
    "run_gpu_check": "harness.bench.gpucheck",
    "run_zero2": "harness.bench.gpu_measure",
    "stage2_section": "harness.bench.gpu_report",
    "time_summary": "harness.bench.gpu_report",
    "vit_section": "harness.bench.gpu_report",
    "write_partial": "harness.bench.plugin",
    "zero2_section": "harness.bench.gpu_report",
    "zero2_worker": "harness.bench.gpu_measure",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness.bench' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
