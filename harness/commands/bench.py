"""`harness bench`: run the pytest-benchmark suite and write a JSON + Markdown report beside the device's peak;
`harness bench --gpu-check`: the one-GPU check of `harness.bench.gpucheck` (`--dry-run`: its CPU dry mode)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from harness.bench.suite import run_benchmarks
from harness.reporting.tables import print_table

NAME = "bench"
HELP = (
    "Run the benchmark suite (tests/benchmarks) and write report.json + report.md with FLOP/s against peak; "
    "an interrupted run resumes, measuring only what it had not finished. --gpu-check: the GPU check "
    "(stage-2 step, ViT-L/16 features, ZeRO-2 on two GPUs) in under 8 minutes."
)
EXAMPLES = [
    "harness bench --out ci/benchmarks/cpu",
    "harness bench -k scoring --out /tmp/bench",
    "harness bench --out /tmp/bench --fresh",
    "harness bench --gpu-check                          # on a GPU: ci/benchmarks/<device>/gpu-check.{json,md}",
    "harness bench --gpu-check --dry-run --out /tmp/gc  # the same code path on the CPU at tiny shapes",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="folder for the report (default bench_report; --gpu-check: ci/benchmarks/<device>)")
    p.add_argument("-k", dest="select", help="only benchmarks matching this pytest -k expression")
    p.add_argument("--fresh", action="store_true", help="measure everything, discarding an interrupted run's rows")
    p.add_argument("--suite", type=Path, help="benchmark folder (default: the repository's tests/benchmarks)")
    p.add_argument("--gpu-check", action="store_true",
                   help="the GPU check, not the suite: stage 2 and ViT-L/16 in bf16, ZeRO-2 on 2 GPUs")  # fmt: skip
    p.add_argument("--dry-run", action="store_true",
                   help="with --gpu-check: the same code path on the CPU at tiny shapes (needs --out)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    console = Console()

    def say(line: str) -> None:
        console.print(line, soft_wrap=True, highlight=False, markup=False)

    if args.gpu_check or args.dry_run:
        return _gpu_check(args, say)
    out = Path(args.out or "bench_report")
    df = run_benchmarks(out, args.select, suite=args.suite, fresh=args.fresh, log=say)
    print_table(df, title="Benchmarks", console=console, floats=3)
    console.print(f"report: {out / 'report.md'}")
    return 0


def _gpu_check(args: argparse.Namespace, say: Callable[[str], None]) -> int:
    """`--gpu-check [--dry-run]`: 0 when every measurement ran or was left out for a stated reason, 1 when one
    failed (the report still says which and why)."""
    from harness.bench.gpu_plan import GpuCheckError
    from harness.bench.gpucheck import run_gpu_check

    if not args.gpu_check:
        raise GpuCheckError("--dry-run is the GPU check's CPU dry mode: use it with --gpu-check")
    given = [flag for flag, value in (("-k", args.select), ("--suite", args.suite), ("--fresh", args.fresh)) if value]
    if given:
        raise GpuCheckError(f"{', '.join(given)}: options of the benchmark suite, not of --gpu-check")
    _, report = run_gpu_check(Path(args.out) if args.out else None, dry_run=args.dry_run, log=say)
    failed = [k for k in ("stage2", "vit", "zero2") if report[k]["status"] == "failed"]
    for k in failed:
        say(f"gpu-check: {k} failed: {report[k]['reason']}")
    return 1 if failed else 0
