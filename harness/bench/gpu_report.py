"""The GPU check's report: each measurement's section (rates and fractions of the measured peak), the whole report
and its Markdown page. Pure functions of the measured numbers.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

from harness.bench.gpu_plan import FRAMES_3M, TARGETS, CheckPlan


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
