"""The GPU check's plans: what it measures at which shapes (`gpu_plan`, `dry_plan`), where its report goes, and
how its time budget is shared (`plan_rounds`, `Budget`). Pure functions, no measuring.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import HarnessError
from harness.train.loop import deepspeed_config
from models.configs import TemporalConfig, ViTConfig, with_overrides

REPO = Path(__file__).resolve().parents[2]
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
        ds_config: the DeepSpeed config of the ZeRO-2 step (`harness.train.loop.deepspeed_config`, two processes).
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
        # DeepSpeed refuses half precision on a CPU (`harness.train.loop.resolve_precision`): the ZeRO step is fp32.
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
