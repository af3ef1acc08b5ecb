"""The GPU check's measurements: the matmul peak, the stage-2 training step, ViT feature extraction, and one ZeRO-2
step in two processes (`run_zero2` starts them; each runs `zero2_worker`).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_text
from harness.bench.gpu_plan import REPO, CheckPlan, GpuCheckError, Log, plan_rounds, rounds_note
from harness.bench.suite import matmul_peak_flops
from harness.runtime.childenv import child_env
from harness.runtime.distributed import end_strategy, free_port, setup_strategy
from harness.stages.stage2 import stage2_loss
from harness.train.loop import adamw_name, build_adamw, compute_dtype
from harness.train.precision import set_threads
from models.configs import TemporalConfig


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
    """The matmul peak in `dtype` on the plan's device (`harness.bench.suite.matmul_peak_flops`), at this thread
    count."""
    return matmul_peak_flops(dtype, plan.device, n=plan.peak_n, seconds=plan.peak_seconds)


def measure_stage2(plan: CheckPlan, slice_s: float, notes: list[str]) -> dict[str, Any]:
    """Time the stage-2 training step: forward under autocast, the stage-2 loss, backward, the engine's AdamW."""
    import torch

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
    """One ZeRO-2 step timed in two processes (`python -m harness.bench.gpucheck`, one per GPU; gloo on a CPU).

    The children get the rendezvous (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) through
    `harness.runtime.childenv.child_env`, never this process's own, and are killed when the slice runs out.

    Returns:
        The section (`zero2_section`), or one with status `failed` and the reason.
    """
    world = 2
    launcher = (f"{world} processes (python -m harness.bench.gpucheck, RANK/WORLD_SIZE rendezvous via "
                "harness.runtime.childenv)")
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
                cmd = [sys.executable, "-m", "harness.bench.gpucheck", str(spec_path), str(work / f"rank{rank}.json")]
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

    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    p = spec["plan"]
    set_threads(p["threads"] or 0)
    strategy = setup_strategy()
    import deepspeed

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
