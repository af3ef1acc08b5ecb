"""Scoring 3 million frames, its video-bootstrap interval, and validating a 1-million-row submission."""

from __future__ import annotations

import numpy as np

from submissions.bootstrap import bootstrap_ci, cluster_stats
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


def _partition_3m(videos: int = 500) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """3 M frames in `videos` videos of unequal length (smooth labels, noisy predictions, some -5 frames)."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(2_000, 10_000, videos)
    lengths = (lengths * (3_000_000 / lengths.sum())).astype(int)
    lengths[-1] += 3_000_000 - lengths.sum()
    labels, preds = {}, {}
    for i, n in enumerate(lengths):
        lab = np.clip(0.05 * np.cumsum(rng.normal(0, 0.1, (n, 2)), axis=0) + rng.uniform(-0.5, 0.5, 2), -1, 1)
        lab[: n // 30] = -5
        labels[f"video_{i:03d}"] = lab
        preds[f"video_{i:03d}"] = np.clip(0.7 * lab + rng.normal(0, 0.3, (n, 2)), -1, 1)
    return labels, preds


def test_bench_bootstrap_3m_frames_1000_resamples(benchmark):
    labels, preds = _partition_3m()

    def run():
        return bootstrap_ci(cluster_stats(labels, preds), resamples=1000, seed=0)

    benchmark.extra_info.update(shapes="3,000,000 frames x 2 in 500 videos, 1,000 resamples", precision="float64",
                                unit="frames/s", items=3_000_000, target="a few seconds")  # fmt: skip
    ci = benchmark.pedantic(run, rounds=3, iterations=1)
    assert ci.reason is None and ci.clusters == 500 and ci.p_va.low < ci.p_va.estimate < ci.p_va.high


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
