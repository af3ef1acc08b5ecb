"""Temporal windows over a video (paper IV.C: 300 frames, stride 200), pure functions.

Windows start every `stride` frames; when the last regular window stops short of the end, one more window is
aligned to the end, so every frame is covered and no window reads past the video. A video shorter than a window
gets one window at 0 that the caller pads (and masks) to the full length.

Count: 0 for an empty video; 1 when n <= length; else ceil((n - length) / stride) + 1.
"""

from __future__ import annotations

import math


def window_starts(n: int, length: int, stride: int) -> list[int]:
    """Start frames (0-based) of the windows covering `n` frames.

    Args:
        n: frames in the video.
        length: frames per window.
        stride: frames between starts; must not exceed `length` (else frames would be skipped).
    """
    if length < 1 or stride < 1:
        raise ValueError(f"length and stride must be >= 1, got {length}, {stride}")
    if stride > length:
        raise ValueError(f"stride {stride} exceeds length {length}: frames between windows would be uncovered")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n == 0:
        return []
    if n <= length:
        return [0]
    starts = list(range(0, n - length + 1, stride))
    if starts[-1] + length < n:
        starts.append(n - length)
    return starts


def window_count(n: int, length: int, stride: int) -> int:
    """Number of windows `window_starts` gives, by formula (see the module docstring).

    Args:
        n: frames in the video.
        length: frames per window.
        stride: frames between starts.
    """
    if n == 0:
        return 0
    if n <= length:
        return 1
    return math.ceil((n - length) / stride) + 1
