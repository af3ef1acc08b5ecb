"""The platform fingerprint: what a score's arithmetic depended on, written beside every score the harness records.

Two runs of the same commit, seed and thread count give bitwise-identical scores on one machine (tested), but the
same run on another CPU does not: ATen picks vectorised kernels by instruction set (`default`, `avx2`, `avx512`),
MKL and oneDNN pick their own code paths, and a rounding-level difference in stage 1 grows through training. So a
recorded score is exact only against the platform that made it; `platform_fingerprint` names that platform, and
`same_platform` says whether two fingerprints may be compared exactly (the determinism test, with
`submissions.leaderboard.exact_differences`; the CI check reads quality floors on every machine).
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from submissions.leaderboard import MATCH_FIELDS, platform_differences

__all__ = ["ATEN_LEVELS", "MATCH_FIELDS", "native_aten_levels", "parse_build_versions", "platform_differences",
           "platform_fingerprint", "same_platform"]

ATEN_LEVELS = ("default", "avx2", "avx512")
"""`ATEN_CPU_CAPABILITY` values of x86-64 ATen, lowest first (the environment variable caps the kernel level)."""


@cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's `vendor_id` and `model name` from /proc/cpuinfo ({} where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("vendor_id", "model name") and key not in out:
            out[key] = value.strip()
        if not line.strip() and out:
            break
    return out


def parse_build_versions(config_text: str) -> dict[str, str]:
    """MKL and oneDNN versions from `torch.__config__.show()` ("unknown" where the build does not say).

    Args:
        config_text: the text torch prints about its build.
    """
    mkl = re.search(r"Math Kernel Library Version ([\w.\-]+)", config_text)
    dnn = re.search(r"(?:MKL-DNN|oneDNN) v([\w.\-]+)", config_text)
    return {"mkl": mkl.group(1) if mkl else "unknown", "onednn": dnn.group(1) if dnn else "unknown"}


@cache
def _build_versions() -> dict[str, str]:
    return parse_build_versions(torch.__config__.show())


def platform_fingerprint(device: str | None = None) -> dict[str, Any]:
    """What this process's arithmetic depends on: CPU, ATen kernel level, library versions, threads, device.

    Args:
        device: the training device's name (default: the first CUDA device when there is one, else `cpu`).

    Returns:
        A JSON-ready dict; `MATCH_FIELDS` (submissions.leaderboard) are the ones compared, the rest
        (`aten_capability_env`, `python`) inform.
    """
    info = _cpuinfo()
    if device is None:
        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {
        "machine": platform.machine(),
        "cpu_vendor": info.get("vendor_id", platform.processor() or "unknown"),
        "cpu_model": info.get("model name", "unknown"),
        "cpu_isa": native_aten_levels()[-1],
        "aten_capability": str(torch.backends.cpu.get_cpu_capability()).lower(),
        "aten_capability_env": os.environ.get("ATEN_CPU_CAPABILITY", ""),
        "torch": torch.__version__,
        "numpy": np.__version__,
        **_build_versions(),
        "threads": int(torch.get_num_threads()),
        "device": device,
        "python": platform.python_version(),
    }


def same_platform(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Whether scores made under fingerprints `a` and `b` may be compared exactly (`MATCH_FIELDS` all equal)."""
    return not platform_differences(dict(a) if a else None, dict(b) if b else None)


def native_aten_levels() -> list[str]:
    """The `ATEN_CPU_CAPABILITY` levels this CPU can run, lowest first (`default` always; up to the native one).

    The native level is read from torch only when no `ATEN_CPU_CAPABILITY` caps it; under a cap the CPU's own
    flags decide (what the recording machine supports, not what this process was told to use).
    """
    flags = ""
    with contextlib.suppress(OSError):
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    if not os.environ.get("ATEN_CPU_CAPABILITY"):
        native = str(torch.backends.cpu.get_cpu_capability()).lower()
    elif " avx512f " in flags and " avx512bw " in flags:
        native = "avx512"
    elif " avx2 " in flags:
        native = "avx2"
    else:
        native = "default"
    if platform.machine() not in ("x86_64", "AMD64") or native not in ATEN_LEVELS:
        return ["default"]  # other architectures: only the portable kernels are known to be selectable
    return list(ATEN_LEVELS[: ATEN_LEVELS.index(native) + 1])
