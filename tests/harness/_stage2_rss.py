"""Peak memory of stage-2 training on a synthetic feature cache, measured in a fresh process.

`measure(root, ...)` writes a corpus of `videos` training videos (`tests.harness._corpus`, `visual_dim`-wide visual
features) and runs `python -m tests.harness._stage2_rss` on it: a new process that imports everything, notes its
resident set, resets its peak (`harness.runtime.resources.reset_peak_rss`), runs `harness.stages.stage2.train_stage2`
on fold 0
(norm statistics, the DeepSpeed loop with the config's DataLoader workers, per-epoch validation, the final
predictions) and prints its figures as JSON. A fresh process per size keeps one size's allocations out of the
other's peak. Used by `tests/harness/stages/test_stage2_memory.py` (an assertion) and `tests/benchmarks` (a report).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.runtime.childenv import child_env

REPO = Path(__file__).resolve().parents[2]
PAPER_MODEL = (
    "model.tcn_channels=128", "model.num_layers=2", "model.num_heads=4", "model.dim_feedforward=1024",
    "model.head_hidden=64", "features.audio=[vggish, mfcc, egemaps]",
)  # fmt: skip
"""Overrides for the paper's temporal model and its 190-d audio (the benchmark's shapes; see `settings`)."""


def settings(visual_dim: int, length: int, micro_batch: int, epochs: int = 1, threads: int = 1,
             extra: Sequence[str] = ()) -> list[str]:  # fmt: skip
    """Config overrides (on `quick`) for stage 2 on the synthetic cache: a small temporal model on wide features
    and the demo's audio (MFCC + eGeMAPS), unless `extra` says otherwise.

    Args:
        visual_dim: width of the cached visual features (the encoder's CLS width).
        length: window length (the stride is the same: no overlap).
        micro_batch: windows per step.
        epochs: stage-2 epochs.
        threads: torch intra-op threads (0: torch's default).
        extra: more overrides, applied last (e.g. `PAPER_MODEL`).
    """
    return [
        f"encoder.embed_dim={visual_dim}", "encoder.num_heads=2", "features.audio=[mfcc, egemaps]",
        f"windows.length={length}", f"windows.stride={length}", "model.tcn_channels=16",
        "model.dim_feedforward=32", "model.head_hidden=16", f"stage2.epochs={epochs}",
        f"stage2.micro_batch={micro_batch}", "runtime.progress=false", f"runtime.threads={threads}",
        "stage1.reserve=0",  # stage 2 trains on every video of the synthetic cache (N against 4N)
        *extra,
    ]  # fmt: skip


def _data_mib(cache_root: Path, videos: list[str], streams: Sequence[str]) -> float:
    """Bytes of the cached `streams` of `videos`, in MiB."""
    return sum((cache_root / v / f"{s}.npy").stat().st_size for v in videos for s in streams) / 2**20


def _hold_in_memory() -> None:
    """Make stage 2 keep every video's features in memory once read (the control the measurement must catch)."""
    import numpy as np

    import harness.data.datasets

    stream = harness.data.datasets._load
    held: dict[str, dict[str, np.ndarray]] = {}

    def load(cache: Any, video: str, features: Any) -> dict[str, np.ndarray]:
        if video not in held:
            held[video] = {k: np.array(v) for k, v in stream(cache, video, features).items()}
        return held[video]

    harness.data.datasets._load = load  # type: ignore[assignment]


class StatusPeaks:
    """The largest `RssAnon`, `RssFile` and `RssShmem` of this process (MiB), sampled from /proc/self/status on a
    daemon thread: the split `ru_maxrss` lacks. Pages of the memory-mapped feature cache count in the resident set
    as `RssFile` while mapped (file-backed, reclaimable); what stage 2 allocates is `RssAnon`.

    Args:
        period: seconds between samples.
    """

    FIELDS = ("RssAnon", "RssFile", "RssShmem")

    def __init__(self, period: float = 0.002) -> None:
        import threading

        self.period = period
        self.peaks = dict.fromkeys(self.FIELDS, 0.0)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> dict[str, float]:
        """One reading of the fields (MiB); {} where /proc is not available."""
        try:
            lines = Path("/proc/self/status").read_text().splitlines()
        except OSError:
            return {}
        now = {}
        for line in lines:
            key, _, value = line.partition(":")
            if key in self.FIELDS:
                now[key] = int(value.split()[0]) / 1024
        return now

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            for k, v in self.sample().items():
                self.peaks[k] = max(self.peaks[k], v)
            self.samples += 1

    def __enter__(self) -> StatusPeaks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _train(root: Path, out: Path, overrides: list[str], hold: bool = False) -> dict[str, Any]:
    """Stage 2 in this process; the resident set before, and the peak during, as a JSON-able dict.

    Args:
        root: the corpus.
        out: the run folder.
        overrides: config overrides on `quick`.
        hold: keep every video's features in memory once read, instead of streaming them (a control).
    """
    import torch

    from harness.config import load_config
    from harness.data.datasets import VISUAL_MASK
    from harness.runtime.distributed import setup_strategy
    from harness.runtime.resources import current_rss_mib, peak_rss, reset_peak_rss
    from harness.stages.stage2 import train_stage2
    from preprocessing.affwild2 import AffWild2Layout
    from preprocessing.cache import FeatureCache

    cfg = load_config("quick", overrides)
    layout, cache = AffWild2Layout.discover(root), FeatureCache(root / "cache")
    setup_strategy()  # gloo and DeepSpeed's imports belong to the baseline, not to the data
    if hold:
        _hold_in_memory()
    sampler = StatusPeaks()
    base_split = sampler.sample()
    baseline = current_rss_mib()
    reset = reset_peak_rss()
    t0 = time.perf_counter()
    with sampler:
        res = train_stage2(cfg, layout, cache, 0, out)
    peak = peak_rss()
    train = [e.name for e in layout.train]
    streams = [cfg.features.visual, VISUAL_MASK, *cfg.features.audio]  # what stage 2 reads
    return {
        "videos": len(train),
        "frames": int(sum(cache.manifest(v)["n_frames"] for v in train)),
        "data_mib": round(_data_mib(root / "cache", train, streams), 1),
        "audio_dim": cfg.audio_dim,
        "threads": torch.get_num_threads(),
        "windows": int(res.record["windows"]),
        "steps": int(res.record["steps_per_epoch"]) * cfg.stage2.epochs,
        "micro_batch": cfg.stage2.micro_batch,
        "workers": cfg.runtime.num_workers,
        "baseline_mib": round(baseline, 1),
        "peak_mib": round(peak.self_mib, 1),
        "growth_mib": round(peak.self_mib - baseline, 1),
        "children_peak_mib": round(peak.children_mib, 1),
        # Sampled split: anonymous memory (what stage 2 allocates) apart from mapped file pages (the cache).
        "anon_baseline_mib": round(base_split.get("RssAnon", float("nan")), 1),
        "anon_peak_mib": round(sampler.peaks["RssAnon"], 1),
        "anon_growth_mib": round(sampler.peaks["RssAnon"] - base_split.get("RssAnon", float("nan")), 1),
        "file_peak_mib": round(sampler.peaks["RssFile"], 1),
        "file_baseline_mib": round(base_split.get("RssFile", float("nan")), 1),
        "shmem_peak_mib": round(sampler.peaks["RssShmem"], 1),
        "samples": sampler.samples,
        "peak_reset": reset,
        "held_in_memory": hold,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def measure(root: Path, videos: int, frames: int, visual_dim: int, length: int = 300, micro_batch: int = 8,
            epochs: int = 1, threads: int = 1, extra: Sequence[str] = (), hold: bool = False,
            timeout: float = 600) -> dict[str, Any]:  # fmt: skip
    """Write the corpus under `root` (once), train stage 2 on it in a fresh process, return that process's figures.

    Args:
        root: a folder: the corpus goes to `root/data` unless it is there, the run to `root/run_stream` or
            `root/run_hold`.
        videos: training videos (1 validation and 1 test video are added).
        frames: frames per video.
        visual_dim: width of the cached visual features.
        length: window length and stride.
        micro_batch: windows per step.
        epochs: stage-2 epochs.
        threads: torch intra-op threads (0: torch's default).
        extra: more config overrides (e.g. `PAPER_MODEL`).
        hold: the control: stage 2 keeps every video's features in memory once read.
        timeout: seconds before the child is killed.

    Returns:
        `videos`, `frames`, `data_mib` (the training streams' bytes), `audio_dim`, `threads`, `windows`, `steps`,
        `micro_batch`, `workers` (DataLoader worker processes), `baseline_mib` (the
        child's resident set after its imports), `peak_mib` (its peak during stage 2), `growth_mib` (their
        difference), `children_peak_mib` (its largest finished child: the DataLoader workers), `peak_reset`,
        `held_in_memory`, `seconds`.
    """
    from tests.harness._corpus import make_corpus

    data, mode = root / "data", "hold" if hold else "stream"
    if not data.is_dir():  # a second call on the same root (the control) trains on the same corpus
        make_corpus(data, train=videos, val=1, test=1, frames=(frames, frames), visual_dim=visual_dim, pair=False)
    overrides = settings(visual_dim, length, micro_batch, epochs, threads, extra)
    cmd = [sys.executable, "-m", "tests.harness._stage2_rss", str(data), str(root / f"run_{mode}"), mode, *overrides]
    # A fresh single process: not the rank, world or port of a pytest process that already initialised gloo.
    env = child_env()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    """`python -m tests.harness._stage2_rss DATA OUT stream|hold OVERRIDE...`: one JSON line of figures on stdout."""
    data, out, mode, *overrides = argv
    print(json.dumps(_train(Path(data), Path(out), overrides, hold=mode == "hold")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
