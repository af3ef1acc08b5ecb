"""Benchmark reports: the device, the same-run matmul peak, and a JSON + Markdown table from pytest-benchmark runs.

Each benchmark stores in `benchmark.extra_info`: `shapes` (text), `precision`, `unit` (frames/s, windows/s,
images/s), `items` (units processed per call) and, for neural parts, `flops` per call (from the models' own FLOP
function). The report divides by the median time for throughput and FLOP/s, and by the peak measured in the same
run (a large matrix product in the same dtype on the same device) for the fraction of peak.

A run is resumable: each benchmark is kept in `<out>/partial.json` the moment it finishes (`harness.bench.plugin`),
and a run started again after a kill measures only the rest (see `run_benchmarks`).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

from core.atomic import atomic_write_text
from core.errors import HarnessError
from core.locking import FolderLock
from core.ownership import claim_folder
from core.safe_read import read_json
from harness.bench.plugin import PARTIAL_ENV, read_partial, write_partial
from harness.runtime.childenv import child_env
from submissions.leaderboard import table_markdown

PARTIAL_FILE = "partial.json"
"""The rows a run has finished so far (see `run_benchmarks` and `harness.bench.plugin`)."""


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
    info = {
        "cpu": cpu,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def matmul_peak_flops(dtype: str = "float32", device: str = "cpu", n: int = 2048, seconds: float = 1.0,
                      threads: int | None = None) -> float:  # fmt: skip
    """Achieved FLOP/s of an n x n matrix product: the machine's practical peak in that dtype, measured now.

    Args:
        dtype: torch dtype name.
        device: 'cpu' or a CUDA device.
        n: matrix side.
        seconds: how long to keep multiplying; the best product counts.
        threads: intra-op threads for a CPU measurement (None: the current setting), restored afterwards.
    """
    import torch

    before = torch.get_num_threads()
    if threads and device == "cpu":
        torch.set_num_threads(threads)
    try:
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
    finally:
        torch.set_num_threads(before)


def profile_table(fn: Callable[[], object], rounds: int = 2, row_limit: int = 30) -> str:
    """torch.profiler's top operators (by self CPU time, grouped by input shapes) over `rounds` calls of `fn`.

    Args:
        fn: the call to profile (called once more beforehand, untimed, as a warm-up).
        rounds: profiled calls; the table's times are totals over them.
        row_limit: operators listed.
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    fn()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities, record_shapes=True) as prof:
        for _ in range(rounds):
            fn()
    table = prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=row_limit, max_name_column_width=48, max_shapes_column_width=60
    )
    return f"{rounds} call(s), {torch.get_num_threads()} thread(s); times are totals over the calls.\n\n{table}"


def peak_key(device: str, precision: str, threads: int | None = None) -> str:
    """The key of one peak measurement: `cpu:float32:2t` (CPU, with its thread count) or `cuda:bfloat16`."""
    return f"{device}:{precision}:{threads}t" if device == "cpu" and threads else f"{device}:{precision}"


def _row_key(extra: dict) -> str:
    return peak_key(extra.get("device", "cpu"), extra.get("precision", ""), extra.get("threads"))


def _lookup_peak(peaks: dict[str, float], extra: dict) -> float | None:
    prec = extra.get("precision", "")
    for key in (_row_key(extra), peak_key(extra.get("device", "cpu"), prec), prec):
        if key in peaks:
            return peaks[key]
    return None


def report_from_pytest_json(data: dict, peaks: dict[str, float]) -> pl.DataFrame:
    """One row per benchmark: name, device, threads, shapes, precision, median and min ms, throughput, GFLOP,
    GFLOP/s and the fraction of the same-run peak of that device, precision and thread count (at the median, and at
    the fastest round).

    Args:
        data: pytest-benchmark's JSON.
        peaks: FLOP/s by `peak_key` (or by bare precision name, for CPU rows).
    """
    rows = []
    for b in data.get("benchmarks", []):
        x = b.get("extra_info", {})
        med = b["stats"]["median"]
        flops = x.get("flops")
        peak = _lookup_peak(peaks, x)
        rows.append(
            {
                "benchmark": b["name"],
                "device": x.get("device", "cpu"),
                "threads": x.get("threads"),
                "shapes": x.get("shapes", ""),
                "precision": x.get("precision", ""),
                "median_ms": med * 1e3,
                "min_ms": b["stats"]["min"] * 1e3,
                "throughput": (x["items"] / med) if x.get("items") else float("nan"),
                "unit": x.get("unit", ""),
                "gflop": flops / 1e9 if flops else float("nan"),
                "gflop_per_s": flops / med / 1e9 if flops else float("nan"),
                "peak_fraction": flops / med / peak if flops and peak else float("nan"),
                # The fastest round: on a shared machine, the one least disturbed by other processes.
                "peak_fraction_at_min": flops / b["stats"]["min"] / peak if flops and peak else float("nan"),
                "target": x.get("target", ""),
            }
        )
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def measure_peaks(keys: set[tuple[str, str, int | None]], seconds: float = 1.0) -> dict[str, float]:
    """Matmul peaks for each (device, precision, threads) the rows used; CPU fp32 with torch's threads always.

    Precisions a device has no fast matmul for (bf16 on a CPU without it) are still measured: the fraction of
    peak then compares like with like.
    """
    import torch

    keys = set(keys) | {("cpu", "float32", torch.get_num_threads())}
    out = {}
    for device, precision, threads in sorted(keys, key=str):
        if device != "cpu" and not torch.cuda.is_available():
            continue
        if precision not in ("float32", "float16", "bfloat16", "float64"):
            continue
        out[peak_key(device, precision, threads)] = matmul_peak_flops(precision, device, seconds=seconds,
                                                                      threads=threads)  # fmt: skip
    return out


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def bench_fingerprint(suite: Path) -> dict:
    """What must match for rows of an interrupted run to be reused: the device (CPU, GPU, threads, torch, Python)
    and the benchmark folder. Rows measured elsewhere are not comparable with rows measured here.

    Args:
        suite: the benchmark folder.
    """
    return {"device": device_info(), "suite": str(suite.resolve())}


def prepare_partial(path: Path, fingerprint: dict, fresh: bool, log: Callable[[str], None]) -> list[dict]:
    """Prepare the partial-results file for this run; return the finished rows it keeps (reused, not remeasured).

    Rows are kept only from a file of the same fingerprint (`bench_fingerprint`) and without `fresh`; the file is
    then rewritten with this run's fingerprint and the kept rows, for `harness.bench.plugin` to extend.

    Args:
        path: the partial-results file.
        fingerprint: this run's device and suite.
        fresh: discard the rows (`harness bench --fresh`).
        log: receives one line saying what is reused or discarded, when there was something.
    """
    old = None if fresh else read_partial(path)
    reused: list[dict] = []
    if old is not None and old.get("fingerprint") == fingerprint:
        reused = [b for b in old["benchmarks"] if isinstance(b, dict) and "fullname" in b and "stats" in b]
        if reused:
            log(f"resuming an interrupted run ({path}): reusing {len(reused)} finished row(s), not measured again: "
                + ", ".join(b["name"] for b in reused))  # fmt: skip
    elif old is not None and old["benchmarks"]:
        log(f"{path}: rows of an interrupted run on another device or suite; measuring everything again")
    elif fresh and path.is_file():
        log(f"--fresh: the rows in {path} are discarded; measuring everything again")
    write_partial(path, {"fingerprint": fingerprint, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                         "benchmarks": reused})  # fmt: skip
    return reused


LOCK_FILE = ".lock"
RUN_JSON = ".pytest-benchmark.run.json"
"""This run's own pytest-benchmark output (a killed run leaves none, and an older complete one is never read)."""
BENCH_LAYOUT = (LOCK_FILE, PARTIAL_FILE, RUN_JSON, "pytest-benchmark.json", "report.json", "report.md")
"""What `harness bench` writes in its report folder (claimed in the folder's ownership record, `core.ownership`)."""
"""Held in the report folder while a run writes it (one `harness bench` per folder)."""


class BenchLockedError(HarnessError):
    """Another `harness bench` is writing the same report folder."""


def lock_report_folder(out_dir: Path) -> FolderLock:
    """Take `<out_dir>/.lock` without waiting; BenchLockedError naming the folder, lock file and holder otherwise.

    Two runs on one folder would both rewrite `partial.json` and the report, each dropping the other's rows.
    """
    def held(path: Path, holder: str) -> BenchLockedError:
        return BenchLockedError(
            f"{out_dir}: another `harness bench` (pid {holder}, lock {path}) is writing this report folder; "
            "wait for it to finish or choose another --out"
        )

    return FolderLock(Path(out_dir) / LOCK_FILE, held).acquire()


def run_benchmarks(
    out_dir: Path,
    select: str | None = None,
    extra_args: list[str] | None = None,
    *,
    suite: Path | None = None,
    fresh: bool = False,
    log: Callable[[str], None] | None = None,
) -> pl.DataFrame:
    """Run the benchmark suite with pytest-benchmark, then write `report.json` and `report.md` into `out_dir`.

    Benchmarks that profile themselves (`BDCA_BENCH_PROFILE_DIR`) write `profile_*.txt` tables beside them.

    The matmul peaks are measured before and after the suite (the better of the two counts), with the thread
    count each row ran with; the load average at both ends goes into the report, since other processes on the
    machine slow everything down.

    Resumable: every benchmark is recorded in `<out_dir>/partial.json` as soon as it finishes
    (`harness.bench.plugin`), so a run killed at any point (even with SIGKILL) and started again measures only
    the benchmarks it had not finished, when the device and suite are the same; the report lists the reused rows.
    The file is removed once the report is written: the next run measures everything again.

    Args:
        out_dir: the report folder.
        select: a pytest `-k` expression.
        extra_args: more pytest arguments.
        suite: the benchmark folder (default: the repository's tests/benchmarks).
        fresh: discard the rows of an interrupted run and measure everything.
        log: called with a line of text on what is reused (default: print it).
    """
    out_dir = Path(out_dir)
    claim_folder(out_dir, BENCH_LAYOUT, what="benchmark report folder")  # never a folder the harness did not write
    with lock_report_folder(out_dir):
        return _run_locked(out_dir, select, extra_args, suite, fresh, log or print)


def _run_locked(out_dir: Path, select: str | None, extra_args: list[str] | None, suite: Path | None, fresh: bool,
                say: Callable[[str], None]) -> pl.DataFrame:  # fmt: skip
    import torch

    raw = out_dir / "pytest-benchmark.json"
    partial = out_dir / PARTIAL_FILE
    run_json = out_dir / RUN_JSON
    run_json.unlink(missing_ok=True)
    tests = Path(suite) if suite else Path(__file__).resolve().parents[2] / "tests" / "benchmarks"
    reused = prepare_partial(partial, bench_fingerprint(tests), fresh, say)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(tests),
        "-q",
        "--benchmark-enable",
        "--benchmark-only",
        f"--benchmark-json={run_json}",
        "-p",
        "no:cacheprovider",
        "-p",
        "harness.bench.plugin",
    ]
    if select:
        cmd += ["-k", select]
    cmd += extra_args or []
    load_start = _load()
    before = measure_peaks(set())
    t0 = time.perf_counter()
    env = child_env({"BDCA_BENCH": "1", "BDCA_BENCH_PROFILE_DIR": str(out_dir.resolve()),
                     PARTIAL_ENV: str(partial.resolve())})  # fmt: skip
    subprocess.run(cmd, check=False, env=env)
    wall = time.perf_counter() - t0
    # Largest resident set of any finished child so far: the pytest process that ran the suite (KiB on Linux).
    child_rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    finished = (read_partial(partial) or {"benchmarks": reused})["benchmarks"]
    data = read_json(run_json, "benchmark results") if run_json.is_file() else {}
    # Rows of tests that failed after measuring are in pytest-benchmark's output only: reported as before.
    kept = {b["fullname"] for b in finished}
    data["benchmarks"] = finished + [b for b in data.get("benchmarks", []) if b.get("fullname") not in kept]
    if not data["benchmarks"]:
        raise HarnessError(f"the benchmark run wrote no results ({run_json}); see the pytest output above")
    atomic_write_text(raw, json.dumps(data, indent=4))
    used = {
        (x.get("device", "cpu"), x.get("precision", ""), x.get("threads"))
        for x in (b.get("extra_info", {}) for b in data.get("benchmarks", []))
    }
    after = measure_peaks(used)
    peaks = {k: max(v, before.get(k, 0.0)) for k, v in after.items()}
    load_end = _load()
    df = report_from_pytest_json(data, peaks)
    reused_names = [b["name"] for b in reused]
    meta = {"device": device_info(), "peaks_flops": peaks, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "load_average_start": load_start, "load_average_end": load_end, "suite_seconds": round(wall, 1),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "suite_peak_rss_mib": round(child_rss_mib), "reused_rows": reused_names}  # fmt: skip
    atomic_write_text(out_dir / "report.json", json.dumps({"meta": meta, "rows": df.to_dicts()}, indent=2))
    dev = meta["device"]
    peak_lines = "\n".join(f"- `{k}`: {v / 1e9:.1f} GFLOP/s" for k, v in sorted(peaks.items()))
    reused_line = (
        f"Rows measured by an earlier, interrupted run and reused (their times are from that run): "
        f"{', '.join(reused_names)}.\n"
        if reused_names
        else ""
    )
    head = (
        f"# Benchmark report\n\nDevice: {dev['cpu']} ({meta['cpu_count']} CPUs, torch uses {dev['threads']} "
        f"threads){', GPU ' + dev['gpu'] if 'gpu' in dev else ''}; torch {dev['torch']}, Python {dev['python']}."
        f"\nDate: {meta['date']}; the suite took {meta['suite_seconds']} s "
        f"(its process's peak RSS: {meta['suite_peak_rss_mib']} MiB).\n"
        f"Load average (1, 5, 15 min) at the start: {load_start}; at the end: {load_end}.\n{reused_line}\n"
        f"Same-run matmul peaks (best 2048 x 2048 product, before or after the suite; `Nt` = threads):\n"
        f"{peak_lines}\n\n`peak_fraction` = achieved FLOP/s at the median time / the peak of the row's device, "
        f"precision and threads (`peak_fraction_at_min`: at the fastest round). Throughput is at the median. "
        f"FLOPs are the models' analytic counts (`models.count_flops`, `models.count_train_flops`).\n\n"
    )
    atomic_write_text(out_dir / "report.md", head + table_markdown(df))
    # The report is complete: the next run measures everything again, so the partial results go.
    partial.unlink(missing_ok=True)
    run_json.unlink(missing_ok=True)
    return df
