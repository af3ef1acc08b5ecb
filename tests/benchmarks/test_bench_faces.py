"""Detection + alignment throughput on a GRID clip (pytest-benchmark; reports only, no timing asserts).

Each row records, like the neural rows, its device, precision, threads (onnxruntime's intra-op threads, set
explicitly), shapes (frames, frame size, SCRFD input size, detection stride, crop size), the unit and the items
per call, so the report shows its throughput in frames/s. No FLOPs: SCRFD runs in onnxruntime, outside the models'
FLOP counts. Run with `harness bench -k detect` or `pytest tests/benchmarks/test_bench_faces.py --benchmark-enable`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from preprocessing.faces import FaceTracker, align_face, get_detector
from preprocessing.video import iter_frames
from tests._weights import require_scrfd

CLIP = Path(__file__).resolve().parents[2] / "preprocessing" / "assets" / "grid" / "bbaf2n.mpg"
CROP = 224  # align_face's default: the ABAW crop side
THREADS = min(2, os.cpu_count() or 1)  # the SCRFD detector's default, named so the row can record it


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    require_scrfd()
    return [f for _, f in iter_frames(CLIP)]


@pytest.mark.parametrize(("input_size", "stride"), [(640, 1), (320, 1), (320, 3)])
def test_bench_detect_and_align(benchmark, frames: list[np.ndarray], input_size: int, stride: int) -> None:
    detector = get_detector("scrfd", input_size=input_size, threads=THREADS)
    detector.detect(frames[0])  # warm up onnxruntime
    calls: list[int] = []

    def run() -> int:
        crops = 0
        tracker = FaceTracker(detector, stride=stride)
        for tracked in tracker.track(enumerate(frames)):
            face = tracked.faces[""]
            if face is not None:
                align_face(tracked.image, face.landmarks, CROP)
                crops += 1
        calls.append(tracker.detector_calls)
        return crops

    h, w = frames[0].shape[:2]
    every = "every frame" if stride == 1 else f"every {stride}th frame, interpolated between"
    benchmark.extra_info.update(
        device="cpu", precision="float32", threads=THREADS, unit="frames/s", items=len(frames), target="report",
        shapes=f"{len(frames)} frames {w} x {h} -> SCRFD-2.5G at {input_size} px ({every}), 5-point crops {CROP} px",
    )  # fmt: skip
    crops = benchmark.pedantic(run, rounds=3, iterations=1)
    assert crops == len(frames)
    # Detection on frames 0, stride, 2 * stride, ... and the last one; the rest interpolated.
    assert calls[-1] == len(range(0, len(frames), stride)) + ((len(frames) - 1) % stride != 0)
    benchmark.extra_info["detector_calls"] = calls[-1]
