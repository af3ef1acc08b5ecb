"""Training-time augmentation of stage-2 windows (tensors only).

`modality_dropout` silences one stream of a random share of the windows in a batch, so that a fusion model cannot
lean on one stream for a dimension the other reads better: on the CI corpus (12 training speakers) the fusions
otherwise kept less valence than the visual stream alone reads (`harness/configs/quick.yaml` has the measurements).
It is not in the BDCA paper; the paper and demo configs leave it off.
"""

from __future__ import annotations

import torch

__all__ = ["modality_dropout"]


def modality_dropout(visual: torch.Tensor, audio: torch.Tensor, p: float,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Zero the visual stream of about p/2 of the windows and the audio stream of another p/2 (never both).

    A silenced stream is all zeros, which after the per-feature normalisation is the training mean: the model sees
    "no information" from it, not an extreme value.

    Args:
        visual: (B, T, Dv) normalised visual features.
        audio: (B, T, Da) normalised audio features.
        p: share of windows that lose one stream, in [0, 1].
        generator: the random source (None: torch's global one, seeded by the run).

    Returns:
        (visual, audio), new tensors where a window is silenced; the inputs themselves when p is 0.

    Raises:
        ValueError: p outside [0, 1] or batch sizes that differ.
    """
    B = visual.shape[0]
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"modality_dropout: p must be in [0, 1], got {p}")
    if audio.shape[0] != B:
        raise ValueError(f"modality_dropout: visual has {B} windows, audio {audio.shape[0]}")
    if p == 0.0:
        return visual, audio
    u = torch.rand(B, generator=generator, device=visual.device)  # (B,)
    keep_visual = (u >= p / 2).to(visual.dtype)[:, None, None]  # (B, 1, 1)
    keep_audio = ((u < p / 2) | (u >= p)).to(audio.dtype)[:, None, None]  # (B, 1, 1)
    return visual * keep_visual, audio * keep_audio
