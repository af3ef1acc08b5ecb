"""Modality dropout: which windows lose which stream, and that nothing else changes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models.augment import modality_dropout


def _batch(b: int, t: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(b)
    return torch.randn(b, t, 4, generator=g) + 3.0, torch.randn(b, t, 3, generator=g) - 3.0  # never exactly 0


@settings(max_examples=60, deadline=None)
@given(b=st.integers(1, 64), p=st.floats(0.0, 1.0), seed=st.integers(0, 2**31 - 1))
def test_a_window_keeps_or_loses_each_stream_whole_and_never_both(b: int, p: float, seed: int) -> None:
    visual, audio = _batch(b)
    v, a = modality_dropout(visual, audio, p, torch.Generator().manual_seed(seed))
    v_kept = (v == visual).flatten(1).all(1)
    v_lost = (v == 0).flatten(1).all(1)
    a_kept = (a == audio).flatten(1).all(1)
    a_lost = (a == 0).flatten(1).all(1)
    assert bool((v_kept ^ v_lost).all()) and bool((a_kept ^ a_lost).all())  # whole windows, one way or the other
    assert not bool((v_lost & a_lost).any())
    if p == 0.0:
        assert v is visual and a is audio


def test_the_shares_follow_p() -> None:
    visual, audio = _batch(20000, t=1)
    v, a = modality_dropout(visual, audio, 0.4, torch.Generator().manual_seed(0))
    lost_v = float((v == 0).flatten(1).all(1).float().mean())
    lost_a = float((a == 0).flatten(1).all(1).float().mean())
    # Each stream is silenced in p/2 = 0.2 of the windows; 4 binomial sd at n = 20000 is 0.011.
    assert lost_v == pytest.approx(0.2, abs=0.012)
    assert lost_a == pytest.approx(0.2, abs=0.012)
    v1, _ = modality_dropout(visual, audio, 1.0, torch.Generator().manual_seed(0))
    assert float((v1 == 0).flatten(1).all(1).float().mean()) == pytest.approx(0.5, abs=0.012)


def test_the_same_generator_state_gives_the_same_windows() -> None:
    visual, audio = _batch(32)
    first = modality_dropout(visual, audio, 0.5, torch.Generator().manual_seed(7))
    second = modality_dropout(visual, audio, 0.5, torch.Generator().manual_seed(7))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_a_share_outside_0_1_is_refused(p: float) -> None:
    visual, audio = _batch(2)
    with pytest.raises(ValueError, match="p must be in"):
        modality_dropout(visual, audio, p)


def test_batches_of_different_sizes_are_refused() -> None:
    visual, _ = _batch(3)
    with pytest.raises(ValueError, match="visual has 3 windows, audio 2"):
        modality_dropout(visual, torch.zeros(2, 5, 3), 0.5)
