"""Benchmark reports: the device, the same-run matmul peak, and a JSON + Markdown table from pytest-benchmark runs.

Each benchmark stores in `benchmark.extra_info`: `shapes` (text), `precision`, `unit` (frames/s, windows/s,
images/s), `items` (units processed per call) and, for neural parts, `flops` per call (from the models' own FLOP
function). The report divides by the median time for throughput and FLOP/s, and by the peak measured in the same
run (a large matrix product in the same dtype on the same device) for the fraction of peak.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

from submissions.atomic import atomic_write_text
from submissions.leaderboard import table_markdown


def device_info() -> dict:
    """CPU model and threads (and the GPU name when one is visible)."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": sys.version.split()[0]}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def matmul_peak_flops(dtype: str = "float32", device: str = "cpu", n: int = 2048, seconds: float = 1.0) -> float:
    """Achieved FLOP/s of an n x n matrix product: the machine's practical peak in that dtype, measured now."""
    import torch

    dt = getattr(torch, dtype)
    a = torch.randn(n, n, dtype=dt, device=device)
    b = torch.randn(n, n, dtype=dt, device=device)
    for _ in range(2):
        a @ b
    best = 0.0
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        if device != "cpu":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()
        best = max(best, 2 * n**3 / (time.perf_counter() - t0))
    return best


def report_from_pytest_json(data: dict, peaks: dict[str, float]) -> pl.DataFrame:
    """One row per benchmark: name, shapes, precision, median ms, throughput, GFLOP, GFLOP/s, fraction of peak."""
    rows = []
    for b in data.get("benchmarks", []):
        x = b.get("extra_info", {})
        med = b["stats"]["median"]
        flops = x.get("flops")
        prec = x.get("precision", "")
        peak = peaks.get(prec)
        rows.append(
            {
                "benchmark": b["name"],
                "shapes": x.get("shapes", ""),
                "precision": prec,
                "median_ms": med * 1e3,
                "throughput": (x["items"] / med) if x.get("items") else float("nan"),
                "unit": x.get("unit", ""),
                "gflop": flops / 1e9 if flops else float("nan"),
                "gflop_per_s": flops / med / 1e9 if flops else float("nan"),
                "peak_fraction": flops / med / peak if flops and peak else float("nan"),
                "target": x.get("target", ""),
            }
        )
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def run_benchmarks(out_dir: Path, select: str | None = None, extra_args: list[str] | None = None) -> pl.DataFrame:
    """Run tests/benchmarks with pytest-benchmark, then write `report.json` and `report.md` into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / "pytest-benchmark.json"
    tests = Path(__file__).resolve().parent.parent / "tests" / "benchmarks"
    cmd = [sys.executable, "-m", "pytest", str(tests), "-q", "--benchmark-enable", "--benchmark-only",
           f"--benchmark-json={raw}", "-p", "no:cacheprovider"]
    if select:
        cmd += ["-k", select]
    cmd += extra_args or []
    subprocess.run(cmd, check=False, env={**os.environ, "BDCA_BENCH": "1"})
    if not raw.is_file():
        from submissions.errors import HarnessError

        raise HarnessError(f"the benchmark run wrote no results ({raw}); see the pytest output above")
    data = json.loads(raw.read_text())
    peaks = {"float32": matmul_peak_flops("float32")}
    df = report_from_pytest_json(data, peaks)
    meta = {"device": device_info(), "peaks_flops": peaks, "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic_write_text(out_dir / "report.json", json.dumps({"meta": meta, "rows": df.to_dicts()}, indent=2))
    head = (f"# Benchmark report\n\nDevice: {meta['device']['cpu']}, {meta['device']['threads']} threads"
            f"{', GPU ' + meta['device']['gpu'] if 'gpu' in meta['device'] else ''}; torch {meta['device']['torch']}."
            f"\nSame-run fp32 matmul peak: {peaks['float32'] / 1e9:.1f} GFLOP/s. Date: {meta['date']}.\n\n")
    atomic_write_text(out_dir / "report.md", head + table_markdown(df))
    return df
