"""`harness bench --gpu-check`: one command that measures what the paper's setup needs from a GPU, in under 8 minutes.

Three measurements, each against the peak measured in the same run (`harness.bench.suite.matmul_peak_flops`, a large
matrix product in the same dtype on the same device, before and after; the better counts):

1. the stage-2 training step (the BDCA temporal model of the `paper` config, built by the model registry, on
   1024-d visual and 190-d audio features in 300-frame windows, the config's per-GPU batch) under bf16 autocast with
   the AdamW the engine builds: time per step, achieved FLOP/s (the analytic count of `models.count_train_flops`)
   and the fraction of the bf16 peak;
2. ViT-L/16 feature extraction (random weights: no checkpoint is needed for a speed), 224 x 224, bf16 autocast,
   inference, at the config's extraction batch: images/s, FLOP/s (`models.count_flops`) and fraction of peak;
3. one ZeRO-2 step of the same temporal model under DeepSpeed in two processes (one per GPU, NCCL), started as
   `python -m harness.bench.gpucheck` children with the rendezvous in their environment (`harness.runtime.childenv`),
   which
   initialise distribution the harness's own way (`harness.runtime.distributed.setup_strategy`); run only where two or
   more GPUs are visible, else the report says why not.

A time budget (`BUDGET_S`) keeps the whole check under 8 minutes: every measurement has a slice of it, the timed
rounds are planned from the warm-up's step time (`plan_rounds`) and the report says when it ran fewer rounds than
it wanted, or skipped a measurement because the budget was spent.

`--dry-run` runs the same code path on the CPU at tiny shapes (a ViT-Tiny-size encoder at 64 px, 32-frame windows,
fp32 unless the CPU has bf16 matrix units), the ZeRO-2 step as two gloo processes; it writes only to the folder it
is given, never into ci/benchmarks/. Without CUDA and without `--dry-run` the check refuses to run
(`NoGpuError`): timing a CPU as if it were the GPU would give a report that looks like a GPU's.

Pure functions (plans, round planning, FLOP rates, the report and its Markdown) are apart from the measuring ones.
"""

from __future__ import annotations

import contextlib
import gc
import json
import platform
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_text
from harness.bench.gpu_measure import measure_peak, measure_stage2, measure_vit, run_zero2, zero2_worker
from harness.bench.gpu_plan import (
    BUDGET_S,
    REPORT_JSON,
    REPORT_MD,
    Budget,
    CheckPlan,
    Log,
    NoGpuError,
    cpu_has_fast_bf16,
    dry_plan,
    gpu_plan,
    resolve_out,
)
from harness.bench.gpu_report import build_report, report_markdown, stage2_section, vit_section, zero2_section
from harness.bench.suite import device_info, lock_report_folder
from harness.config import load_config


def gpu_device_info() -> dict[str, Any]:
    """The machine: CPU, threads, torch, Python (`harness.bench.suite.device_info`), and the GPU, CUDA, cuDNN,
    DeepSpeed."""
    import torch

    info: dict[str, Any] = dict(device_info())
    info.update(cuda=torch.version.cuda, platform=platform.platform(), gpu_count=0)
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=torch.cuda.get_device_name(0), gpu_count=torch.cuda.device_count(),
                    capability=f"{props.major}.{props.minor}", gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    cudnn=torch.backends.cudnn.version())  # fmt: skip
    from importlib.metadata import PackageNotFoundError, version

    try:
        info["deepspeed"] = version("deepspeed")
    except PackageNotFoundError:  # the ZeRO-2 row will say it failed
        info["deepspeed"] = None
    return info


def _read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to `n` (None: unchanged) for the block, restored afterwards."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_section(name: str, fn: Callable[[], dict[str, Any]], log: Log) -> dict[str, Any]:
    """A measurement, or its failure as a row (the others still run: a report with two rows beats none); the
    measurement's models and tensors are freed afterwards, and the GPU's cached blocks with them."""
    import torch

    try:
        return fn()
    except Exception as exc:  # an out-of-memory error or a DeepSpeed failure is a finding of the check
        line = " ".join(str(exc).split())[:300]
        log(f"{name}: failed: {type(exc).__name__}: {line}")
        return {"status": "failed", "reason": f"{type(exc).__name__}: {line}"}
    finally:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def run_gpu_check(out: Path | None = None, *, dry_run: bool = False, budget_s: float = BUDGET_S,
                  config: str = "paper", log: Log = print) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    """Measure, then write `gpu-check.json` and `gpu-check.md` atomically into the report folder.

    Args:
        out: the report folder (None: `ci/benchmarks/<device slug>/` on a GPU; a dry run must be given one).
        dry_run: the CPU dry mode (tiny shapes, gloo).
        budget_s: the time budget the check keeps to.
        config: the harness config whose shapes are measured (`paper`: the paper's).
        log: receives one line per step.

    Returns:
        The report folder and the report.

    Raises:
        NoGpuError: no CUDA device and not a dry run (nothing is measured or written).
        GpuCheckError: a dry run without a folder, or one inside ci/benchmarks/.
    """
    import torch

    budget = Budget(budget_s)
    if not dry_run and not torch.cuda.is_available():
        raise NoGpuError(
            f"no CUDA device (torch {torch.__version__} sees none): `harness bench --gpu-check` measures a GPU and "
            "will not time this CPU as one; run it on a GPU machine, or add --dry-run --out DIR for the CPU dry mode"
        )
    device = gpu_device_info()
    out_dir = resolve_out(out, dry_run, device.get("gpu", ""))
    cfg = load_config(config)
    if dry_run:
        plan = dry_plan(cfg, bf16=cpu_has_fast_bf16(_read_cpuinfo()))
    else:
        plan = gpu_plan(cfg, bf16=torch.cuda.is_bf16_supported())
    notes: list[str] = []
    if dry_run:
        notes.append("dry run: the CPU at tiny shapes tests the code path; its times say nothing of a GPU")
    if plan.precision == "float32":
        notes.append("float32 without autocast: this device has no fast bf16 matrix products")
    if plan.zero_precision == "fp32" and plan.precision != "float32":
        notes.append("ZeRO-2 in fp32: the engine runs DeepSpeed's half precision on GPUs only "
                     "(`harness.train.loop.resolve_precision`)")  # fmt: skip
    with lock_report_folder(out_dir), _threads(plan.threads):
        log(f"gpu-check ({plan.mode}): device {device.get('gpu') or device['cpu']}; report folder {out_dir}")
        peaks: dict[str, dict[str, float | None]] = {}
        for dtype in plan.peak_dtypes:
            peaks[dtype] = {"before": measure_peak(plan, dtype), "after": None}
            log(f"{dtype} matmul peak: {peaks[dtype]['before'] / 1e12:.3f} TFLOP/s")
        # Each measurement keeps a reserve for those after it: the ZeRO-2 step at least a minute (or its slice).
        zero_reserve = min(60.0, plan.slices_s["zero2"])
        sections = {
            "stage2": _budgeted("stage 2", budget, plan.slices_s["stage2"], zero_reserve + plan.slices_s["vit"] / 2,
                                lambda s: stage2_section(plan, measure_stage2(plan, s, notes)), notes, log),
            "vit": _budgeted("ViT", budget, plan.slices_s["vit"], zero_reserve,
                             lambda s: vit_section(plan, measure_vit(plan, s, notes)), notes, log),
        }  # fmt: skip
        sections["zero2"] = _zero2(plan, budget, notes, log)
        log(_line("ZeRO-2", sections["zero2"]))
        for dtype in plan.peak_dtypes:
            if budget.left() > 2 * plan.peak_seconds + 5:
                peaks[dtype]["after"] = measure_peak(plan, dtype)
            else:
                notes.append(f"the {dtype} peak was measured once (before): the budget left no time for the second")
        report = build_report(plan, device, peaks, sections, notes, budget.elapsed(), budget_s)
        atomic_write_text(out_dir / REPORT_JSON, json.dumps(report, indent=2))
        atomic_write_text(out_dir / REPORT_MD, report_markdown(report))
    for key, name in (("stage2", "stage 2"), ("vit", "ViT"), ("zero2", "ZeRO-2")):
        frac = report[key].get("peak_fraction")
        if frac is not None:
            log(f"{name}: {frac:.1%} of the same-run {report[key]['peak_precision']} peak")
    log(f"gpu-check: {report['wall_s']:.1f} s of the {budget_s:.0f} s budget; report {out_dir / REPORT_MD}")
    return out_dir, report


def _budgeted(name: str, budget: Budget, want_s: float, reserve_s: float, measure: Callable[[float], dict[str, Any]],
              notes: list[str], log: Log) -> dict[str, Any]:  # fmt: skip
    """`measure(slice_s)` in its slice of the budget, or a `skipped` row when the budget has no time left for it."""
    slice_s = budget.slice(want_s, reserve_s)
    if slice_s <= 0:
        notes.append(f"{name}: skipped, the time budget ({budget.total_s:.0f} s) was spent")
        row = {"status": "skipped", "reason": "time budget spent"}
    else:
        row = _run_section(name, lambda: measure(slice_s), log)
    log(_line(name, row))
    return row


def _zero2(plan: CheckPlan, budget: Budget, notes: list[str], log: Log) -> dict[str, Any]:
    """The ZeRO-2 row: two processes on two GPUs (two gloo processes on a CPU), or why it did not run."""
    import torch

    if plan.device == "cuda" and torch.cuda.device_count() < 2:
        n = torch.cuda.device_count()
        reason = f"{n} GPU visible; a two-process ZeRO-2 step needs two or more (one GPU per process)"
        notes.append(f"ZeRO-2: not run: {reason}")
        return {"status": "not run", "reason": reason}
    slice_s = budget.slice(plan.slices_s["zero2"], 5.0)  # 5 s for the second peak and the report
    if slice_s < 10:
        notes.append(f"ZeRO-2: skipped, the time budget ({budget.total_s:.0f} s) was spent")
        return {"status": "skipped", "reason": "time budget spent"}

    def run() -> dict[str, Any]:
        raw = run_zero2(plan, slice_s, log)
        if "ranks" not in raw:
            return raw
        rounds = len(raw["ranks"][0]["times"])
        if rounds < plan.zero_rounds:
            notes.append(f"ZeRO-2: {rounds} of {plan.zero_rounds} timed steps (the slice of the time budget "
                         "left no time for more); its times are from fewer steps")  # fmt: skip
        return zero2_section(plan, raw["ranks"], raw["launcher"])

    return _run_section("ZeRO-2", run, log)


def _line(name: str, section: Mapping[str, Any]) -> str:
    if section.get("status") != "measured":
        return f"{name}: {section.get('status')}: {section.get('reason', '')}"
    rate = f", {section['images_per_s']:,.1f} images/s" if "images_per_s" in section else ""
    return (f"{name}: {section['median_s'] * 1e3:,.2f} ms median over {section['rounds']} round(s){rate}, "
            f"{section['flops_per_s'] / 1e12:.3f} TFLOP/s")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m harness.bench.gpucheck SPEC OUT`: one ZeRO-2 worker (started by `run_zero2`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m harness.bench.gpucheck SPEC.json OUT.json (a worker of `harness bench --gpu-check`)",
              file=sys.stderr)  # fmt: skip
        return 2
    zero2_worker(Path(args[0]), Path(args[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
