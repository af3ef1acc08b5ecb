"""Scoring 3 million frames and validating a 1-million-row submission (targets: < 1 s and < 5 s)."""

from __future__ import annotations

import numpy as np

from submissions.formats import image_location, validate_submission_text, write_submission
from submissions.metrics import score_va


def test_bench_score_3m_frames(benchmark):
    rng = np.random.default_rng(0)
    labels = rng.uniform(-1, 1, (3_000_000, 2))
    labels[::50] = -5
    preds = np.clip(labels * 0.8 + rng.normal(0, 0.2, labels.shape), -1, 1)
    benchmark.extra_info.update(shapes="3,000,000 x 2", precision="float64", unit="frames/s", items=3_000_000,
                                target="< 1 s")
    s = benchmark(score_va, labels, preds)
    assert 0 < s.p_va < 1


def test_bench_validate_1m_rows(benchmark, tmp_path):
    vids = [f"video_{i:03d}" for i in range(100)]
    preds = {v: np.random.default_rng(1).uniform(-1, 1, (10_000, 2)) for v in vids}
    sample = [image_location(v, i) for v in vids for i in range(1, 10_001)]
    path = write_submission(tmp_path / "sub.csv", preds, sample)
    text = path.read_text()
    benchmark.extra_info.update(shapes="1,000,000 rows x 3", precision="n/a", unit="rows/s", items=1_000_000,
                                target="< 5 s")
    problems = benchmark.pedantic(validate_submission_text, args=(text, sample), rounds=3, iterations=1)
    assert problems == []
