"""Windows: every frame covered, every window inside the video, the count formula, the paper's example."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.data.windows import window_count, window_starts


@st.composite
def cases(draw):
    length = draw(st.integers(1, 400))
    stride = draw(st.integers(1, length))
    n = draw(st.integers(0, 3000))
    return n, length, stride


@given(cases())
def test_every_frame_is_covered_and_windows_stay_inside(case):
    n, length, stride = case
    starts = window_starts(n, length, stride)
    covered = [0] * n
    assert starts or n == 0, "frames without a window"  # the loop below runs whenever there are frames
    for s in starts:
        assert s >= 0
        if n >= length:
            assert s + length <= n  # a full window never reads past the end
        for i in range(s, min(s + length, n)):
            covered[i] += 1
    assert all(c > 0 for c in covered)
    assert starts == sorted(set(starts))
    # consecutive windows are at most one stride apart, so no gap can open
    assert all(b - a <= stride for a, b in itertools.pairwise(starts))


@given(cases())
def test_count_formula(case):
    n, length, stride = case
    assert len(window_starts(n, length, stride)) == window_count(n, length, stride)


def test_papers_windows():
    # 300 frames, stride 200: regular starts, then one window aligned to the end.
    assert window_starts(1000, 300, 200) == [0, 200, 400, 600, 700]
    assert window_starts(900, 300, 200) == [0, 200, 400, 600]
    assert window_starts(250, 300, 200) == [0]  # shorter than a window: one padded window
    assert window_starts(300, 300, 200) == [0]
    assert window_starts(301, 300, 200) == [0, 1]
    assert window_starts(0, 300, 200) == []


@pytest.mark.parametrize(("n", "length", "stride"), [(10, 0, 1), (10, 5, 0), (10, 5, 6), (-1, 5, 5)])
def test_bad_arguments(n, length, stride):
    with pytest.raises(ValueError):
        window_starts(n, length, stride)
