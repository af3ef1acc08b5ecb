"""Audio features: openSMILE MFCC + eGeMAPS on 60 s (target >= 20x real time) and VGGish per frame on 30 s at 25 fps.

Report only: the real-time factor (audio seconds per wall-clock second) goes to extra_info; no time is asserted.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from preprocessing.audio import extract_opensmile
from preprocessing.timeline import AUDIO_SR


def _audio(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * AUDIO_SR)) / AUDIO_SR
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.3 * t)  # a gliding voiced-like source with syllable-rate loudness
    phase = 2 * np.pi * np.cumsum(f0) / AUDIO_SR
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
    return (0.2 * voiced + 0.005 * rng.standard_normal(t.size)).astype(np.float32)


def _timed(fn, times: list[float]):
    """`fn` that also records its own wall time per call (benchmark stats are absent under --benchmark-disable)."""

    def call(*args):
        t0 = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - t0)
        return out

    return call


def test_bench_opensmile_60s(benchmark) -> None:
    seconds, fps = 60.0, 30.0
    wave = _audio(seconds)
    n_frames = int(seconds * fps)
    extract_opensmile(wave[: AUDIO_SR], AUDIO_SR, 10, fps)  # build the extractors outside the timing
    benchmark.extra_info.update(shapes=f"{seconds:.0f} s at 16 kHz -> {n_frames} x (39 + 23)", precision="float32",
                                unit="audio s/s", items=seconds, target=">= 20x real time")
    times: list[float] = []
    feats = benchmark.pedantic(_timed(extract_opensmile, times), args=(wave, AUDIO_SR, n_frames, fps), rounds=3,
                               iterations=1)
    benchmark.extra_info["real_time_factor"] = round(seconds / float(np.median(times)), 1)
    assert feats["mfcc"].shape == (n_frames, 39) and feats["egemaps"].shape == (n_frames, 23)


@pytest.mark.slow
def test_bench_vggish_per_frame_30s(benchmark, tmp_path: Path) -> None:
    from preprocessing.vggish import flops_per_example, load_vggish, save_random_weights

    seconds, fps = 30.0, 25.0
    n_frames = int(seconds * fps)
    save_random_weights(tmp_path)
    extractor = load_vggish(tmp_path)
    wave = _audio(seconds, seed=1)
    benchmark.extra_info.update(shapes=f"{n_frames} windows of 96 x 64 (30 s at 25 fps)", precision="float32",
                                unit="frames/s", items=n_frames, flops=n_frames * flops_per_example(),
                                target="report only")
    times: list[float] = []
    emb = benchmark.pedantic(_timed(extractor.embed_frames, times), args=(wave, AUDIO_SR, n_frames, fps), rounds=1,
                             iterations=1)
    benchmark.extra_info["real_time_factor"] = round(seconds / float(np.median(times)), 2)
    assert emb.shape == (n_frames, 128)
