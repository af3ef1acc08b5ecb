"""`harness bench --gpu-check`: one command that measures what the paper's setup needs from a GPU, in under 8 minutes.

Three measurements, each against the peak measured in the same run (`harness.bench.matmul_peak_flops`, a large
matrix product in the same dtype on the same device, before and after; the better counts):

1. the stage-2 training step (the BDCA temporal model of the `paper` config, built by the model registry, on
   1024-d visual and 190-d audio features in 300-frame windows, the config's per-GPU batch) under bf16 autocast with
   the AdamW the engine builds: time per step, achieved FLOP/s (the analytic count of `models.count_train_flops`)
   and the fraction of the bf16 peak;
2. ViT-L/16 feature extraction (random weights: no checkpoint is needed for a speed), 224 x 224, bf16 autocast,
   inference, at the config's extraction batch: images/s, FLOP/s (`models.count_flops`) and fraction of peak;
3. one ZeRO-2 step of the same temporal model under DeepSpeed in two processes (one per GPU, NCCL), started as
   `python -m harness.gpucheck` children with the rendezvous in their environment (`harness.childenv`), which
   initialise distribution the harness's own way (`harness.distributed.setup_strategy`); run only where two or
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
import dataclasses
import gc
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_text
from core.errors import HarnessError
from models.configs import TemporalConfig, ViTConfig, with_overrides

REPO = Path(__file__).resolve().parent.parent
BENCH_ROOT = REPO / "ci" / "benchmarks"
"""Committed benchmark reports: a GPU check writes `<BENCH_ROOT>/<device slug>/` by default; a dry run never."""

REPORT_JSON, REPORT_MD = "gpu-check.json", "gpu-check.md"
BUDGET_S = 450.0
"""The check's own time budget: 7.5 minutes, leaving half a minute of the 8 for start-up and imports."""

FRAMES_3M = 3_000_000
"""Aff-Wild2's order of magnitude of frames: the ViT row also gives the minutes to extract them at its rate."""

TARGETS = {"stage2_peak_fraction": 0.40, "vit_3m_frames_minutes": 30.0}
"""Issue 17's GPU targets (ci/benchmarks/README.md): stage 2 at >= 40% of the bf16 peak; 3 M ViT-L frames < 30 min."""

Log = Callable[[str], None]


class GpuCheckError(HarnessError):
    """The GPU check cannot run as asked (a dry run without its folder, or one aimed at ci/benchmarks/)."""


class NoGpuError(GpuCheckError):
    """No CUDA device: the check would time the CPU as if it were the GPU."""


# ---------------------------------------------------------------------------------------------------------------
# Plans (pure)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckPlan:
    """Shapes, precision, rounds and time slices of one check: the GPU's (`gpu_plan`) or the CPU dry run's.

    Args:
        mode: `gpu` or `dry-run`.
        device: `cuda` or `cpu` (the torch device type measured).
        precision: `bfloat16` (autocast) or `float32` (no autocast); the peak is measured in the same dtype.
        temporal: the stage-2 model's config (feature widths included).
        window: frames per window.
        batch: windows per training step (one process).
        vit: the feature extractor's config.
        vit_name: its registered name.
        vit_batch: images per forward.
        zero_micro_batch: windows per process in the ZeRO-2 step.
        zero_precision: the DeepSpeed precision of the ZeRO-2 step (`bf16` or `fp32`, as the engine resolves it).
        optimizer: AdamW's (lr, betas, weight decay) of the config's stage 2.
        ds_config: the DeepSpeed config of the ZeRO-2 step (`harness.engine.deepspeed_config`, two processes).
        warmup: untimed steps before the timed rounds (cuBLAS heuristics, allocator, autotuning).
        rounds: timed rounds wanted per measurement (fewer when the budget is short).
        zero_rounds: timed ZeRO-2 steps wanted.
        peak_n: matrix side of the peak measurement.
        peak_seconds: how long each peak measurement multiplies.
        slices_s: seconds of the budget each measurement may take (`stage2`, `vit`, `zero2`).
        threads: intra-op threads (None: torch's default); the dry run pins one per process on shared cores.
    """

    mode: str
    device: str
    precision: str
    temporal: TemporalConfig
    window: int
    batch: int
    vit: ViTConfig
    vit_name: str
    vit_batch: int
    zero_micro_batch: int
    zero_precision: str
    optimizer: tuple[float, tuple[float, float], float]
    ds_config: dict[str, Any]
    warmup: int
    rounds: int
    zero_rounds: int
    peak_n: int
    peak_seconds: float
    slices_s: dict[str, float] = field(default_factory=dict)
    threads: int | None = None

    @property
    def autocast(self) -> bool:
        """Whether the forwards run under bf16 autocast."""
        return self.precision == "bfloat16"

    @property
    def zero_dtype(self) -> str:
        """The torch dtype name of the ZeRO-2 step's products (its peak is measured in that dtype)."""
        return {"bf16": "bfloat16", "fp16": "float16"}.get(self.zero_precision, "float32")

    @property
    def peak_dtypes(self) -> tuple[str, ...]:
        """The dtypes whose matmul peak the check measures: the forwards' and the ZeRO-2 step's."""
        return tuple(dict.fromkeys((self.precision, self.zero_dtype)))


def _zero_ds_config(cfg: Any, micro_batch: int, precision: str) -> dict[str, Any]:
    from harness.engine import deepspeed_config

    loop = dataclasses.replace(cfg.stage2, micro_batch=micro_batch, grad_accum=1)
    ds = dataclasses.replace(cfg.deepspeed, zero_stage=2)
    return deepspeed_config(loop, ds, 2, precision)


def gpu_plan(cfg: Any, bf16: bool = True) -> CheckPlan:
    """The GPU check at the config's shapes (the `paper` config: the paper's).

    Args:
        cfg: a `harness.config.Config`.
        bf16: the GPU supports bf16 (every GPU the paper's setup targets); False measures fp32 and says so.
    """
    s2 = cfg.stage2
    zero_precision = "bf16" if bf16 else "fp32"
    return CheckPlan(
        mode="gpu", device="cuda", precision="bfloat16" if bf16 else "float32",
        temporal=cfg.temporal_config(), window=cfg.windows.length, batch=s2.micro_batch,
        vit=cfg.vit_config(), vit_name=cfg.encoder.name, vit_batch=cfg.stage1.extract_batch,
        zero_micro_batch=s2.micro_batch, zero_precision=zero_precision,
        optimizer=(s2.schedule.lr, s2.betas, s2.weight_decay),
        ds_config=_zero_ds_config(cfg, s2.micro_batch, zero_precision),
        warmup=3, rounds=20, zero_rounds=10, peak_n=8192, peak_seconds=2.0,
        # The ZeRO-2 slice includes two process starts, imports and deepspeed.initialize (tens of seconds).
        slices_s={"stage2": 60.0, "vit": 60.0, "zero2": 240.0},
    )  # fmt: skip


DRY_VIT = ("vit_tiny_patch16", 64)
"""The dry run's encoder: ViT-Tiny's width and depth (192-d, 12 blocks) on 64 px images (16 patches)."""


def dry_plan(cfg: Any, bf16: bool = False) -> CheckPlan:
    """The CPU dry run: the same code path at tiny shapes, in seconds.

    The temporal model keeps the config's architecture; its visual width is the dry encoder's (192, as 1024 is
    ViT-L's), windows are 32 frames, batches 4 (2 per process in the ZeRO-2 step).

    Args:
        cfg: a `harness.config.Config`.
        bf16: the CPU has bf16 matrix units (`cpu_has_fast_bf16`); else fp32, since a bf16 matmul on a CPU
            without them runs at about 0.3 GFLOP/s.
    """
    from models.registry import get_config

    vit = get_config(DRY_VIT[0], img_size=DRY_VIT[1])
    assert isinstance(vit, ViTConfig)
    temporal = with_overrides(cfg.temporal_config(), visual_dim=vit.embed_dim)
    assert isinstance(temporal, TemporalConfig)
    s2 = cfg.stage2
    return CheckPlan(
        mode="dry-run", device="cpu", precision="bfloat16" if bf16 else "float32",
        temporal=temporal, window=32, batch=4, vit=vit, vit_name=DRY_VIT[0], vit_batch=4,
        # DeepSpeed refuses half precision on a CPU (`harness.engine.resolve_precision`): the ZeRO step is fp32.
        zero_micro_batch=2, zero_precision="fp32", optimizer=(s2.schedule.lr, s2.betas, s2.weight_decay),
        ds_config=_zero_ds_config(cfg, 2, "fp32"),
        warmup=1, rounds=3, zero_rounds=2, peak_n=256, peak_seconds=0.25,
        slices_s={"stage2": 20.0, "vit": 20.0, "zero2": 90.0}, threads=1,
    )  # fmt: skip


def cpu_has_fast_bf16(cpuinfo: str) -> bool:
    """Whether /proc/cpuinfo's flags name bf16 matrix instructions (AVX-512 BF16 or AMX BF16).

    Args:
        cpuinfo: the text of /proc/cpuinfo.
    """
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def device_slug(name: str) -> str:
    """A folder name for a device: `NVIDIA H100 80GB HBM3` -> `nvidia-h100-80gb-hbm3`."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "unknown-device"


def resolve_out(out: Path | None, dry_run: bool, device_name: str, bench_root: Path = BENCH_ROOT) -> Path:
    """The report folder: `out`, or `<bench_root>/<device slug>` for a GPU run.

    Raises:
        GpuCheckError: a dry run without `out`, or with `out` inside `bench_root` (CPU numbers of tiny shapes
            must never sit beside committed reports).
    """
    if not dry_run:
        return Path(out) if out is not None else bench_root / device_slug(device_name)
    if out is None:
        raise GpuCheckError("--dry-run needs --out DIR: the dry run writes only to a folder it is given")
    resolved, root = Path(out).resolve(), bench_root.resolve()
    if resolved == root or root in resolved.parents:
        raise GpuCheckError(f"{out}: a dry run never writes into {bench_root} (its reports are measured on GPUs); "
                            "choose another --out")  # fmt: skip
    return Path(out)


def plan_rounds(step_s: float, slice_s: float, wanted: int) -> int:
    """Timed rounds that fit `slice_s` at `step_s` each: at most `wanted`, at least 1 (a row needs one time).

    Args:
        step_s: seconds of one warm round.
        slice_s: seconds left for the timed rounds.
        wanted: rounds when time allows.
    """
    if step_s <= 0:
        return wanted
    return max(1, min(wanted, int(slice_s // step_s)))


def rounds_note(what: str, rounds: int, wanted: int, step_s: float, slice_s: float) -> str | None:
    """The report's line when `plan_rounds` gave fewer rounds than wanted (None otherwise)."""
    if rounds >= wanted:
        return None
    return (f"{what}: {rounds} of {wanted} timed rounds (a warm round took {step_s:.3f} s and {slice_s:.1f} s of "
            "its slice of the time budget were left); its times are from fewer rounds")  # fmt: skip


def time_summary(times: Sequence[float]) -> dict[str, Any]:
    """Median, fastest and mean seconds of the timed rounds, and their number."""
    return {"rounds": len(times), "median_s": statistics.median(times), "min_s": min(times),
            "mean_s": statistics.fmean(times)}  # fmt: skip


def best_peaks(peaks: Mapping[str, Mapping[str, float | None]]) -> dict[str, float | None]:
    """The better of the `before` and `after` matmul peaks of each dtype (None when neither was measured)."""
    return {dtype: max((x for x in pair.values() if x), default=None) for dtype, pair in peaks.items()}


def apply_peaks(section: Mapping[str, Any], best: Mapping[str, float | None]) -> dict[str, Any]:
    """A measured row with its peak (one device's, times the row's processes) and its fraction of that peak.

    Args:
        section: a row of `stage2_section`, `vit_section` or `zero2_section` (other rows come back unchanged).
        best: `best_peaks`.
    """
    row = dict(section)
    if row.get("status") != "measured":
        return row
    one = best.get(row["peak_precision"])
    peak = one * row.get("processes", 1) if one else None
    row.update(peak_flops_per_s=peak, peak_fraction=row["flops_per_s"] / peak if peak else None)
    return row


def stage2_section(plan: CheckPlan, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The report's stage-2 row from `measure_stage2`'s raw result."""
    from models.flops import count_train_flops

    flops = count_train_flops(plan.temporal, T=plan.window, batch=plan.batch)
    times = time_summary(raw["times"])
    t = plan.temporal
    return {
        "status": "measured",
        "model": t.fusion,
        "shapes": {"batch": plan.batch, "window": plan.window, "visual_dim": t.visual_dim, "audio_dim": t.audio_dim,
                   "tcn_channels": t.tcn_channels},
        "shapes_text": f"B {plan.batch} x T {plan.window}, Dv {t.visual_dim}, Da {t.audio_dim}, TCN {t.tcn_channels}",
        "precision": plan.precision,
        "autocast": plan.autocast,
        "optimizer": raw["optimizer"],
        "warmup": raw["warmup"],
        "rounds_wanted": raw["wanted"],
        **times,
        "train_flops_per_step": flops,
        "flops_per_s": flops / times["median_s"],
        "peak_precision": plan.precision,
        "frames_per_s": plan.batch * plan.window / times["median_s"],
        "losses": raw["losses"],
        "target_peak_fraction": TARGETS["stage2_peak_fraction"] if plan.mode == "gpu" else None,
    }  # fmt: skip


def vit_section(plan: CheckPlan, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The report's ViT feature-throughput row from `measure_vit`'s raw result."""
    from models.flops import count_flops

    flops = count_flops(plan.vit, T=plan.vit_batch)
    times = time_summary(raw["times"])
    v = plan.vit
    ips = plan.vit_batch / times["median_s"]
    return {
        "status": "measured",
        "model": plan.vit_name,
        "shapes": {"batch": plan.vit_batch, "img_size": v.img_size, "patch_size": v.patch_size,
                   "embed_dim": v.embed_dim, "depth": v.depth},
        "shapes_text": f"batch {plan.vit_batch} x 3 x {v.img_size} x {v.img_size}, {v.embed_dim}-d x {v.depth} "
                       f"blocks, CLS features",
        "precision": plan.precision,
        "autocast": plan.autocast,
        "warmup": raw["warmup"],
        "rounds_wanted": raw["wanted"],
        **times,
        "flops_per_batch": flops,
        "flops_per_s": flops / times["median_s"],
        "peak_precision": plan.precision,
        "images_per_s": ips,
        # Only a GPU's rate says anything about extracting Aff-Wild2's frames.
        "minutes_for_3m_frames": FRAMES_3M / ips / 60 if plan.mode == "gpu" else None,
        "target_minutes_for_3m_frames": TARGETS["vit_3m_frames_minutes"] if plan.mode == "gpu" else None,
    }  # fmt: skip


def zero2_section(plan: CheckPlan, ranks: Sequence[Mapping[str, Any]], launcher: str) -> dict[str, Any]:
    """The report's ZeRO-2 row from both workers' records (`zero2_worker`).

    The step time is the slowest rank's median (a step ends when both have); FLOPs are the two processes' together,
    against twice the one-device peak. The eval losses are one fixed batch's loss on each rank after the steps:
    equal when the ranks hold the same weights, which ZeRO-2's sharded optimiser step must give.
    """
    from models.flops import count_train_flops

    world = len(ranks)
    flops = count_train_flops(plan.temporal, T=plan.window, batch=plan.zero_micro_batch * world)
    medians = [statistics.median(r["times"]) for r in ranks]
    slowest = max(range(world), key=lambda i: medians[i])
    times = time_summary(ranks[slowest]["times"])
    evals = [r["eval_loss"] for r in ranks]
    sums = [r["param_sum"] for r in ranks]
    return {
        "status": "measured",
        "launcher": launcher,
        "processes": world,
        "backend": ranks[0]["backend"],
        "zero_stage": ranks[0]["zero_stage"],
        "optimizer": ranks[0]["optimizer"],
        "precision": plan.zero_precision,
        "shapes": {"micro_batch_per_process": plan.zero_micro_batch, "window": plan.window,
                   "visual_dim": plan.temporal.visual_dim, "audio_dim": plan.temporal.audio_dim},
        "shapes_text": f"{world} x B {plan.zero_micro_batch} x T {plan.window}, Dv {plan.temporal.visual_dim}, "
                       f"Da {plan.temporal.audio_dim}",
        "warmup": ranks[0]["warmup"],
        "rounds_wanted": ranks[0]["wanted"],
        **times,
        "train_flops_per_step": flops,
        "flops_per_s": flops / times["median_s"],
        "peak_precision": plan.zero_dtype,
        "frames_per_s": world * plan.zero_micro_batch * plan.window / times["median_s"],
        "init_s": max(r["init_s"] for r in ranks),
        "train_losses": [r["losses"] for r in ranks],
        "eval_losses": evals,
        "eval_losses_equal": len(set(evals)) == 1,
        "param_sums": sums,
        "param_sums_equal": len(set(sums)) == 1,
    }  # fmt: skip


def build_report(plan: CheckPlan, device: Mapping[str, Any], peaks: Mapping[str, Mapping[str, float | None]],
                 sections: Mapping[str, Mapping[str, Any]], notes: Sequence[str], wall_s: float,
                 budget_s: float) -> dict[str, Any]:  # fmt: skip
    """The whole report (what `gpu-check.json` holds).

    Args:
        plan: the check's plan.
        device: `gpu_device_info`'s record.
        peaks: per dtype, `before` and `after` FLOP/s of the matmul peak (None: not measured); each row's
            fraction is of the better of the two in the row's dtype.
        sections: `stage2`, `vit`, `zero2` rows (`status` measured, not run, skipped or failed).
        notes: lines on what was cut short or left out, and why.
        wall_s: the check's wall time.
        budget_s: its time budget.
    """
    best = best_peaks(peaks)
    return {
        "kind": "gpu-check",
        "mode": plan.mode,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "device": dict(device),
        "threads": plan.threads,
        "peaks": {dtype: {"device": plan.device, "matmul_n": plan.peak_n, "flops_per_s": best[dtype], **pair}
                  for dtype, pair in peaks.items()},
        "stage2": apply_peaks(sections["stage2"], best),
        "vit": apply_peaks(sections["vit"], best),
        "zero2": apply_peaks(sections["zero2"], best),
        "notes": list(notes),
        "wall_s": wall_s,
        "budget_s": budget_s,
        "within_budget": wall_s <= budget_s,
    }  # fmt: skip


def _fmt(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value / scale:,.{digits}f}"


def report_markdown(report: Mapping[str, Any]) -> str:
    """`gpu-check.md`: the device, versions, peak, one table row per measurement, the notes."""
    d = report["device"]
    title = "GPU check" if report["mode"] == "gpu" else "GPU check: CPU dry run (tiny shapes; not a GPU's numbers)"
    gpu = f"{d['gpu']} x {d['gpu_count']}" if d.get("gpu") else "none"
    threads = f"{report['threads']} torch thread(s) per process" if report.get("threads") else "torch's threads"
    peaks = "; ".join(f"{dtype} {_fmt(x['flops_per_s'], 1e12, 3)} TFLOP/s ({x['matmul_n']} x {x['matmul_n']})"
                      for dtype, x in report["peaks"].items())  # fmt: skip
    head = (
        f"# {title}\n\n"
        f"Device: GPU {gpu}; CPU {d['cpu']} ({threads}); torch {d['torch']} (built for CUDA "
        f"{d.get('cuda') or 'none'}), cuDNN {d.get('cudnn') or 'n/a'}, DeepSpeed {d.get('deepspeed') or 'n/a'}, "
        f"Python {d['python']}.\n"
        f"Date: {report['date']}; the check took {report['wall_s']:.1f} s of its {report['budget_s']:.0f} s budget.\n"
        f"Same-run matmul peaks (best product, before and after the measurements): {peaks}.\n\n"
        "FLOPs are the models' analytic counts (`models.count_train_flops` for a training step: forward + backward, "
        "optimiser excluded; `models.count_flops` for the ViT); % of peak = achieved FLOP/s at the median time / "
        "the peak of the row's precision (the ZeRO-2 row: / twice the peak, two processes).\n\n"
        "| measurement | shapes | precision | rounds | median ms | min ms | rate | GFLOP per call | TFLOP/s | "
        "% of peak |\n|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for key, label in (("stage2", "stage-2 training step"), ("vit", "ViT feature extraction"),
                       ("zero2", "ZeRO-2 step, 2 processes")):  # fmt: skip
        s = report[key]
        if s["status"] != "measured":
            rows.append(f"| {label} | {s['status']}: {s.get('reason', '')} | | | | | | | | |")
            continue
        flops = s.get("train_flops_per_step", s.get("flops_per_batch"))
        if key != "vit":
            rate = f"{s['frames_per_s']:,.0f} frames/s"
        elif s["minutes_for_3m_frames"] is not None:
            rate = f"{s['images_per_s']:,.1f} images/s ({s['minutes_for_3m_frames']:,.1f} min per 3 M frames)"
        else:
            rate = f"{s['images_per_s']:,.1f} images/s"
        frac = s["peak_fraction"]
        rows.append(
            f"| {label} | {s['shapes_text']} | {s['precision']} | {s['rounds']}/{s['rounds_wanted']} | "
            f"{s['median_s'] * 1e3:,.2f} | {s['min_s'] * 1e3:,.2f} | {rate} | {flops / 1e9:,.2f} | "
            f"{_fmt(s['flops_per_s'], 1e12, 3)} | {'n/a' if frac is None else f'{frac:.1%}'} |"
        )
    z = report["zero2"]
    extra = ""
    if z["status"] == "measured":
        extra = (
            f"\nZeRO-2: {z['launcher']}, backend {z['backend']}, ZeRO stage {z['zero_stage']} ({z['optimizer']}), "
            f"deepspeed.initialize {z['init_s']:.1f} s; loss of one fixed batch after the steps, per rank: "
            f"{', '.join(f'{x:.6f}' for x in z['eval_losses'])} (equal: {z['eval_losses_equal']}).\n"
        )
    notes = "".join(f"- {n}\n" for n in report["notes"])
    return head + "\n".join(rows) + "\n" + extra + ("\nNotes:\n" + notes if notes else "")


# ---------------------------------------------------------------------------------------------------------------
# Measuring (I/O: devices, processes, files)
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Budget:
    """The check's wall-clock budget, from its start.

    Args:
        total_s: seconds the whole check may take.
        start: `time.perf_counter()` at the start.
    """

    total_s: float
    start: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.perf_counter() - self.start

    def left(self) -> float:
        """Seconds still in the budget (negative once spent)."""
        return self.total_s - self.elapsed()

    def slice(self, want: float, reserve: float = 0.0) -> float:
        """`want` seconds, or what is left less `reserve` (kept for what follows), whichever is smaller."""
        return max(0.0, min(want, self.left() - reserve))


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _timed(fn: Callable[[], Any], device: str) -> tuple[float, Any]:
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, out


def _time_rounds(fn: Callable[[], Any], device: str, warmup: int, wanted: int, slice_s: float, what: str,
                 notes: list[str]) -> tuple[list[float], list[Any], int]:  # fmt: skip
    """Warm up, plan the rounds from the last warm round and what the slice has left, time them."""
    t_start = time.perf_counter()
    step_s = 0.0
    for _ in range(max(1, warmup)):
        step_s, _ = _timed(fn, device)
    left = slice_s - (time.perf_counter() - t_start)
    rounds = plan_rounds(step_s, left, wanted)
    note = rounds_note(what, rounds, wanted, step_s, left)
    if note:
        notes.append(note)
    times, outs = [], []
    for _ in range(rounds):
        t, out = _timed(fn, device)
        times.append(t)
        outs.append(out)
    return times, outs, max(1, warmup)


def _stage2_batch(t: TemporalConfig, T: int, batch: int, seed: Sequence[int], device: Any,
                  dtype: Any = None) -> dict[str, Any]:  # fmt: skip
    """Random windows of T frames as a `WindowDataset` batch on `device`: features (in `dtype` when given), every
    frame annotated, nothing padded."""
    import numpy as np
    import torch

    g = torch.Generator().manual_seed(int(np.random.SeedSequence(list(seed)).generate_state(1)[0]))
    out = {
        "visual": torch.randn(batch, T, t.visual_dim, generator=g),
        "audio": torch.randn(batch, T, t.audio_dim, generator=g),
        "pad_mask": torch.zeros(batch, T, dtype=torch.bool),
        "labels": torch.rand(batch, T, 2, generator=g) * 1.6 - 0.8,
        "label_mask": torch.ones(batch, T, dtype=torch.bool),
    }
    moved = {k: v.to(device) for k, v in out.items()}
    if dtype is not None:
        for k in ("visual", "audio"):
            moved[k] = moved[k].to(dtype)
    return moved


def measure_peak(plan: CheckPlan, dtype: str) -> float:
    """The matmul peak in `dtype` on the plan's device (`harness.bench.matmul_peak_flops`), at this thread count."""
    from harness.bench import matmul_peak_flops

    return matmul_peak_flops(dtype, plan.device, n=plan.peak_n, seconds=plan.peak_seconds)


def measure_stage2(plan: CheckPlan, slice_s: float, notes: list[str]) -> dict[str, Any]:
    """Time the stage-2 training step: forward under autocast, the stage-2 loss, backward, the engine's AdamW."""
    import torch

    from harness.engine import adamw_name, build_adamw
    from harness.stage2 import stage2_loss
    from models.registry import build_model

    device = torch.device(plan.device)
    torch.manual_seed(0)
    model = build_model(plan.temporal).to(device).train()
    lr, betas, wd = plan.optimizer
    opt = build_adamw(model.parameters(), device, lr=lr, betas=betas, weight_decay=wd)
    batch = _stage2_batch(plan.temporal, plan.window, plan.batch, (0, 1), device)

    def step() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(plan.device, dtype=torch.bfloat16, enabled=plan.autocast):
            loss = stage2_loss(model, batch)
        loss.backward()
        opt.step()
        return loss.detach()

    times, losses, warmup = _time_rounds(step, plan.device, plan.warmup, plan.rounds, slice_s, "stage 2", notes)
    return {"times": times, "losses": [float(x) for x in losses], "warmup": warmup, "wanted": plan.rounds,
            "optimizer": adamw_name(opt)}  # fmt: skip


def measure_vit(plan: CheckPlan, slice_s: float, notes: list[str]) -> dict[str, Any]:
    """Time the encoder's CLS features of one batch of random images: inference, autocast, random weights."""
    import torch

    from models.registry import build_model

    torch.manual_seed(0)
    model = build_model(plan.vit).to(plan.device).eval()
    g = torch.Generator().manual_seed(3)
    images = torch.randn(plan.vit_batch, plan.vit.in_chans, plan.vit.img_size, plan.vit.img_size,
                         generator=g).to(plan.device)  # fmt: skip

    def forward() -> bool:
        with torch.inference_mode(), torch.autocast(plan.device, dtype=torch.bfloat16, enabled=plan.autocast):
            feats = model.forward_features(images)
        return bool(feats.shape == (plan.vit_batch, plan.vit.embed_dim) and torch.isfinite(feats).all())

    times, ok, warmup = _time_rounds(forward, plan.device, plan.warmup, plan.rounds, slice_s, "ViT", notes)
    if not all(ok):
        raise GpuCheckError(f"{plan.vit_name}: features of the wrong shape or not finite")
    return {"times": times, "warmup": warmup, "wanted": plan.rounds}



def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def run_zero2(plan: CheckPlan, slice_s: float, log: Log) -> dict[str, Any]:
    """One ZeRO-2 step timed in two processes (`python -m harness.gpucheck`, one per GPU; gloo on a CPU).

    The children get the rendezvous (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) through
    `harness.childenv.child_env`, never this process's own, and are killed when the slice runs out.

    Returns:
        The section (`zero2_section`), or one with status `failed` and the reason.
    """
    from harness.childenv import child_env
    from harness.distributed import free_port

    world = 2
    launcher = f"{world} processes (python -m harness.gpucheck, RANK/WORLD_SIZE rendezvous via harness.childenv)"
    with tempfile.TemporaryDirectory(prefix="gpu-check-zero2-") as tmp:
        work = Path(tmp)
        spec = {"temporal": dataclasses.asdict(plan.temporal), "plan": _plan_fields(plan),
                # The workers share the slice: deepspeed.initialize and imports come out of it too.
                "deadline_s": slice_s, "started": time.time()}  # fmt: skip
        spec_path = work / "spec.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        port = str(free_port())
        threads = {"OMP_NUM_THREADS": str(plan.threads)} if plan.threads else {}
        procs = []
        for rank in range(world):
            env = child_env({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                             "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port,
                             **threads})  # fmt: skip
            with open(work / f"rank{rank}.log", "w", encoding="utf-8") as fh:
                cmd = [sys.executable, "-m", "harness.gpucheck", str(spec_path), str(work / f"rank{rank}.json")]
                procs.append(subprocess.Popen(cmd, env=env, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT))
        log(f"ZeRO-2: {world} processes started (pids {', '.join(str(p.pid) for p in procs)})")
        codes = _wait_all(procs, slice_s)
        failed = [r for r in range(world) if codes[r] not in (0, None)]
        if failed:
            r = failed[0]
            why = f"rank {r} exited with {codes[r]}: {_tail(work / f'rank{r}.log')}"
            return {"status": "failed", "launcher": launcher, "reason": why}
        if any(c is None for c in codes):
            return {"status": "failed", "launcher": launcher,
                    "reason": f"not finished within its {slice_s:.0f} s slice of the time budget; killed"}  # fmt: skip
        ranks = []
        for rank in range(world):
            path = work / f"rank{rank}.json"
            if not path.is_file():
                why = f"rank {rank} exited without its record: {_tail(work / f'rank{rank}.log')}"
                return {"status": "failed", "launcher": launcher, "reason": why}
            ranks.append(json.loads(path.read_text(encoding="utf-8")))
    return {"ranks": ranks, "launcher": launcher}


def _wait_all(procs: Sequence[subprocess.Popen], timeout_s: float) -> list[int | None]:
    """Wait for every process until `timeout_s`; kill the rest when one fails (its partner would wait in a
    collective until the timeout) or when the time is up.

    Returns:
        Each process's exit code as it ended by itself (None: killed here).
    """
    deadline = time.perf_counter() + timeout_s
    codes: list[int | None] = [None] * len(procs)
    try:
        while time.perf_counter() < deadline:
            codes = [p.poll() for p in procs]
            if all(c is not None for c in codes) or any(c not in (0, None) for c in codes):
                break
            time.sleep(0.05)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    return codes


def _plan_fields(plan: CheckPlan) -> dict[str, Any]:
    """What a ZeRO-2 worker needs of the plan, as JSON."""
    return {"window": plan.window, "micro_batch": plan.zero_micro_batch, "precision": plan.zero_precision,
            "optimizer": [plan.optimizer[0], list(plan.optimizer[1]), plan.optimizer[2]],
            "ds_config": plan.ds_config, "warmup": plan.warmup, "rounds": plan.zero_rounds,
            "threads": plan.threads}  # fmt: skip


def zero2_worker(spec_path: Path, out_path: Path) -> None:
    """One rank of the ZeRO-2 step: DeepSpeed engine, warm-up, timed steps, then one fixed batch's loss.

    Every rank trains on its own random windows (as data-parallel ranks do) and takes the same number of steps
    (the slowest rank's warm step plans the rounds for both: each step is a collective).

    Args:
        spec_path: the JSON `run_zero2` wrote.
        out_path: this rank's record (JSON).
    """
    import torch

    from harness.distributed import end_strategy, setup_strategy
    from harness.engine import adamw_name, build_adamw, compute_dtype, set_threads

    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    p = spec["plan"]
    set_threads(p["threads"] or 0)
    strategy = setup_strategy()
    import deepspeed

    from harness.stage2 import stage2_loss

    # The class the registry builds for a TemporalConfig, imported alone: the registry's ViTs import timm and
    # torchvision, seconds per process that the dry run in the test suite would wait for twice.
    from models.temporal import AVTemporalModel

    temporal = TemporalConfig(**spec["temporal"])
    torch.manual_seed(0)  # the same initial weights on every rank
    model = AVTemporalModel(temporal)
    lr, betas, wd = p["optimizer"]
    opt = build_adamw(model.parameters(), strategy.device, lr=lr, betas=tuple(betas), weight_decay=wd)
    t0 = time.perf_counter()
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=opt, config=p["ds_config"])
    init_s = time.perf_counter() - t0
    dtype = compute_dtype(p["precision"])
    # Each rank its own windows, as data-parallel ranks have; the probe batch is the same on both.
    batch = _stage2_batch(temporal, p["window"], p["micro_batch"], (0, 1 + strategy.rank), strategy.device, dtype)
    probe = _stage2_batch(temporal, p["window"], p["micro_batch"], (0, 0), strategy.device, dtype)
    device = strategy.device.type

    def step() -> float:
        loss = stage2_loss(engine, batch)
        engine.backward(loss)
        engine.step()
        return float(loss.detach().float().item())

    warm = 0.0
    for _ in range(max(1, p["warmup"])):
        warm, _ = _timed(step, device)
    left = spec["deadline_s"] - (time.time() - spec["started"]) - 5.0  # 5 s for the probe and the exit
    rounds = plan_rounds(max(strategy.all_gather(warm)), left, p["rounds"])
    times, losses = [], []
    for _ in range(rounds):
        t, loss = _timed(step, device)
        times.append(t)
        losses.append(loss)
    engine.eval()
    with torch.no_grad():
        eval_loss = float(stage2_loss(engine, probe).float().item())
    param_sum = float(sum(q.detach().double().sum().item() for q in engine.module.parameters()))
    import torch.distributed as dist

    record = {"rank": strategy.rank, "backend": dist.get_backend(), "zero_stage": engine.zero_optimization_stage(),
              "optimizer": f"{type(engine.optimizer).__name__} over {adamw_name(opt)}", "init_s": init_s,
              "warmup": max(1, p["warmup"]), "wanted": p["rounds"], "times": times, "losses": losses,
              "eval_loss": eval_loss, "param_sum": param_sum}  # fmt: skip
    atomic_write_text(out_path, json.dumps(record))
    strategy.barrier()
    end_strategy()  # NCCL warns at exit about a process group left alive (and gloo may abort)


def gpu_device_info() -> dict[str, Any]:
    """The machine: CPU, threads, torch, Python (`harness.bench.device_info`), and the GPU, CUDA, cuDNN, DeepSpeed."""
    import torch

    from harness.bench import device_info

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

    from harness.bench import lock_report_folder
    from harness.config import load_config

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
                     "(`harness.engine.resolve_precision`)")  # fmt: skip
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
    """`python -m harness.gpucheck SPEC OUT`: one ZeRO-2 worker (started by `run_zero2`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m harness.gpucheck SPEC.json OUT.json (a worker of `harness bench --gpu-check`)",
              file=sys.stderr)  # fmt: skip
        return 2
    zero2_worker(Path(args[0]), Path(args[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
