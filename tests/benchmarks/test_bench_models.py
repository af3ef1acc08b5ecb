"""Neural benchmarks: the stage-2 training step and whole-video prediction (BDCA's, and one row each per rival fusion
model of `models.zoo` at the same shapes), the stage-1 ViT forward and backward.

Reports only (pytest-benchmark; `harness bench` turns them into a table against the same-run matmul peak): each
row records its device, precision, shapes, threads, work items per call and FLOPs per call from the models' own
FLOP functions. The assertions check results (finite, in range, parameters updated), never a time.

`BDCA_BENCH=1` (set by `harness bench`) selects the issue's shapes: 1024-d visual and 190-d audio features,
300-frame windows, batches 1/8/16 for training, 20,000 frames in 300/200 windows for prediction, ViT-Tiny and
ViT-Small at 224 px with batch 8 on the CPU, ViT-L/16 in bf16 on a GPU. Without it the same code runs once on tiny
shapes, as a smoke test of the benchmark bodies.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from core.atomic import atomic_write_text
from harness.bench.suite import profile_table
from harness.data.windows import window_starts
from harness.stages.predict import module_forward, predict_arrays
from harness.train.loop import adamw_name, build_adamw
from models import ccc_loss, count_flops, count_train_flops, create_model
from models.zoo import ZOO

FULL = os.environ.get("BDCA_BENCH") == "1"
PROFILE_DIR = os.environ.get("BDCA_BENCH_PROFILE_DIR") if FULL else None
CUDA = torch.cuda.is_available()
NO_CUDA = "no CUDA device: the GPU rows (ViT-L/16 and stage 2 in bf16) run only where torch.cuda.is_available()"

# Stage-2 shapes: (visual dim, audio dim, window length, stride, frames of the long video).
DV, DA, T = (1024, 190, 300) if FULL else (48, 16, 40)
STRIDE = 200 if FULL else 30
VIDEO_FRAMES = 20_000 if FULL else 400
EVAL_BATCH = 16  # the demo config's runtime.eval_batch
# Stage-1 shapes: image side and batch.
IMG, IMG_BATCH = (224, 8) if FULL else (32, 2)
VIT_SMOKE = {} if FULL else {"depth": 3, "frozen_blocks": 2}  # a shallow ViT for the smoke run


@pytest.fixture(autouse=True)
def _smoke_threads() -> Iterator[None]:
    """One intra-op thread for the tiny smoke shapes: on a busy two-core machine, two threads on tiny ops mostly
    wait at OpenMP barriers. The real run keeps torch's default (one thread per core), which the report records."""
    before = torch.get_num_threads()
    if not FULL:
        torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _info(benchmark, *, device: str, precision: str, shapes: str, unit: str, items: float, flops: int,
          target: str) -> None:  # fmt: skip
    benchmark.extra_info.update(
        device=device, precision=precision, shapes=shapes, unit=unit, items=items, flops=int(flops), target=target,
        threads=torch.get_num_threads(),
    )  # fmt: skip


def _rounds(full: int) -> dict:
    return {"rounds": full if FULL else 1, "iterations": 1, "warmup_rounds": 1 if FULL else 0}


def _profile(name: str, title: str, fn: Callable[[], object], rounds: int = 2) -> None:
    """Under `harness bench`, save torch.profiler's top-operator table of `fn` beside the report."""
    if PROFILE_DIR:
        text = f"# {title}\n\n{profile_table(fn, rounds)}\n"
        atomic_write_text(Path(PROFILE_DIR) / f"profile_{name}.txt", text)


def _synced(fn: Callable[[], object], device: str) -> Callable[[], object]:
    """`fn` followed by a device synchronisation, so a GPU call is timed to its end."""
    if device == "cpu":
        return fn

    def call() -> object:
        out = fn()
        torch.cuda.synchronize()
        return out

    return call


def _temporal(device: str = "cpu") -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("bdca", visual_dim=DV, audio_dim=DA).to(device)


def _train_step(model: torch.nn.Module, B: int, device: str, autocast: bool,
                optimizer: str = "engine") -> tuple[Callable[[], torch.Tensor], str]:  # fmt: skip
    """A closure running one stage-2 step (forward, CCC loss, backward, AdamW) on fixed random windows, and the
    name of the AdamW implementation it steps (`harness.train.loop.adamw_name`).

    Args:
        model: the temporal model.
        B: windows per step.
        device: torch device.
        autocast: run the forward under bf16 autocast.
        optimizer: `engine`: the AdamW the harness's engine builds (`harness.train.loop.build_adamw`: fused where
            torch has the kernel); `adamw`: torch's default (a per-parameter loop on a CPU), which the engine
            built before, kept as the reference.
    """
    g = torch.Generator().manual_seed(1)
    v = torch.randn(B, T, DV, generator=g).to(device)
    a = torch.randn(B, T, DA, generator=g).to(device)
    pad = torch.zeros(B, T, dtype=torch.bool, device=device)
    y = (torch.rand(B, T, 2, generator=g) * 1.6 - 0.8).to(device)
    if optimizer == "engine":
        opt = build_adamw(model.parameters(), torch.device(device), lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    model.train()

    def step() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            pred = model(v, a, pad)
        loss = ccc_loss(pred.float(), y)
        loss.backward()
        opt.step()
        return loss.detach()

    return step, adamw_name(opt)


@pytest.mark.parametrize(("B", "optimizer"), [(1, "engine"), (8, "adamw"), (8, "engine"), (16, "engine")])
def test_bench_stage2_train_step(benchmark, B: int, optimizer: str) -> None:
    model = _temporal()
    before = model.head[-1].weight.detach().clone()
    step, name = _train_step(model, B, "cpu", autocast=False, optimizer=optimizer)
    shapes = f"B {B} x T {T}, Dv {DV}, Da {DA}, {name}{' (engine)' if optimizer == 'engine' else ''}"
    _info(benchmark, device="cpu", precision="float32", shapes=shapes, unit="frames/s", items=B * T,
          flops=count_train_flops(model, T=T, batch=B),
          target="< 580 ms per step and >= 60% of peak" if B == 8 else "report")  # fmt: skip
    loss = benchmark.pedantic(step, **_rounds({1: 10, 8: 5, 16: 3}[B]))
    assert torch.isfinite(loss) and not torch.equal(before, model.head[-1].weight)
    if B == 8 and optimizer == "engine":
        _profile("train_step_b8", f"Stage-2 training step, CPU float32, {shapes}", step)


# Peak memory of stage 2: N training videos (4N in the second row), frames per video (2 min at 25 fps under
# BDCA_BENCH=1), optimiser steps of either run.
RSS_VIDEOS, RSS_FRAMES = (4, 3000) if FULL else (2, 2 * T)


@pytest.mark.parametrize("scale", [1, 4] if FULL else [1])  # the smoke run: one fresh process, not two
def test_bench_stage2_peak_rss(benchmark, tmp_path: Path, scale: int) -> None:
    """Stage 2 (training, per-epoch validation, predictions) in a fresh process on N videos for 4 epochs or on 4N
    videos for 1 epoch: the same batch and the same number of steps on 4x the data. Stage 2 streams from the
    feature cache's memory maps; the resident set also counts the mapped pages it touched (file-backed, reclaimable),
    so the row reports the process's peak (`VmHWM`, see `harness.runtime.resources`) and, apart, its anonymous memory's
    (`RssAnon`, sampled every 2 ms: what stage 2 allocates); `tests/harness/stages/test_stage2_memory.py` asserts both
    at
    smaller shapes. (The same steps, because the peak creeps up with the steps taken.)

    The time is the child's whole run (start-up and imports included), so the row has no throughput; the memory
    figures go to the row's target text and extra_info.
    """
    from tests.harness._stage2_rss import PAPER_MODEL, measure

    videos, epochs = scale * RSS_VIDEOS, 4 // scale
    out = benchmark.pedantic(measure, args=(tmp_path, videos, RSS_FRAMES, DV),
                             kwargs={"length": T, "micro_batch": 8, "epochs": epochs, "threads": 0,
                                     "extra": PAPER_MODEL},
                             rounds=1, iterations=1, warmup_rounds=0)  # fmt: skip
    assert out["videos"] == videos and out["windows"] == videos * (RSS_FRAMES // T) and out["peak_reset"]
    benchmark.extra_info.update(
        device="cpu", precision="float32", threads=out["threads"], unit="", items=None, flops=None,
        shapes=f"{videos} videos x {RSS_FRAMES} frames ({out['data_mib']:.0f} MiB cached), B 8 x T {T}, Dv {DV}, "
               f"Da {out['audio_dim']}, {epochs} epoch(s) = {out['steps']} steps in a fresh process",
        target=f"< 4 GiB, flat in the data: peak RSS {out['peak_mib']:.0f} MiB ({out['growth_mib']:+.0f} over the "
               f"imports; anonymous {out['anon_growth_mib']:+.0f}); workers {out['children_peak_mib']:.0f} MiB",
        **{f"rss_{k}": out[k] for k in ("data_mib", "baseline_mib", "peak_mib", "growth_mib", "children_peak_mib",
                                        "anon_baseline_mib", "anon_peak_mib", "anon_growth_mib", "file_peak_mib")},
    )  # fmt: skip


def _streams(n: int, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, DV), dtype=np.float32), rng.standard_normal((n, DA), dtype=np.float32)


def _inference_forward(model: torch.nn.Module, device: str = "cpu", autocast: bool = False):
    """(visual, audio, pad) -> (B, L, 2) float32 CPU tensor, in eval mode under inference_mode."""
    model.eval()

    def forward(*tensors: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            return model(*[t.to(device, non_blocking=True) for t in tensors]).float().cpu()

    return forward


def _check_predictions(preds: np.ndarray, n: int) -> None:
    assert preds.shape == (n, 2) and np.isfinite(preds).all() and np.abs(preds).max() <= 1.0


@pytest.mark.parametrize("path", ["inference_mode", "module_forward"])
def test_bench_stage2_predict_long_video(benchmark, path: str) -> None:
    model = _temporal()
    visual, audio = _streams(VIDEO_FRAMES)
    forward = _inference_forward(model) if path == "inference_mode" else module_forward(model)
    windows = len(window_starts(VIDEO_FRAMES, T, STRIDE))
    _info(benchmark, device="cpu", precision="float32",
          shapes=f"{VIDEO_FRAMES} frames, {windows} windows {T}/{STRIDE}, batch {EVAL_BATCH}, Dv {DV}, Da {DA}",
          unit="frames/s", items=VIDEO_FRAMES, flops=windows * count_flops(model, T=T),
          target=">= 50,000 frames/s" if path == "inference_mode"
          else "report: harness's module_forward (windows share TCN work; FLOPs counted per window)")  # fmt: skip
    preds = benchmark.pedantic(predict_arrays, args=(forward, visual, audio, T, STRIDE, EVAL_BATCH), **_rounds(3))
    _check_predictions(preds, VIDEO_FRAMES)
    if path == "inference_mode":
        n = 4 * (EVAL_BATCH - 1) * STRIDE + T  # four batches' worth of frames keeps the profile short
        title = f"Stage-2 prediction, CPU float32, {n} frames in {T}/{STRIDE} windows, batch {EVAL_BATCH}"
        _profile("predict", title, lambda: predict_arrays(forward, visual[:n], audio[:n], T, STRIDE, EVAL_BATCH), 1)


def _rival(name: str) -> torch.nn.Module:
    """A rival fusion model at its registered (paper-width) sizes and the benchmark's feature widths."""
    torch.manual_seed(0)
    return create_model(name, visual_dim=DV, audio_dim=DA)


@pytest.mark.parametrize("name", list(ZOO))
def test_bench_zoo_train_step(benchmark, name: str) -> None:
    """Each rival's stage-2 training step at BDCA's batch-8 shapes: its cost beside BDCA's row above."""
    B = 8
    model = _rival(name)
    first = next(p for p in model.parameters() if p.requires_grad)
    before = first.detach().clone()
    step, opt = _train_step(model, B, "cpu", autocast=False)
    backend = f", {model.ssm_backend}" if hasattr(model, "ssm_backend") else ""
    _info(benchmark, device="cpu", precision="float32",
          shapes=f"{name}: B {B} x T {T}, Dv {DV}, Da {DA}, {opt} (engine){backend}", unit="frames/s",
          items=B * T, flops=count_train_flops(model, T=T, batch=B), target="report: beside BDCA's B 8")  # fmt: skip
    loss = benchmark.pedantic(step, **_rounds(3))
    assert torch.isfinite(loss) and not torch.equal(before, first)


@pytest.mark.parametrize("name", list(ZOO))
def test_bench_zoo_predict_long_video(benchmark, name: str) -> None:
    """Each rival's whole-video prediction through the harness's `module_forward` (one call per batch of windows)."""
    model = _rival(name)
    visual, audio = _streams(VIDEO_FRAMES)
    windows = len(window_starts(VIDEO_FRAMES, T, STRIDE))
    _info(benchmark, device="cpu", precision="float32",
          shapes=f"{name}: {VIDEO_FRAMES} frames, {windows} windows {T}/{STRIDE}, batch {EVAL_BATCH}, Dv {DV}, "
                 f"Da {DA}", unit="frames/s", items=VIDEO_FRAMES, flops=windows * count_flops(model, T=T),
          target="report: beside BDCA's module_forward row")  # fmt: skip
    preds = benchmark.pedantic(predict_arrays, args=(module_forward(model), visual, audio, T, STRIDE, EVAL_BATCH),
                               **_rounds(2))  # fmt: skip
    _check_predictions(preds, VIDEO_FRAMES)


def _vit(name: str, device: str = "cpu", **overrides: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, img_size=IMG, **overrides).to(device)


def _vit_forward(model: torch.nn.Module, images: torch.Tensor, device: str, autocast: bool):
    model.eval()

    def forward() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            return model.forward_features(images)

    return forward


def _vit_backward(model: torch.nn.Module, images: torch.Tensor, device: str, autocast: bool):
    """Forward + backward of a regression loss with the config's hierarchical freezing (no optimiser step)."""
    model.train()
    target = torch.zeros(images.shape[0], 2, device=device)

    def step() -> torch.Tensor:
        model.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            pred = model(images)
        loss = torch.nn.functional.mse_loss(pred.float(), target)
        loss.backward()
        return loss.detach()

    return step


@pytest.mark.parametrize("name", ["vit_tiny_patch16", "vit_small_patch16"])
@pytest.mark.parametrize("mode", ["forward", "forward_backward"])
def test_bench_vit_cpu(benchmark, name: str, mode: str) -> None:
    model = _vit(name, **VIT_SMOKE)
    images = torch.randn(IMG_BATCH, 3, IMG, IMG, generator=torch.Generator().manual_seed(3))
    c = model.config
    freeze = f", {c.resolved_frozen_blocks}/{c.depth} blocks frozen" if mode == "forward_backward" else ""
    flops = count_flops(model, T=IMG_BATCH) if mode == "forward" else count_train_flops(model, T=IMG_BATCH)
    _info(benchmark, device="cpu", precision="float32", shapes=f"batch {IMG_BATCH} x 3 x {IMG} x {IMG}{freeze}",
          unit="images/s", items=IMG_BATCH, flops=flops, target="report")  # fmt: skip
    if mode == "forward":
        out = benchmark.pedantic(_vit_forward(model, images, "cpu", False), **_rounds(3))
        assert out.shape == (IMG_BATCH, c.embed_dim) and torch.isfinite(out).all()
    else:
        loss = benchmark.pedantic(_vit_backward(model, images, "cpu", False), **_rounds(3))
        assert torch.isfinite(loss)
        frozen = model.blocks[0].attn.qkv.weight
        assert frozen.grad is None and model.head.weight.grad is not None


@pytest.mark.skipif(not CUDA, reason=NO_CUDA)
@pytest.mark.parametrize("mode", ["forward", "forward_backward"])
def test_bench_vit_large_gpu(benchmark, mode: str) -> None:
    batch = 64 if FULL else 2
    model = create_model("vit_large_patch16").cuda()
    images = torch.randn(batch, 3, 224, 224, device="cuda")
    flops = count_flops(model, T=batch) if mode == "forward" else count_train_flops(model, T=batch)
    freeze = "" if mode == "forward" else f", {model.config.resolved_frozen_blocks}/24 blocks frozen"
    _info(benchmark, device="cuda", precision="bfloat16", shapes=f"batch {batch} x 3 x 224 x 224{freeze}",
          unit="images/s", items=batch, flops=flops, target="report")  # fmt: skip
    fn = _vit_forward if mode == "forward" else _vit_backward
    out = benchmark.pedantic(_synced(fn(model, images, "cuda", True), "cuda"), **_rounds(5))
    assert torch.isfinite(out).all()


@pytest.mark.skipif(not CUDA, reason=NO_CUDA)
def test_bench_stage2_train_step_gpu(benchmark) -> None:
    B = 8
    model = _temporal("cuda")
    step, name = _train_step(model, B, "cuda", autocast=True)
    _info(benchmark, device="cuda", precision="bfloat16", shapes=f"B {B} x T {T}, Dv {DV}, Da {DA}, {name} (engine)",
          unit="frames/s", items=B * T, flops=count_train_flops(model, T=T, batch=B), target="report")  # fmt: skip
    loss = benchmark.pedantic(_synced(step, "cuda"), **_rounds(10))
    assert torch.isfinite(loss)


@pytest.mark.skipif(not CUDA, reason=NO_CUDA)
def test_bench_stage2_predict_long_video_gpu(benchmark) -> None:
    model = _temporal("cuda")
    visual, audio = _streams(VIDEO_FRAMES)
    windows = len(window_starts(VIDEO_FRAMES, T, STRIDE))
    batch = 64
    _info(benchmark, device="cuda", precision="bfloat16",
          shapes=f"{VIDEO_FRAMES} frames, {windows} windows {T}/{STRIDE}, batch {batch}, Dv {DV}, Da {DA}",
          unit="frames/s", items=VIDEO_FRAMES, flops=windows * count_flops(model, T=T),
          target=">= 50,000 frames/s")  # fmt: skip
    forward = _inference_forward(model, "cuda", autocast=True)
    preds = benchmark.pedantic(predict_arrays, args=(forward, visual, audio, T, STRIDE, batch), **_rounds(3))
    _check_predictions(preds, VIDEO_FRAMES)


def test_report_rows_divide_by_the_peak_of_their_device_precision_and_threads() -> None:
    from harness.bench.suite import peak_key, report_from_pytest_json

    def bench(name: str, **extra: object) -> dict:
        info = {"precision": "float32", "flops": 2e9, "items": 100, "unit": "frames/s", **extra}
        return {"name": name, "stats": {"median": 0.5, "min": 0.25}, "extra_info": info}

    data = {"benchmarks": [bench("two", device="cpu", threads=2), bench("one", device="cpu", threads=1),
                           bench("gpu", device="cuda", precision="bfloat16"), bench("none", flops=None)]}  # fmt: skip
    peaks = {peak_key("cpu", "float32", 2): 8e9, "float32": 16e9, peak_key("cuda", "bfloat16"): 400e9}
    df = report_from_pytest_json(data, peaks)
    rows = {r["benchmark"]: r for r in df.to_dicts()}
    assert rows["two"]["throughput"] == 200 and rows["two"]["gflop_per_s"] == 4.0
    assert rows["two"]["peak_fraction"] == 0.5  # 4 of the 2-thread peak's 8 GFLOP/s
    assert rows["two"]["min_ms"] == 250 and rows["two"]["peak_fraction_at_min"] == 1.0
    assert rows["one"]["peak_fraction"] == 0.25  # no 1-thread peak: the bare precision's 16 GFLOP/s
    assert rows["gpu"]["peak_fraction"] == 0.01
    assert np.isnan(rows["none"]["peak_fraction"]) and np.isnan(rows["none"]["gflop"])
