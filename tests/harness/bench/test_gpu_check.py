"""`harness bench --gpu-check`: its CPU dry mode runs the whole code path (stage-2 step, ViT features, a ZeRO-2 step
in two gloo processes) and writes a sane report; without CUDA and without `--dry-run` it refuses in one line.

The dry run is measured once per module (about 15 s on two shared cores); the pure parts (plans, round planning,
FLOP rates, the report's rows and Markdown) are checked on their own, including the GPU plan's paper shapes, which
no machine here can run.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from harness.bench.gpu_measure import _time_rounds, _wait_all
from harness.bench.gpu_plan import BENCH_ROOT, GpuCheckError, device_slug, plan_rounds, rounds_note
from harness.bench.gpu_report import apply_peaks, best_peaks
from harness.bench.gpucheck import (
    REPORT_JSON,
    REPORT_MD,
    Budget,
    CheckPlan,
    _read_cpuinfo,
    _zero2,
    build_report,
    cpu_has_fast_bf16,
    dry_plan,
    gpu_plan,
    report_markdown,
    resolve_out,
    stage2_section,
    vit_section,
)
from harness.config import load_config
from harness.runtime.childenv import child_env
from models import count_flops, count_train_flops

ROOT = Path(__file__).resolve().parents[3]


def _dry_plan() -> CheckPlan:
    """The plan the dry run made on this machine (bf16 autocast where the CPU has bf16 matrix units)."""
    return dry_plan(load_config("paper"), bf16=cpu_has_fast_bf16(_read_cpuinfo()))


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def dry(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], list[str], float]:
    """One dry run: its folder, its report, its log lines and its wall time seen from outside."""
    from harness.bench.gpucheck import run_gpu_check

    out = tmp_path_factory.mktemp("gpu-check")
    before = _listing(BENCH_ROOT)
    lines: list[str] = []
    t0 = time.perf_counter()
    folder, report = run_gpu_check(out, dry_run=True, log=lines.append)
    wall = time.perf_counter() - t0
    assert folder == out
    assert _listing(BENCH_ROOT) == before, "a dry run wrote into ci/benchmarks/"
    return out, report, lines, wall


@pytest.mark.slow
def test_dry_run_writes_both_reports_atomically_and_in_budget(dry) -> None:
    out, report, lines, wall = dry
    assert json.loads((out / REPORT_JSON).read_text()) == report
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [REPORT_JSON, REPORT_MD]
    assert report["kind"] == "gpu-check" and report["mode"] == "dry-run"
    d = report["device"]
    assert d["torch"] == torch.__version__ and d["python"] and d["cpu"] and d["gpu_count"] == 0
    assert 0 < report["wall_s"] <= wall and report["within_budget"] and report["wall_s"] < report["budget_s"]
    assert report["threads"] == 1
    assert any("dry run" in n for n in report["notes"])
    assert lines[-1].startswith("gpu-check:") and str(out / REPORT_MD) in lines[-1]


@pytest.mark.slow
def test_dry_run_peaks_are_measured_in_each_rows_dtype(dry) -> None:
    _, report, _, _ = dry
    plan = _dry_plan()
    peaks = report["peaks"]
    assert set(peaks) == {report["stage2"]["peak_precision"], report["vit"]["peak_precision"], "float32"}
    for x in peaks.values():
        assert x["before"] > 0 and x["after"] > 0 and x["flops_per_s"] == max(x["before"], x["after"])
        assert x["device"] == "cpu" and x["matmul_n"] == plan.peak_n
    assert report["zero2"]["peak_precision"] == "float32"  # DeepSpeed runs fp32 on a CPU


def _check_times(s: dict[str, Any]) -> None:
    assert s["status"] == "measured", s
    assert 1 <= s["rounds"] <= s["rounds_wanted"] and s["warmup"] >= 1
    assert 0 < s["min_s"] <= s["median_s"] and s["mean_s"] > 0
    assert s["flops_per_s"] > 0 and math.isfinite(s["flops_per_s"])
    # The fraction of the row's own same-run peak (one device per process); analytic FLOPs leave out norms and
    # activations, so a row can approach but not pass the peak by much.
    peak = s["peak_flops_per_s"]
    assert s["peak_fraction"] == pytest.approx(s["flops_per_s"] / peak) and 0 < s["peak_fraction"] < 1.5


@pytest.mark.slow
def test_dry_run_stage2_row_counts_the_models_flops(dry) -> None:
    _, report, _, _ = dry
    s, plan = report["stage2"], _dry_plan()
    _check_times(s)
    assert s["shapes"] == {"batch": 4, "window": 32, "visual_dim": 192, "audio_dim": 190, "tcn_channels": 128}
    assert s["model"] == "bdca" and s["precision"] == plan.precision and s["optimizer"].startswith("adamw")
    assert s["train_flops_per_step"] == count_train_flops(plan.temporal, T=32, batch=4)
    assert s["flops_per_s"] == pytest.approx(s["train_flops_per_step"] / s["median_s"])
    assert s["frames_per_s"] == pytest.approx(4 * 32 / s["median_s"])
    assert s["losses"] and all(math.isfinite(x) for x in s["losses"])
    assert s["peak_flops_per_s"] == report["peaks"][s["peak_precision"]]["flops_per_s"]


@pytest.mark.slow
def test_dry_run_vit_row_gives_images_per_second(dry) -> None:
    _, report, _, _ = dry
    s, plan = report["vit"], _dry_plan()
    _check_times(s)
    assert s["model"] == "vit_tiny_patch16" and s["shapes"]["embed_dim"] == 192 and s["shapes"]["img_size"] == 64
    assert s["flops_per_batch"] == count_flops(plan.vit, T=plan.vit_batch)
    assert s["images_per_s"] == pytest.approx(plan.vit_batch / s["median_s"])
    assert s["minutes_for_3m_frames"] is None  # only a GPU's rate says anything about Aff-Wild2's frames


@pytest.mark.slow
def test_dry_run_zero2_step_runs_in_two_gloo_processes_with_equal_weights(dry) -> None:
    _, report, _, _ = dry
    s, plan = report["zero2"], _dry_plan()
    _check_times(s)
    assert s["processes"] == 2 and s["backend"] == "gloo" and s["zero_stage"] == 2 and s["precision"] == "fp32"
    assert "DeepSpeedZeroOptimizer" in s["optimizer"]
    assert s["train_flops_per_step"] == count_train_flops(plan.temporal, T=32, batch=2 * 2)
    assert s["peak_flops_per_s"] == 2 * report["peaks"]["float32"]["flops_per_s"]
    # The ranks trained on different windows; only ZeRO-2's reduced gradients and gathered weights make them equal.
    assert len(s["train_losses"]) == 2 and all(math.isfinite(x) for r in s["train_losses"] for x in r)
    assert s["train_losses"][0] != s["train_losses"][1]
    assert all(math.isfinite(x) for x in s["eval_losses"]) and s["eval_losses"][0] == s["eval_losses"][1]
    assert s["eval_losses_equal"] and s["param_sums_equal"] and s["init_s"] > 0


@pytest.mark.slow
def test_dry_run_markdown_has_every_row(dry) -> None:
    out, report, _, _ = dry
    md = (out / REPORT_MD).read_text()
    assert md == report_markdown(report)
    assert "CPU dry run" in md and "equal: True" in md and "backend gloo" in md
    for label in ("stage-2 training step", "ViT feature extraction", "ZeRO-2 step, 2 processes"):
        row = next(line for line in md.splitlines() if line.startswith(f"| {label} |"))
        assert "%" in row and ("frames/s" in row or "images/s" in row)


def _no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_without_cuda_and_without_dry_run_exits_2_in_one_line(tmp_path, monkeypatch, capsys) -> None:
    from harness.cli import main

    _no_cuda(monkeypatch)
    rc = main(["bench", "--gpu-check", "--out", str(tmp_path / "report")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("harness: error: no CUDA device") and "--dry-run" in err[0]
    assert not (tmp_path / "report").exists()  # nothing measured, nothing written


def test_ci_script_without_cuda_exits_2_in_one_line() -> None:
    """`ci/gpu-check` as CI would call it, on a machine where torch sees no GPU (hidden from it here)."""
    before = _listing(BENCH_ROOT)
    proc = subprocess.run([str(ROOT / "ci" / "gpu-check")], env=child_env({"CUDA_VISIBLE_DEVICES": ""}),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "no CUDA device" in lines[0], proc.stderr
    assert proc.stdout == "" and _listing(BENCH_ROOT) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dry-run", "--out", "x"], "use it with --gpu-check"),
        (["--gpu-check", "--dry-run"], "--dry-run needs --out"),
        (["--gpu-check", "--dry-run", "--out", str(BENCH_ROOT / "cpu")], "never writes into"),
        (["--gpu-check", "--dry-run", "--out", "x", "-k", "a"], "-k: error: options of the benchmark suite"),
    ],
)
def test_cli_refuses_wrong_combinations_in_one_line(args, message, capsys) -> None:
    from harness.cli import main

    before = _listing(BENCH_ROOT)
    assert main(["bench", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert _listing(BENCH_ROOT) == before


def test_dry_run_with_no_budget_left_skips_and_says_so(tmp_path) -> None:
    from harness.bench.gpucheck import run_gpu_check

    _, report = run_gpu_check(tmp_path, dry_run=True, budget_s=0.0, log=lambda _: None)
    for key in ("stage2", "vit", "zero2"):
        assert report[key] == {"status": "skipped", "reason": "time budget spent"}
    notes = " ".join(report["notes"])
    assert "stage 2: skipped" in notes and "ViT: skipped" in notes and "ZeRO-2: skipped" in notes
    assert not report["within_budget"]
    assert "skipped: time budget spent" in (tmp_path / REPORT_MD).read_text()


# ---------------------------------------------------------------------------------------------------------------
# Pure parts
# ---------------------------------------------------------------------------------------------------------------


def test_gpu_plan_has_the_papers_shapes() -> None:
    plan = gpu_plan(load_config("paper"))
    t = plan.temporal
    assert (t.fusion, t.visual_dim, t.audio_dim, t.tcn_channels) == ("bdca", 1024, 190, 128)
    assert (plan.window, plan.batch, plan.zero_micro_batch) == (300, 32, 32)
    v = plan.vit
    assert (plan.vit_name, v.img_size, v.patch_size, v.embed_dim, v.depth) == ("vit_large_patch16", 224, 16, 1024, 24)
    assert plan.precision == "bfloat16" and plan.autocast and plan.peak_dtypes == ("bfloat16",)
    ds = plan.ds_config
    assert ds["zero_optimization"]["stage"] == 2 and ds["bf16"]["enabled"] and ds["train_batch_size"] == 64
    assert sum(plan.slices_s.values()) + 4 * plan.peak_seconds < 480  # the 8 minutes, with start-up to spare


def test_dry_plan_is_tiny_and_fp32_without_bf16_units() -> None:
    plan = dry_plan(load_config("paper"))
    assert plan.device == "cpu" and plan.precision == "float32" and not plan.autocast and plan.threads == 1
    assert plan.vit.embed_dim == plan.temporal.visual_dim == 192 and plan.window == 32
    assert not plan.ds_config["bf16"]["enabled"] and plan.ds_config["train_batch_size"] == 4
    assert dry_plan(load_config("paper"), bf16=True).peak_dtypes == ("bfloat16", "float32")


def test_cpu_bf16_flags() -> None:
    assert cpu_has_fast_bf16("processor : 0\nflags : fpu avx2 avx512f avx512_bf16\n")
    assert cpu_has_fast_bf16("flags\t\t: sse amx_bf16 amx_tile")
    assert not cpu_has_fast_bf16("flags : fpu avx2 avx512f\n") and not cpu_has_fast_bf16("")


def test_device_slug_and_report_folder(tmp_path) -> None:
    assert device_slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    assert device_slug("NVIDIA H200") == "nvidia-h200" and device_slug("  ") == "unknown-device"
    root = tmp_path / "ci" / "benchmarks"
    assert resolve_out(None, False, "NVIDIA H100 80GB HBM3", root) == root / "nvidia-h100-80gb-hbm3"
    assert resolve_out(tmp_path / "x", True, "", root) == tmp_path / "x"
    for bad in (None, root, root / "cpu-2core", root / "a" / ".." / "b"):
        with pytest.raises(GpuCheckError):
            resolve_out(bad, True, "", root)


def test_plan_rounds_fits_the_slice() -> None:
    assert plan_rounds(0.1, 10.0, 20) == 20
    assert plan_rounds(1.0, 5.5, 20) == 5
    assert plan_rounds(10.0, 5.0, 20) == 1  # one round even when the slice is short: a row needs a time
    assert plan_rounds(0.0, 5.0, 7) == 7
    assert rounds_note("stage 2", 20, 20, 0.1, 10.0) is None
    assert "5 of 20 timed rounds" in (rounds_note("stage 2", 5, 20, 1.0, 5.5) or "")


def test_slow_rounds_are_cut_to_the_slice_and_the_report_says_so() -> None:
    notes: list[str] = []
    times, outs, warmup = _time_rounds(lambda: time.sleep(0.02) or 1, "cpu", 1, 10, 0.03, "slow", notes)
    assert len(times) == 1 and outs == [1] and warmup == 1 and all(t >= 0.02 for t in times)
    assert len(notes) == 1 and notes[0].startswith("slow: 1 of 10 timed rounds")


def test_a_failing_rank_stops_its_partner_at_once() -> None:
    """A rank that dies leaves its partner waiting in a collective: it is killed then, not at the timeout."""
    procs = [subprocess.Popen([sys.executable, "-c", code]) for code in ("import sys; sys.exit(3)",
                                                                        "import time; time.sleep(60)")]  # fmt: skip
    t0 = time.perf_counter()
    assert _wait_all(procs, 60.0) == [3, None]
    assert time.perf_counter() - t0 < 30 and all(p.poll() is not None for p in procs)


def test_budget_slices() -> None:
    b = Budget(100.0, start=time.perf_counter() - 30)
    assert 69 < b.left() <= 70 and b.slice(60) == 60 and 39 < b.slice(60, reserve=30) <= 40
    assert Budget(1.0, start=time.perf_counter() - 5).slice(60) == 0.0


def test_one_gpu_leaves_zero2_out_and_says_why(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    notes: list[str] = []
    row = _zero2(gpu_plan(load_config("paper")), Budget(450.0), notes, lambda _: None)
    assert row["status"] == "not run" and "1 GPU visible" in row["reason"] and "two or more" in row["reason"]
    assert notes == [f"ZeRO-2: not run: {row['reason']}"]


def test_a_gpu_report_from_known_times() -> None:
    """The report of a one-GPU run, from given times: FLOP rates, fractions of the better peak, the ViT's minutes
    for 3 M frames and the ZeRO-2 row that did not run, in JSON and in Markdown."""
    plan = gpu_plan(load_config("paper"))
    s2 = stage2_section(plan, {"times": [0.1, 0.1, 0.3], "losses": [0.9, 0.8], "warmup": 3, "wanted": 20,
                               "optimizer": "adamw fused"})  # fmt: skip
    vit = vit_section(plan, {"times": [0.5, 0.4], "warmup": 3, "wanted": 20})
    zero = {"status": "not run", "reason": "1 GPU visible; a two-process ZeRO-2 step needs two or more"}
    device = {"cpu": "x", "torch": "2", "python": "3", "gpu": "NVIDIA H100", "gpu_count": 1, "cuda": "13.0"}
    peaks = {"bfloat16": {"before": 5e14, "after": 8e14}}
    report = build_report(plan, device, peaks, {"stage2": s2, "vit": vit, "zero2": zero}, ["a note"], 61.0, 450.0)
    flops = count_train_flops(plan.temporal, T=300, batch=32)
    r2 = report["stage2"]
    assert r2["median_s"] == 0.1 and r2["train_flops_per_step"] == flops and r2["rounds"] == 3
    assert r2["flops_per_s"] == pytest.approx(flops / 0.1) and r2["peak_fraction"] == pytest.approx(flops / 0.1 / 8e14)
    assert r2["target_peak_fraction"] == 0.40
    rv = report["vit"]
    assert rv["images_per_s"] == pytest.approx(256 / 0.45)
    assert rv["minutes_for_3m_frames"] == pytest.approx(3e6 / (256 / 0.45) / 60)
    assert rv["flops_per_batch"] == 256 * count_flops(plan.vit, T=1)
    assert report["zero2"] == zero and report["peaks"]["bfloat16"]["flops_per_s"] == 8e14 and report["within_budget"]
    md = report_markdown(report)
    assert "NVIDIA H100 x 1" in md and "| ZeRO-2 step, 2 processes | not run: 1 GPU visible" in md
    assert "min per 3 M frames" in md and "- a note" in md and "CPU dry run" not in md


def test_peaks_apply_per_dtype_and_per_process() -> None:
    best = best_peaks({"bfloat16": {"before": 2.0, "after": None}, "float32": {"before": None, "after": None}})
    assert best == {"bfloat16": 2.0, "float32": None}
    row = {"status": "measured", "flops_per_s": 1.0, "peak_precision": "bfloat16", "processes": 2}
    assert apply_peaks(row, best)["peak_fraction"] == 0.25
    assert apply_peaks({**row, "peak_precision": "float32"}, best)["peak_fraction"] is None
    assert apply_peaks({"status": "skipped"}, best) == {"status": "skipped"}
