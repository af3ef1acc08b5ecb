"""Detection + alignment throughput on a GRID clip (pytest-benchmark; reports only, no timing asserts).

Run with `pytest tests/benchmarks/test_bench_faces.py --benchmark-enable`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from preprocessing.faces import FaceTracker, WeightsMissingError, align_face, get_detector, weight_path
from preprocessing.video import iter_frames

CLIP = Path(__file__).resolve().parents[2] / "preprocessing" / "assets" / "grid" / "bbaf2n.mpg"


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    try:
        weight_path("scrfd")
    except WeightsMissingError:
        pytest.skip("SCRFD weights absent: run `harness fetch-weights`")
    return [f for _, f in iter_frames(CLIP)]


@pytest.mark.parametrize(("input_size", "stride"), [(640, 1), (320, 1), (320, 3)])
def test_bench_detect_and_align(benchmark, frames: list[np.ndarray], input_size: int | None, stride: int) -> None:
    detector = get_detector("scrfd", input_size=input_size)
    detector.detect(frames[0])  # warm up onnxruntime

    def run() -> int:
        crops = 0
        for tracked in FaceTracker(detector, stride=stride).track(enumerate(frames)):
            face = tracked.faces[""]
            if face is not None:
                align_face(tracked.image, face.landmarks)
                crops += 1
        return crops

    crops = benchmark.pedantic(run, rounds=3, iterations=1)
    assert crops == len(frames)
    benchmark.extra_info["frames"] = len(frames)
    benchmark.extra_info["frames_per_s"] = len(frames) / benchmark.stats.stats.mean if benchmark.stats else None
